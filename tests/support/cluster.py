"""A deployment of real ``signbot serve`` processes for replica and fault tests.

Each :class:`Replica` is its own process with its own data directory (as on separate
machines); they share only what a real deployment shares: the database, Redis, object storage
and the outside world — an SMTP server, a webhook receiver, an SMS gateway and a timestamp
authority, each a :class:`Gate` that a test can *hold*: a held request is recorded as it
arrives and then refused once released, so a test can kill a replica while it is in the
middle of talking to it, knowing that the outside world did not accept that attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tests.support.servers import free_port, wait_healthy

KEY = re.compile(r"^sk_(test|live)_\S+$")


def until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------ the outside


class Gate:
    """Holding: arrivals are recorded and kept waiting; released, they are refused."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.held: list[Any] = []
        self._lock = threading.Lock()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def passes(self, arrival: Any) -> bool:
        """Called for each arrival: True when it may go through, False once a held one is
        released (it must then be refused)."""
        if self._open.is_set():
            return True
        with self._lock:
            self.held.append(arrival)
        self._open.wait(timeout=120)
        return False


@dataclass
class Delivery:
    event: str
    event_id: str
    webhook_id: str
    envelope_id: str
    answered: int


class WebhookReceiver(Gate):
    """A consumer's endpoint: answers 200 and records each delivery it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[Delivery] = []
        self.arrivals: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                delivery = Delivery(
                    event=body["event"],
                    event_id=body["id"],
                    webhook_id=self.headers.get("webhook-id", ""),
                    envelope_id=body.get("envelope_id", ""),
                    answered=200,
                )
                with receiver._lock:
                    receiver.arrivals.append(delivery)
                if not receiver.passes(delivery):
                    self.send_response(503)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.accepted.append(delivery)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, envelope_id: str, event: str | None = None) -> list[Delivery]:
        with self._lock:
            return [
                d
                for d in self.accepted
                if d.envelope_id == envelope_id and (event is None or d.event == event)
            ]

    def close(self) -> None:
        self.release()
        self.server.shutdown()


class SmtpSink(Gate):
    """An SMTP server that keeps the messages it accepted (250 after DATA)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        # a held message is waited for in a thread: the SMTP loop keeps serving the others
        if not self._open.is_set() and not await asyncio.to_thread(self.passes, message):
            return "451 4.3.0 try again later"
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted"

    def to(self, address: str, kind: str) -> list[EmailMessage]:
        with self._lock:
            return [
                m
                for m in self.messages
                if address in str(m["To"]) and m.get("X-Signbot-Kind") == kind
            ]

    def close(self) -> None:
        self.release()
        self.controller.stop()


class SmsGateway(Gate):
    """A Twilio-compatible Messages endpoint that records the texts it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[dict[str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = dict(httpx.QueryParams(raw))
                if not gateway.passes(form):
                    self.send_response(503)
                    self.end_headers()
                    return
                with gateway._lock:
                    gateway.texts.append(form)
                body = json.dumps({"sid": f"SM{len(gateway.texts):032d}", "status": "queued"})
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        self.url = f"http://AC1:secret@127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, phone: str) -> list[dict[str, str]]:
        with self._lock:
            return [t for t in self.texts if t.get("To") == phone]

    def close(self) -> None:
        self.release()
        self.server.shutdown()


class TsaGate(Gate):
    """A pass-through to a real timestamp authority that can be held."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not gate.passes(body):
                    self.send_response(503)
                    self.end_headers()
                    return
                answer = httpx.post(
                    upstream,
                    content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", ""))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release()
        self.server.shutdown()


# ------------------------------------------------------------------------------ replicas


@dataclass
class Replica:
    """One ``signbot serve`` process; ``kill()`` is ``kill -9``, ``start()`` brings it back
    on the same port and data directory."""

    name: str
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    role: str = "all"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(self.port), "--role", self.role],
            env={**os.environ, "SIGNBOT_DATA_DIR": str(self.data_dir), **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_healthy(self.url, timeout=60, proc=self.proc)
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown, no goodbye to the database."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM, as an orchestrator stops a container; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def log(self) -> str:
        path = self.data_dir / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_together(*replicas: Replica, timeout: float = 120) -> None:
    """Start replicas at the same time, as an orchestrator does (their first-start set-up
    races: migrations, keys, the bot's webhook); raises what any of them raised."""
    errors: list[BaseException] = []

    def start(replica: Replica) -> None:
        try:
            replica.start()
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]


def create_key(data_dir: Path, env: dict[str, str], environment: str = "live") -> str:
    """A key of the default account, made with the CLI against the shared database."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "keys", "create", "--env", environment],
        env={**os.environ, "SIGNBOT_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1]
    assert KEY.match(secret), done.stdout
    return secret


def api(base: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


class RoundRobin:
    """A load balancer for the tests: each request goes to the next replica in turn (or, once
    one stops answering, to the others), bytes untouched, as a reverse proxy does."""

    HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}

    def __init__(self, port: int | None = None) -> None:
        self.targets: list[str] = []
        self.sent: dict[str, int] = {}
        self.fan_out: set[str] = set()
        """Path prefixes sent to every replica at once, to race them against each other."""
        self.raced: list[int] = []
        """The statuses the replicas answered to fanned-out requests."""
        self._turn = 0
        self._lock = threading.Lock()
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in balancer.HOP}
                headers["X-Forwarded-For"] = self.client_address[0]
                if any(self.path.startswith(p) for p in balancer.fan_out):
                    answer = balancer._to_all(self.command, self.path, body, headers)
                    self._reply(answer)
                    return
                answer = None
                for target in balancer._order():
                    try:
                        answer = httpx.request(
                            self.command,
                            target + self.path,
                            content=body,
                            headers=headers,
                            timeout=60,
                        )
                    except httpx.TransportError:
                        continue  # that replica is down: try the next one
                    with balancer._lock:
                        balancer.sent[target] = balancer.sent.get(target, 0) + 1
                    break
                self._reply(answer)

            def _reply(self, answer: httpx.Response | None) -> None:
                if answer is None:
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(answer.status_code)
                for name, value in answer.headers.multi_items():
                    if name.lower() not in balancer.HOP | {"content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _to_all(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> httpx.Response | None:
        """The same request to every replica at once (a retry racing the first attempt);
        the answer is a 2xx one if any replica gave one."""
        answers: list[httpx.Response] = []

        def one(target: str) -> None:
            with contextlib.suppress(httpx.TransportError):
                answers.append(
                    httpx.request(method, target + path, content=body, headers=headers, timeout=60)
                )

        threads = [threading.Thread(target=one, args=(t,)) for t in self.targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with self._lock:
            self.raced.extend(a.status_code for a in answers)
        ok = [a for a in answers if a.is_success]
        return ok[0] if ok else (answers[0] if answers else None)

    def _order(self) -> list[str]:
        with self._lock:
            self._turn += 1
            start = self._turn % len(self.targets)
        return self.targets[start:] + self.targets[:start]

    def close(self) -> None:
        self.server.shutdown()
