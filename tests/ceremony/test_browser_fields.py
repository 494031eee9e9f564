"""Fields on the signer page in a real browser (headless Debian Chromium through Playwright).

``test_fields`` proves over plain HTTP that fields are placed, enforced and stamped; these
prove that a person can fill them: the boxes sit over the page images where the PDF has them,
clicking a box leads to its input and what is typed shows in the box, a missing value comes
back next to its input with everything else kept, the page works with JavaScript off, and
what was entered in the browser (a drawn signature included) is what the sealed PDF carries,
inside each field's box.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ceremony.browser import CHROMIUM, PHONE, box_of, draw_signature, new_page

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (Debian package 'chromium')", allow_module_level=True)

import pypdfium2 as pdfium
from PIL import Image, ImageChops
from playwright.sync_api import Browser, Page, expect
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth

from tests.ceremony.browser import chromium
from tests.ceremony.test_browser import (
    EN,
    SHOTS,
    heading,
    links,
    send_envelope,
    sign_typed,
    wait_for_seal,
)
from tests.ceremony.test_fields import OTHER, SIGNER, _fields, _text_in, contract
from tests.conftest import Tenant

KINDS = ["sig", "date", "company", "check", "drop", "radio", "ini", "optional", "other"]
"""What each of ``test_fields._fields()`` is, in its order."""
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
RENDER_SCALE = 2.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _send(tenant: Tenant, *, vendor: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``contract()`` with every field type for Claire (and the vendor's signature field and
    a second signer when ``vendor``); the envelope and its fields by kind (see KINDS)."""
    recipients = [{"email": SIGNER, "name": "Claire Client", "role": "SIGNER", "order": 1}]
    if vendor:
        recipients.append({"email": OTHER, "name": "Victor Vendor", "role": "SIGNER", "order": 2})
    wanted = [f for f in _fields() if vendor or f["recipientEmail"] == SIGNER]
    envelope = send_envelope(
        tenant, recipients, pdf=contract(), subject="Service agreement", fields=wanted
    )
    kinds = KINDS if vendor else KINDS[:-1]
    return envelope, dict(zip(kinds, envelope["fields"], strict=True))


