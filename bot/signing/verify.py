"""Checking a sealed PDF: what ``signbot verify FILE.pdf`` runs.

Offline by design: certificates are validated against the given roots (the deployment's
``root.pem`` by default) without fetching OCSP/CRL answers, so a verdict does not depend on the
network. Signature *timestamps* are checked against the given roots plus the certifi (Mozilla)
bundle, where public TSAs chain; an untrusted timestamp is reported but does not fail a seal
whose own signature is fine (the timestamp only adds proof of time).

A file is **ok** when it has at least one signature; every signature is intact, valid, trusted
and covers the whole file (or its whole revision, followed only by validation data and document
timestamps — PAdES LTA updates); every timestamp token is intact; and the embedded audit log
(``audit-log.json``), when there is one, has an unbroken hash chain for one envelope.

:func:`verify_pdf` never raises on a malformed or hostile file: the report says what is wrong.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import io
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
from asn1crypto import x509
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import (
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    SignatureCoverageLevel,
    SignatureStatus,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator import ValidationContext

from bot.signing import chain

#: How deep a hostile name tree may nest before we stop looking for the audit log.
MAX_NAME_TREE_DEPTH = 16


@dataclass(frozen=True)
class SignatureReport:
    field_name: str
    signer: str
    """The signer certificate's common name (or its whole subject when it has none)."""
    signing_time: dt.datetime | None
    """The time the signer claims (``signingTime``); not proof of anything on its own."""
    timestamp_time: dt.datetime | None
    """The RFC 3161 timestamp's time, when the signature carries one (B-T and up)."""
    intact: bool
    """The signed bytes hash to what the signature says."""
    valid: bool
    """The cryptographic signature over that hash verifies."""
    trusted: bool
    """The signer's certificate chains to one of the given roots (and has a signing usage)."""
    coverage: str
    """pyHanko's coverage level: ``ENTIRE_FILE``, ``ENTIRE_REVISION``, … or ``UNKNOWN``."""
    modification_level: str
    """What changed after signing: ``NONE``, ``LTA_UPDATES``, ``FORM_FILLING``, … or ``UNKNOWN``."""
    level: str
    """Best guess at the PAdES level: ``B-B``, ``B-T``, ``B-LT`` or ``B-LTA``;
    ``document timestamp`` for a PAdES document timestamp."""
    timestamp_trusted: bool | None = None
    """Whether the TSA chains to a trusted root; ``None`` without a timestamp."""
    problem: str | None = None
    """What is wrong, in a few words; ``None`` when the signature is fine."""

    @property
    def covers_document(self) -> bool:
        """The whole file, or the whole revision followed only by LTA updates."""
        return self.coverage == "ENTIRE_FILE" or (
            self.coverage == "ENTIRE_REVISION" and self.modification_level == "LTA_UPDATES"
        )

    @property
    def ok(self) -> bool:
        fine = self.intact and self.valid and self.trusted and self.covers_document
        return fine and self.problem is None


@dataclass(frozen=True)
class VerifyReport:
    signatures: tuple[SignatureReport, ...]
    chain: chain.ChainResult | None
    """The embedded audit log's hash chain; ``None`` when the PDF embeds no ``audit-log.json``."""
    problem: str | None = None
    """Why the file could not be checked at all (not a PDF, truncated, …)."""

    @property
    def ok(self) -> bool:
        return (
            self.problem is None
            and bool(self.signatures)
            and all(s.ok for s in self.signatures)
            and (self.chain is None or self.chain.ok)
        )


