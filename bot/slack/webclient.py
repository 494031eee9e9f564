"""The bot's Slack Web API clients, all made here so they all retry alike.

slack_sdk's async client retries only a failed connection by default. Slack answers bursts
(thirty envelopes completing at once, a sequential envelope inviting its next group) with
HTTP 429 and ``Retry-After``, and now and then a 503; without retries each of those is a
thread reply, DM or signed PDF that silently never arrives. So every client also:

* waits out a first 429 when Slack asks for at most :data:`MAX_RETRY_AFTER` seconds (a
  longer wait fails the call as before, and it is logged);
* retries a 503 (Slack did not take the request), after a short pause; two retries per call
  at most, of either kind. A 500 is not retried: Slack may have posted the message before
  failing, and a post must not double.

The waits stay short because most calls are made while someone waits (a modal, a button);
the webhook notices are queued tasks, which also retry later, with backoff, what these
retries could not get through (:mod:`bot.slack.notices`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

MAX_RETRY_AFTER = 10
"""Seconds: the longest ``Retry-After`` the bot waits out within one call."""


class SlackPushback(AsyncRetryHandler):
    """Slack saying "not now": a 503 is retried after a short backoff (0.5 s, then 1 s); a
    429 once, on the first attempt, after its ``Retry-After`` when that is short enough."""

    def __init__(self, max_retry_count: int = 2, max_wait: float = MAX_RETRY_AFTER) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    @staticmethod
    def _retry_after(response: HttpResponse) -> float:
        for name, values in response.headers.items():
            if name.lower() == "retry-after" and values:
                try:
                    return max(float(values[0]), 0.0)
                except ValueError:
                    return 1.0
        return 1.0

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None:
            return False
        if response.status_code == 429:
            short = self._retry_after(response) <= self.max_wait
            return short and state.current_attempt == 0
        return response.status_code == 503

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None or response.status_code != 429:
            await super().prepare_for_next_attempt_async(
                state=state, request=request, response=response, error=error
            )
            return
        state.next_attempt_requested = True
        await asyncio.sleep(self._retry_after(response) + random.random() / 2)  # noqa: S311
        state.increment_current_attempt()


def web_client(**kwargs: Any) -> AsyncWebClient:
    """An ``AsyncWebClient`` (same arguments) with the bot's retry policy."""
    return AsyncWebClient(
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            SlackPushback(),
        ],
        **kwargs,
    )
