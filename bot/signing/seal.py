"""Sealing a completed PDF with the deployment's certificate: PAdES B-B, B-T or B-LT.

The input is always an *unsigned* PDF (the completed document with its drawn signature blocks);
the seal is added as an incremental update, so the bytes before it stay as they were. The seal
is an invisible signature field: the visible signature blocks are drawn elsewhere, and a stamp
at a fixed place would cover content of arbitrary documents; validators (Adobe's signature
panel, ``pdfsig``) list invisible signatures all the same.

Levels:

- no TSA: **B-B** (signing time claimed by us only);
- with ``tsa_url``: **B-LT** — an RFC 3161 signature timestamp (B-T) plus validation data
  (every certificate of the seal's and the TSA's chains, and OCSP/CRL answers where the
  certificates name a responder) in the document security store (``/DSS``). The DSS is written
  in the signature's own revision (before signing), so the signature still covers the whole
  file and a validator that does not analyse incremental updates sees one revision.
  ``validation_data=False`` stops at B-T.

Everything runs on the caller's event loop; the CPU part (hashing, one RSA signature, building
the CMS) measured 11 ms for a 1 MB PDF and ~80 ms for 45 MB, with no await point inside.

Errors: :class:`SealingError`; :class:`TimestampUnavailable` when the TSA (or a revocation
responder) cannot be reached within the timeout — the caller retries the job later.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from functools import cached_property
from typing import Literal

import certifi
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import (
    CertificateFetchError,
    CRLFetchError,
    InsufficientRevinfoError,
    OCSPFetchError,
    PathError,
    ValidationError,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore, SimpleTrustManager
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from bot.signing.certs import SealIdentity

log = logging.getLogger("signbot.signing")

Level = Literal["B-B", "B-T", "B-LT"]

#: pyHanko's ``bytes_reserved`` counts *hex digits* of ``/Contents``: 8192 holds 4 KB of DER.
#: A B-B CMS with our generated chain measures 3,885 bytes of DER: seal certificate 1,044,
#: root 1,119, a 256-byte RSA signature and ~1,470 of signed attributes and structure. So
#: :func:`cms_room` sizes it from the chain (9,216 for ours), with this as the floor.
BASE_BYTES_RESERVED = 8192
#: DER bytes besides certificates and signature: ~1,470 measured, plus ~600 to spare.
CMS_MARGIN = 2048
#: Margin (DER bytes) on top of the TSA token's measured size: its serial number, nonce and
#: time vary a little between tokens, its certificates do not.
TIMESTAMP_MARGIN = 512
DIGEST = "sha256"


class SealingError(Exception):
    """The PDF could not be sealed (unreadable PDF, certificate problem, …)."""


class TimestampUnavailable(SealingError):
    """The timestamp authority or a revocation responder did not answer in time: retry later."""


class KeptKeySigner(signers.SimpleSigner):
    """A ``SimpleSigner`` that signs with an already loaded ``cryptography`` key.

    The stock ``SimpleSigner.sign_raw`` re-parses the key from DER on every signature, and
    OpenSSL 3 then re-checks the RSA key (~50 ms, more than the rest of a seal).
    """

    def __init__(self, identity: SealIdentity) -> None:
        der = identity.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        super().__init__(
            signing_cert=identity.cert,
            signing_key=asn1_keys.PrivateKeyInfo.load(der),
            cert_registry=SimpleCertificateStore.from_certs([identity.cert, *identity.chain]),
        )
        self._key: PrivateKeyTypes = identity.key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        try:
            algo = mechanism.signature_algo
        except ValueError:
            algo = mechanism["algorithm"].native
        key = self._key
        if algo == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if algo == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            return key.sign(data)
        # RSASSA-PSS, DSA, ML-DSA: rare for a seal; the stock path (re-loads the key) is fine.
        return super().sign_raw(data, digest_algorithm)


def cms_room(identity: SealIdentity) -> int:
    """``bytes_reserved`` (hex digits) for a B-B CMS: certificates + signature + margin, so
    longer chains and bigger keys get room; 9,216 for our generated chain."""
    certs = sum(len(c.dump()) for c in (identity.cert, *identity.chain))
    signature = getattr(identity.key, "key_size", 4096) // 8
    return max(BASE_BYTES_RESERVED, _round_k(2 * (certs + signature + CMS_MARGIN)))


def _round_k(n: int) -> int:
    return -(-n // 1024) * 1024


class Sealer:
    """Seals PDFs with one identity; build it once at start and share it (it is stateless
    across seals but for the TSA's cached certificates and token size)."""

    def __init__(
        self,
        identity: SealIdentity,
        *,
        tsa_url: str | None = None,
        tsa_timeout: float = 10.0,
        validation_data: bool = True,
        extra_trust_roots: Sequence[asn1_x509.Certificate] = (),
    ) -> None:
        """``validation_data``: with a TSA, also embed the validation data (B-LT, the default)
        or not (B-T). ``extra_trust_roots``: roots (besides ours and the Mozilla/certifi
        bundle) that the TSA's certificate may chain to. B-LT validates the TSA's chain before
        signing, so a TSA under an unknown root makes sealing fail rather than silently drop
        to B-T."""
        self.identity = identity
        self.tsa_url = tsa_url
        self.tsa_timeout = tsa_timeout
        self._lt = bool(tsa_url) and validation_data
        self._extra_roots = tuple(extra_trust_roots)
        self._signer = KeptKeySigner(identity)
        self._bytes_reserved = cms_room(identity)
        self._timestamper: HTTPTimeStamper | None = (
            HTTPTimeStamper(tsa_url, timeout=tsa_timeout) if tsa_url else None
        )
        self._ts_room: int | None = None

    @property
    def level(self) -> Level:
        if self._timestamper is None:
            return "B-B"
        return "B-LT" if self._lt else "B-T"

    @cached_property
    def _trust_manager(self) -> SimpleTrustManager:
        """Our root, the extra roots and the certifi bundle (public TSAs and CAs chain to it),
        built once: ~150 roots cost ~4 ms per context when passed as a list."""
        with open(certifi.where(), "rb") as fh:
            bundle = tuple(load_certs_from_pemder_data(fh.read()))
        own = (self.identity.root,) if self.identity.root is not None else ()
        return SimpleTrustManager.build(trust_roots=[*own, *self._extra_roots, *bundle])

    def _validation_context(self) -> ValidationContext:
        """A fresh context per seal (it accumulates fetched OCSP/CRL answers).

        Revocation: ``hard-fail`` with fetching allowed. A certificate that names an OCSP
        responder or CRL (a real CA's, a public TSA's) must get an answer, embedded in the DSS;
        one that names none (our self-signed chain) passes with its certificates alone, which
        is all the validation data such a chain has. Nothing is fetched for it.
        """
        return ValidationContext(
            trust_manager=self._trust_manager,
            other_certs=list(self.identity.chain),
            allow_fetching=True,
            revocation_mode="hard-fail",
        )

    async def _reserved(self) -> int:
        if self._timestamper is None:
            return self._bytes_reserved
        if self._ts_room is None:
            # One real TSA request, cached by the timestamper: it also gives pyHanko the TSA's
            # certificates for the validation data.
            token = await self._timestamper.async_dummy_response(DIGEST)
            self._ts_room = _round_k(2 * (len(token.dump()) + TIMESTAMP_MARGIN))
        return self._bytes_reserved + self._ts_room

    async def seal(
        self,
        pdf: bytes,
        *,
        field_name: str = "signbot-seal",
        reason: str,
        location: str | None = None,
        name: str | None = None,
    ) -> bytes:
        """The sealed PDF. ``pdf`` must not be signed yet (see the module docstring)."""
        if self._timestamper is None:
            return await self._seal(pdf, field_name, reason, location, name)
        # Each network step has its own timeout; this bounds a seal that makes several
        # (dummy token, OCSP/CRL fetches, the real token).
        try:
            async with asyncio.timeout(self.tsa_timeout * 3):
                return await self._seal(pdf, field_name, reason, location, name)
        except TimeoutError as exc:
            raise TimestampUnavailable(
                f"timestamping or revocation checks did not finish within "
                f"{self.tsa_timeout * 3:.0f} s (TSA {self.tsa_url})"
            ) from exc

    async def _seal(
        self, pdf: bytes, field_name: str, reason: str, location: str | None, name: str | None
    ) -> bytes:
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        except Exception as exc:  # pyHanko raises many kinds on a broken file
            raise SealingError(f"cannot read the PDF to seal: {exc}") from exc
        lt = self._lt
        context = self._validation_context() if lt else None
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm=DIGEST,
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason,
            location=location,
            name=name,
            embed_validation_info=lt,
            use_pades_lta=False,
            validation_context=context,
            signer_key_usage={"digital_signature", "non_repudiation"},
            dss_settings=DSSContentSettings(
                placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
                include_vri=False,
            ),
        )
        try:
            reserved = await self._reserved()
            out = await signers.async_sign_pdf(
                writer,
                meta,
                signer=self._signer,
                timestamper=self._timestamper,
                bytes_reserved=reserved,
            )
        except TimestampRequestError as exc:
            cause = exc.__cause__ or exc
            raise TimestampUnavailable(
                f"timestamp authority {self.tsa_url} unavailable: {cause!r}"
            ) from exc
        except (
            CertificateFetchError,
            CRLFetchError,
            OCSPFetchError,
            InsufficientRevinfoError,
        ) as exc:
            raise TimestampUnavailable(
                f"validation data for the seal could not be fetched: {exc}"
            ) from exc
        except (SigningError, PathError, ValidationError) as exc:
            # e.g. the TSA's certificate does not chain to a trusted root (B-LT validates it)
            raise SealingError(f"sealing failed: {exc}") from exc
        finally:
            if context is not None:
                await context.aclose()  # the HTTP session its OCSP/CRL fetchers opened
        return out.getvalue()
