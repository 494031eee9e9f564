"""Rendering: every kind in every language, escaping, headers, dates, SMS."""

from __future__ import annotations

import datetime as dt
import email
import re
from email import policy

import pytest

from bot.notify import Attachment, DeliveryError, Kind, render_email, render_sms
from bot.notify.messages import SMS_LIMIT, render_bodies
from tests.notify.conftest import context

LOCALES = ["en", "fr", "de", "nl", "vi"]
LEFTOVER = re.compile(r"\{[a-z_]*\}|\{\{|\}\}|\{%|%\}")


def parse(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    """What a mail client would see: the serialized bytes parsed back."""
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("locale", LOCALES)
def test_every_kind_renders_in_every_language(kind: Kind, locale: str) -> None:
    ctx = context(kind=kind, locale=locale)
    msg = parse(render_email(ctx, from_address="signbot@example.com"))
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    sms = render_sms(ctx)
    for rendered in (html, text, sms, msg["Subject"]):
        assert not LEFTOVER.search(rendered), rendered
    assert f'lang="{locale}"' in html
    if locale != "en":
        english = parse(render_email(context(kind=kind), from_address="signbot@example.com"))
        assert msg["Subject"] != english["Subject"]
        assert render_sms(context(kind=kind)) != sms
    if kind in (Kind.INVITATION, Kind.REMINDER, Kind.VIEW):
        assert ctx.action_url in html and ctx.action_url in text and ctx.action_url in sms
        assert f"\n{ctx.action_url}\n" in text  # on its own line
    if kind is Kind.OTP:
        assert "493817" in msg["Subject"] and "493817" in text and "493817" in sms
    assert len(sms) <= SMS_LIMIT


@pytest.mark.parametrize(
    ("locale", "subject", "button"),
    [
        ("en", "Please sign: Mutual NDA", "Review and sign"),
        ("fr", "À signer\u00a0: Mutual NDA", "Examiner et signer"),
        ("de", "Bitte unterschreiben: Mutual NDA", "Prüfen und unterschreiben"),
        ("nl", "Ter ondertekening: Mutual NDA", "Bekijken en ondertekenen"),
        ("vi", "Vui lòng ký: Mutual NDA", "Xem và ký"),
    ],
)
def test_invitation_words(locale: str, subject: str, button: str) -> None:
    msg = parse(render_email(context(locale=locale), from_address="signbot@example.com"))
    assert msg["Subject"] == subject
    assert button in msg.get_body(("html",)).get_content()
    assert button in msg.get_body(("plain",)).get_content()


def test_regional_locale_falls_back_to_its_language() -> None:
    msg = render_email(context(locale="nl-BE"), from_address="signbot@example.com")
    assert msg["Subject"].startswith("Ter ondertekening")
    unknown = render_email(context(locale="xx"), from_address="signbot@example.com")
    assert unknown["Subject"].startswith("Please sign")


@pytest.mark.parametrize(
    ("role", "subject", "button"),
    [
        ("SIGNER", "Please sign", "Review and sign"),
        ("APPROVER", "Please approve", "Review and approve"),
        ("VIEWER", "Shared with you", "View document"),
        ("CARBON_COPY", "Shared with you", "View document"),
    ],
)
def test_invitation_wording_follows_the_role(role: str, subject: str, button: str) -> None:
    msg = render_email(context(role=role), from_address="signbot@example.com")
    assert msg["Subject"].startswith(subject)
    html, text = render_bodies(context(role=role))
    assert button in html and button in text


def test_headers() -> None:
    when = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    msg = parse(
        render_email(
            context(account_name="Zoë & Co", recipient_name="Élodie Dupont"),
            from_address="noreply@signbot.example",
            message_id_domain="mail.signbot.example",
            now=when,
        )
    )
    assert msg["From"].addresses[0].display_name == "Zoë & Co via signbot"
    assert msg["From"].addresses[0].addr_spec == "noreply@signbot.example"
    assert msg["To"].addresses[0].display_name == "Élodie Dupont"
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith("@mail.signbot.example>")
    assert msg["Date"].datetime == when
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("field", ["recipient_name", "account_name", "subject"])
def test_no_header_injection(field: str) -> None:
    evil = 'Eve "x" <evil@example.com>\r\nBcc: victim@example.com\nX-Evil: 1'
    raw = render_email(context(**{field: evil}), from_address="signbot@example.com").as_bytes()
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    headers = raw.split(b"\n\n", 1)[0]
    assert not re.search(rb"^(Bcc|X-Evil):", headers, re.MULTILINE | re.IGNORECASE)
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com"]
    assert [a.addr_spec for a in msg["From"].addresses] == ["signbot@example.com"]


def test_html_escapes_user_text_and_keeps_line_breaks() -> None:
    ctx = context(
        subject="<script>alert(1)</script>",
        account_name="<b>Acme</b>",
        recipient_name='"><img src=x onerror=alert(1)>',
        message="Line one\nLine <two> & three",
    )
    html, text = render_bodies(ctx)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Acme</b>" not in html and "&lt;b&gt;Acme&lt;/b&gt;" in html
    assert "<img" not in html
    assert "Line one<br>\nLine &lt;two&gt; &amp; three" in html
    assert "<script>alert(1)</script>" in text  # plain text needs no escaping
    assert "> Line one\n> Line <two> & three" in text


def test_test_mode_is_visible() -> None:
    msg = render_email(context(test_mode=True), from_address="signbot@example.com")
    assert msg["Subject"].startswith("[TEST] ")
    html, text = render_bodies(context(test_mode=True, locale="de"))
    assert "TEST — von einem Testkonto" in html and "TEST" in text
    assert render_sms(context(test_mode=True)).startswith("[TEST] ")
    assert "TEST —" not in render_bodies(context())[0]


def test_footer_warns_and_states_expiry() -> None:
    _, text = render_bodies(context())
    assert "Do not forward this email: the link lets anyone sign as you." in text
    assert "This request expires on 1 December 2026, 17:00 UTC." in text
    assert "Reference: env_01HGTEST" in text
    declined, _ = render_bodies(context(kind=Kind.DECLINED))
    assert "Do not forward" not in declined


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "1 December 2026, 17:00 UTC"),
        ("fr", "1er décembre 2026 à 17:00 UTC"),
        ("de", "1. Dezember 2026, 17:00 Uhr UTC"),
        ("nl", "1 december 2026 om 17:00 uur UTC"),
        ("vi", "17:00 UTC, ngày 1 tháng 12 năm 2026"),
    ],
)
def test_dates_in_words(locale: str, expected: str) -> None:
    _, text = render_bodies(context(locale=locale))
    assert expected in text


