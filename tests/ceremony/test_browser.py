"""The signer page in a real browser (headless Debian Chromium through Playwright).

The API tests prove the ceremony's rules; these prove that a person can actually get through
it: the link from a real email opens, the page images load, the canvas records a drawing that
ends up in the sealed PDF, the page works with JavaScript off, errors sit next to their field,
the redirect, one-time code, language and escaping behave in the browser, not only in HTML
source. Real email (aiosmtpd) only where the email is the point; the rest runs on the sandbox
``server``, which is faster.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ceremony.browser import CHROMIUM, PHONE, draw_signature, new_page

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (Debian package 'chromium'; Playwright's own browser "
        "downloads are not used)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Response, Route, expect
from pypdf import PdfReader

from bot.signing.pages import CATALOG
from tests.ceremony.browser import chromium
from tests.ceremony.conftest import MailServer
from tests.conftest import Tenant, make_pdf, upload
from tests.support.mailbox import body_text, sign_link

SHOTS = Path("/tmp/signer-shots")
"""Screenshots for people to look at (not asserted on)."""
HOSTILE_SUBJECT = "<script>alert(1)</script> Offer"
HOSTILE_NAME = '"><img src=x onerror=alert(1)> Eve'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    with new_page(browser, **PHONE) as page:
        yield page


def catalog(lang: str) -> dict[str, str]:
    """The signer page's strings in ``lang``, so that a reworded message does not break a
    test that only means to check which language is shown."""
    return json.loads((CATALOG / f"{lang}.json").read_text(encoding="utf-8"))


EN = catalog("en")


def address(label: str) -> str:
    """A fresh address: the session's mailbox is shared, and a test must only see its mail."""
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def send_envelope(
    tenant: Tenant,
    recipients: list[dict[str, Any]],
    pdf: bytes | None = None,
    document_name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Upload, create and send; the create answer carries each recipient's ``signUrl``.
    ``document_name`` is the display name (multipart ``name``), kept as given, unlike the
    file name, which the upload sanitises."""
    if document_name is None:
        document = upload(tenant, pdf or make_pdf(2))
    else:
        uploaded = tenant.client.post(
            "/documents",
            files={"file": ("contract.pdf", pdf or make_pdf(2), "application/pdf")},
            data={"name": document_name},
        )
        assert uploaded.status_code == 201, uploaded.text
        document = uploaded.json()
        assert document["name"] == document_name
    body = {
        "subject": "Services agreement",
        "documentIds": [document["id"]],
        "recipients": recipients,
        **extra,
    }
    created = tenant.client.post("/envelopes", json=body)
    assert created.status_code == 201, created.text
    envelope = created.json()
    sent = tenant.client.post(f"/envelopes/{envelope['id']}/send")
    assert sent.status_code == 200, sent.text
    return envelope


def links(envelope: dict[str, Any]) -> dict[str, str]:
    return {r["email"]: r["signUrl"] for r in envelope["recipients"]}


def recipient(tenant: Tenant, envelope_id: str, email: str) -> dict[str, Any]:
    """One recipient as the API shows it now."""
    answer = tenant.client.get(f"/envelopes/{envelope_id}")
    assert answer.status_code == 200, answer.text
    return next(r for r in answer.json()["recipients"] if r["email"] == email)


def heading(page: Page) -> Any:
    return expect(page.get_by_role("heading", level=1))


def sign_typed(page: Page, button: str = EN["form.sign"]) -> None:
    """Tick consent and press Sign (the typed signature is prefilled with the name)."""
    page.locator("#consent").check()
    page.get_by_role("button", name=button, exact=True).click()


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_for_seal(tenant: Tenant, envelope_id: str, timeout: float = 30.0) -> bytes:
    """The sealed PDF, once the worker has composed and sealed it (409 until then)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = tenant.client.get(f"/envelopes/{envelope_id}/signed-document")
        if answer.status_code == 200:
            return answer.content
        assert answer.status_code == 409, answer.text
        assert time.monotonic() < deadline, "the envelope was not sealed in time"
        time.sleep(0.2)


def first_page_image_loaded(page: Page) -> None:
    """The first page image has really been decoded (not a broken-image icon)."""
    image = page.locator("figure.page img").first
    expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )


# ------------------------------------------------------------------------------ email path


