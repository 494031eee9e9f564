"""Remind and Cancel (buttons and ``/sign remind|cancel``), ``/sign status``, ``/sign help``;
who may do what; and a provider without signbot's extensions, where the buttons are not
shown and the commands say plainly that nothing was done.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.slack import ids
from tests.slack.conftest import Deployment, buttons, start, text_of
from tests.support.slack_requests import slash_command


def _status_posted(deployment: Deployment, subject: str):
    return deployment.fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.get("channel") == "C0DEALS" and not c.get("thread_ts") and subject in text_of(c)
        ),
    )


def test_remind_button_and_command(deployment: Deployment) -> None:
    row = deployment.new_request(
        "Remind me", members=("U0ADA",), outside="Olga Out <olga@out.example>"
    )
    assert row.status == "SENT"
    shown = buttons(_status_posted(deployment, "Remind me")["blocks"])
    assert shown[ids.REMIND_ACTION]["value"] == row.id and ids.CANCEL_ACTION in shown

    clicked = deployment.click(ids.REMIND_ACTION, row.id, "U0REQ", message_ts=row.message_ts)
    answer = text_of(deployment.answer(clicked))
    assert "Reminded 2 people" in answer and "1 of them by Slack DM" in answer
    assert deployment.mail_link("reminder", "olga@out.example")
    reminder = deployment.dm("U0ADA", lambda c: "Reminder" in text_of(c))
    assert buttons(reminder["blocks"])[ids.SIGN_LINK_ACTION]["url"].count("/sign/") == 1

    by_command = text_of(deployment.command(f"remind #{row.number}", "U0REQ"))
    assert "Reminded 2 people" in by_command

    # A signer, or anyone else, may not remind on the requester's behalf.
    refused = deployment.click(ids.REMIND_ACTION, row.id, "U0EVE")
    assert "Only the requester <@U0REQ>" in text_of(deployment.answer(refused))
    assert "Only the requester" in text_of(deployment.command(f"remind {row.number}", "U0ADA"))


def test_cancel_command_with_reason_and_final_status(deployment: Deployment) -> None:
    fake = deployment.fake
    row = deployment.new_request("Cancel me", outside="Carl Cancel <carl@out.example>")
    refused = deployment.command(f"cancel #{row.number} not yours", "U0EVE")
    assert "Only the requester" in text_of(refused)
    assert deployment.row(lambda r: r.id == row.id).status == "SENT"

    answer = deployment.command(f"cancel {row.envelope_id} Wrong counterparty", "U0REQ")
    assert "is cancelled" in text_of(answer)
    voided = deployment.row(lambda r: r.id == row.id and r.status == "VOIDED")
    assert voided.decision_reason == "Wrong counterparty"
    assert deployment.envelope(row.envelope_id).status == "VOIDED"
    final = fake.wait_for(
        "chat.update", lambda c: c.get("ts") == row.message_ts and "Cancelled" in text_of(c)
    )
    assert not buttons(final["blocks"]) and "Wrong counterparty" in text_of(final)
    fake.wait_for(
        "chat.postMessage",
        lambda c: c.get("thread_ts") == row.message_ts and "cancelled the request" in text_of(c),
    )
    again = deployment.command(f"cancel #{row.number}", "U0REQ")
    assert "already voided" in text_of(again)


def test_cancel_button_and_cancel_while_awaiting_approval(deployment: Deployment) -> None:
    row = deployment.new_request("Cancel by button", outside="Cy Button <cy@out.example>")
    deployment.click(ids.CANCEL_ACTION, row.id, "U0REQ", message_ts=row.message_ts)
    deployment.row(lambda r: r.id == row.id and r.status == "VOIDED")

    held = deployment.new_request(
        "Held then dropped", outside="Hal <hal@out.example>", approver="U0APP"
    )
    assert "is cancelled" in text_of(deployment.command(f"cancel #{held.number}", "U0REQ"))
    deployment.row(lambda r: r.id == held.id and r.status == "VOIDED")
    assert deployment.envelope(held.envelope_id) is None  # the draft was deleted, never sent
    assert not deployment.mails("invitation", "hal@out.example")
    deployment.dm("U0APP", lambda c: "needs no approval any more" in text_of(c))
    # The approver's stale Approve button now says so instead of sending.
    late = deployment.click(ids.APPROVE_ACTION, held.id, "U0APP", channel="D0APP")
    assert "already decided" in text_of(deployment.answer(late))


def test_status_command(deployment: Deployment) -> None:
    row = deployment.new_request("Status please", members=("U0BOB",))
    for who in ("U0REQ", "U0BOB"):  # the requester, a member recipient
        answer = deployment.command(f"status #{row.number}", who)
        assert answer.get("response_type") == "ephemeral"
        assert "Status please" in text_of(answer) and "Out for signature" in text_of(answer)
    assert "not yours to see" in text_of(deployment.command(f"status {row.number}", "U0EVE"))
    unknown = deployment.command("status #9999", "U0REQ")
    assert "There is no request #9999 in this workspace" in text_of(unknown)
    elsewhere = deployment.command(f"status #{row.number}", "U0REQ", team_id="T0ELSE")
    assert "There is no request" in text_of(elsewhere)  # numbers are per workspace


def test_help_shows_what_was_wrong(deployment: Deployment) -> None:
    response = deployment.post(slash_command("status <!channel>", user_id="U0REQ"))
    assert response.status_code == 200
    text = response.json()["text"]
    assert "is not a request" in text and "&lt;!channel&gt;" in text and "/sign list" in text


# --- a provider with only Certyneo's routes ---------------------------------------------------
@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with start(tmp_path_factory.mktemp("slack-plain"), extensions=False) as running:
        yield running


def test_without_the_extensions_the_bot_never_pretends(plain: Deployment) -> None:
    row = plain.new_request("Plain provider", outside="Pat Plain <pat@plain.example>")
    assert row.status == "SENT"
    assert not buttons(_status_posted(plain, "Plain provider")["blocks"])  # no Remind, no Cancel

    reminded = text_of(plain.command(f"remind #{row.number}", "U0REQ"))
    assert "does not support reminders; signbot did not remind anyone" in reminded
    cancelled = text_of(plain.command(f"cancel #{row.number}", "U0REQ"))
    assert "does not support cancelling" in cancelled and "did not cancel anything" in cancelled
    assert plain.row(lambda r: r.id == row.id).status == "SENT"
    assert plain.envelope(row.envelope_id).status in ("SENT", "DELIVERED")