def test_naive_expiry_is_utc() -> None:
    _, text = render_bodies(context(expires_at=dt.datetime(2026, 3, 5, 9, 30)))
    assert "5 March 2026, 09:30 UTC" in text


def test_kind_specific_content() -> None:
    _, declined = render_bodies(context(kind=Kind.DECLINED, locale="fr"))
    assert "Bob Stone a refusé de signer «\u00a0Mutual NDA\u00a0»." in declined
    assert "Wrong amount" in declined
    _, voided = render_bodies(context(kind=Kind.VOIDED))
    assert "Replaced by version 2" in voided
    _, expired = render_bodies(context(kind=Kind.EXPIRED, locale="de"))
    assert "am 1. Dezember 2026 abgelaufen" in expired
    assert "- Bob Stone\n- Chloé Petit" in expired
    _, reminder = render_bodies(context(kind=Kind.REMINDER, reminder_number=3))
    assert "This is reminder number 3." in reminder
    _, otp = render_bodies(context(kind=Kind.OTP, code_minutes=15))
    assert "valid for 15 minutes" in otp


def test_completed_carries_attachments() -> None:
    pdf1, pdf2 = b"%PDF-1.7 signed\x00\xff", b"%PDF-1.7 audit\x80"
    ctx = context(
        kind=Kind.COMPLETED,
        action_url=None,
        attachments=(
            Attachment("Mutual NDA (signed).pdf", pdf1, "application/pdf"),
            Attachment("Audit trail é.pdf", pdf2, "application/pdf"),
        ),
    )
    msg = parse(render_email(ctx, from_address="signbot@example.com"))
    assert msg.get_content_type() == "multipart/mixed"
    files = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    assert files == {"Mutual NDA (signed).pdf": pdf1, "Audit trail é.pdf": pdf2}
    assert "The signed copy is attached" in msg.get_body(("plain",)).get_content()
    # Other kinds never attach, whatever they are given.
    invitation = render_email(
        context(attachments=ctx.attachments), from_address="signbot@example.com"
    )
    assert list(invitation.iter_attachments()) == []


def test_refuses_useless_messages() -> None:
    with pytest.raises(ValueError, match="action_url"):
        render_email(context(action_url=None), from_address="signbot@example.com")
    with pytest.raises(ValueError, match="code"):
        render_sms(context(kind=Kind.OTP, code=None))
    with pytest.raises(ValueError, match="role"):
        render_email(context(role="OWNER"), from_address="signbot@example.com")


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b@c", "x@y.z, other@example.com", "<a@b.c>", "é@x.org"]
)
def test_bad_recipient_address_is_a_permanent_failure(address: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        render_email(context(recipient_email=address), from_address="signbot@example.com")
    assert caught.value.permanent


def test_international_domain_becomes_punycode() -> None:
    msg = render_email(context(recipient_email="zoe@exämple.be"), from_address="s@example.com")
    assert msg["To"].addresses[0].addr_spec == "zoe@xn--exmple-cua.be"


def test_sms_is_short_and_keeps_the_link_whole() -> None:
    url = "https://sign.example.com/sign/" + "t" * 120
    sms = render_sms(
        context(subject="A very long subject " * 20, account_name="B" * 80, action_url=url)
    )
    assert len(sms) <= SMS_LIMIT
    assert sms.endswith(url)
    assert sms.startswith('BBBBBBBBBBBBBBBBBBBBBBBBBBB... via signbot: please sign "A very long')
    assert render_sms(context(subject="NDA\r\nline two")) == (
        'Acme via signbot: please sign "NDA line two": https://sign.example.com/sign/tok_ABC123'
    )


def test_sms_otp() -> None:
    sms = render_sms(context(kind=Kind.OTP, locale="nl", code_minutes=5))
    assert sms.startswith("493817 is uw signbot-code") and "5 min." in sms
