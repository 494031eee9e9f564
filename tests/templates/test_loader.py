"""Templates from YAML: the shipped ones load as designed, broken ones are refused with the file
and the line, and one broken file never stops the others (bot.templates)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from bot.documents import anchors
from bot.templates.cli import templates as templates_cli
from bot.templates.loader import load_template
from bot.templates.registry import Registry, check
from bot.templates.spec import Template, TemplateError, slug, template_id

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "templates"

SALE = """\
name: Sale
document: doc.pdf
roles:
  - name: Buyer
    fields:
      - {type: SIGNATURE, anchor: "Signature of the Buyer:"}
      - {type: DATE_SIGNED, anchor: "Date:", index: 0}
  - name: Seller
    fields:
      - {type: SIGNATURE, anchor: "Signature of the Seller:"}
      - {type: DATE_SIGNED, anchor: "Date:", index: 1}
"""
"""A valid template; the error cases below change one of its (numbered) lines."""


def sale_pdf() -> bytes:
    """Two A4 pages: the Buyer's block on page 1, the Seller's on page 2, "Date:" on each."""
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, invariant=True)
    for party in ("Buyer", "Seller"):
        canvas.setFont("Helvetica", 10)
        canvas.drawString(72, 700, f"The {party.lower()} agrees to the terms above.")
        canvas.drawString(72, 200, f"Signature of the {party}:")
        canvas.drawString(72, 160, "Date:")
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "templates"
    path.mkdir()
    (path / "doc.pdf").write_bytes(sale_pdf())
    return path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def with_line(text: str, number: int, new: str) -> str:
    """``text`` with its line ``number`` (from 1) replaced by ``new`` (may be several lines)."""
    lines = text.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


def only_error(path: Path) -> TemplateError:
    template, errors = load_template(path)
    assert template is None
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# --- the shipped templates --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Registry:
    return Registry.load(SHIPPED)


def test_the_shipped_folder_loads_whole(shipped: Registry) -> None:
    assert shipped.errors == []
    assert [t.id for t in shipped.all()] == [
        "tpl_mutual-nda",
        "tpl_offer-letter",
        "tpl_service-agreement",
    ]


@pytest.mark.parametrize(
    ("tid", "roles", "order", "signers"),
    [
        (
            "tpl_mutual-nda",
            [("Company", "SIGNER", 1), ("Counterparty", "SIGNER", 1)],
            "PARALLEL",
            2,
        ),
        (
            "tpl_service-agreement",
            [
                ("Legal Reviewer", "APPROVER", 1),
                ("Client", "SIGNER", 2),
                ("Service Provider", "SIGNER", 3),
            ],
            "SEQUENTIAL",
            2,
        ),
        (
            "tpl_offer-letter",
            [("Company", "SIGNER", 1), ("Candidate", "SIGNER", 2), ("HR", "CARBON_COPY", 3)],
            "SEQUENTIAL",
            2,
        ),
    ],
)
def test_each_shipped_template_has_its_roles(
    shipped: Registry, tid: str, roles: list[tuple[str, str, int]], order: str, signers: int
) -> None:
    template = shipped.get(tid)
    assert template is not None
    assert [(r.name, r.role, r.order) for r in template.roles] == roles
    assert template.signing_order == order
    assert template.signer_count == signers
    assert template.documents == (SHIPPED / f"{tid[4:]}.pdf",)
    assert template.description and template.default_subject and template.default_message
    for index, role in enumerate(template.roles):
        kinds = [f.field_type for f in template.fields_for(index)]
        if role.role == "SIGNER":  # exactly one signature and one signing date each
            assert kinds.count("SIGNATURE") == 1 and kinds.count("DATE_SIGNED") == 1, role
        else:
            assert kinds == [], role
        assert all(f.anchor_text for f in template.fields_for(index)), "anchors only"


def test_shipped_settings(shipped: Registry) -> None:
    nda = shipped.get("tpl_mutual-nda")
    service = shipped.get("tpl_service-agreement")
    offer = shipped.get("tpl_offer-letter")
    assert nda and service and offer
    assert (nda.reminders, nda.expires_in_days, nda.approval_required) == ((3, 3), 30, False)
    assert (service.approval_required, service.approver_role) == (True, "Legal Reviewer")
    assert (offer.approval_required, offer.approver_role, offer.expires_in_days) == (True, None, 7)
    assert dict(offer.bot) == {"channel": "#hiring", "approver": "@head-of-people"}
    dropdown = next(f for f in service.fields if f.field_type == "DROPDOWN")
    assert dropdown.options == ("Bank transfer", "Direct debit", "Card payment")
    radio = next(f for f in offer.fields if f.field_type == "RADIO_GROUP")
    assert (radio.options, radio.width, radio.height) == (("Full-time", "Part-time"), 200, 24)


def _placed(template: Template) -> list[tuple[int, anchors.Box]]:
    """Every field of a one-document template placed as an envelope would place it."""
    data = template.documents[0].read_bytes()
    specs = [
        anchors.FieldSpec(
            page_number=f.page_number,
            x=f.x,
            y=f.y,
            width=f.width,
            height=f.height,
            anchor_text=f.anchor_text,
            anchor_placement=f.anchor_placement,
            anchor_index=f.anchor_index,
        )
        for f in template.fields
    ]
    resolved = anchors.resolve(data, specs)
    assert all(r.anchor_found for r in resolved)
    return [(f.role_index, r.box) for f, r in zip(template.fields, resolved, strict=True)]


@pytest.mark.parametrize("tid", ["tpl_mutual-nda", "tpl_service-agreement", "tpl_offer-letter"])
def test_shipped_fields_do_not_overlap_and_sit_in_their_roles_blocks(
    shipped: Registry, tid: str
) -> None:
    """The anchors' ``index`` values pick the right party's block: every field of a role's
    signature block is just below that role's signature, and no two fields overlap."""
    template = shipped.get(tid)
    assert template is not None
    placed = _placed(template)
    for i, (_, a) in enumerate(placed):
        for _, b in placed[i + 1 :]:
            overlap = (
                a.page == b.page
                and a.x < b.right
                and b.x < a.right
                and a.y < b.bottom
                and b.y < a.bottom
            )
            assert not overlap, (a, b)
    block = ("Signatory name:", "Signatory title:", "Date signed:", "Confirmed start date:")
    for field, (role, box) in zip(template.fields, placed, strict=True):
        if field.anchor_text not in block:
            continue
        signature = next(
            b
            for f, (r, b) in zip(template.fields, placed, strict=True)
            if r == role and f.field_type == "SIGNATURE"
        )
        assert box.page == signature.page and 0 < box.y - signature.y < 130, field


