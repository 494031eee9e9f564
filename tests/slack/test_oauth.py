"""Many workspaces by OAuth: installing signbot, each workspace's token, uninstalling one.

The whole app is served over HTTP in OAuth mode (``SLACK_CLIENT_ID`` + ``SLACK_CLIENT_SECRET``,
no bot token) against the fake Slack Web API, which plays both the API and the app's OAuth
side: a test registers the ``code`` Slack would hand the browser after "Allow", then walks the
install as a browser does — ``/slack/install`` (a page whose "Add to Slack" link carries a
state, the same state in a cookie), then Slack's redirect to ``/slack/oauth_redirect`` with
that code and state. The fake records which token every call carried, so "that workspace's
token" is checked call by call.

The stores themselves (states, installations) are also tested directly, on SQLite and on
PostgreSQL when ``SIGNBOT_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store import Installation

from bot import migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.secretbox import SecretBox
from bot.slack import install
from bot.slack.models import BotSetting, SlackInstallation, SlackOAuthState
from bot.slack.oauth import Installations, OAuthStates
from bot.slack_wiring import slack_mode
from bot.timeutil import utcnow
from tests.conftest import BACKENDS, PG_URL
from tests.slack.conftest import USERS, Deployment, sign, text_of
from tests.support.pg import throwaway_database
from tests.support.servers import free_port, uvicorn_thread
from tests.support.slack_fake import slack_fake
from tests.support.slack_requests import SIGNING_SECRET, event_callback, slash_command
from tests.support.slack_requests import sign as sign_request

ROOT = Path(__file__).resolve().parents[2]
COOKIE = "slack-app-oauth-state"


@contextmanager
def serve(data_dir: Path, *, oauth: bool, bot_token: str | None = None) -> Iterator[Deployment]:
    """The whole app against a fresh fake: with the fake app's OAuth credentials when ``oauth``,
    with ``bot_token`` when given (both: token mode must win)."""
    with slack_fake() as fake:
        for user_id, (name, real, address) in USERS.items():
            fake.add_user(user_id, name, real_name=real, email=address)
        port = free_port()
        slack: dict[str, Any] = {"slack_bot_token": bot_token}
        if oauth:
            slack.update(slack_client_id=fake.client_id, slack_client_secret=fake.client_secret)
        settings = Settings(
            data_dir=data_dir,
            port=port,
            jobs_interval_seconds=0.2,
            webhook_retry_base_seconds=0.5,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=fake.base_url,
            rate_limit_enabled=False,
            **slack,
        )
        db = Database(settings.effective_database_url)
        migrations.upgrade(db)
        with uvicorn_thread(create_app(settings, db), port) as base:
            deadline = time.monotonic() + 20
            while db.run_sync(lambda s: s.get(BotSetting, "webhook_secret")) is None:
                assert time.monotonic() < deadline, "the bot never registered its webhook"
                time.sleep(0.05)
            yield Deployment(base, db, fake, data_dir)
        db.dispose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One app in OAuth mode for the module; each test installs its own workspaces."""
    with serve(tmp_path_factory.mktemp("slack-oauth"), oauth=True) as running:
        yield running


# --- the browser's side of an install ---------------------------------------------------------
def open_install_page(deployment: Deployment) -> tuple[str, dict[str, list[str]]]:
    """``/slack/install`` as a browser opens it: the state (from the cookie) and the query of
    the "Add to Slack" link."""
    page = httpx.get(f"{deployment.base}/slack/install", timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    cookie = re.search(rf"{COOKIE}=([^;]+)", page.headers["set-cookie"])
    assert cookie, page.headers["set-cookie"]
    link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page.text)
    assert link, page.text
    query = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)
    return cookie.group(1), query


def redirect(deployment: Deployment, code: str, state: str, cookie: str | None) -> httpx.Response:
    """Slack sending the browser back with ``code`` and ``state`` (and the browser's cookie)."""
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    return httpx.get(
        f"{deployment.base}/slack/oauth_redirect",
        params={"code": code, "state": state},
        headers=headers,
        timeout=20,
    )


def install_team(deployment: Deployment, team_id: str, installer: str = "U0REQ") -> str:
    """The whole install of ``team_id``; the bot token Slack issued to it."""
    state, query = open_install_page(deployment)
    code = deployment.fake.add_install_code(
        team_id, installer=installer, redirect_uri=query["redirect_uri"][0]
    )
    answer = redirect(deployment, code, state, state)
    assert answer.status_code == 200, answer.text
    return deployment.fake.bot_token(team_id)


