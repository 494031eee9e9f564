"""Sealing with real keys and certificates: identities, B-B / B-T / B-LT, pdfsig, a local TSA."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from bot.signing import certs
from bot.signing.certs import SealIdentity, SealIdentityError, load_identity
from bot.signing.seal import KeptKeySigner, Sealer, SealingError, TimestampUnavailable
from bot.signing.verify import verify_pdf
from tests.signing.conftest import pdfsig
from tests.signing.tsa import LocalTSA, closed_port_url, hung_tsa, local_tsa
from tests.support.timing import cpu_seconds

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------ identity


def test_generated_identity_files_modes_and_extensions(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, "signbot.signing")
    ident = load_identity(tmp_path, None, None)
    seal_dir = tmp_path / "seal"
    assert sorted(p.name for p in seal_dir.iterdir()) == ["root.pem", "seal-key.pem", "seal.pem"]
    assert stat.S_IMODE((seal_dir / "seal-key.pem").stat().st_mode) == 0o600
    assert ident.self_signed and ident.root_pem == (seal_dir / "root.pem").resolve()
    assert ident.chain == (ident.root,)

    seal = x509.load_pem_x509_certificate((seal_dir / "seal.pem").read_bytes())
    root = x509.load_pem_x509_certificate((seal_dir / "root.pem").read_bytes())
    assert seal.issuer == root.subject
    assert seal.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "signbot document seal"
    )
    assert "signbot self-signed root" in root.subject.rfc4514_string()
    ku = seal.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment and not ku.key_cert_sign
    eku = seal.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku  # what pdfsig (NSS) requires
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    root_ku = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert root_ku.key_cert_sign and root_ku.crl_sign
    years = (seal.not_valid_after_utc - seal.not_valid_before_utc).days / 365
    assert 4.9 < years < 5.1

    warnings = [r.getMessage() for r in caplog.records if "SELF-SIGNED" in r.getMessage()]
    assert len(warnings) == 1
    assert str(ident.root_pem) in warnings[0] and "SIGNBOT_SEAL_P12" in warnings[0]

    again = load_identity(tmp_path, None, None)
    assert again.cert.dump() == ident.cert.dump()
    assert again.root is not None and again.root.dump() == ident.root.dump()  # type: ignore[union-attr]
    assert len([r for r in caplog.records if "SELF-SIGNED" in r.getMessage()]) == 1  # once


def test_loading_an_existing_identity_is_cheap(identity: SealIdentity) -> None:
    assert identity.root_pem is not None
    data_dir = identity.root_pem.parent.parent
    _, cpu = cpu_seconds(lambda: load_identity(data_dir, None, None))
    assert cpu < 0.5, cpu


def test_concurrent_first_loads_in_threads_agree(tmp_path: Path) -> None:
    barrier = threading.Barrier(4)

    def first_load() -> bytes:
        barrier.wait()
        return load_identity(tmp_path, None, None).cert.dump()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: first_load(), range(4)))
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["seal"]  # no temp dir left behind


def test_concurrent_first_loads_in_processes_agree(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from bot.signing.certs import load_identity; "
        "sys.stdout.write(load_identity(Path(sys.argv[1]), None, None).cert.dump().hex())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = {p.communicate(timeout=60)[0] for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1
    assert bytes.fromhex(outputs.pop().decode()) == load_identity(tmp_path, None, None).cert.dump()


def _p12_material() -> tuple[rsa.RSAPrivateKey, x509.Certificate, x509.Certificate]:
    """(seal key, seal cert, root) of a small CA, as a customer's CA would issue them."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme seal")]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    return key, cert, root


async def test_p12_identity_loads_and_seals(tmp_path: Path, pdf: bytes) -> None:
    key, cert, root = _p12_material()
    p12 = tmp_path / "seal.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"seal", key, cert, [root], serialization.BestAvailableEncryption(b"s3cret")
        )
    )
    ident = load_identity(tmp_path / "data", p12, "s3cret")
    assert not ident.self_signed and ident.root_pem is None
    assert ident.cert.subject.native["common_name"] == "Acme seal"
    assert ident.root is not None and ident.root.subject.native["common_name"] == "Acme Root"
    assert not (tmp_path / "data" / "seal").exists()  # nothing generated

    sealed = await Sealer(ident).seal(pdf, reason="test")
    report = verify_pdf(sealed, [ident.root])
    assert report.ok, report


