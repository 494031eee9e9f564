"""The vendor page's quickstarts (curl, Node 20, Python) run unchanged against ``signbot serve``.

The snippets are taken from the page file at test time, not retyped: the page's formatting glued
the three together and lost Python's indentation, so they are split at their boundaries, the
Python block under ``with open(...)`` is re-indented mechanically, and then only the host
(``https://certyneo.com`` → the local server) and the key (the curl snippet's literal
``sk_live_xxx…``; Node and Python read ``CERTYNEO_API_KEY``) are replaced.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_pdf
from tests.support.servers import cli, node_major, served_data_dir, without_signbot_environ

PAGE = Path(
    os.environ.get(
        "SIGNBOT_SEED_PAGE",
        Path(__file__).resolve().parents[2] / "shared/seed/certyneo-developer-page.vi.txt",
    )
)
VENDOR_HOST = "https://certyneo.com"
SUBJECT = "Contrat de prestation"
SIGNER_EMAIL = "client@example.com"
ENV_ID = re.compile(r"^env_[0-9A-Za-z]+$")


# --- reconstructing the snippets from the page ---------------------------------------------------


def page_text() -> str:
    if not PAGE.is_file():
        pytest.skip(f"the vendor page {PAGE} is not available (set SIGNBOT_SEED_PAGE)")
    return PAGE.read_text(encoding="utf-8")


def split_snippets(text: str) -> dict[str, str]:
    """The glued quickstart cut at its boundaries: curl | ``// npm install`` | ``import os,
    requests`` | ``Phong bì`` (the next section's heading)."""
    first = re.search(r"^# 1\. ", text, re.MULTILINE)
    assert first, "the curl quickstart's first comment is not on the page"
    node = text.index("// npm install", first.start())
    python = text.index("import os, requests", node)
    end = text.index("Phong bì", python)
    return {
        "curl": text[first.start() : node] + "\n",
        "node": text[node:python] + "\n",
        "python": text[python:end] + "\n",
    }


def reindent_python(source: str) -> str:
    """Give back the indentation the page lost: the ``with open(...)`` block's body (up to the
    ``# 2. Create the DRAFT envelope.`` comment) gets 4 spaces; nothing else changes."""
    lines = source.splitlines()
    openers = [i for i, line in enumerate(lines) if line.rstrip().endswith(":")]
    assert len(openers) == 1 and lines[openers[0]].startswith("with open("), (
        "the page's Python snippet changed shape: expected one block, under `with open(...)`"
    )
    start = openers[0] + 1
    stop = lines.index("# 2. Create the DRAFT envelope.")
    assert start < stop
    body = ["    " + line if line.strip() else line for line in lines[start:stop]]
    return "\n".join([*lines[:start], *body, *lines[stop:]]) + "\n"


def with_host(source: str, base_url: str, expected: int) -> str:
    assert source.count(VENDOR_HOST) == expected, source
    out = source.replace(VENDOR_HOST, base_url)
    assert "certyneo.com" not in out
    return out


@pytest.fixture(scope="module")
def snippets() -> dict[str, str]:
    return split_snippets(page_text())


def test_page_split_and_reindent(snippets: dict[str, str]) -> None:
    """The reconstruction itself: each piece is the language it claims to be."""
    assert snippets["curl"].startswith("# 1. Upload the PDF")
    assert snippets["curl"].count("curl ") == 3
    assert snippets["node"].startswith("// npm install")
    assert snippets["node"].rstrip().endswith("console.log(envelope.id);")
    assert snippets["python"].startswith("import os, requests")
    assert snippets["python"].rstrip().endswith('print(envelope["id"])')
    with pytest.raises(SyntaxError):  # as printed on the page
        compile(snippets["python"], "page.py", "exec")
    fixed = reindent_python(snippets["python"])
    compile(fixed, "quickstart.py", "exec")
    # only leading whitespace was added
    assert [line.strip() for line in fixed.splitlines()] == [
        line.strip() for line in snippets["python"].splitlines()
    ]


# --- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_environ() -> Iterator[None]:
    """No SIGNBOT_*/SLACK_* configuration leaks in from the caller's shell."""
    with without_signbot_environ():
        yield


@pytest.fixture(scope="module")
def served(
    clean_environ: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    with served_data_dir(tmp_path_factory, "quickstart") as running:
        yield running


def new_key(data_dir: Path, environment: str = "live") -> str:
    """A key of a fresh account, made with the CLI (the secret is the last stdout line)."""
    name = f"qs-{uuid.uuid4().hex[:10]}"
    made = cli(data_dir, "accounts", "create", name)
    assert made.returncode == 0, made.stderr
    made = cli(data_dir, "keys", "create", "--account", name, "--env", environment)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith(f"sk_{environment}_")
    return secret


def api(base: str, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "quickstart"
    work.mkdir()
    (work / "contrat.pdf").write_bytes(make_pdf(2))
    return work


def run_env(secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "CERTYNEO_API_KEY": secret,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def run_snippet(command: list[str], workdir: Path, secret: str) -> str:
    """Run one reconstructed snippet as its reader would; its stdout, after a clean exit."""
    done = subprocess.run(
        command,
        cwd=workdir,
        env=run_env(secret),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_sent(client: httpx.Client, envelope_id: str) -> dict:
    got = client.get(f"/envelopes/{envelope_id}")
    assert got.status_code == 200, got.text
    envelope = got.json()
    assert envelope["subject"] == SUBJECT
    assert envelope["status"] == "SENT"
    assert [r["email"] for r in envelope["recipients"]] == [SIGNER_EMAIL]
    return envelope


# --- the three quickstarts -----------------------------------------------------------------------


def test_curl_quickstart(served: tuple[Path, str], snippets: dict[str, str], workdir: Path) -> None:
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the curl quickstart needs `{tool}`, which is not installed")
    data_dir, base = served
    secret = new_key(data_dir)
    script = with_host(snippets["curl"], base, expected=3)
    script, count = re.subn(r"sk_live_x+", secret, script)
    assert count == 3
    (workdir / "quickstart.sh").write_text(script, encoding="utf-8")

    run_snippet(["bash", "quickstart.sh"], workdir, secret)

    with api(base, secret) as client:
        listed = client.get("/envelopes")
        assert listed.status_code == 200, listed.text
        mine = [e for e in listed.json()["data"] if e["subject"] == SUBJECT]
        assert len(mine) == 1, listed.json()
        envelope = assert_sent(client, mine[0]["id"])
    assert envelope["recipients"][0]["name"] == "Marie Dubois"


@pytest.mark.node
def test_node_quickstart(served: tuple[Path, str], snippets: dict[str, str], workdir: Path) -> None:
    major = node_major()
    if major is None:
        pytest.skip("the Node quickstart needs `node` (Node.js 20 or later), not installed")
    if major < 20:
        pytest.skip(f"the Node quickstart needs Node.js 20 or later, found {major}")
    data_dir, base = served
    secret = new_key(data_dir)
    module = (
        'import { readFileSync } from "node:fs";\n'
        'const pdfBuffer = readFileSync("contrat.pdf");\n'
        + with_host(snippets["node"], base, expected=3)
    )
    (workdir / "quickstart.mjs").write_text(module, encoding="utf-8")

    stdout = run_snippet(["node", "quickstart.mjs"], workdir, secret)
    envelope_id = stdout.strip().splitlines()[-1]
    assert ENV_ID.match(envelope_id), stdout
    with api(base, secret) as client:
        assert_sent(client, envelope_id)


def test_python_quickstart(
    served: tuple[Path, str], snippets: dict[str, str], workdir: Path
) -> None:
    data_dir, base = served
    secret = new_key(data_dir)
    source = with_host(reindent_python(snippets["python"]), base, expected=3)
    (workdir / "quickstart.py").write_text(source, encoding="utf-8")

    stdout = run_snippet([sys.executable, "quickstart.py"], workdir, secret)
    envelope_id = stdout.strip().splitlines()[-1]
    assert ENV_ID.match(envelope_id), stdout
    with api(base, secret) as client:
        assert_sent(client, envelope_id)


# --- the older one-shot form, and sign links ---------------------------------------------------


def test_one_shot_form_creates_and_sends(served: tuple[Path, str]) -> None:
    """certyneo/README.md: ``signers`` + ``documents[{name, base64Pdf}]`` creates and sends."""
    data_dir, base = served
    secret = new_key(data_dir)
    body = {
        "signers": [{"email": SIGNER_EMAIL, "name": "Marie Dubois"}],
        "documents": [{"name": "contrat.pdf", "base64Pdf": base64.b64encode(make_pdf(1)).decode()}],
    }
    with api(base, secret) as client:
        created = client.post("/envelopes", json=body)
        assert created.status_code == 201, created.text
        out = created.json()
        assert out["status"] == "SENT"
        assert out["signers"][0]["signUrl"].startswith(f"{base}/sign/")
        assert out["signers"][0]["email"] == SIGNER_EMAIL
        got = client.get(f"/envelopes/{out['id']}")
        assert got.status_code == 200, got.text
        assert got.json()["status"] == "SENT"


def test_sign_links_same_on_create_and_send_and_follow_port(served: tuple[Path, str]) -> None:
    """Create and send answer the same ``accessToken``/``signUrl``; with no
    ``SIGNBOT_PUBLIC_URL`` the link starts with the address that ``--port`` gave."""
    data_dir, base = served
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
    secret = new_key(data_dir, "test")
    with api(base, secret) as client:
        doc = client.post(
            "/documents", files={"file": ("contrat.pdf", make_pdf(1), "application/pdf")}
        )
        assert doc.status_code == 201, doc.text
        created = client.post(
            "/envelopes",
            json={
                "subject": SUBJECT,
                "documentIds": [doc.json()["id"]],
                "recipients": [
                    {"email": SIGNER_EMAIL, "name": "Marie Dubois", "role": "SIGNER"},
                    {"email": "second@example.com", "name": "Jean Martin", "role": "SIGNER"},
                ],
            },
        )
        assert created.status_code == 201, created.text
        sent = client.post(f"/envelopes/{created.json()['id']}/send")
        assert sent.status_code == 200, sent.text

    def links(envelope: dict) -> dict[str, tuple[str, str]]:
        return {r["email"]: (r["accessToken"], r["signUrl"]) for r in envelope["recipients"]}

    at_create, at_send = links(created.json()), links(sent.json())
    assert at_create == at_send
    assert len({token for token, _ in at_create.values()}) == 2
    for token, url in at_create.values():
        assert token
        assert url == f"{base}/sign/{token}"
