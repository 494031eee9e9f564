"""Signer DMs, App Home and the life of the install, end to end.

Members who must sign get a DM with their "Review and sign" button when their turn comes
(once each; a sequential envelope's next group when the previous one is done); App Home shows
what waits for my signature and what I sent; a workspace that uninstalls signbot hears
nothing more from it until it is back.
"""

from __future__ import annotations

import json
import time

from bot.slack import ids
from bot.slack.models import BotSetting
from tests.slack.conftest import Deployment, buttons, sign, text_of

INVITE = "asks you to sign"


def _invites(deployment: Deployment, user: str, subject: str) -> list:
    return [
        c
        for c in deployment.fake.calls("chat.postMessage")
        if c.get("channel") == user
        and subject in text_of(c)
        and INVITE in text_of(c)
        and "Reminder" not in text_of(c)
    ]


def test_member_signers_get_their_dm_when_their_turn_comes(deployment: Deployment) -> None:
    subject = "Sequential deal"
    row = deployment.new_request(subject, members=("U0ADA", "U0BOB"), sequential=True)
    first = deployment.dm("U0ADA", lambda c: subject in text_of(c) and INVITE in text_of(c))
    link = buttons(first["blocks"])[ids.SIGN_LINK_ACTION]["url"]
    assert "/sign/" in link
    time.sleep(0.3)
    assert not _invites(deployment, "U0BOB", subject)  # not Bob's turn yet

    # The links are kept sealed: the row's JSON never holds one in clear.
    stored = deployment.row(lambda r: r.id == row.id)
    assert "/sign/" not in json.dumps(stored.recipients)
    assert all(r.get("sign_url_sealed") for r in stored.recipients)

    sign(link, "Ada Lovelace")
    second = deployment.dm("U0BOB", lambda c: subject in text_of(c) and INVITE in text_of(c))
    assert buttons(second["blocks"])[ids.SIGN_LINK_ACTION]["url"] != link
    deployment.fake.wait_for(
        "chat.postMessage",
        lambda c: c.get("thread_ts") == row.message_ts and "signed" in text_of(c),
    )
    time.sleep(0.5)  # more deliveries (viewed, signed…) DM nobody twice
    assert len(_invites(deployment, "U0ADA", subject)) == 1
    assert len(_invites(deployment, "U0BOB", subject)) == 1


def test_an_address_of_a_member_is_found_and_dmed(deployment: Deployment) -> None:
    row = deployment.new_request("Typed address", outside="Carol <carol@acme.example>")
    assert row.recipients[0]["slack_user_id"] == "U0CAR"  # users.lookupByEmail
    dm = deployment.dm("U0CAR", lambda c: "Typed address" in text_of(c))
    assert buttons(dm["blocks"])[ids.SIGN_LINK_ACTION]["url"].startswith(deployment.base)


def test_app_home_shows_waiting_and_sent(deployment: Deployment) -> None:
    fake = deployment.fake
    deployment.new_request("Home sweet home", members=("U0CAR",))
    started = time.monotonic()
    deployment.event(
        {"type": "app_home_opened", "user": "U0CAR", "tab": "home", "channel": "D0CAR"}
    )
    home = fake.wait_for(
        "views.publish", lambda c: c.at >= started and c.get("user_id") == "U0CAR", timeout=10
    )
    view = home["view"] if isinstance(home["view"], dict) else json.loads(home["view"])
    shown = json.dumps(view)
    assert "Waiting for my signature" in shown and "Sent by me" in shown
    waiting = [b for b in view["blocks"] if b.get("block_id", "").startswith("waiting.")]
    assert any("Home sweet home" in json.dumps(b) for b in waiting)
    mine = next(b for b in waiting if "Home sweet home" in json.dumps(b))
    assert "/sign/" in mine["accessory"]["url"]
    assert "Nothing yet" in shown  # Carol sent nothing

    deployment.event({"type": "app_home_opened", "user": "U0REQ", "tab": "home"})
    sent = fake.wait_for(
        "views.publish", lambda c: c.at >= started and c.get("user_id") == "U0REQ", timeout=10
    )
    assert "Home sweet home" in text_of(sent)

    before = len(fake.calls("views.publish"))
    deployment.event({"type": "app_home_opened", "user": "U0REQ", "tab": "messages"})
    time.sleep(0.3)
    assert len(fake.calls("views.publish")) == before  # the Messages tab is not App Home


def test_uninstalled_workspace_hears_nothing_until_it_is_back(deployment: Deployment) -> None:
    fake, team = deployment.fake, "T0GONE"
    row = deployment.new_request(
        "Before the uninstall", outside="Gina <gina@gone.example>", team_id=team
    )
    link = deployment.mail_link("invitation", "gina@gone.example")

    # Only user tokens revoked: the bot keeps working.
    deployment.event({"type": "tokens_revoked", "tokens": {"oauth": ["U0REQ"]}}, team)
    time.sleep(0.2)
    assert _gone(deployment, team) is None

    deployment.event({"type": "app_uninstalled"}, team)
    _wait(lambda: _gone(deployment, team) is not None)
    silent_from = time.monotonic()

    sign(link, "Gina")
    done = deployment.row(lambda r: r.id == row.id and r.status == "COMPLETED", timeout=40)
    assert done.recipients[0]["status"] == "SIGNED"  # the row kept up
    time.sleep(0.5)
    after = [c for c in fake.calls() if c.at >= silent_from]
    assert not [c for c in after if c.method == "chat.update"]
    assert not [c for c in after if c.method.startswith("files.")]
    assert not [c for c in after if c.method == "chat.postMessage"]

    # Back: any request from the workspace (here App Home) clears the record.
    deployment.event({"type": "app_home_opened", "user": "U0REQ", "tab": "home"}, team)
    _wait(lambda: _gone(deployment, team) is None)

    deployment.event({"type": "tokens_revoked", "tokens": {"bot": ["U0BOT"]}}, team)
    _wait(lambda: _gone(deployment, team) is not None)
    assert "tokens_revoked" in _gone(deployment, team).value


def _gone(deployment: Deployment, team: str) -> BotSetting | None:
    return deployment.db.run_sync(lambda s: s.get(BotSetting, f"uninstalled:{team}"))


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)
