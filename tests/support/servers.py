"""Running signbot for real: in a uvicorn thread of the test process, or as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    base_url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{base_url} did not become healthy in {timeout} s")


@contextmanager
def uvicorn_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` over real HTTP on loopback from a thread; yields the base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def signbot_serve(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``signbot serve`` as a subprocess on a free port, as a user runs it; yields the base URL."""
    port = free_port()
    full_env = {**os.environ, "SIGNBOT_DATA_DIR": str(data_dir), **(env or {})}
    log = (data_dir / "serve.log").open("wb") if data_dir.exists() else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc=proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def cli(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``signbot`` command line against a data dir."""
    full_env = {**os.environ, "SIGNBOT_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def without_signbot_environ() -> Iterator[None]:
    """Hide the caller's SIGNBOT_*/SLACK_* configuration from ``os.environ`` for the duration."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("SIGNBOT_", "SLACK_")):
                mp.delenv(name)
        yield


@contextmanager
def served_data_dir(
    tmp_path_factory: pytest.TempPathFactory, basename: str
) -> Iterator[tuple[Path, str]]:
    """A fresh data dir and one ``signbot serve`` on it, configured with nothing else:
    yields (data dir, base URL)."""
    data_dir = tmp_path_factory.mktemp(basename) / "signbot-data"
    data_dir.mkdir()
    with signbot_serve(data_dir) as base:
        yield data_dir, base


def node_major() -> int | None:
    """The installed Node.js major version, or None without ``node`` (tests that run the
    quickstarts in Node skip, saying so, rather than fail on a machine without it)."""
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(match.group(1)) if match else None


def stop_process(proc: subprocess.Popen[Any], *, kill: bool = False, timeout: float = 10) -> None:
    """Stop a server process (SIGTERM, or SIGKILL as a crash) and wait until it is gone;
    one that ignores SIGTERM is killed."""
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
