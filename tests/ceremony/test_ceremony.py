"""The signer ceremony over HTTP, as a browser without JavaScript drives it: plain form posts.

Covers routing, refusals, the events and notices each step produces, the sealed outputs and
what an integrator sees through the API. Real SMTP (aiosmtpd) for live envelopes; sandbox
envelopes' mail lands in ``{DATA_DIR}/mail``.
"""

from __future__ import annotations

import base64
import html
import io
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import update
from sqlmodel import col, select

from bot.envelopes.models import Envelope
from bot.jobs.models import OutboxEvent
from bot.timeutil import utcnow
from tests.conftest import Server, Tenant, make_pdf, upload
from tests.support.mailbox import body_text, sign_link

CONSENT = {"consent": "yes"}


def create(tenant: Tenant, recipients: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    document = upload(tenant, make_pdf(2))
    body = {
        "subject": "Service agreement",
        "documentIds": [document["id"]],
        "recipients": recipients,
    }
    response = tenant.client.post("/envelopes", json={**body, **extra})
    assert response.status_code == 201, response.text
    sent = tenant.client.post(f"/envelopes/{response.json()['id']}/send")
    assert sent.status_code == 200, sent.text
    return response.json()


def links(envelope: dict[str, Any]) -> dict[str, str]:
    return {r["email"]: r["signUrl"] for r in envelope["recipients"]}


def sign(url: str, name: str = "Marie Dubois", **form: str) -> httpx.Response:
    data = {"name": name, "mode": "typed", "typed": name, **CONSENT, **form}
    return httpx.post(f"{url}/sign", data=data, timeout=30)


def heading(response: httpx.Response) -> str:
    found = re.search(r"<h1>(.*?)</h1>", response.text, re.S)
    return html.unescape(found.group(1).strip()) if found else ""


def events(server: Server, envelope_id: str) -> list[str]:
    rows = server.db.run_sync(
        lambda s: list(
            s.exec(
                select(OutboxEvent.event)
                .where(OutboxEvent.envelope_id == envelope_id)
                .order_by(col(OutboxEvent.occurred_at), col(OutboxEvent.id))
            )
        )
    )
    return list(rows)


def wait_for(tenant: Tenant, path: str, status: int = 200, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = tenant.client.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_parallel_signers_complete_and_the_sealed_pdf_verifies(
    tenant: Tenant, server: Server, tmp_path: Path
) -> None:
    envelope = create(
        tenant,
        [
            {"email": "a@example.com", "name": "Nguyễn Thị Hồng"},
            {"email": "b@example.com", "name": "Bob Stone"},
            {"email": "cc@example.com", "name": "Carla", "role": "CARBON_COPY"},
        ],
    )
    eid, urls = envelope["id"], links(envelope)
    page = httpx.get(urls["a@example.com"])
    assert page.status_code == 200 and "Service agreement" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    httpx.get(urls["a@example.com"])  # a reload records nothing more
    got = tenant.client.get(f"/envelopes/{eid}").json()
    assert got["status"] == "DELIVERED"

    assert tenant.client.get(f"/envelopes/{eid}/signed-document").status_code == 409
    assert tenant.client.get(f"/envelopes/{eid}/audit-trail").status_code == 409
    assert sign(urls["a@example.com"], "Nguyễn Thị Hồng").status_code == 303
    assert tenant.client.get(f"/envelopes/{eid}").json()["status"] == "PARTIALLY_SIGNED"
    assert sign(urls["b@example.com"], "Bob Stone").status_code == 303

    signed = wait_for(tenant, f"/envelopes/{eid}/signed-document")
    assert signed.status_code == 200 and signed.headers["content-type"] == "application/pdf"
    trail = wait_for(tenant, f"/envelopes/{eid}/audit-trail")
    assert trail.status_code == 200
    assert events(server, eid) == [
        "envelope.created",
        "envelope.sent",
        "recipient.viewed",
        "recipient.signed",
        "recipient.viewed",
        "recipient.signed",
        "envelope.completed",
    ]
    final = tenant.client.get(f"/envelopes/{eid}").json()
    assert final["status"] == "COMPLETED" and final["completedAt"]

    signed_path, trail_path = tmp_path / "signed.pdf", tmp_path / "trail.pdf"
    signed_path.write_bytes(signed.content)
    trail_path.write_bytes(trail.content)
    root = server.settings.data_dir / "seal" / "root.pem"
    for path in (signed_path, trail_path):
        result = _verify(path, root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "intact" in result.stdout
    assert "hash chain intact" in _verify(trail_path, root).stdout.lower()

    flipped = bytearray(signed.content)
    middle = len(flipped) // 3
    flipped[middle] ^= 0x01
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(bytes(flipped))
    assert _verify(broken, root).returncode != 0


def _verify(path: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "verify", str(path), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sequential_order_is_enforced(tenant: Tenant, server: Server) -> None:
    envelope = create(
        tenant,
        [
            {"email": "first@example.com", "name": "First Person", "order": 1},
            {"email": "second@example.com", "name": "Second Person", "order": 2},
        ],
    )
    urls = links(envelope)
    waiting = httpx.get(urls["second@example.com"])
    assert heading(waiting) == "It is not your turn yet"
    assert "First Person" in waiting.text
    refused = sign(urls["second@example.com"], "Second Person")
    assert refused.status_code == 409
    assert sign(urls["first@example.com"], "First Person").status_code == 303
    assert (
        "Sign" in heading(httpx.get(urls["second@example.com"]))
        or "Service" in httpx.get(urls["second@example.com"]).text
    )
    assert sign(urls["second@example.com"], "Second Person").status_code == 303
    assert wait_for(tenant, f"/envelopes/{envelope['id']}/signed-document").status_code == 200


def test_bad_form_is_answered_next_to_each_field_and_loses_nothing(tenant: Tenant) -> None:
    envelope = create(tenant, [{"email": "a@example.com", "name": "Ann"}])
    url = links(envelope)["a@example.com"]
    response = httpx.post(f"{url}/sign", data={"name": "", "mode": "typed", "typed": "Ann Lee"})
    assert response.status_code == 400
    assert 'id="name" ' in response.text and 'aria-describedby="name-error"' in response.text
    assert 'id="consent-error"' in response.text
    assert 'value="Ann Lee"' in response.text  # what was typed is still there
    blank = "data:image/png;base64," + _transparent_png()
    drawn = httpx.post(
        f"{url}/sign", data={"name": "Ann", "mode": "drawn", "drawn": blank, **CONSENT}
    )
    assert drawn.status_code == 400 and 'id="signature-error"' in drawn.text
    assert tenant.client.get(f"/envelopes/{envelope['id']}").json()["status"] != "COMPLETED"


def _transparent_png() -> str:
    """What a canvas nobody drew on gives: a fully transparent PNG."""
    out = io.BytesIO()
    Image.new("RGBA", (600, 200), (0, 0, 0, 0)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_decline_ends_the_envelope_with_the_reason(tenant: Tenant, server: Server) -> None:
    envelope = create(
        tenant,
        [{"email": "a@example.com", "name": "Ann"}, {"email": "b@example.com", "name": "Ben"}],
    )
    url = links(envelope)["b@example.com"]
    assert httpx.post(f"{url}/decline", data={"reason": ""}).status_code == 400
    response = httpx.post(f"{url}/decline", data={"reason": "Wrong <b>amount</b>"})
    assert response.status_code == 303
    assert heading(httpx.get(url)) == "This document was declined"
    got = tenant.client.get(f"/envelopes/{envelope['id']}").json()
    assert got["status"] == "DECLINED"
    ben = next(r for r in got["recipients"] if r["email"] == "b@example.com")
    assert ben["declineReason"] == "Wrong <b>amount</b>"
    assert sign(links(envelope)["a@example.com"], "Ann").status_code == 409
    assert wait_for(tenant, f"/envelopes/{envelope['id']}/audit-trail").status_code == 200
    assert tenant.client.get(f"/envelopes/{envelope['id']}/signed-document").status_code == 409
    assert "envelope.declined" in events(server, envelope["id"])


def test_approver_returns_to_sender_who_resubmits(tenant: Tenant, server: Server) -> None:
    envelope = create(
        tenant,
        [
            {"email": "boss@example.com", "name": "Boss", "role": "APPROVER", "order": 1},
            {"email": "s@example.com", "name": "Signer", "order": 2},
        ],
    )
    url = links(envelope)["boss@example.com"]
    page = httpx.get(url)
    assert "Approve" in page.text and "Request changes" in page.text
    assert httpx.post(f"{url}/return", data={"changes": "Fix clause 3"}).status_code == 303
    eid = envelope["id"]
    assert tenant.client.get(f"/envelopes/{eid}").json()["status"] == "RETURNED_TO_SENDER"
    assert heading(httpx.get(url)) == "Returned to the sender"
    patched = tenant.client.patch(f"/envelopes/{eid}", json={"message": "Clause 3 fixed"})
    assert patched.status_code == 200, patched.text
    assert tenant.client.post(f"/envelopes/{eid}/send").status_code == 200
    assert httpx.post(f"{url}/approve", data=CONSENT).status_code == 303
    assert sign(links(envelope)["s@example.com"], "Signer").status_code == 303
    assert wait_for(tenant, f"/envelopes/{eid}/signed-document").status_code == 200
    # envelope.completed follows the sealed audit trail, a moment after the document
    deadline = time.monotonic() + 20
    while (names := events(server, eid))[-1] != "envelope.completed":
        assert time.monotonic() < deadline, names
        time.sleep(0.1)
    assert "envelope.returned_to_sender" in names and "envelope.resubmitted" in names
    assert names.count("recipient.approved") == 1 and names[-1] == "envelope.completed"


def test_expired_links_are_useless_and_everyone_is_told(live: Tenant, mail_server: Any) -> None:
    envelope = create(
        live,
        [{"email": "late@example.com", "name": "Late"}, {"email": "x@example.com", "name": "X"}],
        expiresAt=(utcnow() + timedelta(days=1)).isoformat(),
    )
    eid = envelope["id"]
    mail_server.db.run_sync(
        lambda s: s.exec(
            update(Envelope)
            .where(col(Envelope.id) == eid)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    )
    url = links(envelope)["late@example.com"]
    assert heading(httpx.get(url)) == "This request has expired"
    assert sign(url, "Late").status_code == 409
    got = live.client.get(f"/envelopes/{eid}").json()
    assert got["status"] == "EXPIRED"
    notice = mail_server.mailbox.to("x@example.com", "expired")
    assert "Service agreement" in str(notice["Subject"])
    assert live.client.get(f"/envelopes/{eid}/audit-trail").status_code in (200, 409)


def test_invitation_email_link_signs_and_completion_mail_carries_the_pdfs(
    live: Tenant, mail_server: Any
) -> None:
    envelope = create(live, [{"email": "zoe@example.com", "name": "Zoë Ørsted"}])
    invitation = mail_server.mailbox.to("zoe@example.com", "invitation")
    assert "Service agreement" in str(invitation["Subject"])
    url = sign_link(invitation)
    assert url == links(envelope)["zoe@example.com"]
    assert sign(url, "Zoë Ørsted").status_code == 303
    done = mail_server.mailbox.to("zoe@example.com", "completed", timeout=30)
    attachments = [part.get_filename() for part in done.iter_attachments()]
    assert len(attachments) == 2 and all(name.endswith(".pdf") for name in attachments)
    # the status is written just after the server accepted the message
    deadline = time.monotonic() + 10
    while True:
        got = live.client.get(f"/envelopes/{envelope['id']}").json()
        if got["recipients"][0]["emailStatus"] == "SENT" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got["recipients"][0]["emailStatus"] == "SENT"


def test_a_refused_address_is_visible_and_never_blocks_completion(
    live: Tenant, mail_server: Any
) -> None:
    mail_server.mailbox.refuse.add("bounce@example.com")
    envelope = create(
        live,
        [
            {"email": "bounce@example.com", "name": "Bounce", "role": "CARBON_COPY"},
            {"email": "ok@example.com", "name": "Okay"},
        ],
    )
    assert sign(links(envelope)["ok@example.com"], "Okay").status_code == 303
    assert wait_for(live, f"/envelopes/{envelope['id']}/signed-document").status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = live.client.get(f"/envelopes/{envelope['id']}").json()
        bounce = next(r for r in got["recipients"] if r["email"] == "bounce@example.com")
        if bounce.get("emailStatus") == "FAILED":
            break
        time.sleep(0.2)
    assert bounce.get("emailStatus") == "FAILED", bounce
    assert "550" in bounce.get("emailError", "")


def test_sandbox_mail_never_reaches_smtp(sandbox: Tenant, mail_server: Any) -> None:
    create(sandbox, [{"email": "sandboxed@example.com", "name": "Sandy"}])
    mail_dir = mail_server.settings.data_dir / "mail"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not list(mail_dir.glob("*sandboxed-example-com.eml")):
        time.sleep(0.1)
    written = list(mail_dir.glob("*sandboxed-example-com.eml"))
    assert written, "the sandbox invitation was not written to the mail folder"
    assert "[TEST]" in written[0].read_text(errors="replace")
    assert not any("sandboxed@example.com" in str(m["To"]) for m in mail_server.mailbox.messages)


def test_email_otp_gates_the_document(live: Tenant, mail_server: Any) -> None:
    envelope = create(
        live, [{"email": "otp@example.com", "name": "Otto", "authentication": "EMAIL_OTP"}]
    )
    url = links(envelope)["otp@example.com"]
    gate = httpx.get(url)
    assert heading(gate) == "Confirm it's you" and "/pages/" not in gate.text
    assert httpx.get(f"{url}/pages/0/1").status_code == 404
    assert sign(url, "Otto").status_code == 409
    with httpx.Client(timeout=30) as browser:
        assert browser.post(f"{url}/otp").status_code == 303
        mail = mail_server.mailbox.to("otp@example.com", "otp")
        code = re.search(r"\b(\d{6})\b", body_text(mail))
        assert code, body_text(mail)
        wrong = "000000" if code.group(1) != "000000" else "111111"
        assert browser.post(f"{url}/otp/verify", data={"code": wrong}).status_code == 400
        ok = browser.post(f"{url}/otp/verify", data={"code": code.group(1)})
        assert ok.status_code == 303 and "signbot_otp" in ok.headers["set-cookie"]
        page = browser.get(url)
        assert "/pages/0/1" in page.text and browser.get(f"{url}/pages/0/1").status_code == 200
        assert (
            browser.post(
                f"{url}/sign", data={"name": "Otto", "mode": "typed", "typed": "Otto", **CONSENT}
            ).status_code
            == 303
        )
        # the code was single-use
        again = browser.post(f"{url}/otp/verify", data={"code": code.group(1)})
        assert again.status_code in (303, 400)


def test_wrong_codes_burn_the_code(live: Tenant) -> None:
    envelope = create(
        live, [{"email": "burn@example.com", "name": "Burn", "authentication": "EMAIL_OTP"}]
    )
    url = links(envelope)["burn@example.com"]
    assert httpx.post(f"{url}/otp").status_code == 303
    answers = [httpx.post(f"{url}/otp/verify", data={"code": "999999"}) for _ in range(6)]
    assert [a.status_code for a in answers] == [400] * 6
    assert "Too many wrong codes" in answers[4].text or "expired" in answers[5].text


def test_unknown_and_voided_links(tenant: Tenant) -> None:
    assert httpx.get(f"{tenant.server.base_url}/sign/not-a-token").status_code == 404
    envelope = create(tenant, [{"email": "v@example.com", "name": "Vee"}])
    url = links(envelope)["v@example.com"]
    assert (
        tenant.client.post(
            f"/envelopes/{envelope['id']}/void", json={"reason": "Replaced"}
        ).status_code
        == 200
    )
    assert heading(httpx.get(url)) == "This request was cancelled"
    assert sign(url, "Vee").status_code == 409
    assert httpx.get(f"{url}/pages/0/1").status_code == 404


def test_remind_now_and_reminders_setting(tenant: Tenant, server: Server) -> None:
    envelope = create(
        tenant,
        [{"email": "slow@example.com", "name": "Slow"}],
        reminders={"intervalDays": 2, "maxCount": 2},
    )
    got = tenant.client.get(f"/envelopes/{envelope['id']}").json()
    assert got["reminders"]["intervalDays"] == 2 and got["reminders"]["nextAt"]
    reminded = tenant.client.post(f"/envelopes/{envelope['id']}/remind")
    assert reminded.status_code == 200, reminded.text
    assert [r["email"] for r in reminded.json()["reminded"]] == ["slow@example.com"]
    mail_dir = server.settings.data_dir / "mail"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not list(mail_dir.glob("*reminder-slow-example-com*")):
        time.sleep(0.1)
    assert list(mail_dir.glob("*reminder-slow-example-com*"))
    draft = tenant.client.post(
        "/envelopes",
        json={
            "subject": "x",
            "documentIds": envelope["documentIds"],
            "recipients": [{"email": "d@example.com"}],
        },
    ).json()
    assert tenant.client.post(f"/envelopes/{draft['id']}/remind").status_code == 409


def test_sign_links_never_reach_the_log(tenant: Tenant, caplog: pytest.LogCaptureFixture) -> None:
    envelope = create(tenant, [{"email": "log@example.com", "name": "Logan"}])
    url = links(envelope)["log@example.com"]
    token = url.rsplit("/", 1)[1]
    sign(url, "Logan")
    time.sleep(1.5)
    assert token not in caplog.text


def test_recipients_with_a_phone_get_an_sms_invitation(tenant: Tenant, server: Server) -> None:
    envelope = create(
        tenant, [{"email": "p@example.com", "name": "Pia", "phone": "+32 470 12 34 56"}]
    )
    sms_dir = server.settings.data_dir / "sms"
    deadline = time.monotonic() + 15
    found: list[Path] = []
    while time.monotonic() < deadline and not found:
        found = [p for p in sms_dir.glob("*32470123456*")] if sms_dir.exists() else []
        time.sleep(0.1)
    assert found, "no SMS written"
    text = found[0].read_text()
    assert links(envelope)["p@example.com"] in text
    deadline = time.monotonic() + 10
    while True:  # the status is written just after the file
        got = tenant.client.get(f"/envelopes/{envelope['id']}").json()
        if got["recipients"][0].get("smsStatus") == "CAPTURED" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got["recipients"][0]["smsStatus"] == "CAPTURED"