def test_p12_errors_name_the_file(tmp_path: Path) -> None:
    key, cert, root = _p12_material()
    p12 = tmp_path / "seal.p12"
    enc = serialization.BestAvailableEncryption(b"right")
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"seal", key, cert, [root], enc))
    with pytest.raises(SealIdentityError, match=r"seal\.p12.*wrong password"):
        load_identity(tmp_path, p12, "wrong")
    with pytest.raises(SealIdentityError, match="not set"):
        load_identity(tmp_path, p12, None)
    with pytest.raises(SealIdentityError, match=r"missing\.p12"):
        load_identity(tmp_path, tmp_path / "missing.p12", "x")
    certs_only = tmp_path / "certs-only.p12"
    certs_only.write_bytes(
        pkcs12.serialize_key_and_certificates(b"c", None, None, [cert, root], enc)
    )
    with pytest.raises(SealIdentityError, match=r"certs-only\.p12 contains no private key"):
        load_identity(tmp_path, certs_only, "right")
    assert issubclass(SealIdentityError, ValueError)


# ------------------------------------------------------------------------------------ B-B


def test_kept_key_signer_signs_like_the_stock_signer(identity: SealIdentity) -> None:
    ours = KeptKeySigner(identity)
    stock = signers.SimpleSigner(ours.signing_cert, ours.signing_key, ours.cert_registry)
    data = b"to be signed"
    # RSA PKCS#1 v1.5 is deterministic: the same key gives the same bytes.
    assert ours.sign_raw(data, "sha256") == stock.sign_raw(data, "sha256")


async def _validate(sealed: bytes, *roots: asn1_x509.Certificate):
    reader = PdfFileReader(io.BytesIO(sealed))
    (sig,) = reader.embedded_signatures
    vc = ValidationContext(trust_roots=list(roots))
    return reader, sig, await async_validate_pdf_signature(sig, vc)


async def test_b_b_seal_is_intact_valid_trusted_and_covers_the_file(
    identity: SealIdentity, pdf: bytes
) -> None:
    sealer = Sealer(identity)
    assert sealer.level == "B-B"
    sealed = await sealer.seal(pdf, reason="Completed envelope env_1", location="signbot")
    assert sealed.startswith(pdf)  # an incremental update: the original bytes are kept
    assert identity.root is not None
    reader, sig, status = await _validate(sealed, identity.root)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.modification_level.name == "NONE"
    assert sig.field_name == "signbot-seal"
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert sig.sig_object["/Reason"] == "Completed envelope env_1"
    assert len(sig.sig_object["/Contents"]) == 4608  # 9216 hex digits reserved
    assert status.timestamp_validity is None and "/DSS" not in reader.root


async def test_concurrent_seals_on_one_sealer(identity: SealIdentity, pdf: bytes) -> None:
    sealer = Sealer(identity)
    results = await asyncio.gather(*(sealer.seal(pdf, reason=f"r{i}") for i in range(5)))
    assert all(verify_pdf(r, [identity.root]).ok for r in results)  # type: ignore[list-item]


async def test_unreadable_input_is_a_sealing_error(identity: SealIdentity) -> None:
    with pytest.raises(SealingError, match="cannot read the PDF"):
        await Sealer(identity).seal(b"%PDF-1.7 nonsense", reason="x")


async def test_pdfsig_accepts_the_seal_and_trusts_our_root(
    identity: SealIdentity, pdf: bytes, tmp_path: Path, nss_db: str
) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(await Sealer(identity).seal(pdf, reason="test"))
    out = pdfsig(path)
    assert "Signature Type: ETSI.CAdES.detached" in out
    assert "Signature is Valid." in out and "Total document signed" in out
    assert "Certificate issuer isn't Trusted." in out  # plain pdfsig: our root is unknown
    assert "Certificate is Trusted." in pdfsig(path, nss_db)


async def test_a_flipped_byte_breaks_the_seal(
    identity: SealIdentity, pdf: bytes, tmp_path: Path
) -> None:
    from bot.signing.verify import main

    sealed = bytearray(await Sealer(identity).seal(pdf, reason="test"))
    at = sealed.index(b"Contract page 2")
    sealed[at] = ord("K")  # "Kontract": same length, inside the first signed range
    report = verify_pdf(bytes(sealed), [identity.root])  # type: ignore[list-item]
    assert not report.ok
    (sig,) = report.signatures
    assert not sig.intact and "changed after it was sealed" in (sig.problem or "")
    path = tmp_path / "tampered.pdf"
    path.write_bytes(sealed)
    assert main(path, [identity.root_pem]) == 1  # type: ignore[list-item]
    out = pdfsig(path)
    assert "Signature is Valid." not in out and "Digest Mismatch" in out