def verify_pdf(data: bytes, trust_roots: Sequence[x509.Certificate]) -> VerifyReport:
    """Check every signature of ``data`` and its embedded audit log; never raises.

    Runs its own event loop (pyHanko's validation is async); called from inside a running loop,
    it runs in a worker thread instead (blocking that caller: prefer :func:`async_verify_pdf`).
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None:
        return asyncio.run(async_verify_pdf(data, trust_roots))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, async_verify_pdf(data, trust_roots)).result()


async def async_verify_pdf(data: bytes, trust_roots: Sequence[x509.Certificate]) -> VerifyReport:
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = list(reader.embedded_signatures)
        has_dss = "/DSS" in reader.root
        has_doc_ts = any(s.sig_object_type == "/DocTimeStamp" for s in embedded)
    except Exception as exc:  # a hostile file can make the parser raise anything
        return VerifyReport((), None, f"cannot read the file as a PDF: {_short(exc)}")
    reports = []
    for sig in embedded:
        reports.append(await _check_signature(sig, trust_roots, has_dss, has_doc_ts))
    try:
        audit = _audit_log(reader)
    except Exception as exc:
        audit = chain.ChainResult(False, 0, f"cannot read the embedded audit log: {_short(exc)}")
    problem = None if embedded else "the file has no signature"
    return VerifyReport(tuple(reports), audit, problem)


# ------------------------------------------------------------------------------------ signatures


@functools.cache
def _public_roots() -> tuple[x509.Certificate, ...]:
    with open(certifi.where(), "rb") as fh:
        return tuple(load_certs_from_pemder_data(fh.read()))


def _contexts(
    trust_roots: Sequence[x509.Certificate],
) -> tuple[ValidationContext, ValidationContext]:
    """(signer context, TSA context); fresh per signature since contexts accumulate state."""
    signer = ValidationContext(trust_roots=list(trust_roots), allow_fetching=False)
    tsa = ValidationContext(trust_roots=[*trust_roots, *_public_roots()], allow_fetching=False)
    return signer, tsa


async def _check_signature(
    sig: EmbeddedPdfSignature,
    trust_roots: Sequence[x509.Certificate],
    has_dss: bool,
    has_doc_ts: bool,
) -> SignatureReport:
    name = _field_name(sig)
    signer_vc, tsa_vc = _contexts(trust_roots)
    try:
        if sig.sig_object_type == "/DocTimeStamp":
            doc_ts = await async_validate_pdf_timestamp(sig, validation_context=tsa_vc)
            report = _report(name, doc_ts, "document timestamp", None, doc_ts)
            return _with_problem(report, False, _trust_problem(doc_ts))
        status = await async_validate_pdf_signature(
            sig,
            signer_validation_context=signer_vc,
            ts_validation_context=tsa_vc,
            key_usage_settings=KeyUsageConstraints(
                key_usage={"digital_signature", "non_repudiation"}
            ),
        )
    except Exception as exc:
        return SignatureReport(
            name, "unknown", None, None, False, False, False, "UNKNOWN", "UNKNOWN", "unknown",
            problem=f"cannot validate: {_short(exc)}",
        )  # fmt: skip
    ts = status.timestamp_validity
    level = "B-B" if ts is None else "B-LTA" if has_doc_ts else "B-LT" if has_dss else "B-T"
    report = _report(name, status, level, status.signer_reported_dt, ts)
    broken_ts = ts is not None and not (ts.intact and ts.valid)
    return _with_problem(report, broken_ts, _trust_problem(status))


def _report(
    name: str,
    status: PdfSignatureStatus | DocumentTimestampStatus,
    level: str,
    signing_time: dt.datetime | None,
    ts: TimestampSignatureStatus | DocumentTimestampStatus | None,
) -> SignatureReport:
    return SignatureReport(
        field_name=name,
        signer=_common_name(status.signing_cert),
        signing_time=signing_time,
        timestamp_time=ts.timestamp if ts is not None else None,
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        coverage=_enum_name(status.coverage),
        modification_level=_enum_name(status.modification_level),
        level=level,
        timestamp_trusted=ts.trusted if ts is not None else None,
    )


def _with_problem(
    report: SignatureReport, timestamp_broken: bool, trust_problem: str | None
) -> SignatureReport:
    problem = None
    if not report.intact:
        problem = "the document was changed after it was sealed (the signed bytes differ)"
    elif not report.valid:
        problem = "the signature does not verify"
    elif not report.trusted:
        why = trust_problem or "it does not chain to a trusted root"
        problem = f"the certificate of {report.signer!r} is not trusted: {why}"
    elif not report.covers_document:
        problem = (
            f"the signature does not cover the whole file (coverage {report.coverage}, "
            f"changes after signing: {report.modification_level})"
        )
    elif timestamp_broken:
        problem = "the signature timestamp does not verify (altered or corrupt token)"
    return report if problem is None else dataclasses.replace(report, problem=problem)


def _trust_problem(status: SignatureStatus) -> str | None:
    """pyHanko's AdES sub-indication, in words ("no certificate chain found", …)."""
    indic = status.trust_problem_indic
    if indic is None:
        return None
    return str(indic.name).lower().replace("_", " ")


def _field_name(sig: EmbeddedPdfSignature) -> str:
    try:
        return str(sig.field_name)
    except Exception:
        return "?"


def _common_name(cert: x509.Certificate) -> str:
    try:
        names = cert.subject.native
        return str(names.get("common_name") or cert.subject.human_friendly)
    except Exception:
        return "unknown"


def _enum_name(value: SignatureCoverageLevel | ModificationLevel | None) -> str:
    return value.name if value is not None else "UNKNOWN"


# ------------------------------------------------------------------------------------ audit log