def installation(deployment: Deployment, team_id: str) -> SlackInstallation | None:
    return deployment.db.run_sync(lambda s: s.get(SlackInstallation, team_id))


def wait(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def with_token(token: str):  # type: ignore[no-untyped-def]
    return lambda call: call.token == token


# --- installing -------------------------------------------------------------------------------
def test_install_page_links_to_slack_with_a_fresh_state(deployment: Deployment) -> None:
    state, query = open_install_page(deployment)
    assert query["state"] == [state]
    assert query["client_id"] == [deployment.fake.client_id]
    assert query["redirect_uri"] == [f"{deployment.base}/slack/oauth_redirect"]
    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    assert set(query["scope"][0].split(",")) == set(manifest["oauth_config"]["scopes"]["bot"])
    assert deployment.db.run_sync(lambda s: s.get(SlackOAuthState, state)) is not None
    again, _ = open_install_page(deployment)
    assert again != state


def test_the_redirect_stores_the_install_with_its_token_sealed(deployment: Deployment) -> None:
    fake = deployment.fake
    state, query = open_install_page(deployment)
    code = fake.add_install_code(
        "T0INST",
        "Initech",
        installer="U0ADA",
        bot_user_id="U0INSTBOT",
        bot_id="B0INSTBOT",
        redirect_uri=query["redirect_uri"][0],
    )
    answer = redirect(deployment, code, state, state)
    assert answer.status_code == 200, answer.text
    assert "Thank you!" in answer.text
    assert "slack://app?team=T0INST&amp;id=A0APP" in answer.text
    assert f"{COOKIE}=deleted" in answer.headers["set-cookie"]  # the browser forgets the state

    exchange = fake.last("oauth.v2.access")
    assert exchange["code"] == code
    assert exchange["redirect_uri"] == f"{deployment.base}/slack/oauth_redirect"
    token = fake.bot_token("T0INST")
    assert fake.wait_for("auth.test", with_token(token))  # the bot id, asked once at install

    row = installation(deployment, "T0INST")
    assert row is not None
    assert (row.team_name, row.bot_user_id, row.bot_id) == ("Initech", "U0INSTBOT", "B0INSTBOT")
    assert row.installer_user_id == "U0ADA" and row.revoked_at is None
    assert "commands" in row.scopes.split(",")
    assert row.bot_token_sealed and token not in row.bot_token_sealed
    stored = b"".join(
        path.read_bytes() for path in deployment.data_dir.glob("signbot.db*") if path.is_file()
    )
    assert token.encode() not in stored
    assert deployment.db.run_sync(lambda s: s.get(SlackOAuthState, state)) is None  # used up


def test_a_bad_or_expired_state_is_refused(deployment: Deployment) -> None:
    fake, team = deployment.fake, "T0REFUSED"

    def attempt(state: str, cookie: str | None) -> httpx.Response:
        code = fake.add_install_code(team)
        return redirect(deployment, code, state, cookie)

    state, _ = open_install_page(deployment)
    assert attempt(state, None).status_code == 400  # not the browser that started
    assert attempt(state, "another-state").status_code == 400
    forged = "F" * 43
    assert attempt(forged, forged).status_code == 401  # never issued

    expired, _ = open_install_page(deployment)

    def expire(session: Any) -> None:
        row = session.get(SlackOAuthState, expired)
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)

    deployment.db.run_sync(expire)
    refused = attempt(expired, expired)
    assert refused.status_code == 401
    assert "Something Went Wrong" in refused.text
    assert not [c for c in fake.calls("oauth.v2.access") if c.get("code", "").endswith(team)]

    used, _ = open_install_page(deployment)
    assert attempt(used, used).status_code == 200
    assert attempt(used, used).status_code == 401  # a state works once
    assert installation(deployment, team) is not None


def test_a_code_slack_refuses_installs_nothing(deployment: Deployment) -> None:
    state, _ = open_install_page(deployment)
    answer = redirect(deployment, "not-a-code", state, state)
    assert answer.status_code == 401
    assert deployment.fake.last("oauth.v2.access")["code"] == "not-a-code"


