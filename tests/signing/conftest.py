"""Fixtures for sealing and verification: a generated identity, PDFs, a local TSA, an NSS db."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from bot.signing import chain
from bot.signing.certs import SealIdentity, load_identity
from tests.signing.tsa import LocalTSA, local_tsa


def make_pdf(pages: int = 3) -> bytes:
    """A small multi-page PDF with uncompressed text (so a test can edit one letter)."""
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, pageCompression=0)
    for number in range(1, pages + 1):
        pdf.setFont("Helvetica", 14)
        pdf.drawString(72, 760, f"Contract page {number} of {pages}")
        pdf.drawString(72, 740, "The parties agree to the terms below.")
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def audit_entries(envelope_id: str = "env_01TEST", count: int = 4) -> list[dict]:
    entries: list[dict] = []
    prev = chain.GENESIS
    for seq in range(1, count + 1):
        entry = chain.link(
            {
                "seq": seq,
                "at": f"2026-11-28T10:00:0{seq}Z",
                "event": "envelope.created" if seq == 1 else "recipient.signed",
                "actor": f"user{seq}@example.com",
                "ip": "127.0.0.1",
                "userAgent": "test",
                "details": {"envelopeId": envelope_id},
            },
            prev,
        )
        entries.append(entry)
        prev = entry["hash"]
    return entries


def with_attachment(pdf: bytes, name: str, data: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_attachment(name, data)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SealIdentity:
    return load_identity(tmp_path_factory.mktemp("data"), None, None)


@pytest.fixture(scope="session")
def pdf() -> bytes:
    return make_pdf()


@pytest.fixture(scope="session")
def tsa() -> Iterator[LocalTSA]:
    with local_tsa() as server:
        yield server


@pytest.fixture(scope="session")
def nss_db(tmp_path_factory: pytest.TempPathFactory, identity: SealIdentity) -> str:
    """``sql:DIR`` of an NSS database trusting our root (for ``pdfsig -nssdir``)."""
    if shutil.which("certutil") is None:
        pytest.skip("certutil (libnss3-tools) is not installed")
    directory = tmp_path_factory.mktemp("nss")
    db = f"sql:{directory}"
    subprocess.run(["certutil", "-N", "--empty-password", "-d", db], check=True)
    assert identity.root_pem is not None
    trust = ["-n", "signbot-root", "-t", "CT,C,C", "-i", str(identity.root_pem)]
    subprocess.run(["certutil", "-A", "-d", db, *trust], check=True)
    return db


def pdfsig(path: Path, nss: str | None = None) -> str:
    if shutil.which("pdfsig") is None:
        pytest.skip("pdfsig (poppler-utils) is not installed")
    argv = ["pdfsig", *(["-nssdir", nss] if nss else []), str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr
