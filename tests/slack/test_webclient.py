"""The bot's Slack clients against the fake Web API: a short rate limit and a 503 are retried
(a notice is not lost to a burst), a long wait is not, nor a 500 (Slack may have posted)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from bot.slack.webclient import MAX_RETRY_AFTER, web_client
from tests.support.slack_fake import SlackFake, slack_fake


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    with slack_fake() as served:
        yield served


async def test_a_short_rate_limit_and_a_server_error_are_retried(fake: SlackFake) -> None:
    client = web_client(token=fake.token, base_url=fake.base_url)
    fake.rate_limit_next("chat.postMessage", retry_after=1)
    fake.server_error_next("chat.postMessage", 503)
    started = time.monotonic()
    posted = await client.chat_postMessage(channel="C0CHAN", text="✅ Ada signed.")
    assert posted["ok"]
    assert time.monotonic() - started >= 1  # Slack's Retry-After was honoured
    assert len(fake.calls("chat.postMessage")) == 3
    assert [m["text"] for m in fake.messages.values()] == ["✅ Ada signed."]  # posted once


async def test_a_long_rate_limit_or_a_lasting_outage_fails_promptly(fake: SlackFake) -> None:
    client = web_client(token=fake.token, base_url=fake.base_url)
    fake.rate_limit_next("chat.postMessage", retry_after=MAX_RETRY_AFTER * 6)
    started = time.monotonic()
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0CHAN", text="x")
    assert raised.value.response.status_code == 429
    assert time.monotonic() - started < 5

    for _ in range(3):
        fake.server_error_next("chat.update", 503)
    with pytest.raises(SlackApiError):
        await client.chat_update(channel="C0CHAN", ts="1.2", text="x")
    assert len(fake.calls("chat.update")) == 3  # two retries, not a storm
    assert not fake.messages


async def test_a_500_is_not_retried_as_slack_may_have_posted(fake: SlackFake) -> None:
    client = web_client(token=fake.token, base_url=fake.base_url)
    fake.server_error_next("chat.postMessage", 500)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0CHAN", text="✅ Ada signed.")
    assert len(fake.calls("chat.postMessage")) == 1
