"""The bot end to end, over HTTP as Slack and the signing service really talk to it.

One ``signbot`` app with Slack configured against a local fake of Slack's Web API: `/sign`
(a signed slash command) opens the modal; the submitted modal creates and sends an envelope
at the provider (this same deployment, through its public API); the signer signs on the
signer page; the provider's webhook reaches ``/hooks/esign``; the channel message is updated
and the sealed PDF lands in its thread. Forged Slack requests and forged webhooks are refused.
"""

from __future__ import annotations

import email as email_parser
import email.policy as email_policy
import json
import re
import time
from pathlib import Path

import httpx

from bot.slack.models import SignRequest
from tests.slack.conftest import Deployment
from tests.support.cluster import until
from tests.support.slack_requests import (
    forge,
    slash_command,
    view_submission,
)


def test_forged_slack_requests_are_refused(deployment: Deployment) -> None:
    for how in ("secret", "stale", "missing"):
        response = deployment.post(forge(slash_command("", user_id="U0REQ"), how))
        assert response.status_code == 401, how


def test_forged_webhook_is_refused(deployment: Deployment) -> None:
    body = b'{"id": "evt_x", "event": "envelope.completed", "envelope_id": "env_x"}'
    response = httpx.post(
        f"{deployment.base}/hooks/esign",
        content=body,
        headers={"X-Certyneo-Signature": "00" * 32, "Content-Type": "application/json"},
    )
    assert response.status_code == 401


def test_sign_from_slack_to_sealed_pdf_in_the_thread(deployment: Deployment) -> None:
    fake = deployment.fake
    started = time.monotonic()
    response = deployment.post(slash_command("nda", user_id="U0REQ", channel_id="C0DEALS"))
    assert response.status_code == 200
    opened = fake.wait_for("views.open", lambda c: c.at >= started, timeout=10)
    view = _as_dict(opened["view"])
    assert "Mutual NDA" in str(view)

    answers = {
        "subject.tpl_mutual-nda": "NDA with Globex",
        "role_user.tpl_mutual-nda.0": "U0ADA",
        "role_email.tpl_mutual-nda.1": "Bruno Keller <bruno@globex.example>",
    }
    submitted = deployment.post(view_submission(view, "U0REQ", answers))
    assert submitted.status_code == 200, submitted.text
    assert submitted.text in ("", "null") or "errors" not in submitted.text

    posted = fake.wait_for("chat.postMessage", lambda c: c.get("channel") == "C0DEALS", timeout=20)
    assert "NDA with Globex" in str(posted.get("blocks"))
    request = _request(deployment, "NDA with Globex")
    assert request.envelope_id and request.status == "SENT" and request.message_ts
    deadline = time.monotonic() + 20  # envelope.sent reaches the bot: reminders are scheduled
    while _request(deployment, "NDA with Globex").next_reminder_at is None:
        assert time.monotonic() < deadline, "no reminder was scheduled for the sent request"
        time.sleep(0.1)

    data_dir = deployment.data_dir
    signers = {"ada@acme.example": "Ada Lovelace", "bruno@globex.example": "Bruno Keller"}
    # Slack pushing back on a burst, or having a bad second, loses no notice.
    fake.rate_limit_next("chat.postMessage", retry_after=1)
    fake.server_error_next("chat.postMessage")
    fake.rate_limit_next("files.completeUploadExternal", retry_after=1)
    for email, name in signers.items():
        url = _invitation_link(data_dir, email)
        page = httpx.get(url, timeout=30).text
        values = {
            m: f"{name} text"
            for m in re.findall(r"<input id=\"(field_[A-Za-z0-9_]+)\" name=", page)
        }
        initials = "".join(part[0] for part in name.split())
        form = {"name": name, "mode": "typed", "typed": name, "consent": "yes"}
        signed = httpx.post(f"{url}/sign", data={**form, "initials": initials, **values})
        assert signed.status_code == 303, signed.text[:3000]

    uploaded = fake.wait_for(
        "files.completeUploadExternal",
        lambda c: c.get("channel_id") == "C0DEALS" or "C0DEALS" in str(c.params),
        timeout=40,
    )
    assert request.message_ts in str(uploaded.params)
    fake.wait_for(
        "chat.update", lambda c: "COMPLETED" in str(c.params) or "✅" in str(c.params), timeout=20
    )
    final = _request(deployment, "NDA with Globex")
    assert final.status == "COMPLETED"

    def replies() -> list[str]:  # what Slack kept (refused attempts are not messages)
        return [
            str(m.get("text"))
            for m in list(fake.messages.values())
            if m.get("thread_ts") == request.message_ts
        ]

    for name in signers.values():  # queued posts: each in its own time
        until(lambda n=name: any(f"{n} signed" in t for t in replies()), what=f"{name}'s reply")
    time.sleep(1)  # a doubled post would show by now
    for name in signers.values():
        assert sum(f"{name} signed" in text for text in replies()) == 1, replies()