def _ids(fields: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each field's input (and overlay ``data-input``): ``field_<id>``."""
    return {kind: f"field_{field['id']}" for kind, field in fields.items()}


def _open(page: Page, url: str) -> None:
    page.goto(url)
    heading(page).to_have_text("Service agreement")
    page.wait_for_function(
        "() => [...document.querySelectorAll('figure.page img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )


def _expected_box(image: dict[str, float], placement: dict[str, float]) -> dict[str, float]:
    """Where a field's box must be on screen: its placement (points, y from the top) scaled
    from the A4 page onto the page image."""
    sx, sy = image["width"] / A4[0], image["height"] / A4[1]
    return {
        "x": image["x"] + placement["x"] * sx,
        "y": image["y"] + placement["y"] * sy,
        "width": placement["width"] * sx,
        "height": placement["height"] * sy,
    }


def _centre(box: dict[str, float]) -> complex:
    return complex(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def _inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"]
        and inner["y"] >= outer["y"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def _label(page: Page, name: str) -> Any:
    """The text shown in a field's box."""
    return expect(page.locator(f'svg.fields text[data-for="{name}"]'))


def _render(pdf: bytes, page: int) -> Image.Image:
    document = pdfium.PdfDocument(pdf)
    try:
        return document[page - 1].render(scale=RENDER_SCALE).to_pil().convert("L")
    finally:
        document.close()


def _ink(image: Image.Image, box: tuple[float, float, float, float]) -> int:
    """Pixels of ``image`` (a thresholded difference) set inside ``box`` (points)."""
    left, top, right, bottom = (round(v * RENDER_SCALE) for v in box)
    return sum(image.crop((left, top, right, bottom)).histogram()[1:])


def _new_ink(original: bytes, sealed: bytes, page: int) -> Image.Image:
    """What the seal added to a page in dark ink: 255 where the sealed page is dark and the
    original was not, 0 elsewhere (the sandbox's light "TEST" mark is not dark ink)."""
    before, after = (_render(pdf, page).point(_dark) for pdf in (original, sealed))
    assert before.size == after.size
    return ImageChops.subtract(after, before)


def _dark(value: int) -> int:
    return 255 if value < 128 else 0


def _pages(pdf: bytes) -> int:
    document = pdfium.PdfDocument(pdf)
    try:
        return len(document)
    finally:
        document.close()


def _points(placement: dict[str, float], slack: float = 0.0) -> tuple[float, ...]:
    return (
        placement["x"] - slack,
        placement["y"] - slack,
        placement["x"] + placement["width"] + slack,
        placement["y"] + placement["height"] + slack,
    )


# ------------------------------------------------------------------------------ the tests


def test_click_to_fill_with_javascript_and_drawn_signature_in_its_box(
    tenant: Tenant, browser: Browser
) -> None:
    """Every field type for one signer, with JavaScript: the boxes lie over the page images
    exactly where their placement says (the signature right of its anchor phrase), on top;
    clicking a box focuses its input (ticking a checkbox), what is typed or chosen shows in
    the box; the drawn signature and every value end up in the sealed PDF inside their boxes,
    and nothing is drawn outside them."""
    envelope, fields = _send(tenant, vendor=True)
    ids = _ids(fields)
    placed = {kind: field["placement"] for kind, field in fields.items()}
    with new_page(browser) as page:
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        _open(page, links(envelope)[SIGNER])

        # the boxes: this signer's eight, none of the vendor's, over the right image, on top
        expect(page.locator("svg.fields rect.field")).to_have_count(8)
        expect(page.locator(f'[data-input="{ids["other"]}"]')).to_have_count(0)
        images = [box_of(page, f"figure.page[data-page='{n}'] img") for n in (1, 2)]
        for number, image in enumerate(images, start=1):
            overlay = box_of(page, f"figure.page[data-page='{number}'] svg.fields")
            assert all(abs(overlay[k] - image[k]) < 1 for k in image), (overlay, image)
        for kind, placement in placed.items():
            if kind == "other":
                continue
            rect = page.locator(f'a[data-input="{ids[kind]}"] rect')
            expect(rect).to_be_visible()
            actual = box_of(page, rect)
            image = images[placement["pageNumber"] - 1]
            expected = _expected_box(image, placement)
            # same centre; the size may differ by the stroke (Chromium's boxes include it)
            assert abs(_centre(actual) - _centre(expected)) < 1.5, (kind, actual, expected)
            assert abs(actual["width"] - expected["width"]) < 3, (kind, actual, expected)
            assert abs(actual["height"] - expected["height"]) < 3, (kind, actual, expected)
            assert _inside(actual, image), (kind, actual, image)
        signature, image = box_of(page, f'a[data-input="{ids["sig"]}"] rect'), images[0]
        scale = image["width"] / A4[0]
        phrase_end = 72 + stringWidth("Signature of the Client", "Helvetica", 12)
        baseline = image["y"] + (A4[1] - 640) * scale
        assert signature["x"] >= image["x"] + phrase_end * scale
        assert signature["y"] < baseline < signature["y"] + signature["height"]
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).closest('a.field-link')"
            "?.getAttribute('data-input')",
            [signature["x"] + signature["width"] / 2, signature["y"] + signature["height"] / 2],
        )
        assert hit == ids["sig"]  # the box is over the image, not under it
        # the boxes are shortcuts for the mouse, out of the tab order (the inputs are the way)
        assert page.eval_on_selector_all(
            "a.field-link", "links => links.every(a => a.tabIndex === -1)"
        )

        # click a box: its input gets the focus, and what is typed shows in the box
        _label(page, ids["company"]).to_have_text("Company")
        page.locator(f'a[data-input="{ids["company"]}"]').click()
        assert page.evaluate("document.activeElement.id") == ids["company"]
        page.keyboard.type("Nguyễn & Fils SARL")
        expect(page.locator(f"#{ids['company']}")).to_have_value("Nguyễn & Fils SARL")
        _label(page, ids["company"]).to_have_text("Nguyễn & Fils SARL")

        _label(page, ids["check"]).to_have_text("")
        page.locator(f'a[data-input="{ids["check"]}"]').click()
        expect(page.locator(f"#{ids['check']}")).to_be_checked()
        assert page.evaluate("document.activeElement.id") == ids["check"]
        _label(page, ids["check"]).to_have_text("✓")

        page.locator(f'a[data-input="{ids["drop"]}"]').click()
        assert page.evaluate("document.activeElement.id") == ids["drop"]
        page.locator(f"#{ids['drop']}").select_option("Yearly")
        _label(page, ids["drop"]).to_have_text("Yearly")

        page.locator(f'a[data-input="{ids["radio"]}"]').click()
        assert page.evaluate("document.activeElement.id") == f"{ids['radio']}-1"
        page.get_by_label("Brussels").check()
        _label(page, ids["radio"]).to_have_text("Brussels")
        _label(page, ids["optional"]).to_have_text(EN["field.TEXT"])  # left empty

        initials = page.locator("#initials")
        expect(initials).to_have_value("CC")  # from the name
        initials.fill("C.C.")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "fields.png"), full_page=True)

        page.get_by_label(EN["form.mode.drawn"]).check()
        page.locator("#pad").scroll_into_view_if_needed()
        draw_signature(page)
        page.locator("#consent").check()
        page.get_by_role("button", name=EN["form.sign"], exact=True).click()
        heading(page).to_have_text(EN["status.signed.title"])
        assert problems == []

    vendor = {"name": "Victor Vendor", "mode": "typed", "typed": "Victor Vendor", "consent": "yes"}
    assert httpx.post(f"{links(envelope)[OTHER]}/sign", data=vendor).status_code == 303

    sealed = wait_for_seal(tenant, envelope["id"])
    assert "Nguyễn & Fils SARL" in _text_in(sealed, 1, placed["company"])
    assert DATE.search(_text_in(sealed, 1, placed["date"]))
    assert "✓" in _text_in(sealed, 2, placed["check"])
    assert "Yearly" in _text_in(sealed, 2, placed["drop"])
    assert "Brussels" in _text_in(sealed, 2, placed["radio"])
    assert "C.C." in _text_in(sealed, 2, placed["ini"])
    assert "Victor Vendor" in _text_in(sealed, 2, placed["other"])
    # the drawn signature is an image (no typed name) in its box on page 1, and page 1 has
    # no new ink anywhere but in its filled fields' boxes (none in the optional one)
    assert "Claire" not in _text_in(sealed, 1, placed["sig"])
    ink = _new_ink(contract(), sealed, 1)
    assert _ink(ink, _points(placed["sig"])) > 200
    outside = ink.copy()
    for kind in ("sig", "date", "company"):
        left, top, right, bottom = (round(v * RENDER_SCALE) for v in _points(placed[kind], 2))
        outside.paste(0, (left, top, right, bottom))
    assert outside.getbbox() is None, outside.getbbox()
    assert _pages(sealed) == 3  # both signed in fields: the certificate page only


