"""Approval before sending, end to end: the real app, the fake Slack, signed requests.

Nothing leaves before the approver says yes: the provider's envelope stays a DRAFT and no
invitation is written; Approve sends it (invitations, signer DMs), Reject deletes the draft
with a reason the requester reads; only the approver may decide.
"""

from __future__ import annotations

import json

import httpx

from bot.slack import ids
from tests.slack.conftest import Deployment, buttons, text_of
from tests.support.slack_requests import view_submission


def _approval_dm(deployment: Deployment, number: int):
    return deployment.dm("U0APP", lambda c: f"(#{number})" in text_of(c))


def test_nothing_is_sent_before_approval_then_approve_sends(deployment: Deployment) -> None:
    fake = deployment.fake
    row = deployment.new_request(
        "Consulting agreement",
        members=("U0ADA",),
        outside="Bruno Keller <bruno@globex.example>",
        approver="U0APP",
    )
    assert row.status == "AWAITING_APPROVAL" and row.approver_id == "U0APP"
    posted = fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.get("channel") == "C0DEALS" and not c.get("thread_ts") and "Consulting" in text_of(c)
        ),
    )
    assert "Waiting for approval" in text_of(posted)

    dm = _approval_dm(deployment, row.number)
    actions = buttons(dm["blocks"])
    assert set(actions) >= {ids.APPROVE_ACTION, ids.REJECT_ACTION}
    assert actions[ids.APPROVE_ACTION]["value"] == row.id

    # Held: a draft at the provider, no invitation, no signer DM.
    assert deployment.envelope(row.envelope_id).status == "DRAFT"
    assert not deployment.mails("invitation", "bruno@globex.example")
    assert not deployment.mails("invitation", "ada@acme.example")
    assert not [c for c in fake.calls("chat.postMessage") if c.get("channel") == "U0ADA"]

    # Someone else clicking Approve is refused, and nothing moves.
    refused = deployment.click(ids.APPROVE_ACTION, row.id, "U0EVE", channel="D0EVE")
    answer = deployment.answer(refused)
    assert "Only <@U0APP>" in text_of(answer) and answer.get("response_type") == "ephemeral"
    assert deployment.envelope(row.envelope_id).status == "DRAFT"

    # The approver approves, in their DM.
    dm_channel, dm_ts = fake.dms["U0APP"], _dm_ts(deployment, "U0APP", row.number)
    deployment.click(ids.APPROVE_ACTION, row.id, "U0APP", channel=dm_channel, message_ts=dm_ts)
    sent = deployment.row(lambda r: r.id == row.id and r.status == "SENT")
    assert sent.decided_at is not None
    assert deployment.envelope(row.envelope_id).status in ("SENT", "DELIVERED")
    assert deployment.mail_link("invitation", "bruno@globex.example")

    updated = fake.wait_for(
        "chat.update", lambda c: c.get("ts") == row.message_ts and "Out for signature" in text_of(c)
    )
    assert ids.APPROVE_ACTION not in text_of(updated)
    outcome = fake.wait_for("chat.update", lambda c: c.get("ts") == dm_ts)
    assert outcome.get("channel") == dm_channel
    assert ids.APPROVE_ACTION not in text_of(outcome) and "Out for signature" in text_of(outcome)
    told = deployment.dm("U0REQ", lambda c: "approved request" in text_of(c))
    assert f"#{row.number}" in text_of(told)

    # The member signer gets the "Review and sign" button; its link is their signing page.
    invite = deployment.dm("U0ADA", lambda c: "Consulting agreement" in text_of(c))
    link = buttons(invite["blocks"])[ids.SIGN_LINK_ACTION]["url"]
    assert "/sign/" in link and httpx.get(link, timeout=30).status_code == 200

    # A second click (double click, stale DM) decides nothing more.
    again = deployment.click(
        ids.APPROVE_ACTION, row.id, "U0APP", channel=dm_channel, message_ts=dm_ts
    )
    assert "already decided" in text_of(deployment.answer(again))


def test_reject_asks_why_then_deletes_the_draft(deployment: Deployment) -> None:
    fake = deployment.fake
    row = deployment.new_request(
        "Vendor contract", outside="Vera Vendor <vera@vendor.example>", approver="U0APP"
    )
    dm_ts = _dm_ts(deployment, "U0APP", row.number)

    dm_channel = fake.dms["U0APP"]
    deployment.click(ids.REJECT_ACTION, row.id, "U0APP", channel=dm_channel, message_ts=dm_ts)
    opened = fake.wait_for(
        "views.open", lambda c: _view(c).get("callback_id") == ids.REJECT_CALLBACK
    )
    modal = _view(opened)
    assert json.loads(modal["private_metadata"])["request"] == row.id

    blank = deployment.post(view_submission(modal, "U0APP", {ids.REJECT_REASON: "   "}))
    assert blank.json()["response_action"] == "errors"
    assert ids.REJECT_REASON in blank.json()["errors"]
    assert deployment.envelope(row.envelope_id).status == "DRAFT"

    reason = "Budget <not> approved for Q3"
    done = deployment.post(view_submission(modal, "U0APP", {ids.REJECT_REASON: reason}))
    assert done.status_code == 200 and "errors" not in done.text
    rejected = deployment.row(lambda r: r.id == row.id and r.status == "REJECTED")
    assert rejected.decision_reason == reason
    assert deployment.envelope(row.envelope_id) is None  # the draft is deleted
    assert not deployment.mails("invitation", "vera@vendor.example")

    final = fake.wait_for(
        "chat.update", lambda c: c.get("ts") == row.message_ts and "Not approved" in text_of(c)
    )
    assert not buttons(final["blocks"])  # a final state has no buttons
    told = deployment.dm("U0REQ", lambda c: "did not approve" in text_of(c))
    assert "Budget &lt;not&gt; approved" in text_of(told)
    outcome = fake.wait_for("chat.update", lambda c: c.get("ts") == dm_ts)
    assert outcome.get("channel") == dm_channel
    assert "You rejected it" in text_of(outcome) and ids.REJECT_ACTION not in text_of(outcome)


def test_only_the_approver_may_reject(deployment: Deployment) -> None:
    row = deployment.new_request("Lease", outside="Len Lord <len@lease.example>", approver="U0APP")
    refused = deployment.click(ids.REJECT_ACTION, row.id, "U0REQ")
    assert "Only <@U0APP>" in text_of(deployment.answer(refused))
    assert deployment.envelope(row.envelope_id).status == "DRAFT"


def _dm_ts(deployment: Deployment, user: str, number: int) -> str:
    """The ts of the approval DM as the fake stored it (what Slack sends back on a click)."""
    call = deployment.dm(user, lambda c: f"(#{number})" in text_of(c))
    channel = deployment.fake.dms[user]
    for (where, ts), message in deployment.fake.messages.items():
        if where == channel and message.get("blocks") == call.get("blocks"):
            return ts
    raise AssertionError("the approval DM was not stored")


def _view(call) -> dict:
    view = call["view"]
    return json.loads(view) if isinstance(view, str) else view
