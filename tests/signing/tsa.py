"""A real RFC 3161 timestamp authority over HTTP on 127.0.0.1, for B-T / B-LT tests.

The protocol side is ours (an ``http.server`` thread: POST ``application/timestamp-query`` →
``application/timestamp-reply``); the token is built by pyHanko's ``DummyTimeStamper``, which
signs whatever it is asked with the TSA key given. The TSA's chain is generated here: a root
and a TSA certificate (critical extendedKeyUsage timeStamping), without OCSP/CRL pointers, like
a small private TSA. Also: a listener that accepts and never answers (a hung TSA).
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps import DummyTimeStamper


@dataclass
class LocalTSA:
    url: str
    root: asn1_x509.Certificate
    """Trust this to validate the timestamps."""
    cert: asn1_x509.Certificate
    requests: list[bytes] = field(default_factory=list)
    """Every request body received, in order."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def make_tsa_chain(
    ocsp_url: str | None = None,
) -> tuple[x509.Certificate, x509.Certificate, rsa.RSAPrivateKey]:
    """(root, TSA certificate, TSA key); ``ocsp_url`` names an OCSP responder in the TSA
    certificate (as a public TSA's does), which B-LT must then consult."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("signbot test TSA root"))
        .issuer_name(_name("signbot test TSA root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("signbot test TSA"))
        .issuer_name(root.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    )
    if ocsp_url:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), False)
    return root, builder.sign(root_key, hashes.SHA256()), tsa_key


@contextmanager
def local_tsa(ocsp_url: str | None = None) -> Iterator[LocalTSA]:
    """Serve a TSA on an ephemeral loopback port; yields its URL and certificates."""
    root, cert, key = make_tsa_chain(ocsp_url)
    key_info = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    stamper = DummyTimeStamper(tsa_cert=_asn1(cert), tsa_key=key_info)
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(body)
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_error(415, "expected application/timestamp-query")
                return
            try:
                reply = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
            except Exception:
                self.send_error(400, "malformed timestamp request")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield LocalTSA(f"http://127.0.0.1:{port}/tsa", _asn1(root), _asn1(cert), seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def hung_tsa() -> Iterator[str]:
    """A URL whose server accepts the connection and never answers."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/tsa"


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"