# --- each workspace, its token ----------------------------------------------------------------
def type_sign(deployment: Deployment, team_id: str, text: str = "") -> None:
    """``/sign text`` typed in ``team_id`` (acked at once; the work follows)."""
    typed = slash_command(
        text, user_id="U0REQ", channel_id="C0DEALS", team_id=team_id,
        response_url=deployment.fake.response_url(f"sign-{team_id}"),
    )  # fmt: skip
    answer = deployment.post(typed)
    assert answer.status_code == 200, answer.text


def test_each_workspace_is_answered_with_its_own_token(deployment: Deployment) -> None:
    fake = deployment.fake
    tokens = {team: install_team(deployment, team) for team in ("T0ALPHA", "T0BETA")}
    assert tokens["T0ALPHA"] != tokens["T0BETA"]
    checks_before = len(fake.calls("auth.test"))
    for team, token in tokens.items():
        type_sign(deployment, team)
        opened = fake.wait_for("views.open", with_token(token), timeout=10)
        assert opened["view"]["callback_id"] == "sign_submit"
    # the stored install says what auth.test would: no round trip per request
    assert len(fake.calls("auth.test")) == checks_before


def test_a_webhook_notice_posts_with_the_request_workspace_token(
    deployment: Deployment,
) -> None:
    fake = deployment.fake
    token_a = install_team(deployment, "T0NOTA")
    token_b = install_team(deployment, "T0NOTB")
    row = deployment.new_request("Notice for B", outside="Nina <nina@b.example>", team_id="T0NOTB")
    assert row.team_id == "T0NOTB"
    status = fake.wait_for("chat.postMessage", lambda c: "Notice for B" in text_of(c))
    assert status.token == token_b

    signed_at = time.monotonic()
    sign(deployment.mail_link("invitation", "nina@b.example"), "Nina")
    reply = fake.wait_for(
        "chat.postMessage",
        lambda c: c.get("thread_ts") == row.message_ts and "signed" in text_of(c),
        timeout=40,
    )
    assert reply.token == token_b
    updated = fake.wait_for(
        "chat.update", lambda c: c.at >= signed_at and c.get("ts") == row.message_ts, 20
    )
    assert updated.token == token_b
    assert not [c for c in fake.calls() if c.token == token_a and c.method != "auth.test"]


# --- uninstalling -----------------------------------------------------------------------------
def test_uninstalling_one_workspace_stops_its_posts_only(deployment: Deployment) -> None:
    fake = deployment.fake
    token_a = install_team(deployment, "T0GONEA")
    token_b = install_team(deployment, "T0STAYB")
    row_a = deployment.new_request("Left behind", outside="Ann <ann@a.example>", team_id="T0GONEA")
    row_b = deployment.new_request("Still here", outside="Ben <ben@b.example>", team_id="T0STAYB")
    link_a = deployment.mail_link("invitation", "ann@a.example")
    link_b = deployment.mail_link("invitation", "ben@b.example")

    deployment.event({"type": "app_uninstalled"}, "T0GONEA")
    wait(lambda: revoked_at(deployment, "T0GONEA") is not None)
    fake.revoke_team("T0GONEA")  # what Slack does to its tokens
    gone_from = time.monotonic()

    sign(link_a, "Ann")
    sign(link_b, "Ben")
    done = deployment.row(lambda r: r.id == row_a.id and r.status == "COMPLETED", timeout=40)
    assert done.recipients[0]["status"] == "SIGNED"  # A's row kept up, quietly
    deployment.row(lambda r: r.id == row_b.id and r.status == "COMPLETED", timeout=40)
    fake.wait_for("files.completeUploadExternal", with_token(token_b), timeout=40)
    time.sleep(0.3)
    after = [c for c in fake.calls() if c.at >= gone_from]
    assert [c for c in after if c.token == token_b and c.get("ts") == row_b.message_ts]
    assert not [c for c in after if c.token == token_a]
    assert not [c for c in after if c.get("thread_ts") == row_a.message_ts]
    assert revoked_at(deployment, "T0STAYB") is None

    # A's people typing /sign now are told why, and no modal opens.
    views_before = len(fake.calls("views.open"))
    told = deployment.command("", "U0REQ", team_id="T0GONEA")
    assert "not installed" in told.get("text", "")
    assert len(fake.calls("views.open")) == views_before

    # Installing again resumes: a new token, both records cleared.
    token_again = install_team(deployment, "T0GONEA")
    assert token_again != token_a
    assert revoked_at(deployment, "T0GONEA") is None
    assert deployment.db.run_sync(lambda s: s.get(BotSetting, install.key("T0GONEA"))) is None
    type_sign(deployment, "T0GONEA")
    fake.wait_for("views.open", with_token(token_again), timeout=10)