def test_a_missing_required_field_comes_back_next_to_its_input(
    tenant: Tenant, browser: Browser
) -> None:
    """With JavaScript on, the browser does not stop the form (``novalidate``): the server
    refuses it with a 400 page where the empty required TEXT is marked invalid, described by
    its error next to it, and every other value entered is still there (and in its box)."""
    envelope, fields = _send(tenant, vendor=False)
    ids = _ids(fields)
    with new_page(browser) as page:
        _open(page, links(envelope)[SIGNER])
        page.locator(f"#{ids['check']}").check()
        page.locator(f"#{ids['drop']}").select_option("Monthly")
        page.get_by_label("Paris").check()
        page.locator(f"#{ids['optional']}").fill("Ref. 42")
        page.locator("#initials").fill("CLC")
        page.locator("#consent").check()
        with page.expect_navigation() as refused:
            page.get_by_role("button", name=EN["form.sign"], exact=True).click()
        assert refused.value is not None and refused.value.status == 400

        expect(page.get_by_role("alert")).to_have_text(EN["form.errors"])
        company = page.locator(f"#{ids['company']}")
        expect(company).to_have_attribute("aria-invalid", "true")
        expect(company).to_have_attribute("aria-describedby", f"{ids['company']}-error")
        error = page.locator(f"#wrap-{ids['company']} #{ids['company']}-error")
        expect(error).to_have_text(EN["error.required"])
        expect(page.locator("[aria-invalid=true]")).to_have_count(1)  # only that one

        expect(company).to_have_value("")
        expect(page.locator(f"#{ids['check']}")).to_be_checked()
        expect(page.locator(f"#{ids['drop']}")).to_have_value("Monthly")
        expect(page.get_by_label("Paris")).to_be_checked()
        expect(page.locator(f"#{ids['optional']}")).to_have_value("Ref. 42")
        expect(page.locator("#initials")).to_have_value("CLC")
        expect(page.locator("#typed")).to_have_value("Claire Client")
        _label(page, ids["drop"]).to_have_text("Monthly")
        _label(page, ids["optional"]).to_have_text("Ref. 42")
        _label(page, ids["check"]).to_have_text("✓")

        company.fill("Acme")
        sign_typed(page)
        heading(page).to_have_text(EN["status.completed.title"])