def test_email_link_drawn_signature_ends_up_in_the_sealed_pdf(
    mail_server: MailServer, live: Tenant, phone: Page
) -> None:
    """The whole path a signer takes: the link from a real invitation email, on a phone; the
    pages render; a drawing made with the pointer is what the sealed PDF's signature page
    carries (an image; a typed signature is text); the completion email brings the signed
    PDF and the audit trail."""
    signer = address("drawn")
    envelope = send_envelope(
        live,
        [{"email": signer, "name": "Marie Dubois", "role": "SIGNER"}],
        subject="Lease for flat 4B",
    )
    link = sign_link(mail_server.mailbox.to(signer, "invitation"))
    assert link == links(envelope)[signer]

    phone.goto(link)
    heading(phone).to_have_text("Lease for flat 4B")
    expect(phone.locator("figure.page img")).to_have_count(2)
    first_page_image_loaded(phone)

    phone.get_by_label(EN["form.mode.drawn"]).check()
    pad = phone.locator("#pad")
    expect(pad).to_be_visible()
    expect(phone.locator("#typed")).to_be_hidden()
    phone.locator("#consent").check()
    # "Draw" with an empty pad is stopped in the page (not signed with the hidden typed name)
    phone.get_by_role("button", name=EN["form.sign"], exact=True).click()
    expect(phone.locator("#pad-error")).to_be_visible()
    expect(pad).to_have_attribute("aria-invalid", "true")
    heading(phone).to_have_text("Lease for flat 4B")

    draw_signature(phone)
    expect(phone.locator("#pad-error")).to_be_hidden()
    shoot(phone, "sign-page-drawn")
    phone.get_by_role("button", name=EN["form.sign"], exact=True).click()
    # the only signer: their signature completes the envelope (sealing follows in the worker)
    heading(phone).to_have_text(EN["status.completed.title"])

    sealed = PdfReader(io.BytesIO(wait_for_seal(live, envelope["id"])))
    # two document pages, the signature page, the certificate page
    assert len(sealed.pages) == 4
    assert len(sealed.pages[-2].images) >= 1, "the drawn signature is not on the signature page"
    assert not sealed.pages[0].images, "a document page gained an image"

    completed = mail_server.mailbox.to(signer, "completed", timeout=30)
    pdfs = [p for p in completed.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 2, [p.get_filename() for p in completed.iter_attachments()]


def test_email_otp_code_from_the_mailbox(
    mail_server: MailServer, live: Tenant, browser: Browser
) -> None:
    """EMAIL_OTP: nothing of the document before the code; the code comes by email; a wrong
    code is refused next to the field; the right one opens the document, which can be signed."""
    signer = address("otp")
    send_envelope(
        live,
        [{"email": signer, "name": "Jonas Weber", "role": "SIGNER", "authentication": "EMAIL_OTP"}],
        subject="Loan agreement",
    )
    link = sign_link(mail_server.mailbox.to(signer, "invitation"))
    with new_page(browser, **PHONE) as page:
        page.goto(link)
        heading(page).to_have_text(EN["otp.heading"])
        expect(page.locator("figure.page")).to_have_count(0)
        page.get_by_role("button", name=EN["otp.send"]).click()
        expect(page.locator("#code")).to_be_visible()

        mail = mail_server.mailbox.to(signer, "otp")
        found = re.search(r"\b(\d{6})\b", str(mail["Subject"])) or re.search(
            r"\b(\d{6})\b", body_text(mail)
        )
        assert found, body_text(mail)
        code = found.group(1)

        page.locator("#code").fill(f"{(int(code) + 1) % 1_000_000:06d}")
        with page.expect_navigation() as wrong:
            page.get_by_role("button", name=EN["otp.verify"]).click()
        assert wrong.value is not None and wrong.value.status == 400
        expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#code-error")).to_have_text(EN["error.code_wrong"])

        page.locator("#code").fill(code)
        page.get_by_role("button", name=EN["otp.verify"]).click()
        heading(page).to_have_text("Loan agreement")
        first_page_image_loaded(page)
        sign_typed(page)
        heading(page).to_have_text(EN["status.completed.title"])


# ------------------------------------------------------------------------------ sandbox


def test_without_javascript_typed_signature_and_consent_error(
    tenant: Tenant, browser: Browser
) -> None:
    """With JavaScript off the page is still complete: no drawing option (it needs a canvas),
    the typed signature signs, and a missing consent comes back as a 400 page with the error
    tied to the checkbox."""
    signer = address("nojs")
    envelope = send_envelope(
        tenant,
        [
            {"email": signer, "name": "Karim Haddad", "role": "SIGNER"},
            {"email": address("other"), "name": "Lena Vogel", "role": "SIGNER"},
        ],
    )
    with new_page(browser, java_script_enabled=False) as page:
        page.goto(links(envelope)[signer])
        expect(page.locator("#mode-typed")).to_be_checked()
        expect(page.locator("#mode-drawn")).to_be_hidden()
        expect(page.locator("#pad")).to_be_hidden()
        expect(page.locator("#typed")).to_have_value("Karim Haddad")
        first_page_image_loaded(page)

        with page.expect_navigation() as refused:
            page.get_by_role("button", name=EN["form.sign"], exact=True).click()
        assert refused.value is not None and refused.value.status == 400
        consent = page.locator("#consent")
        expect(consent).to_have_attribute("aria-invalid", "true")
        expect(consent).to_have_attribute("aria-describedby", "consent-error")
        expect(page.locator("#consent-error")).to_have_text(EN["error.required"])
        expect(page.locator("#typed")).to_have_value("Karim Haddad")  # the form kept its input

        sign_typed(page)
        heading(page).to_have_text(EN["status.signed.title"])

    assert recipient(tenant, envelope["id"], signer)["status"] == "SIGNED"


def test_sequential_order_waits_for_the_first_signer(tenant: Tenant, phone: Page) -> None:
    """Order 1 then 2: the second signer's page says whom it waits for and offers no form;
    once the first has signed, the second can sign."""
    first, second = address("first"), address("second")
    envelope = send_envelope(
        tenant,
        [
            {"email": first, "name": "Alice Martin", "role": "SIGNER", "order": 1},
            {"email": second, "name": "Bruno Leroy", "role": "SIGNER", "order": 2},
        ],
    )
    urls = links(envelope)

    phone.goto(urls[second])
    heading(phone).to_have_text(EN["status.waiting.title"])
    expect(phone.locator("main")).to_contain_text("Alice Martin")
    expect(phone.locator("#sign-form")).to_have_count(0)

    phone.goto(urls[first])
    heading(phone).to_have_text("Services agreement")
    first_page_image_loaded(phone)
    shoot(phone, "sign-page")
    sign_typed(phone)
    heading(phone).to_have_text(EN["status.signed.title"])
    shoot(phone, "signed-page")

    phone.goto(urls[second])
    heading(phone).to_have_text("Services agreement")
    sign_typed(phone)
    heading(phone).to_have_text(EN["status.completed.title"])


def test_decline_with_a_reason(tenant: Tenant, phone: Page) -> None:
    """The decline form behind its disclosure: the page then says the request was declined,
    and the API has the status and the reason as typed."""
    signer = address("decline")
    envelope = send_envelope(tenant, [{"email": signer, "name": "Tom Berg", "role": "SIGNER"}])
    phone.goto(links(envelope)[signer])
    expect(phone.locator("#reason")).to_be_hidden()  # closed <details>
    phone.locator("summary", has_text=EN["decline.summary"]).click()
    reason = "The start date is wrong: it should be 1 March."
    phone.locator("#reason").fill(reason)
    phone.locator("#reason").locator("xpath=..").get_by_role(
        "button", name=EN["decline.submit"]
    ).click()
    heading(phone).to_have_text(EN["status.declined.title"])

    answer = tenant.client.get(f"/envelopes/{envelope['id']}").json()
    assert answer["status"] == "DECLINED"
    (recipient,) = answer["recipients"]
    assert recipient["status"] == "DECLINED"
    assert recipient["declineReason"] == reason


def test_redirect_url_after_signing(tenant: Tenant, phone: Page) -> None:
    """After Sign the browser lands on the sender's ``redirectUrl`` (the CSP's form-action
    allows https redirects). There is no outside network: the page is answered locally."""
    served: list[str] = []

    def thanks(route: Route) -> None:
        served.append(route.request.url)
        route.fulfill(
            status=200, content_type="text/html", body="<title>Thanks</title><h1>Thanks!</h1>"
        )

    phone.route("https://example.com/**", thanks)
    signer = address("redirect")
    envelope = send_envelope(
        tenant,
        [{"email": signer, "name": "Ana Costa", "role": "SIGNER"}],
        redirectUrl="https://example.com/thanks",
    )
    phone.goto(links(envelope)[signer])
    sign_typed(phone)
    phone.wait_for_url("https://example.com/thanks")
    heading(phone).to_have_text("Thanks!")
    assert served == ["https://example.com/thanks"]
    answer = tenant.client.get(f"/envelopes/{envelope['id']}").json()
    assert answer["recipients"][0]["status"] == "SIGNED"


@pytest.mark.parametrize("lang", ["fr", "vi"])
def test_page_in_the_envelope_language(tenant: Tenant, phone: Page, lang: str) -> None:
    """The envelope's ``locale`` picks the page's language, diacritics intact (UTF-8 end to
    end), including the form's labels and the page after signing."""
    strings = catalog(lang)
    signer = address(lang)
    envelope = send_envelope(
        tenant, [{"email": signer, "name": "Nguyễn Văn An", "role": "SIGNER"}], locale=lang
    )
    phone.goto(links(envelope)[signer])
    expect(phone.locator("html")).to_have_attribute("lang", lang)
    sign = phone.get_by_role("button", name=strings["form.sign"], exact=True)
    expect(sign).to_be_visible()
    expect(phone.get_by_role("heading", name=strings["form.heading.sign"])).to_be_visible()
    expect(phone.locator("label[for=consent]")).to_have_text(strings["form.consent"])
    assert strings["form.consent"] != EN["form.consent"]
    if lang == "vi":
        assert re.search(r"[ạ-ỹđ]", strings["form.consent"])  # Vietnamese letters, not ASCII
    expect(phone.locator("#name")).to_have_value("Nguyễn Văn An")
    sign_typed(phone, strings["form.sign"])
    heading(phone).to_have_text(strings["status.completed.title"])


def test_hostile_subject_and_name_render_as_text(tenant: Tenant, phone: Page) -> None:
    """Markup in the subject, a signer's name, the message and the document's name is shown,
    never run: no dialog opens on the sign page, on the waiting page (which names the other
    signer) or after signing; and every page carries the Content-Security-Policy."""
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    phone.on("dialog", record)
    hostile, other = address("hostile"), address("waiting")
    envelope = send_envelope(
        tenant,
        [
            {"email": hostile, "name": HOSTILE_NAME, "role": "SIGNER", "order": 1},
            {"email": other, "name": "Olga Petrova", "role": "SIGNER", "order": 2},
        ],
        subject=HOSTILE_SUBJECT,
        message=f"Please sign.\n{HOSTILE_NAME}",
        document_name=f"{HOSTILE_NAME}.pdf",
    )
    urls = links(envelope)

    response = phone.goto(urls[hostile])
    assert response is not None and response.status == 200
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp
    heading(phone).to_have_text(HOSTILE_SUBJECT)
    expect(phone.locator("#name")).to_have_value(HOSTILE_NAME)
    expect(phone.locator(".message")).to_contain_text(HOSTILE_NAME)  # the sender's message
    expect(phone.locator("article.document h3")).to_contain_text(f"{HOSTILE_NAME}.pdf")
    alt = phone.locator("figure.page img").first.get_attribute("alt") or ""
    assert alt.startswith(f"{HOSTILE_NAME}.pdf"), alt
    expect(phone.locator("img[src=x]")).to_have_count(0)
    assert phone.title().startswith(EN["title.act"].split("{")[0])
    assert HOSTILE_SUBJECT in phone.title()

    response = phone.goto(urls[other])
    assert response is not None and "content-security-policy" in response.headers
    expect(phone.locator("main")).to_contain_text(HOSTILE_NAME)
    expect(phone.locator("main")).to_contain_text(HOSTILE_SUBJECT)

    phone.goto(urls[hostile])
    sign_typed(phone)
    heading(phone).to_have_text(EN["status.signed.title"])
    expect(phone.locator("main")).to_contain_text(HOSTILE_SUBJECT)
    expect(phone.locator("img[src=x]")).to_have_count(0)
    phone.wait_for_timeout(100)  # let any error handler that slipped through run
    assert dialogs == []


def test_static_assets_and_page_images_are_served_to_the_browser(
    tenant: Tenant, browser: Browser
) -> None:
    """The CSS and script the page names load under its CSP, and no request fails: a broken
    asset would leave the page unstyled, or without the drawing option, silently."""
    signer = address("assets")
    envelope = send_envelope(tenant, [{"email": signer, "name": "Rui Sousa", "role": "SIGNER"}])
    with new_page(browser, **PHONE) as page:
        failed: list[str] = []
        errors: list[str] = []

        def answered(response: Response) -> None:
            if response.status >= 400:
                failed.append(f"{response.status} {response.url}")

        def logged(message: ConsoleMessage) -> None:
            if message.type == "error":  # CSP violations and script errors land here
                errors.append(message.text)

        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", answered)
        page.on("console", logged)
        page.goto(links(envelope)[signer])
        first_page_image_loaded(page)
        expect(page.locator("#mode-drawn")).to_be_visible()  # signer.js ran
        color = page.locator("button.primary").evaluate("b => getComputedStyle(b).color")
        assert color == "rgb(255, 255, 255)"  # signer.css applied
        page.locator("figure.page img").last.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => [...document.querySelectorAll('figure.page img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        assert failed == [] and errors == [], (failed, errors)
    pages = httpx.get(links(envelope)[signer] + "/pages/0/1", timeout=10)
    assert pages.status_code == 200 and pages.headers["content-type"] == "image/webp"