@pytest.mark.parametrize(
    ("tokens", "revokes"), [({"bot": ["U0BOT"]}, True), ({"oauth": ["U0REQ"]}, False)]
)
def test_tokens_revoked_revokes_the_install_only_for_the_bot_token(
    deployment: Deployment, tokens: dict[str, list[str]], revokes: bool
) -> None:
    team = f"T0REV{int(revokes)}"
    install_team(deployment, team)
    deployment.event({"type": "tokens_revoked", "tokens": tokens}, team)
    if revokes:
        wait(lambda: revoked_at(deployment, team) is not None)
    else:
        time.sleep(0.3)
        assert revoked_at(deployment, team) is None


def test_a_late_uninstall_from_before_the_latest_install_changes_nothing(
    deployment: Deployment,
) -> None:
    install_team(deployment, "T0LATE")
    body = json.loads(event_callback({"type": "app_uninstalled"}, "T0LATE")[0])
    body["event_time"] = int(time.time()) - 120  # Slack retrying a delivery from before
    raw = json.dumps(body).encode()
    late = (raw, {"Content-Type": "application/json", **sign_request(raw)})
    assert deployment.post(late).status_code == 200
    time.sleep(0.4)
    assert revoked_at(deployment, "T0LATE") is None
    assert deployment.db.run_sync(lambda s: s.get(BotSetting, install.key("T0LATE"))) is None


def revoked_at(deployment: Deployment, team_id: str) -> Any:
    row = installation(deployment, team_id)
    assert row is not None, f"{team_id} never installed"
    return row.revoked_at


# --- which mode -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ({}, None),
        ({"slack_signing_secret": "s"}, None),
        ({"slack_signing_secret": "s", "slack_bot_token": "xoxb-1"}, "token"),
        ({"slack_signing_secret": "s", "slack_client_id": "1.2"}, None),
        (
            {"slack_signing_secret": "s", "slack_client_id": "1", "slack_client_secret": "x"},
            "oauth",
        ),
        ({"slack_client_id": "1.2", "slack_client_secret": "x"}, None),
        (
            {
                "slack_signing_secret": "s",
                "slack_bot_token": "xoxb-1",
                "slack_client_id": "1.2",
                "slack_client_secret": "x",
            },
            "token",
        ),
    ],
)
def test_the_settings_choose_the_mode(given: dict[str, str], mode: str | None) -> None:
    assert slack_mode(Settings(**given)) == mode  # type: ignore[arg-type]


def test_the_default_scopes_are_the_manifest_ones() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    assert Settings().slack_scope_list == manifest["oauth_config"]["scopes"]["bot"]
    assert Settings(slack_scopes=" commands, chat:write ,").slack_scope_list == [  # type: ignore[call-arg]
        "commands",
        "chat:write",
    ]