def test_without_javascript_the_listed_inputs_sign_end_to_end(
    tenant: Tenant, browser: Browser
) -> None:
    """JavaScript off: each page's inputs are listed under it, in reading order (page 1's
    before page 2's, top to bottom), a box is a plain link to its input, the typed signature
    signs, and the sealed PDF carries every value in its box."""
    envelope, fields = _send(tenant, vendor=False)
    ids = _ids(fields)
    placed = {kind: field["placement"] for kind, field in fields.items()}
    with new_page(browser, java_script_enabled=False) as page:
        _open(page, links(envelope)[SIGNER])
        expect(page.locator("#mode-drawn")).to_be_hidden()
        order = page.eval_on_selector_all(
            "figure.page, fieldset.page-fields > legend, .field-input",
            "nodes => nodes.map(n => n.matches('figure') ? 'page ' + n.dataset.page"
            " : n.matches('legend') ? n.textContent.trim() : n.id.slice(5))",
        )
        reading = sorted(fields, key=lambda k: (placed[k]["pageNumber"], placed[k]["y"]))
        one = [ids[k] for k in reading if placed[k]["pageNumber"] == 1]
        two = [ids[k] for k in reading if placed[k]["pageNumber"] == 2]
        assert order == [
            "page 1",
            EN["fields.page"].format(page=1),
            *one,
            "page 2",
            EN["fields.page"].format(page=2),
            *two,
        ]

        page.locator(f'a[data-input="{ids["company"]}"]').click()
        assert page.url.endswith(f"#{ids['company']}")
        page.get_by_label("Company").fill("Dubois & Fils")
        page.get_by_label("I accept the annex").check()
        page.get_by_label("Billing").select_option("Monthly")
        page.get_by_label("Paris").check()
        expect(page.locator("#initials")).to_have_value("CC")
        sign_typed(page)
        heading(page).to_have_text(EN["status.completed.title"])

    sealed = wait_for_seal(tenant, envelope["id"])
    assert "Dubois & Fils" in _text_in(sealed, 1, placed["company"])
    assert "Claire Client" in _text_in(sealed, 1, placed["sig"])
    assert DATE.search(_text_in(sealed, 1, placed["date"]))
    assert "✓" in _text_in(sealed, 2, placed["check"])
    assert "Monthly" in _text_in(sealed, 2, placed["drop"])
    assert "Paris" in _text_in(sealed, 2, placed["radio"])
    assert "CC" in _text_in(sealed, 2, placed["ini"])
    assert _pages(sealed) == 3


def test_initials_on_every_page_prefilled_and_stamped(tenant: Tenant, browser: Browser) -> None:
    """``initialsOnEveryPage`` without any field, on a phone: the initials input is there,
    prefilled from the name (accents kept); after signing, the foot of every page of the
    original carries them."""
    envelope = send_envelope(
        tenant,
        [{"email": "ines@example.com", "name": "Élodie Österberg", "role": "SIGNER"}],
        pdf=contract(),
        subject="Service agreement",
        initialsOnEveryPage=True,
    )
    with new_page(browser, **PHONE) as page:
        _open(page, links(envelope)["ines@example.com"])
        expect(page.locator("svg.fields")).to_have_count(0)
        expect(page.get_by_label(EN["form.initials"])).to_have_value("ÉÖ")
        sign_typed(page)
        heading(page).to_have_text(EN["status.completed.title"])

    sealed = wait_for_seal(tenant, envelope["id"])
    width, height = A4
    foot = {"x": width / 2, "y": height - 90, "width": width / 2, "height": 90}
    for number in (1, 2):
        assert "ÉÖ" in _text_in(sealed, number, foot), number
    assert _pages(sealed) == 4  # the original's two, the signature page, the certificate
