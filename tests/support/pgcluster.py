"""A throwaway PostgreSQL cluster of the test's own, to stop and restart at will.

Never the machine's shared server: ``initdb`` into a temporary directory, ``pg_ctl start`` on a
free loopback port (``fsync=off``: nothing here must survive a power cut), stopped and removed
at exit whatever happens. PostgreSQL refuses to run as root, so as root the binaries run as the
``postgres`` user (``runuser``) in a directory it owns.

Without ``initdb``/``pg_ctl`` the test is skipped, saying why — unless ``CI`` is set, where it
fails: CI machines have PostgreSQL installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support.servers import free_port

PG_USER = "postgres"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: PostgreSQL's server binaries must be installed)")
    pytest.skip(reason)


def pg_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH, /usr/local/bin, then Debian's
    versioned ``/usr/lib/postgresql/<ver>/bin`` (newest first), which is not on PATH."""
    candidates = [shutil.which("initdb"), "/usr/local/bin/initdb"]
    versioned = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    versioned.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    candidates += reversed(versioned)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            bindir = Path(candidate).resolve().parent
            if os.access(bindir / "pg_ctl", os.X_OK):
                return bindir
    return None


class PgCluster:
    """One running throwaway cluster; ``url`` reaches its ``postgres`` database (or the one
    created for the test) as the superuser ``postgres`` with trust authentication."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.logfile = root / "server.log"
        self.database = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", PG_USER, "--", *cmd]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:1])} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                f"server log tail:\n{log}"
            )
        return done

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )

    def initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", self._options(),
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop (``fast``: roll back and disconnect every session; ``immediate``: no
        shutdown checkpoint, like a crash) and wait until it is down."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart``: stop (every session is cut) and start again on the same port."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", self._options(),
            "-m", mode, "-w", "-t", "30", "restart",
        )  # fmt: skip

    def running(self) -> bool:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", PG_USER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode == 0

    def create_database(self, name: str) -> str:
        """Create ``name`` and make it the one ``url`` names; returns the URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        self.database = name
        return self.url


@contextmanager
def pg_cluster(database: str | None = None) -> Iterator[PgCluster]:
    """A fresh cluster on a free port, running; stopped and deleted at exit. ``database``:
    create it and point ``url`` at it (else ``url`` names ``postgres``)."""
    bindir = pg_bindir()
    if bindir is None:
        _unavailable("PostgreSQL's initdb/pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
    assert bindir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            _unavailable(f"running as root and there is no {PG_USER!r} user to run PostgreSQL")
        if shutil.which("runuser") is None:
            _unavailable("running as root without runuser: cannot start PostgreSQL as postgres")
    root = Path(tempfile.mkdtemp(prefix="signbot-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=PG_USER, group=None)
    root.chmod(0o700)
    cluster = PgCluster(bindir, root, free_port())
    try:
        cluster.initdb()
        for attempt in range(3):
            try:
                cluster.start()
                break
            except RuntimeError as exc:  # the free port was taken meanwhile: another one
                if attempt == 2 or "could not bind" not in str(exc).lower():
                    raise
                cluster.port = free_port()
        if database:
            cluster.create_database(database)
        yield cluster
    finally:
        try:
            if cluster.data.exists() and cluster.running():
                cluster.stop("immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)
