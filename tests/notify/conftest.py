"""Real servers for the notify tests: aiosmtpd (plain, STARTTLS, implicit TLS, AUTH) with a
certificate made here, and a tiny Twilio-like HTTP server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.notify import Kind, MailContext
from tests.support.servers import free_port


def context(**overrides: Any) -> MailContext:
    """A realistic invitation; tests override what they look at."""
    values: dict[str, Any] = {
        "kind": Kind.INVITATION,
        "locale": "en",
        "account_name": "Acme",
        "subject": "Mutual NDA",
        "recipient_email": "alice@example.com",
        "recipient_name": "Alice Martin",
        "message": "Hi Alice,\nplease sign by Friday.",
        "action_url": "https://sign.example.com/sign/tok_ABC123",
        "code": "493817",
        "expires_at": dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.UTC),
        "decline_reason": "Wrong amount",
        "declined_by": "Bob Stone",
        "void_reason": "Replaced by version 2",
        "missing": ("Bob Stone", "Chloé Petit"),
        "envelope_id": "env_01HGTEST",
    }
    values.update(overrides)
    return MailContext(**values)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: str | None


@dataclass
class Recorder:
    """aiosmtpd handler: keeps what it accepts; refuses the addresses in ``refuse``."""

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if session.authenticated else None
        implicit_tls = server.transport.get_extra_info("sslcontext") is not None
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                session.ssl is not None or implicit_tls,
                login,
            )
        )
        return "250 2.0.0 OK queued as TEST123"


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        # handled=False: aiosmtpd answers the 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


@dataclass
class SmtpServer:
    port: int
    recorder: Recorder


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (EC: fast to make)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Starts aiosmtpd servers on loopback (keyword arguments go to ``Controller``)."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> SmtpServer:
        recorder = Recorder()
        port = free_port()
        controller = Controller(
            recorder, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs
        )
        controller.start()
        controllers.append(controller)
        return SmtpServer(port, recorder)

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class SmsCall:
    path: str
    authorization: str | None
    form: dict[str, str]


class FakeSmsApi:
    """A Twilio-like Messages endpoint. The answer depends on the ``To`` number:
    ``status_for[to] = (status, json body)``; otherwise 201 with a ``sid``. ``delay`` makes
    every answer late (for timeouts)."""

    def __init__(self) -> None:
        self.calls: list[SmsCall] = []
        self.status_for: dict[str, tuple[int, dict[str, Any]]] = {}
        self.delay = 0.0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                api.calls.append(SmsCall(self.path, self.headers.get("Authorization"), form))
                if api.delay:
                    time.sleep(api.delay)
                status, body = api.status_for.get(
                    form.get("To", ""), (201, {"sid": f"SM{len(api.calls):032d}"})
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, userinfo: str = "AC123:tok%2Fen") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}/2010-04-01/Accounts/AC123/Messages.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sms_api() -> Iterator[FakeSmsApi]:
    api = FakeSmsApi()
    yield api
    api.close()
