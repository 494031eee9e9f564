"""``signbot verify``: signatures, the embedded audit log, hostile input, the CLI entry point."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from bot.signing import chain
from bot.signing.certs import SealIdentity, load_identity
from bot.signing.seal import Sealer
from bot.signing.verify import main, render, verify_pdf
from tests.signing.conftest import audit_entries, make_pdf, with_attachment


def audit_pdf(entries: list[dict], envelope_id: str = "env_01TEST") -> bytes:
    return with_attachment(make_pdf(2), chain.ATTACHMENT_NAME, chain.document(envelope_id, entries))


@pytest.fixture(scope="module")
async def sealed(identity: SealIdentity, pdf: bytes) -> bytes:
    return await Sealer(identity).seal(pdf, reason="test")


async def test_audit_log_chain_is_checked(identity: SealIdentity) -> None:
    sealed = await Sealer(identity).seal(audit_pdf(audit_entries(count=12)), reason="audit")
    report = verify_pdf(sealed, [identity.root])  # type: ignore[list-item]
    assert report.ok
    assert report.chain is not None and report.chain.ok and report.chain.entries == 12
    lines = render(report)
    assert lines[0].startswith("Signature 1 (signbot-seal): signed by signbot document seal, at ")
    assert "intact, valid, trusted by the given root, covers the whole file" in lines[0]
    assert "Audit log: 12 entries, hash chain intact" in lines
    assert lines[-1] == "Result: OK"


async def test_a_tampered_entry_is_reported_even_under_a_valid_seal(
    identity: SealIdentity,
) -> None:
    entries = audit_entries(count=5)
    entries[2] = {**entries[2], "actor": "mallory@example.com"}  # edited before sealing
    sealed = await Sealer(identity).seal(audit_pdf(entries), reason="audit")
    report = verify_pdf(sealed, [identity.root])  # type: ignore[list-item]
    assert all(s.ok for s in report.signatures)  # the seal itself is fine
    assert not report.ok
    assert report.chain is not None and not report.chain.ok
    assert report.chain.problem == "entry 3: hash does not match its content"
    assert "Audit log: PROBLEM — entry 3: hash does not match its content" in render(report)


async def test_entries_of_another_envelope_are_reported(identity: SealIdentity) -> None:
    entries = audit_entries("env_01OTHER", count=3)
    sealed = await Sealer(identity).seal(audit_pdf(entries, "env_01TEST"), reason="audit")
    report = verify_pdf(sealed, [identity.root])  # type: ignore[list-item]
    assert not report.ok and report.chain is not None
    assert "envelope 'env_01OTHER' differs" in (report.chain.problem or "")


async def test_a_malformed_audit_log_is_a_problem_not_a_crash(identity: SealIdentity) -> None:
    pdf = with_attachment(make_pdf(1), chain.ATTACHMENT_NAME, b"{not json")
    sealed = await Sealer(identity).seal(pdf, reason="audit")
    report = verify_pdf(sealed, [identity.root])  # type: ignore[list-item]
    assert (
        not report.ok and report.chain is not None and "not valid JSON" in str(report.chain.problem)
    )


def test_no_audit_log_means_no_chain(sealed: bytes, identity: SealIdentity) -> None:
    report = verify_pdf(sealed, [identity.root])  # type: ignore[list-item]
    assert report.ok and report.chain is None
    assert "Audit log: none embedded" in render(report)


def test_another_deployments_root_is_not_trusted(sealed: bytes, tmp_path: Path) -> None:
    other = load_identity(tmp_path, None, None)
    report = verify_pdf(sealed, [other.root])  # type: ignore[list-item]
    (sig,) = report.signatures
    assert sig.intact and sig.valid and not sig.trusted and not report.ok
    assert "not trusted" in (sig.problem or "")


def test_changes_appended_after_sealing_are_reported(sealed: bytes, identity: SealIdentity) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Rotate"] = generic.NumberObject(90)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    report = verify_pdf(out.getvalue(), [identity.root])  # type: ignore[list-item]
    (sig,) = report.signatures
    assert sig.intact and sig.coverage == "ENTIRE_REVISION" and not report.ok
    assert "does not cover the whole file" in (sig.problem or "")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a pdf at all",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        os.urandom(4096),
        b"%PDF-1.4\n" + b"(" * 100_000,
    ],
    ids=["empty", "text", "no-xref", "random", "deep-nesting"],
)
def test_garbage_gives_a_report_not_an_exception(data: bytes, identity: SealIdentity) -> None:
    report = verify_pdf(data, [identity.root])  # type: ignore[list-item]
    assert not report.ok and report.problem
    assert render(report)[-1] == "Result: NOT OK"


def test_truncated_sealed_file(sealed: bytes, identity: SealIdentity) -> None:
    for cut in (len(sealed) // 2, len(sealed) - 40):
        report = verify_pdf(sealed[:cut], [identity.root])  # type: ignore[list-item]
        assert not report.ok and (report.problem or report.signatures[0].problem)


def test_an_unsigned_pdf_is_not_ok(identity: SealIdentity) -> None:
    report = verify_pdf(make_pdf(1), [identity.root])  # type: ignore[list-item]
    assert not report.ok and report.problem == "the file has no signature"


async def test_verify_pdf_works_inside_a_running_loop(
    sealed: bytes, identity: SealIdentity
) -> None:
    assert verify_pdf(sealed, [identity.root]).ok  # type: ignore[list-item]


def test_main_exit_codes(
    sealed: bytes, identity: SealIdentity, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert identity.root_pem is not None
    good = tmp_path / "good.pdf"
    good.write_bytes(sealed)
    assert main(good, [identity.root_pem]) == 0
    assert "Result: OK" in capsys.readouterr().out

    assert main(tmp_path / "missing.pdf", [identity.root_pem]) == 2
    assert "cannot read" in capsys.readouterr().err

    # The default root of a P12 deployment may not exist: noted, then untrusted (1).
    assert main(good, [tmp_path / "no-root.pem"]) == 1
    captured = capsys.readouterr()
    assert "no-root.pem not found" in captured.err and "Result: NOT OK" in captured.out

    bad_root = tmp_path / "bad.pem"
    bad_root.write_text("not a certificate")
    assert main(good, [bad_root]) == 2

    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(json.dumps({"x": 1}).encode())
    assert main(garbage, [identity.root_pem]) == 1
