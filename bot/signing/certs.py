"""The deployment's sealing identity: a PKCS#12 file, or a self-signed pair generated once.

Without ``SIGNBOT_SEAL_P12`` a root CA and a seal certificate issued by it are generated at first
use under ``{data_dir}/seal/`` (``root.pem``, ``seal.pem``, ``seal-key.pem``) and loaded from
there on every later start. The root's private key is *discarded* after issuing: users are told
to trust ``root.pem`` in their validators (and some trust it for every purpose, TLS included), so
a root key lying in the data directory would let whoever reads a backup mint certificates those
users trust. The price: when the seal certificate expires (5 years) a new root must be trusted.

Generation is safe against two processes starting at once on one data directory: each builds
its files in a private temporary directory and ``os.rename``s it to ``seal/``; the rename is
atomic and fails for the loser (the target then exists and is not empty), who loads the
winner's files instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

log = logging.getLogger("signbot.signing")

SEAL_DIR = "seal"
ROOT_PEM = "root.pem"
SEAL_PEM = "seal.pem"
SEAL_KEY_PEM = "seal-key.pem"

ROOT_YEARS = 10
SEAL_YEARS = 5
#: Key purposes that document-signing validators look for. poppler (``pdfsig``, NSS's
#: "email signer" usage) requires emailProtection when an EKU extension is present; Adobe accepts
#: emailProtection, its own Authentic Documents Trust purpose and RFC 9336 documentSigning.
DOCUMENT_SIGNING_EKUS = (
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # id-kp-documentSigning (RFC 9336)
    ObjectIdentifier("1.2.840.113583.1.1.5"),  # Adobe Authentic Documents Trust
)
#: Warn at start when the seal certificate has less than this left.
EXPIRY_WARNING = dt.timedelta(days=30)

_warned: set[Path] = set()


class SealIdentityError(ValueError):
    """The sealing key or certificate cannot be loaded; the message names the file."""


@dataclass(frozen=True)
class SealIdentity:
    """What sealing needs, loaded once at start and shared by every seal."""

    key: PrivateKeyTypes
    """The ``cryptography`` private key object, kept loaded: re-loading an RSA key costs ~50 ms
    of OpenSSL key checks, more than the rest of a signature."""
    cert: asn1_x509.Certificate
    """The seal certificate, in asn1crypto form (what pyHanko takes)."""
    chain: tuple[asn1_x509.Certificate, ...]
    """The other certificates of the chain (intermediates, and the root when known), embedded
    in each signature so that validators can build the path."""
    root: asn1_x509.Certificate | None
    """The trust anchor: our generated root, or the self-signed certificate of the P12's chain;
    ``None`` when the P12 carries no root (its CA is then trusted by the validators already)."""
    self_signed: bool
    """True when signbot generated this identity (no validator trusts it out of the box)."""
    root_pem: Path | None
    """Where the root's PEM is on disk, for users to import into their validators; ``None`` for
    a P12 identity (its root lives wherever the CA publishes it)."""

    @property
    def subject(self) -> str:
        """The seal certificate's common name (its whole subject when it has none)."""
        names = self.cert.subject.native
        return str(names.get("common_name") or self.cert.subject.human_friendly)


def load_identity(data_dir: Path, p12_path: Path | None, p12_password: str | None) -> SealIdentity:
    """The sealing identity: from ``p12_path`` when given, else generated/loaded under
    ``{data_dir}/seal``. Raises :class:`SealIdentityError` with a message for the operator."""
    if p12_path is not None:
        return _load_p12(Path(p12_path), p12_password)
    seal_dir = Path(data_dir) / SEAL_DIR
    if not (seal_dir / SEAL_PEM).exists():
        _generate(seal_dir)
    identity = _load_dir(seal_dir)
    warn_self_signed(identity)
    return identity


# ------------------------------------------------------------------------------------ P12


def _load_p12(path: Path, password: str | None) -> SealIdentity:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SealIdentityError(
            f"cannot read the sealing PKCS#12 file {path}: {exc.strerror}"
        ) from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None
        )
    except ValueError as exc:
        hint = "" if password else " (SIGNBOT_SEAL_P12_PASSWORD is not set)"
        raise SealIdentityError(
            f"cannot open the sealing PKCS#12 file {path}: wrong password or not a PKCS#12 "
            f"file{hint}"
        ) from exc
    if key is None:
        raise SealIdentityError(f"the sealing PKCS#12 file {path} contains no private key")
    if cert is None:
        raise SealIdentityError(f"the sealing PKCS#12 file {path} contains no certificate")
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise SealIdentityError(
            f"in the sealing PKCS#12 file {path}, the certificate does not match the key"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        signs = usage.digital_signature or usage.content_commitment
    except x509.ExtensionNotFound:
        signs = False
    if not signs:
        # Validators (pyHanko, Adobe) refuse a signer without either usage: fail at start,
        # not with every seal failing verification.
        raise SealIdentityError(
            f"the certificate in {path} has no keyUsage digitalSignature or nonRepudiation; "
            "it cannot seal documents"
        )
    chain = tuple(_to_asn1(c) for c in extra)
    roots = [c for c in chain if c.self_signed == "maybe" or c.self_signed == "yes"]
    identity = SealIdentity(
        key=key,
        cert=_to_asn1(cert),
        chain=chain,
        root=roots[0] if roots else None,
        self_signed=False,
        root_pem=None,
    )
    _warn_expiry(identity, path)
    return identity


# ------------------------------------------------------------------------------------ generated


def _load_dir(seal_dir: Path) -> SealIdentity:
    files = {name: seal_dir / name for name in (ROOT_PEM, SEAL_PEM, SEAL_KEY_PEM)}
    try:
        pems = {name: path.read_bytes() for name, path in files.items()}
        return identity_from_pems(pems, root_pem=files[ROOT_PEM].resolve())
    except (OSError, ValueError) as exc:
        name = getattr(exc, "filename", None) or seal_dir
        raise SealIdentityError(
            f"cannot load the generated sealing identity in {seal_dir} ({name}): {exc}; "
            "move the directory away to generate a new one, or set SIGNBOT_SEAL_P12"
        ) from exc


def identity_from_pems(pems: dict[str, bytes], root_pem: Path | None) -> SealIdentity:
    """A generated identity from its PEMs (keyed by file name: ``root.pem``, ``seal.pem``,
    ``seal-key.pem``); ``ValueError`` when one does not parse."""
    root = x509.load_pem_x509_certificate(pems[ROOT_PEM])
    cert = x509.load_pem_x509_certificate(pems[SEAL_PEM])
    key = serialization.load_pem_private_key(pems[SEAL_KEY_PEM], None)
    root_asn1 = _to_asn1(root)
    identity = SealIdentity(
        key=key,
        cert=_to_asn1(cert),
        chain=(root_asn1,),
        root=root_asn1,
        self_signed=True,
        root_pem=root_pem,
    )
    _warn_expiry(identity, root_pem.with_name(SEAL_PEM) if root_pem else Path(SEAL_PEM))
    return identity


def _generate(seal_dir: Path) -> None:
    """Create ``seal_dir`` with a fresh root and seal certificate, atomically."""
    seal_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".seal-", dir=seal_dir.parent))
    try:
        for name, data in new_identity_pems(_root_label(seal_dir)).items():
            _write(tmp / name, data, 0o600 if name == SEAL_KEY_PEM else 0o644)
        try:
            os.rename(tmp, seal_dir)
        except OSError:
            # Lost the race (or a non-empty seal/ exists): keep what is there.
            if not (seal_dir / SEAL_PEM).exists():
                raise SealIdentityError(
                    f"{seal_dir} exists but holds no {SEAL_PEM}: move it away to generate a "
                    "new sealing identity, or set SIGNBOT_SEAL_P12"
                ) from None
            return
        log.info("generated a self-signed sealing identity in %s", seal_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _root_label(seal_dir: Path | None = None) -> str:
    """Host name plus a random id: two deployments on one host must not share a root name
    (NSS and other path builders look issuers up by name)."""
    host = socket.gethostname()[:24] or (seal_dir.parent.name[:24] if seal_dir else "signbot")
    return f"{host}, {secrets.token_hex(4)}"


def new_identity_pems(label: str | None = None) -> dict[str, bytes]:
    """A fresh root and seal certificate with the seal's key, as PEMs keyed by file name.
    The root's key is used once here and never kept (see the module's docstring)."""
    label = label or _root_label()
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate clock skew
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"signbot self-signed root ({label})"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signbot"),
        ]
    )
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    seal_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    seal = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "signbot document seal"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signbot"),
                ]
            )
        )
        .issuer_name(root_name)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * SEAL_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(DOCUMENT_SIGNING_EKUS)), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(seal_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = seal_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        ROOT_PEM: root.public_bytes(pem),
        SEAL_PEM: seal.public_bytes(pem),
        SEAL_KEY_PEM: key_pem,
    }


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


def _write(path: Path, data: bytes, mode: int) -> None:
    """Created with its final mode (never briefly world-readable), flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)  # the umask may have narrowed it


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


# ------------------------------------------------------------------------------------ warnings


def warn_self_signed(identity: SealIdentity) -> None:
    """Once per process and seal directory: operators read it at start, not on every seal."""
    if identity.root_pem is None or identity.root_pem in _warned:
        return
    _warned.add(identity.root_pem)
    log.warning(
        "The document seal certificate is SELF-SIGNED (%s). PDF validators (Adobe Acrobat, "
        "pdfsig, …) will report 'issuer not trusted' until its root certificate %s is added "
        "to their trusted certificates. To seal with a certificate from a trusted CA, set "
        "SIGNBOT_SEAL_P12 (and SIGNBOT_SEAL_P12_PASSWORD) to a PKCS#12 file.",
        identity.subject,
        identity.root_pem,
    )


def _warn_expiry(identity: SealIdentity, source: Path) -> None:
    not_after = identity.cert["tbs_certificate"]["validity"]["not_after"].native
    left = not_after - dt.datetime.now(dt.UTC)
    if left < EXPIRY_WARNING:
        state = "EXPIRED on" if left.total_seconds() < 0 else "expires on"
        log.warning(
            "the document seal certificate (%s) %s %s: seals made with it will not validate. "
            "Replace %s.",
            identity.subject,
            state,
            not_after.date().isoformat(),
            source,
        )
