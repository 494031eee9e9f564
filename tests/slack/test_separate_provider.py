"""The bot against a *separate* signing service: two processes, as an operator would run a
bot in front of a remote Certyneo-compatible API.

The provider is ``signbot serve`` in a subprocess with Slack off; the bot is another app with
Slack on (pointed at the fake Web API), ``SIGNBOT_PROVIDER_URL`` at the provider and
``SIGNBOT_PROVIDER_KEY`` a live key made there with the CLI. Everything the bot does reaches
the provider over HTTP, and the provider's webhook reaches the bot over HTTP.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from bot import migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.slack.models import BotSetting, SignRequest
from tests.slack.test_bot_e2e import _as_dict, _invitation_link
from tests.support.servers import cli, free_port, signbot_serve, uvicorn_thread
from tests.support.slack_fake import slack_fake
from tests.support.slack_requests import SIGNING_SECRET, slash_command, view_submission


def test_bot_and_provider_in_two_processes(tmp_path: Path) -> None:
    provider_dir = tmp_path / "provider"
    provider_dir.mkdir()
    made = cli(provider_dir, "keys", "create", "--env", "live", "--name", "remote bot")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    # the bot listens on loopback too: the provider must be allowed to call it
    with (
        signbot_serve(
            provider_dir,
            {"SIGNBOT_WEBHOOK_ALLOW_PRIVATE": "1", "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.2"},
        ) as provider,
        slack_fake() as fake,
    ):
        fake.add_user("U0REQ", "rita", real_name="Rita Requester", email="rita@acme.example")
        fake.add_user("U0ADA", "ada", real_name="Ada Lovelace", email="ada@acme.example")
        port = free_port()
        settings = Settings(
            data_dir=tmp_path / "bot",
            port=port,
            provider_url=provider,
            provider_key=key,
            slack_signing_secret=SIGNING_SECRET,
            slack_bot_token="xoxb-test-token",
            slack_api_url=fake.base_url,
            rate_limit_enabled=False,
        )
        settings.data_dir.mkdir()
        db = Database(settings.effective_database_url)
        migrations.upgrade(db)
        with uvicorn_thread(create_app(settings, db), port) as bot:
            deadline = time.monotonic() + 30
            while db.run_sync(lambda s: s.get(BotSetting, "webhook_secret")) is None:
                assert time.monotonic() < deadline, "the bot never registered at the provider"
                time.sleep(0.2)
            started = time.monotonic()
            body, headers = slash_command("nda", user_id="U0REQ", channel_id="C0REMOTE")
            assert (
                httpx.post(f"{bot}/slack/events", content=body, headers=headers).status_code == 200
            )
            view = _as_dict(fake.wait_for("views.open", lambda c: c.at >= started, 10)["view"])
            answers = {
                "subject.tpl_mutual-nda": "Remote NDA",
                "role_user.tpl_mutual-nda.0": "U0ADA",
                "role_email.tpl_mutual-nda.1": "Bruno Keller <bruno@globex.example>",
            }
            body, headers = view_submission(view, "U0REQ", answers)
            assert (
                httpx.post(f"{bot}/slack/events", content=body, headers=headers).status_code == 200
            )
            fake.wait_for("chat.postMessage", lambda c: c.get("channel") == "C0REMOTE", 20)

            for email, name in (
                ("ada@acme.example", "Ada Lovelace"),
                ("bruno@globex.example", "Bruno Keller"),
            ):
                url = _invitation_link(provider_dir, email)
                assert url.startswith(provider)  # the provider's own signer pages
                page = httpx.get(url, timeout=30).text
                values = {
                    m: f"{name} value"
                    for m in re.findall(r"<input id=\"(field_[A-Za-z0-9_]+)\" name=", page)
                }
                initials = "".join(part[0] for part in name.split())
                form = {"name": name, "mode": "typed", "typed": name, "consent": "yes"}
                signed = httpx.post(
                    f"{url}/sign", data={**form, "initials": initials, **values}, timeout=30
                )
                assert signed.status_code == 303, signed.text[:2000]

            fake.wait_for("files.completeUploadExternal", lambda c: "C0REMOTE" in str(c.params), 60)
            deadline = time.monotonic() + 20
            while True:
                rows = db.run_sync(lambda s: list(s.query(SignRequest).all()))  # type: ignore[attr-defined]
                if rows and rows[0].status == "COMPLETED":
                    break
                assert time.monotonic() < deadline, [r.status for r in rows]
                time.sleep(0.2)
        db.dispose()


@pytest.fixture(autouse=True)
def _no_slack_in_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider subprocess inherits the environment: keep any Slack settings out of it."""
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
