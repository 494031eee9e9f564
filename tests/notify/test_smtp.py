"""SmtpTransport against a real aiosmtpd server on loopback: plain, AUTH, STARTTLS, implicit
TLS, refusals and a server that is not there."""

from __future__ import annotations

import email
import ssl
import time
from collections.abc import Callable
from email import policy

import pytest

from bot.notify import (
    Attachment,
    DeliveryError,
    FileTransport,
    Kind,
    SmtpTransport,
    mail_transport,
    render_email,
)
from tests.notify.conftest import Authenticator, SmtpServer, context
from tests.support.servers import free_port

FROM = "signbot@example.com"
Start = Callable[..., SmtpServer]


def received(server: SmtpServer) -> email.message.EmailMessage:
    (one,) = server.recorder.messages
    return email.message_from_bytes(one.content, policy=policy.default)


async def test_invitation_arrives_whole(smtp_server: Start) -> None:
    server = smtp_server()
    ctx = context(
        locale="fr",
        account_name="Zoë & Cie",
        recipient_name="Đặng Thị Hồng",
        recipient_email="hong@example.com",
        subject="Contrat <script>alert(1)</script>",
    )
    transport = SmtpTransport(f"smtp://127.0.0.1:{server.port}", timeout=5)
    where = await transport.send(render_email(ctx, from_address=FROM))

    assert where == f"smtp 127.0.0.1:{server.port} 250 2.0.0 OK queued as TEST123"
    (envelope,) = server.recorder.messages
    assert envelope.mail_from == FROM and envelope.rcpt_tos == ["hong@example.com"]
    headers = envelope.content.split(b"\r\n\r\n", 1)[0]
    headers.decode("ascii")  # non-ASCII names travel as RFC 2047 encoded words
    msg = received(server)
    assert msg["Subject"] == "À signer\u00a0: Contrat <script>alert(1)</script>"
    assert msg["From"].addresses[0].display_name == "Zoë & Cie via signbot"
    assert msg["To"].addresses[0].display_name == "Đặng Thị Hồng"
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert ctx.action_url in html and ctx.action_url in text
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "Bonjour Đặng Thị Hồng," in text and "Examiner et signer" in html


async def test_auth_with_credentials_from_the_url(smtp_server: Start) -> None:
    server = smtp_server(
        authenticator=Authenticator("mailer@example.com", "p@ss:w/rd é"),
        auth_require_tls=False,
    )
    url = f"smtp://mailer%40example.com:p%40ss%3Aw%2Frd%20%C3%A9@127.0.0.1:{server.port}"
    await SmtpTransport(url, timeout=5).send(render_email(context(), from_address=FROM))
    assert server.recorder.messages[0].login == "mailer@example.com"

    wrong = SmtpTransport(
        f"smtp://mailer%40example.com:nope-secret@127.0.0.1:{server.port}", timeout=5
    )
    assert "nope-secret" not in repr(wrong) and "***" in repr(wrong)
    with pytest.raises(DeliveryError) as caught:
        await wrong.send(render_email(context(), from_address=FROM))
    assert "authentication failed" in caught.value.message
    assert "nope-secret" not in caught.value.message
    assert not caught.value.permanent  # our configuration, not the recipient's fault
    assert len(server.recorder.messages) == 1


async def test_starttls_with_a_self_signed_certificate(
    smtp_server: Start, server_tls: ssl.SSLContext
) -> None:
    server = smtp_server(tls_context=server_tls)
    msg = render_email(context(), from_address=FROM)

    await SmtpTransport(f"smtp://127.0.0.1:{server.port}?verify=false", timeout=5).send(msg)
    assert server.recorder.messages[-1].tls

    with pytest.raises(DeliveryError) as caught:  # verified by default: refused
        await SmtpTransport(f"smtp://127.0.0.1:{server.port}", timeout=5).send(msg)
    assert not caught.value.permanent

    await SmtpTransport(f"smtp://127.0.0.1:{server.port}?starttls=off", timeout=5).send(msg)
    assert not server.recorder.messages[-1].tls
    assert len(server.recorder.messages) == 2


