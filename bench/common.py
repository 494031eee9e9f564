"""What the bench scripts share: server processes, throwaway databases, a PDF, profile parsing.

Imported as ``common`` (the bench scripts run with ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
API = "/api/v1"
#: Over how many seconds of server life a uvicorn process must answer /healthz.
START_TIMEOUT = 60.0

# ------------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """Our environment without SIGNBOT_* / SLACK_* (a run must not depend on the caller's)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SIGNBOT_", "SLACK_"))}


@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def serve(
    name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start one server process, wait for ``/healthz``, yield it, then stop it (by its pid)."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)],
            cwd=ROOT,
            env={**clean_env(), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(name, base, proc, log_path)
        yield Server(base, proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(name: str, base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}; log tail:\n{tail}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{name} ({base}) did not answer /healthz within {START_TIMEOUT} s")


# ------------------------------------------------------------------------------------ databases


def pg_admin(pg_url: str) -> tuple[Any, Any]:
    """(base URL with the psycopg driver, AUTOCOMMIT engine) for ``--database-url``."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    if url.get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be a postgresql:// URL (default: SQLite)")
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url, create_engine(url, isolation_level="AUTOCOMMIT")


def create_database(admin: Any, base: Any, name: str) -> str:
    """``CREATE DATABASE name`` through ``admin``; its URL on the server of ``base``."""
    from sqlalchemy import text

    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return str(base.set(database=name).render_as_string(hide_password=False))


def drop_databases(admin: Any, names: list[str]) -> None:
    """End the connections to each of ``names``, drop it, then dispose of ``admin``."""
    from sqlalchemy import text

    with admin.connect() as conn:
        for name in names:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


# ------------------------------------------------------------------------------------ our app


def pdf(pages: int = 1) -> bytes:
    """A PDF of ``pages`` blank US Letter pages."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# ------------------------------------------------------------------------------------ profile

#: One frame of py-spy's raw output: ``func (file:line)``.
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]+?)(?::(?P<line>\d+))?\)$")
#: Frames of ours that sit at the bottom of every stack (the process entry point).
ENTRY_FILES = ("bot/__main__.py", "bot/cli.py")


def package_of(file: str) -> str:
    """``sqlalchemy/orm/session.py`` -> ``sqlalchemy``; ``<frozen runpy>`` stays as is."""
    parts = Path(file).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    return parts[0].removesuffix(".py") if parts else file
