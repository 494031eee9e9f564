"""The ``signbot`` command line, run as a user runs it (subprocesses), against temp data dirs and a
real ``signbot serve``."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_pdf
from tests.support.servers import cli, free_port, served_data_dir, without_signbot_environ

SECRET = re.compile(r"^sk_(test|live)_[A-Za-z0-9]{32}$")
KEY_ID = re.compile(r"\bkey_[0-9A-Za-z]+\b")
UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:1/x"


@pytest.fixture(scope="module", autouse=True)
def clean_environ() -> Iterator[None]:
    """Only what each test sets: no SIGNBOT_*/SLACK_* configuration from the caller's shell."""
    with without_signbot_environ():
        yield


@pytest.fixture(scope="module")
def served(
    clean_environ: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """One ``signbot serve`` for the module, configured with nothing but its data dir."""
    with served_data_dir(tmp_path_factory, "cli") as running:
        yield running


def ok(data_dir: Path, *args: str) -> str:
    done = cli(data_dir, *args)
    assert done.returncode == 0, f"signbot {' '.join(args)}: {done.stderr}"
    return done.stdout


def last_line(stdout: str) -> str:
    lines = stdout.strip().splitlines()
    return lines[-1].strip() if lines else ""


def create_key(data_dir: Path, *args: str) -> tuple[str, str]:
    """(key id, secret) from ``signbot keys create ARGS``."""
    out = ok(data_dir, "keys", "create", *args)
    secret = last_line(out)
    assert SECRET.match(secret), out
    assert out.count(secret) == 1
    assert out.rstrip("\n").endswith("\n" + secret) or out.strip() == secret
    ids = KEY_ID.findall(out)
    assert ids, f"no key id printed: {out}"
    return ids[0], secret


def api(base: str, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )


def account_rows(data_dir: Path) -> list[list[str]]:
    return [line.split("\t") for line in ok(data_dir, "accounts", "list").splitlines() if line]


# --- keys create -----------------------------------------------------------------------------


def test_keys_create_uses_default_account_created_at_first_use(data_dir: Path) -> None:
    assert account_rows(data_dir) == []
    _, secret = create_key(data_dir)
    assert secret.startswith("sk_test_")
    rows = account_rows(data_dir)
    assert [row[1] for row in rows] == ["default"]
    assert rows[0][0].startswith("acc_")

    _, live = create_key(data_dir, "--env", "live")
    assert live.startswith("sk_live_")
    assert live != secret
    assert [row[1] for row in account_rows(data_dir)] == ["default"]  # created once


def test_read_scoped_key_cannot_write(served: tuple[Path, str]) -> None:
    data_dir, base = served
    _, secret = create_key(data_dir, "--scopes", "envelopes:read")
    with api(base, secret) as client:
        refused = client.post(
            "/envelopes",
            json={
                "subject": "x",
                "documentIds": ["doc_x"],
                "recipients": [{"email": "a@example.com", "name": "A", "role": "SIGNER"}],
            },
        )
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        body = refused.json()
        assert body["code"] == "FORBIDDEN"
        assert "Insufficient scope" in body["error"]

        listed = client.get("/envelopes")
        assert listed.status_code == 200, listed.text
        assert "data" in listed.json()


# --- accounts ----------------------------------------------------------------------------------


def test_accounts_create_list_and_duplicate(data_dir: Path) -> None:
    account_id = last_line(ok(data_dir, "accounts", "create", "acme"))
    assert re.fullmatch(r"acc_[0-9A-Za-z]+", account_id)
    assert [account_id, "acme"] in [row[:2] for row in account_rows(data_dir)]

    again = cli(data_dir, "accounts", "create", "acme")
    assert again.returncode != 0
    assert "acme" in again.stderr and "exist" in again.stderr.lower(), again.stderr
    assert "Traceback" not in again.stderr
    assert [row[1] for row in account_rows(data_dir)].count("acme") == 1


def test_keys_create_by_account_name_and_id(data_dir: Path) -> None:
    account_id = last_line(ok(data_dir, "accounts", "create", "acme"))
    by_name, _ = create_key(data_dir, "--account", "acme")
    by_id, _ = create_key(data_dir, "--account", account_id, "--env", "live")
    listed = ok(data_dir, "keys", "list", "--account", "acme")
    assert by_name in listed and by_id in listed
    assert "default" not in [row[1] for row in account_rows(data_dir)]


def test_keys_create_for_unknown_account(data_dir: Path) -> None:
    done = cli(data_dir, "keys", "create", "--account", "nope")
    assert done.returncode != 0
    assert "nope" in done.stderr
    assert "Traceback" not in done.stderr
    assert not re.search(r"sk_(test|live)_", done.stdout)
    assert not SECRET.match(last_line(done.stdout))


# --- bad input and an unreachable database -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create", "--env", "prod"),
        ("serve", "--port", "0"),
        ("serve", "--role", "boss"),
    ],
    ids=["env-prod", "port-0", "role-boss"],
)
def test_bad_flags_print_usage(data_dir: Path, args: tuple[str, ...]) -> None:
    done = cli(data_dir, *args)
    assert done.returncode != 0
    assert "Usage:" in done.stderr, done.stderr
    assert args[-1] in done.stderr  # names the bad value
    assert "Traceback" not in done.stderr
    assert not re.search(r"sk_(test|live)_", done.stdout)