async def test_starttls_required_but_not_offered(smtp_server: Start) -> None:
    server = smtp_server()
    transport = SmtpTransport(f"smtp://127.0.0.1:{server.port}?starttls=require", timeout=5)
    with pytest.raises(DeliveryError) as caught:
        await transport.send(render_email(context(), from_address=FROM))
    assert "STARTTLS" in caught.value.message and not caught.value.permanent
    assert server.recorder.messages == []


async def test_implicit_tls(smtp_server: Start, server_tls: ssl.SSLContext) -> None:
    server = smtp_server(ssl_context=server_tls)
    transport = SmtpTransport(f"smtps://127.0.0.1:{server.port}?verify=false", timeout=5)
    await transport.send(render_email(context(), from_address=FROM))
    assert server.recorder.messages[0].tls


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("550 5.1.1 No such user here", True), ("450 4.2.0 Greylisted, try later", False)],
)
async def test_recipient_refused(smtp_server: Start, reply: str, permanent: bool) -> None:
    server = smtp_server()
    server.recorder.refuse["alice@example.com"] = reply
    transport = SmtpTransport(f"smtp://127.0.0.1:{server.port}", timeout=5)
    with pytest.raises(DeliveryError) as caught:
        await transport.send(render_email(context(), from_address=FROM))
    assert caught.value.permanent is permanent
    assert reply in caught.value.message


async def test_server_down_is_temporary_and_fast() -> None:
    transport = SmtpTransport(f"smtp://127.0.0.1:{free_port()}", timeout=5)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await transport.send(render_email(context(), from_address=FROM))
    assert not caught.value.permanent
    assert time.monotonic() - started < 2


async def test_completed_with_two_pdfs(smtp_server: Start) -> None:
    server = smtp_server()
    signed = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    audit = b"%PDF-1.4\r\n\x00\x01binary\xff" * 500
    ctx = context(
        kind=Kind.COMPLETED,
        attachments=(
            Attachment("NDA - signed.pdf", signed, "application/pdf"),
            Attachment("NDA - audit trail.pdf", audit, "application/pdf"),
        ),
    )
    await SmtpTransport(f"smtp://127.0.0.1:{server.port}", timeout=5).send(
        render_email(ctx, from_address=FROM)
    )
    msg = received(server)
    assert msg["Subject"] == "Completed: Mutual NDA"
    attachments = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    assert attachments == {"NDA - signed.pdf": signed, "NDA - audit trail.pdf": audit}


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "starttls", "verify"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, False, None, True),
        (
            "smtp://u:p@mail.example.com:587?starttls=require",
            "mail.example.com",
            587,
            False,
            True,
            True,
        ),
        (
            "smtp://mail.example.com?starttls=off&verify=false",
            "mail.example.com",
            25,
            False,
            False,
            False,
        ),
        ("smtps://mail.example.com", "mail.example.com", 465, True, None, True),
    ],
)
def test_url_parsing(
    url: str, host: str, port: int, tls: bool, starttls: bool | None, verify: bool
) -> None:
    transport = SmtpTransport(url, timeout=1)
    assert (transport.host, transport.port, transport.implicit_tls) == (host, port, tls)
    assert (transport.starttls, transport.verify) == (starttls, verify)


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://mail.example.com?starttls=maybe",
        "smtp://mail.example.com?tls=1",
        "smtps://mail.example.com?starttls=require",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        SmtpTransport(url, timeout=1)


def test_factory(tmp_path) -> None:
    assert isinstance(mail_transport(None, tmp_path, timeout=1), FileTransport)
    smtp = mail_transport("smtp://user:s3cret@mail.example.com:587", tmp_path, timeout=1)
    assert isinstance(smtp, SmtpTransport)
    assert repr(smtp) == "SmtpTransport('smtp://user:***@mail.example.com:587')"