def test_inline_errors_for_a_bad_submission(deployment: Deployment) -> None:
    fake = deployment.fake
    started = time.monotonic()
    deployment.post(slash_command("", user_id="U0REQ", channel_id="C0DEALS"))
    view = _as_dict(fake.wait_for("views.open", lambda c: c.at >= started, timeout=10)["view"])
    answers = {"subject": "", "outside": "not an email"}
    response = deployment.post(view_submission(view, "U0REQ", answers))
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors" and body["errors"]


def _request(deployment: Deployment, subject: str) -> SignRequest:
    deadline = time.monotonic() + 20
    while True:
        rows = deployment.db.run_sync(
            lambda s: [r for r in s.query(SignRequest).all() if r.subject == subject]  # type: ignore[attr-defined]
        )
        if rows and rows[0].message_ts:
            return rows[0]
        assert time.monotonic() < deadline, "the request never got its status message"
        time.sleep(0.1)


def _as_dict(view: object) -> dict:
    return json.loads(view) if isinstance(view, str) else view  # type: ignore[return-value]


def _invitation_link(data_dir: Path, email: str) -> str:
    """The sign link from the invitation the provider wrote (no SMTP server is configured:
    live mail is written as .eml files, which is what an operator would read too)."""
    slug = email.replace("@", "-").replace(".", "-")
    deadline = time.monotonic() + 20
    while True:
        for path in sorted((data_dir / "mail").glob(f"*invitation-{slug}*.eml")):
            message = email_parser.message_from_bytes(
                path.read_bytes(), policy=email_policy.default
            )
            text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            found = re.search(r"https?://\S+/sign/[A-Za-z0-9_-]+", text)
            if found:
                return found.group(0)
        assert time.monotonic() < deadline, f"no invitation for {email}"
        time.sleep(0.1)


def test_a_garbage_signature_is_401_not_500(deployment: Deployment) -> None:
    response = httpx.post(
        f"{deployment.base}/hooks/esign",
        content=b'{"id": "evt_y", "envelope_id": "env_y"}',
        headers={"X-Certyneo-Signature": "\u00e9\u00e9".encode()},  # raw non-ASCII bytes
    )
    assert response.status_code == 401


def test_a_template_that_requires_approval_cannot_skip_it(deployment: Deployment) -> None:
    fake = deployment.fake
    started = time.monotonic()
    deployment.post(slash_command("offer", user_id="U0REQ", channel_id="C0DEALS"))
    view = _as_dict(fake.wait_for("views.open", lambda c: c.at >= started, timeout=10)["view"])
    assert "Offer" in str(view)
    roles = [
        b["block_id"] for b in view["blocks"] if str(b.get("block_id", "")).startswith("role_email")
    ]
    answers = {block: f"Person {i} <p{i}@example.com>" for i, block in enumerate(roles)}
    answers[
        next(b["block_id"] for b in view["blocks"] if b.get("block_id", "").startswith("approval"))
    ] = []
    response = deployment.post(view_submission(view, "U0REQ", answers))
    body = response.json()
    assert body["response_action"] == "errors" and "approval" in str(body["errors"]).lower()