def _audit_log(reader: PdfFileReader) -> chain.ChainResult | None:
    raw = _embedded_file(reader, chain.ATTACHMENT_NAME)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return chain.ChainResult(False, 0, f"{chain.ATTACHMENT_NAME} is not valid JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        return chain.ChainResult(False, 0, f"{chain.ATTACHMENT_NAME} has no list of entries")
    entries = doc["entries"]
    if not all(isinstance(e, dict) for e in entries):
        return chain.ChainResult(False, len(entries), "an audit log entry is not an object")
    if doc.get("format") != chain.FORMAT:
        return chain.ChainResult(
            False, len(entries), f"unknown audit log format {doc.get('format')!r}"
        )
    result = chain.verify_chain(entries)
    if not result.ok:
        return result
    envelope = doc.get("envelopeId")
    for index, entry in enumerate(entries, start=1):
        details = entry.get("details")
        claimed = entry.get("envelopeId") or (
            details.get("envelopeId") if isinstance(details, dict) else None
        )
        if claimed is not None and envelope is not None and claimed != envelope:
            return chain.ChainResult(
                False,
                len(entries),
                f"entry {index}: envelope {claimed!r} differs from the log's {envelope!r}",
            )
    return result


def _embedded_file(reader: PdfFileReader, wanted: str) -> bytes | None:
    """The first embedded file named ``wanted`` in the document's EmbeddedFiles name tree."""
    names = _deref(reader.root.get("/Names"))
    if not isinstance(names, generic.DictionaryObject):
        return None
    return _search_name_tree(_deref(names.get("/EmbeddedFiles")), wanted, 0)


def _search_name_tree(node: Any, wanted: str, depth: int) -> bytes | None:
    if depth > MAX_NAME_TREE_DEPTH or not isinstance(node, generic.DictionaryObject):
        return None
    pairs = _deref(node.get("/Names"))
    if isinstance(pairs, generic.ArrayObject):
        for index in range(0, len(pairs) - 1, 2):
            key, spec = _deref(pairs[index]), _deref(pairs[index + 1])
            if str(key) == wanted and isinstance(spec, generic.DictionaryObject):
                files = _deref(spec.get("/EF"))
                stream = (
                    _deref(files.get("/F")) if isinstance(files, generic.DictionaryObject) else None
                )
                if isinstance(stream, generic.StreamObject):
                    return bytes(stream.data)
    kids = _deref(node.get("/Kids"))
    if isinstance(kids, generic.ArrayObject):
        for kid in kids:
            found = _search_name_tree(_deref(kid), wanted, depth + 1)
            if found is not None:
                return found
    return None


def _deref(value: Any) -> Any:
    """``DictionaryObject.get`` and array items leave indirect references as they are."""
    return value.get_object() if isinstance(value, generic.IndirectObject) else value


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------------------------ output


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "an unknown time"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(report: VerifyReport) -> list[str]:
    """Human lines for the terminal, one per signature, one for the audit log, one verdict."""
    lines = []
    if report.problem:
        lines.append(f"Problem: {report.problem}")
    for number, sig in enumerate(report.signatures, start=1):
        head = f"Signature {number} ({sig.field_name})"
        if sig.level == "document timestamp":
            head += f": document timestamp by {sig.signer}, at {_when(sig.timestamp_time)}"
        else:
            head += f": signed by {sig.signer}, at {_when(sig.signing_time)}"
        if sig.problem:
            lines.append(f"{head} — PROBLEM: {sig.problem}")
            continue
        cover = (
            "covers the whole file"
            if sig.coverage == "ENTIRE_FILE"
            else "covers its revision; later revisions only add validation data"
        )
        lines.append(f"{head} — intact, valid, trusted by the given root, {cover}")
        if sig.level != "document timestamp":
            stamp = ""
            if sig.timestamp_time is not None:
                trust = "" if sig.timestamp_trusted else " (timestamp authority not trusted)"
                stamp = f", timestamped {_when(sig.timestamp_time)}{trust}"
            lines.append(f"  PAdES {sig.level}{stamp}")
    if report.chain is None:
        lines.append("Audit log: none embedded")
    elif report.chain.ok:
        lines.append(f"Audit log: {report.chain.entries} entries, hash chain intact")
    else:
        lines.append(f"Audit log: PROBLEM — {report.chain.problem}")
    lines.append("Result: OK" if report.ok else "Result: NOT OK")
    return lines


def load_roots(paths: Sequence[Path]) -> list[x509.Certificate]:
    """Certificates from PEM (or DER) files; raises ``OSError``/``ValueError`` naming the file."""
    roots: list[x509.Certificate] = []
    for path in paths:
        data = Path(path).read_bytes()
        try:
            certs = list(load_certs_from_pemder_data(data))
        except Exception as exc:
            raise ValueError(f"{path} holds no certificate ({_short(exc)})") from exc
        if not certs:
            raise ValueError(f"{path} holds no certificate")
        roots.extend(certs)
    return roots


def main(path: Path, roots: list[Path]) -> int:
    """``signbot verify``: 0 when the file is ok, 1 when not, 2 when it cannot be read.

    A root file that does not exist (e.g. the default ``{data_dir}/seal/root.pem`` of a
    deployment sealing with its own P12) is noted and skipped; one that exists but cannot be
    parsed is an error (2)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        print(f"signbot verify: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    present = []
    for root in roots:
        if Path(root).exists():
            present.append(Path(root))
        else:
            print(f"note: trust root {root} not found; skipped", file=sys.stderr)
    try:
        trust = load_roots(present)
    except (OSError, ValueError) as exc:
        print(f"signbot verify: cannot load trust root: {exc}", file=sys.stderr)
        return 2
    # pyHanko logs each failed path build with a traceback; the report already says it.
    quiet = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        report = verify_pdf(data, trust)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    for line in render(report):
        print(line)
    return 0 if report.ok else 1
