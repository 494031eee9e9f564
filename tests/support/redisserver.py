"""A throwaway ``redis-server`` of the test's own, to kill and start again at will.

Never the machine's shared Redis: a subprocess on a free loopback port, no persistence
(``--save ""``, ``--appendonly no``: a restart starts empty, like a lost Redis), stopped at exit.
Without ``redis-server`` the test is skipped, saying why — unless ``CI`` is set, where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port, stop_process


class RedisServer:
    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start on the same port and wait until it answers PING."""
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--loglevel", "warning",
            ],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if self.ping():
                return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def stop(self, kill: bool = False) -> None:
        """Stop it (``kill``: SIGKILL, as a crash) and wait until it is gone."""
        if self.proc is None:
            return
        stop_process(self.proc, kill=kill)
        self.proc = None

    def ping(self) -> bool:
        """A raw RESP PING (no client library, no pool)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running ``redis-server`` on a free port; stopped and its directory removed at exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: it must be)")
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="signbot-redis-"))
    server = RedisServer(binary, workdir, free_port())
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop(kill=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