def test_shipped_pdfs_are_real_documents() -> None:
    for name in ("mutual-nda", "service-agreement", "offer-letter"):
        reader = PdfReader(SHIPPED / f"{name}.pdf")
        assert 2 <= len(reader.pages) <= 4
        text = " ".join(page.extract_text() for page in reader.pages)
        assert len(text.split()) > 600, name  # clauses, not a stub
        assert "lorem" not in text.lower()


def test_shipped_pdfs_are_rebuilt_identically() -> None:
    """``_source/build.py --check``: the committed PDFs are what the sources produce."""
    result = subprocess.run(
        [sys.executable, str(SHIPPED / "_source" / "build.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- a valid template, defaults ---------------------------------------------------------------


def test_a_minimal_template_gets_the_documented_defaults(folder: Path) -> None:
    write(folder, "Sale Contract.yaml", SALE.replace("document: doc.pdf\n", ""))
    (folder / "Sale Contract.pdf").write_bytes(sale_pdf())
    template, errors = load_template(folder / "Sale Contract.yaml")
    assert errors == [] and template is not None
    assert template.id == "tpl_sale-contract"
    assert template.documents == (folder / "Sale Contract.pdf",)
    assert template.default_subject == "Sale"  # the name
    assert template.default_message is None and template.description == ""
    assert (template.signing_order, [r.order for r in template.roles]) == ("PARALLEL", [1, 1])
    assert (template.reminders, template.expires_in_days) == (None, None)
    assert (template.approval_required, template.approver_role, dict(template.bot)) == (
        False,
        None,
        {},
    )
    signature, date = template.fields_for(0)
    assert (signature.width, signature.height, signature.page_number) == (150, 40, 1)
    assert (signature.x, signature.y, signature.required) == (72, 700, True)
    assert (signature.anchor_placement, signature.anchor_index) == ("right", 0)
    assert (date.width, date.height) == (120, 24)


def test_sizes_positions_and_several_documents(folder: Path) -> None:
    (folder / "annex.pdf").write_bytes(sale_pdf())
    text = """\
name: Two documents
documents: [doc.pdf, annex.pdf]
signing_order: sequential
reminders: {interval_days: 2}
approval: true
roles:
  - name: Buyer
    fields:
      - {type: INITIALS, page: 2, x: 500, y: 780}
      - {type: CHECKBOX, anchor: "Date:", index: 1, document: annex.pdf, placement: left}
      - {type: TEXT, x: 72, y: 72, document: 1, required: false, label: Notes}
      - {type: RADIO_GROUP, x: 72, y: 120, options: [A, B]}
  - name: Seller
    role: approver
"""
    template, errors = load_template(write(folder, "two.yaml", text))
    assert errors == [] and template is not None
    assert template.documents == (folder / "doc.pdf", folder / "annex.pdf")
    assert [(r.name, r.role, r.order) for r in template.roles] == [
        ("Buyer", "SIGNER", 1),
        ("Seller", "APPROVER", 2),
    ]
    assert template.reminders == (2, 3) and template.approval_required
    initials, box, text_field, radio = template.fields
    assert (initials.page_number, initials.x, initials.y, initials.width) == (2, 500, 780, 60)
    assert (box.document_index, box.width, box.height, box.anchor_placement) == (1, 16, 16, "left")
    assert (text_field.document_index, text_field.required, text_field.label) == (1, False, "Notes")
    assert (radio.width, radio.height, radio.options) == (150, 48, ("A", "B"))
    assert template.signer_count == 1


def test_ids_are_slugs_of_the_file_name() -> None:
    assert slug("Mutual NDA") == "mutual-nda"
    assert slug("offer_letter--2024") == "offer-letter-2024"
    assert template_id(Path("templates/Service Agreement.yaml")) == "tpl_service-agreement"


# --- errors, each with its file and line ------------------------------------------------------

BAD = [
    pytest.param(
        with_line(SALE, 6, '      - {type: SIGNATURE, anchor: "Signature of the Buyer:"'),
        7,
        "invalid YAML",
        id="yaml-syntax",
    ),
    pytest.param(
        with_line(SALE, 2, "document: doc.pdf\nreminder: {interval_days: 3}"),
        3,
        "reminder: unknown key; did you mean 'reminders'?",
        id="unknown-key",
    ),
    pytest.param(
        with_line(SALE, 7, '      - {fieldType: DATE_SIGNED, anchor: "Date:"}'),
        7,
        "roles[0].fields[1].fieldType: unknown key; did you mean 'type'?",
        id="certyneo-spelling",
    ),
    pytest.param(
        with_line(SALE, 6, '      - {type: SIGNTURE, anchor: "Signature of the Buyer:"}'),
        6,
        "roles[0].fields[0].type: must be one of SIGNATURE, INITIALS, DATE_SIGNED, TEXT, "
        "CHECKBOX, DROPDOWN, RADIO_GROUP",
        id="field-type",
    ),
    pytest.param(
        with_line(SALE, 6, '      - {type: STAMP, anchor: "Signature of the Buyer:"}'),
        6,
        "roles[0].fields[0].type: must be one of",
        id="unsupported-field-type",
    ),
    pytest.param(
        with_line(SALE, 2, "document: missing.pdf"),
        2,
        "document: missing.pdf: file not found",
        id="missing-pdf",
    ),
    pytest.param(
        with_line(SALE, 10, '      - {type: SIGNATURE, anchor: "Signature of the Lessor:"}'),
        10,
        "roles[1].fields[0].anchor: 'Signature of the Lessor:' is not in doc.pdf",
        id="anchor-not-found",
    ),
    pytest.param(
        with_line(SALE, 11, '      - {type: DATE_SIGNED, anchor: "Date:", index: 2}'),
        11,
        "roles[1].fields[1].index: 2 is past the last occurrence of 'Date:' in doc.pdf (found 2",
        id="index-too-high",
    ),
    pytest.param(
        with_line(SALE, 7, '      - {type: DROPDOWN, anchor: "Date:"}'),
        7,
        "roles[0].fields[1]: a DROPDOWN field needs options",
        id="dropdown-without-options",
    ),
    pytest.param(
        with_line(SALE, 7, '      - {type: TEXT, anchor: "Date:", options: [a]}'),
        7,
        "roles[0].fields[1].options: only DROPDOWN and RADIO_GROUP fields take options",
        id="options-on-text",
    ),
    pytest.param(
        with_line(SALE, 7, '      - {type: TEXT, anchor: "Date:", width: wide}'),
        7,
        "roles[0].fields[1].width: must be a number above 0 to 14400",
        id="wrong-type",
    ),
    pytest.param(
        with_line(SALE, 7, "      - {type: TEXT}"),
        7,
        "roles[0].fields[1]: give an anchor, or x and y",
        id="no-position",
    ),
    pytest.param(
        with_line(SALE, 7, "      - {type: TEXT, x: 500, y: 100, width: 200}"),
        7,
        "overflows page 1",
        id="box-off-the-page",
    ),
    pytest.param(
        with_line(SALE, 7, "      - {type: TEXT, x: 10, y: 100, page: 3}"),
        7,
        "roles[0].fields[1].page: doc.pdf has 2 pages",
        id="page-past-the-end",
    ),
    pytest.param(
        with_line(SALE, 8, "  - name: buyer"),
        8,
        "roles[1].name: 'buyer' is used twice",
        id="duplicate-role",
    ),
    pytest.param(
        with_line(SALE, 8, "  - name: Seller\n    role: VIEWER"),
        11,  # the list's first item
        "roles[1].fields: a VIEWER only receives a copy: no fields",
        id="viewer-with-fields",
    ),
    pytest.param(
        SALE + "approval: {required: true, approver_role: Buyer}\n",
        12,
        "approval.approver_role: Buyer is a SIGNER, not an APPROVER",
        id="approver-not-approver",
    ),
    pytest.param(
        SALE + "subject: NDA with {{company}}\n",
        12,
        "subject: placeholders are not filled in",
        id="placeholder",
    ),
    pytest.param(
        SALE + "name: Again\n",
        12,
        "name: given twice",
        id="duplicate-key",
    ),
    pytest.param(
        SALE + "signing_order: whenever\n",
        12,
        "signing_order: must be one of parallel, sequential",
        id="bad-choice",
    ),
    pytest.param(
        SALE + "expires_in_days: 0\n",
        12,
        "expires_in_days: must be from 1 to 365 (got 0)",
        id="out-of-range",
    ),
    pytest.param(SALE + "bot: [a]\n", 12, "bot: must be a mapping", id="bot-not-a-mapping"),
    pytest.param("- just\n- a list\n", 1, "the template must be a mapping", id="not-a-mapping"),
    pytest.param("", 1, "the file is empty", id="empty"),
    pytest.param(
        "name: Sale\ndocument: doc.pdf\n",
        1,
        "missing required key 'roles'",
        id="missing-roles",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_a_broken_template_is_refused_on_the_right_line(
    folder: Path, text: str, line: int, message: str
) -> None:
    path = write(folder, "sale.yaml", text)
    error = only_error(path)
    assert (error.path, error.line) == (path, line), str(error)
    assert message in error.message, str(error)
    assert str(error).startswith(f"{path}:{line}: ")


def test_every_problem_of_a_file_is_reported_in_one_pass(folder: Path) -> None:
    text = with_line(SALE, 6, "      - {type: SIGNTURE, anchr: x}")
    text = with_line(text, 11, '      - {type: DATE_SIGNED, anchor: "Date:", index: 9}')
    _, errors = load_template(write(folder, "sale.yaml", text))
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (6, "roles[0].fields[0].anchr"),
        (6, "roles[0].fields[0].type"),
        (6, "roles[0].fields[0]"),
        (11, "roles[1].fields[1].index"),
    ]


def test_unusable_pdfs_are_refused(folder: Path) -> None:
    writer = PdfWriter()
    writer.append(io.BytesIO(sale_pdf()))
    writer.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    (folder / "locked.pdf").write_bytes(buf.getvalue())
    (folder / "notes.pdf").write_text("not a PDF at all")
    locked = only_error(write(folder, "a.yaml", with_line(SALE, 2, "document: locked.pdf")))
    assert locked.line == 2 and "password-protected" in locked.message
    fake = only_error(write(folder, "b.yaml", with_line(SALE, 2, "document: notes.pdf")))
    assert fake.line == 2 and fake.message == "document: notes.pdf: is not a PDF"
    outside = only_error(write(folder, "c.yaml", with_line(SALE, 2, "document: ../doc.pdf")))
    assert "inside the templates folder" in outside.message


def test_the_default_document_must_exist(folder: Path) -> None:
    error = only_error(write(folder, "lease.yaml", SALE.replace("document: doc.pdf\n", "")))
    assert error.line == 1 and "lease.pdf: file not found" in error.message


# --- the registry -------------------------------------------------------------------------------


def test_a_broken_template_does_not_stop_the_others(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(folder, "sale.yaml", SALE)
    write(folder, "broken.yaml", with_line(SALE, 6, "      - {type: SIGNTURE, x: 1, y: 1}"))
    (folder / "_source").mkdir()
    write(folder / "_source", "draft.yaml", "this: [is not loaded")
    write(folder, "README.md", "# not a template")
    write(folder, "old.yml", "not: loaded")
    with caplog.at_level(logging.INFO, logger="signbot.templates"):
        registry = Registry.load(folder)
    assert [t.id for t in registry.all()] == ["tpl_sale"]
    assert registry.get("tpl_sale") is not None and registry.get("tpl_broken") is None
    assert len(registry) == 1
    assert [(e.path.name, e.line) for e in registry.errors] == [("broken.yaml", 6)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"template {folder / 'broken.yaml'} refused: line 6: roles[0].fields[0].type: "
        "must be one of SIGNATURE, INITIALS, DATE_SIGNED, TEXT, CHECKBOX, DROPDOWN, RADIO_GROUP"
    ]


def test_two_files_with_one_id_are_both_refused(folder: Path) -> None:
    write(folder, "Sale.yaml", SALE)
    write(folder, "sale.yaml", SALE)
    write(folder, "other.yaml", SALE.replace("name: Sale", "name: Other"))
    registry = Registry.load(folder)
    assert [t.id for t in registry.all()] == ["tpl_other"]
    assert sorted(str(e) for e in registry.errors) == [
        f"{folder / 'Sale.yaml'}:1: its id tpl_sale is also the id of sale.yaml; rename one",
        f"{folder / 'sale.yaml'}:1: its id tpl_sale is also the id of Sale.yaml; rename one",
    ]


def test_a_missing_folder_is_an_empty_registry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="signbot.templates"):
        registry = Registry.load(tmp_path / "nowhere")
    assert registry.all() == [] and registry.errors == []
    assert any(r.levelno == logging.INFO and "no folder" in r.getMessage() for r in caplog.records)
    assert [str(e) for e in check(tmp_path / "nowhere")] == [
        f"{tmp_path / 'nowhere'}:1: is not a folder"
    ]


# --- signbot templates check --------------------------------------------------------------------


def test_check_prints_file_and_line_and_exits_1(folder: Path) -> None:
    write(folder, "sale.yaml", SALE)
    broken = write(
        folder, "broken.yaml", with_line(SALE, 7, '      - {type: DROPDOWN, anchor: "Date:"}')
    )
    result = CliRunner().invoke(templates_cli, ["check", str(folder)])
    assert result.exit_code == 1
    assert result.stdout == f"{broken}:7: roles[0].fields[1]: a DROPDOWN field needs options\n"
    assert "1 error in 1 of 2 templates" in result.stderr


def test_check_passes_on_the_shipped_folder() -> None:
    result = CliRunner().invoke(templates_cli, ["check", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "3 templates valid" in result.stderr


def test_check_defaults_to_the_configured_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "sale.yaml", with_line(SALE, 2, "document: gone.pdf"))
    monkeypatch.setenv("SIGNBOT_TEMPLATES_DIR", str(folder))
    result = CliRunner().invoke(templates_cli, ["check"])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{folder / 'sale.yaml'}:2: document: gone.pdf")


def test_list_shows_the_valid_templates() -> None:
    result = CliRunner().invoke(templates_cli, ["list", str(SHIPPED)])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("tpl_mutual-nda\tMutual NDA\tCompany (SIGNER)")


def test_the_readme_example_is_valid(folder: Path) -> None:
    readme = (SHIPPED / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    for name in ("mutual-nda.pdf", "service-agreement.pdf"):
        (folder / name).write_bytes((SHIPPED / name).read_bytes())
    template, errors = load_template(write(folder, "example.yaml", example))
    assert [str(e) for e in errors] == [] and template is not None
    assert [(r.name, r.role, r.order) for r in template.roles] == [
        ("Legal", "APPROVER", 1),
        ("Company", "SIGNER", 2),
        ("Counterparty", "SIGNER", 2),
    ]
    assert (template.signing_order, template.approver_role) == ("SEQUENTIAL", "Legal")
    assert [f.document_index for f in template.fields] == [0, 0, 0, 0, 1, 0]
