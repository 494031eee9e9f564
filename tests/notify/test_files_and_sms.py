"""File transports, phone numbers, and HttpSms against a real local HTTP server."""

from __future__ import annotations

import base64
import email
import re
import stat
from email import policy
from pathlib import Path

import pytest

from bot.notify import (
    DeliveryError,
    FileSms,
    FileTransport,
    HttpSms,
    Kind,
    normalize_phone,
    render_email,
    render_sms,
    sms_provider,
)
from tests.notify.conftest import FakeSmsApi, context
from tests.support.servers import free_port


async def test_file_transport_writes_parseable_eml(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    transport = FileTransport(folder)
    ctx = context(recipient_name="Zoë")
    first = await transport.send(render_email(ctx, from_address="signbot@example.com"))
    second = await transport.send(render_email(ctx, from_address="signbot@example.com"))

    assert first.startswith("file ") and first != second
    assert ctx.action_url not in first  # callers log this; the link stays in the file
    paths = sorted(folder.iterdir())
    assert [f"file {p}" for p in paths] == sorted([first, second])  # no temporary files left
    name = paths[0].name
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-invitation-alice-example-com(-2)?\.eml", name)
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o600
    msg = email.message_from_bytes(paths[0].read_bytes(), policy=policy.default)
    assert msg["To"].addresses[0].display_name == "Zoë"
    assert ctx.action_url in msg.get_body(("plain",)).get_content()


async def test_file_transport_failure_is_temporary(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DeliveryError) as caught:
        await FileTransport(blocker).send(render_email(context(), from_address="s@example.com"))
    assert not caught.value.permanent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+32470123456", "+32470123456"),
        ("+32 470 12 34 56", "+32470123456"),
        ("+1-415-555-0100", "+14155550100"),
        (" +84 912\u00a0345 678 ", "+84912345678"),
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "0470123456",
        "0032470123456",
        "+32 (0)470 12 34 56",
        "+0123456789",
        "+1234",
        "",
        "+32470123456789012",
        "tel:+32470123456",
    ],
)
def test_normalize_phone_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        normalize_phone(raw)


async def test_file_sms(tmp_path: Path) -> None:
    body = render_sms(context())
    where = await FileSms(tmp_path / "sms", from_number="+3220000000").send(
        "+32 470 12 34 56", body
    )
    (path,) = (tmp_path / "sms").iterdir()
    assert where == f"file {path}"
    assert path.name.endswith("-32470123456.txt")
    assert path.read_text() == f"To: +32470123456\nFrom: +3220000000\n\n{body}\n"


async def test_http_sms_posts_the_form_with_basic_auth(sms_api: FakeSmsApi) -> None:
    provider = HttpSms(sms_api.url(), "+3220000000", timeout=5)
    assert "tok" not in repr(provider) and "AC123:" not in repr(provider)
    body = render_sms(context(kind=Kind.OTP, locale="vi"))
    where = await provider.send("+32 470 12 34 56", body)

    assert where == "sms 127.0.0.1 201 SM" + "1".rjust(32, "0")
    (call,) = sms_api.calls
    assert call.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert call.form == {"To": "+32470123456", "From": "+3220000000", "Body": body}
    assert call.authorization == "Basic " + base64.b64encode(b"AC123:tok/en").decode()


async def test_http_sms_messaging_service_sender(sms_api: FakeSmsApi) -> None:
    service = "MG" + "a" * 32
    await HttpSms(sms_api.url(), service, timeout=5).send("+32470123456", "hello")
    assert sms_api.calls[0].form == {
        "To": "+32470123456",
        "MessagingServiceSid": service,
        "Body": "hello",
    }


@pytest.mark.parametrize(
    ("status", "body", "permanent", "detail"),
    [
        (
            400,
            {"code": 21211, "message": "The 'To' number +32470000400 is not a valid phone number."},
            True,
            "HTTP 400: The 'To' number +32470000400 is not a valid phone number. (code 21211)",
        ),
        (401, {"code": 20003, "message": "Authenticate"}, False, "HTTP 401: Authenticate"),
        (429, {"message": "Too Many Requests"}, False, "HTTP 429: Too Many Requests"),
        (503, {}, False, "HTTP 503: Service Unavailable"),
    ],
)
async def test_http_sms_errors(
    sms_api: FakeSmsApi, status: int, body: dict, permanent: bool, detail: str
) -> None:
    sms_api.status_for["+32470000400"] = (status, body)
    with pytest.raises(DeliveryError) as caught:
        await HttpSms(sms_api.url(), "+3220000000", timeout=5).send("+32470000400", "secret link")
    assert caught.value.permanent is permanent
    assert detail in caught.value.message
    assert "secret link" not in caught.value.message


async def test_http_sms_timeout_and_connection_refused(sms_api: FakeSmsApi) -> None:
    sms_api.delay = 1.0
    with pytest.raises(DeliveryError) as caught:
        await HttpSms(sms_api.url(), "+3220000000", timeout=0.2).send("+32470123456", "x")
    assert not caught.value.permanent and "no answer within 0.2 s" in caught.value.message

    down = f"http://127.0.0.1:{free_port()}/Messages.json"
    with pytest.raises(DeliveryError) as caught:
        await HttpSms(down, "+3220000000", timeout=2).send("+32470123456", "x")
    assert not caught.value.permanent


async def test_bad_number_is_permanent_before_any_request(sms_api: FakeSmsApi) -> None:
    with pytest.raises(DeliveryError) as caught:
        await HttpSms(sms_api.url(), "+3220000000", timeout=5).send("0470 12 34 56", "x")
    assert caught.value.permanent and sms_api.calls == []


def test_sms_provider_factory(tmp_path: Path) -> None:
    assert isinstance(sms_provider(None, None, tmp_path, timeout=1), FileSms)
    url = "https://AC1:tok@api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    provider = sms_provider(url, "+3220000000", tmp_path, timeout=1)
    assert isinstance(provider, HttpSms)
    assert provider.url == "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    with pytest.raises(ValueError, match="SMS_FROM"):
        sms_provider(url, None, tmp_path, timeout=1)