# ------------------------------------------------------------------------------------ B-T / B-LT


async def test_b_t_seal_carries_a_validated_timestamp(
    identity: SealIdentity, pdf: bytes, tsa: LocalTSA
) -> None:
    sealer = Sealer(identity, tsa_url=tsa.url, validation_data=False, tsa_timeout=5)
    assert sealer.level == "B-T"
    sealed = await sealer.seal(pdf, reason="test")
    reader, _, status = await _validate(sealed, identity.root, tsa.root)  # type: ignore[arg-type]
    assert status.bottom_line and status.coverage.name == "ENTIRE_FILE"
    ts = status.timestamp_validity
    assert ts is not None and ts.intact and ts.valid and ts.trusted
    assert abs(time.time() - ts.timestamp.timestamp()) < 120
    assert "/DSS" not in reader.root
    report = verify_pdf(sealed, [identity.root, tsa.root])  # type: ignore[list-item]
    assert report.ok and report.signatures[0].level == "B-T"
    assert report.signatures[0].timestamp_trusted


async def test_b_lt_seal_embeds_a_dss_in_the_signed_revision(
    identity: SealIdentity, pdf: bytes, tsa: LocalTSA, tmp_path: Path
) -> None:
    sealer = Sealer(identity, tsa_url=tsa.url, extra_trust_roots=[tsa.root], tsa_timeout=5)
    assert sealer.level == "B-LT"
    sealed = await sealer.seal(pdf, reason="test")
    reader, _, status = await _validate(sealed, identity.root, tsa.root)  # type: ignore[arg-type]
    assert status.bottom_line and status.timestamp_validity is not None
    assert status.timestamp_validity.trusted
    assert status.coverage.name == "ENTIRE_FILE"  # the DSS is inside the signed revision
    dss = reader.root["/DSS"]
    embedded = {asn1_x509.Certificate.load(s.get_object().data).sha256 for s in dss["/Certs"]}
    assert {identity.cert.sha256, identity.root.sha256, tsa.cert.sha256} <= embedded  # type: ignore[union-attr]
    report = verify_pdf(sealed, [identity.root, tsa.root])  # type: ignore[list-item]
    assert report.ok and report.signatures[0].level == "B-LT"
    path = tmp_path / "b-lt.pdf"
    path.write_bytes(sealed)
    out = pdfsig(path)
    assert "Signature is Valid." in out and "Total document signed" in out


async def test_b_lt_fails_clearly_when_the_tsa_root_is_unknown(
    identity: SealIdentity, pdf: bytes, tsa: LocalTSA
) -> None:
    with pytest.raises(SealingError) as caught:
        await Sealer(identity, tsa_url=tsa.url, tsa_timeout=5).seal(pdf, reason="x")
    assert not isinstance(caught.value, TimestampUnavailable)


async def test_b_lt_needs_an_answer_from_a_named_revocation_responder(
    identity: SealIdentity, pdf: bytes
) -> None:
    """A TSA certificate naming an OCSP responder that is down: no B-LT without its answer
    (hard-fail), and the job is told to retry; our own chain names none and needs none."""
    with local_tsa(ocsp_url=closed_port_url()) as tsa:
        sealer = Sealer(identity, tsa_url=tsa.url, extra_trust_roots=[tsa.root], tsa_timeout=2)
        started = time.monotonic()
        with pytest.raises(TimestampUnavailable):
            await sealer.seal(pdf, reason="x")
        assert time.monotonic() - started < 6


async def test_tsa_refusing_connections_is_reported_quickly(
    identity: SealIdentity, pdf: bytes
) -> None:
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(TimestampUnavailable, match=url):
        await Sealer(identity, tsa_url=url, tsa_timeout=2).seal(pdf, reason="x")
    assert time.monotonic() - started < 2


async def test_a_hung_tsa_times_out(identity: SealIdentity, pdf: bytes) -> None:
    with hung_tsa() as url:
        started = time.monotonic()
        with pytest.raises(TimestampUnavailable):
            await Sealer(identity, tsa_url=url, tsa_timeout=0.5).seal(pdf, reason="x")
        assert time.monotonic() - started < 3


def test_an_incomplete_seal_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "seal").mkdir()
    (tmp_path / "seal" / "root.pem").write_text("left over")
    with pytest.raises(SealIdentityError, match=r"holds no seal\.pem"):
        load_identity(tmp_path, None, None)


def test_seal_key_file_is_not_world_readable_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_identity(tmp_path, None, None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "seal" / certs.SEAL_KEY_PEM).stat().st_mode) == 0o600