def test_a_bot_token_wins_over_oauth_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Bolt's AsyncApp reads these two itself: token mode must hold even so.
    monkeypatch.setenv("SLACK_CLIENT_ID", "1111111111.2222222222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "fake-client-secret")
    caplog.set_level(logging.INFO, logger="signbot.slack")
    with serve(tmp_path, oauth=True, bot_token="xoxb-test-token") as running:
        assert "ignores SLACK_CLIENT_ID/SLACK_CLIENT_SECRET" in caplog.text
        assert httpx.get(f"{running.base}/slack/install", timeout=10).status_code == 404
        type_sign(running, "T0TEST")
        opened = running.fake.wait_for("views.open", timeout=10)
        assert opened.token == "xoxb-test-token"


# --- the stores, on every backend -------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        assert PG_URL
        with throwaway_database(PG_URL) as url:
            database = Database(url)
            migrations.upgrade(database)
            yield database
            database.dispose()
        return
    database = Database(f"sqlite:///{tmp_path / 'oauth.db'}")
    migrations.upgrade(database)
    yield database
    database.dispose()


BOX = SecretBox(b"k" * 32, "bot-secrets")


def store(db: Database, box: SecretBox = BOX) -> Installations:
    return Installations(db, seal=box.seal, unseal=box.open, api_url="http://127.0.0.1:9/api/")


def an_install(team_id: str, token: str, **extra: Any) -> Installation:
    values: dict[str, Any] = {
        "app_id": "A0APP",
        "team_id": team_id,
        "team_name": "Acme",
        "bot_token": token,
        "bot_id": "B0BOT",
        "bot_user_id": "U0BOT",
        "bot_scopes": "commands,chat:write",
        "user_id": "U0INSTALLER",
        **extra,
    }
    return Installation(**values)


async def test_states_are_used_once_and_expire(db: Database) -> None:
    now = [utcnow()]
    states = OAuthStates(db, expiration_seconds=600, clock=lambda: now[0])
    first = await states.async_issue()
    assert len(first) <= 64 and first != await states.async_issue()
    assert await states.async_consume(first)
    assert not await states.async_consume(first)
    late = await states.async_issue()
    now[0] += timedelta(seconds=601)
    assert not await states.async_consume(late)
    assert not await states.async_consume("")
    assert not await states.async_consume("x" * 500)
    await states.async_issue()  # issuing sweeps the expired ones away
    left = db.run_sync(lambda s: s.query(SlackOAuthState).count())  # type: ignore[attr-defined]
    assert left == 1


async def test_a_state_is_consumed_by_one_of_two_racing_redirects(db: Database) -> None:
    states = OAuthStates(db)
    state = await states.async_issue()
    results = await asyncio.gather(*(states.async_consume(state) for _ in range(6)))
    assert sorted(results) == [False] * 5 + [True]


async def test_installs_are_sealed_found_revoked_and_replaced(db: Database) -> None:
    installs = store(db)
    await installs.async_save(an_install("T0ONE", "xoxb-one-secret"))
    row = db.run_sync(lambda s: s.get(SlackInstallation, "T0ONE"))
    assert row.bot_token_sealed != "xoxb-one-secret"
    assert "xoxb-one-secret" not in row.bot_token_sealed
    assert row.scopes == "commands,chat:write" and row.installer_user_id == "U0INSTALLER"

    bot = await installs.async_find_bot(enterprise_id=None, team_id="T0ONE")
    assert bot is not None and bot.bot_token == "xoxb-one-secret"
    found = await installs.async_find_installation(enterprise_id=None, team_id="T0ONE")
    assert found is not None and found.bot_scopes == ["commands", "chat:write"]
    assert await installs.async_find_installation(
        enterprise_id=None, team_id="T0ONE", user_id="U0SOMEONE"
    ) is None  # fmt: skip
    assert await installs.async_find_bot(enterprise_id=None, team_id="T0NONE") is None
    client = await installs.client("T0ONE")
    assert client is not None and client.token == "xoxb-one-secret"
    assert client.base_url == "http://127.0.0.1:9/api/"
    # another deployment secret cannot open it: no token rather than a wrong one
    assert await store(db, SecretBox(b"z" * 32, "bot-secrets")).client("T0ONE") is None

    gone_at = int(time.time())
    assert await install.record_gone(db, "T0ONE", gone_at, "app_uninstalled")
    assert await installs.client("T0ONE") is None
    assert await installs.async_find_bot(enterprise_id=None, team_id="T0ONE") is None
    assert await install.silenced(db, "T0ONE")

    await installs.async_save(an_install("T0ONE", "xoxb-one-again", user_id="U0OTHER"))
    again = await installs.client("T0ONE")
    assert again is not None and again.token == "xoxb-one-again"
    assert not await install.silenced(db, "T0ONE")
    row = db.run_sync(lambda s: s.get(SlackInstallation, "T0ONE"))
    assert row.revoked_at is None and row.installer_user_id == "U0OTHER"
    # an uninstall event from before that reinstall changes nothing
    assert not await install.record_gone(db, "T0ONE", gone_at - 60, "app_uninstalled")
    assert await installs.client("T0ONE") is not None

    await installs.async_delete_installation(enterprise_id=None, team_id="T0ONE")
    assert await installs.client("T0ONE") is None


async def test_org_wide_installs_are_refused(db: Database) -> None:
    org = an_install(None, "xoxb-org", enterprise_id="E0ORG", is_enterprise_install=True)
    with pytest.raises(BoltError):
        await store(db).async_save(org)
    assert db.run_sync(lambda s: s.query(SlackInstallation).count()) == 0  # type: ignore[attr-defined]