@pytest.mark.parametrize(
    "args",
    [("keys", "create"), ("accounts", "list"), ("keys", "list"), ("serve", "--port", "PORT")],
    ids=["keys-create", "accounts-list", "keys-list", "serve"],
)
def test_unreachable_database_is_one_readable_line(data_dir: Path, args: tuple[str, ...]) -> None:
    args = tuple(str(free_port()) if a == "PORT" else a for a in args)
    done = cli(data_dir, *args, env={"SIGNBOT_DATABASE_URL": UNREACHABLE_DB})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "cannot reach the database" in lines[0].lower(), lines[0]
    assert not re.search(r"sk_(test|live)_", done.stdout)


# --- keys list and revoke against a running server -----------------------------------------


def test_keys_list_hides_secret_and_revoke_reaches_running_server(
    served: tuple[Path, str],
) -> None:
    data_dir, base = served
    key_id, secret = create_key(data_dir)

    listed = ok(data_dir, "keys", "list")
    assert key_id in listed
    assert secret not in listed
    assert secret[-12:] not in listed  # not even most of it

    with api(base, secret) as client:
        before = client.get("/envelopes")
        assert before.status_code == 200, before.text

        revoked = cli(data_dir, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert secret not in revoked.stdout + revoked.stderr

        deadline = time.monotonic() + 1.5
        status = client.get("/envelopes").status_code
        while status != 401 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = client.get("/envelopes").status_code
        assert status == 401, "the revoked key was still accepted 1.5 s after `keys revoke`"

    assert secret not in ok(data_dir, "keys", "list")


# --- serve ---------------------------------------------------------------------------------------


def test_serve_health_and_readiness(served: tuple[Path, str]) -> None:
    _, base = served
    health = httpx.get(f"{base}/healthz", timeout=10)
    assert health.status_code == 200
    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"


def test_serve_embedded_default_needs_only_a_data_dir(served: tuple[Path, str]) -> None:
    """README's embedded default: with nothing but SIGNBOT_DATA_DIR, a SQLite database is created
    inside the data dir and the API works with a key the CLI made there."""
    data_dir, base = served
    sqlite_files = [
        path
        for path in data_dir.rglob("*")
        if path.is_file() and path.read_bytes()[:16] == b"SQLite format 3\x00"
    ]
    assert sqlite_files, f"no SQLite database under {data_dir}: {list(data_dir.iterdir())}"

    name = f"embedded-{uuid.uuid4().hex[:8]}"
    ok(data_dir, "accounts", "create", name)
    _, secret = create_key(data_dir, "--account", name)
    with api(base, secret) as client:
        doc = client.post(
            "/documents",
            files={"file": ("a.pdf", make_pdf(1), "application/pdf")},
        )
        assert doc.status_code == 201, doc.text
    ready = httpx.get(f"{base}/readyz", timeout=10).json()
    assert ready["checks"]["database"] == "ok"
