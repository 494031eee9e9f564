"""The README's promises, run as a new user would: its quickstart in curl, Python and Node
against a real ``signbot serve``, with only the host changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_pdf
from tests.support.servers import cli, node_major, signbot_serve

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
README_HOST = "http://127.0.0.1:8000"


def quickstart_blocks() -> dict[str, str]:
    """The fenced blocks of the Quickstart section, by language."""
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(lang, "")
        blocks[lang] += body if lang != "bash" or "curl" not in body else ""
        if lang == "bash" and "curl" in body:
            blocks["curl"] = body
    return blocks


def test_readme_has_two_setup_commands() -> None:
    section = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(commands) == 2
    assert "signbot serve" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci, ".ci/run must call the README's test command"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    data_dir = tmp_path_factory.mktemp("readme-data")
    created = cli(data_dir, "keys", "create", "--env", "test", "--name", "quickstart")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    work = tmp_path_factory.mktemp("readme-work")
    (work / "contrat.pdf").write_bytes(make_pdf(1))
    with signbot_serve(data_dir) as base:
        yield base, key, work


def _run(cmd: list[str], work: Path, key: str) -> str:
    env = {**os.environ, "SIGNBOT_API_KEY": key}
    result = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _check_sent(base: str, key: str, output: str) -> None:
    sign_url = re.search(r"(http://\S+/sign/[A-Za-z0-9_-]+)", output)
    assert sign_url, output
    assert sign_url.group(1).startswith(f"{base}/sign/")
    envelopes = httpx.get(
        f"{base}/api/v1/envelopes", headers={"Authorization": f"Bearer {key}"}
    ).json()["data"]
    assert envelopes[0]["status"] == "SENT"
    assert envelopes[0]["subject"] == "Contrat de prestation"


def test_readme_key_command_prints_secret_last(served: tuple[str, str, Path]) -> None:
    _, key, _ = served
    assert re.fullmatch(r"sk_test_[A-Za-z0-9]{32}", key)
    assert "tail -n 1" in quickstart_blocks()["bash"]


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_readme_curl(served: tuple[str, str, Path]) -> None:
    base, key, work = served
    script = quickstart_blocks()["curl"].replace(README_HOST, base)
    _check_sent(base, key, _run(["bash", "-c", script], work, key))


def test_readme_python(served: tuple[str, str, Path]) -> None:
    base, key, work = served
    script = work / "quickstart.py"
    script.write_text(quickstart_blocks()["python"].replace(README_HOST, base))
    _check_sent(base, key, _run([sys.executable, str(script)], work, key))


@pytest.mark.skipif((node_major() or 0) < 20, reason="needs Node.js 20 or newer")
def test_readme_node(served: tuple[str, str, Path]) -> None:
    base, key, work = served
    script = work / "quickstart.mjs"
    script.write_text(quickstart_blocks()["javascript"].replace(README_HOST, base))
    _check_sent(base, key, _run(["node", str(script)], work, key))


def _readme_section_blocks(heading: str) -> dict[str, str]:
    section = README.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return {lang: body for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)}


def _signed_delivery() -> tuple[str, bytes, str]:
    from bot.webhooks.signature import certyneo_signature, generate_secret

    secret = generate_secret()
    body = b'{"id":"evt_1","event":"envelope.completed","data":{"envelopeId":"env_1"}}'
    return secret, body, certyneo_signature(secret, body)


def test_readme_webhook_verification_python() -> None:
    secret, body, signature = _signed_delivery()
    namespace: dict[str, object] = {}
    exec(_readme_section_blocks("Webhooks")["python"], namespace)
    verify = namespace["verify_certyneo"]
    assert verify(secret, body, signature) is True  # type: ignore[operator]
    assert verify(secret, body + b" ", signature) is False  # type: ignore[operator]
    assert verify(secret[:-2] + "AA", body, signature) is False  # type: ignore[operator]


@pytest.mark.skipif((node_major() or 0) < 20, reason="needs Node.js 20 or newer")
def test_readme_webhook_verification_node(tmp_path: Path) -> None:
    secret, body, signature = _signed_delivery()
    (tmp_path / "verify.mjs").write_text(_readme_section_blocks("Webhooks")["javascript"])
    (tmp_path / "check.mjs").write_text(
        'import { verifyCertyneo } from "./verify.mjs";\n'
        "const [secret, body, sig] = process.argv.slice(2);\n"
        "console.log(verifyCertyneo(secret, Buffer.from(body), sig),"
        " verifyCertyneo(secret, Buffer.from(body + ' '), sig),"
        " verifyCertyneo(secret, Buffer.from(body), 'short'));\n"
    )
    out = subprocess.run(
        ["node", "check.mjs", secret, body.decode(), signature],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["true", "false", "false"]
