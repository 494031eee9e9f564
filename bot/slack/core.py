"""What every part of the bot shares: the database, the provider, the Slack client, and the
few messages several handlers post (the status message, DMs, ephemeral answers).

Slack calls made *after* the provider did its work never undo that work when Slack refuses
(a channel the bot left, a user who is gone): they are logged and the flow goes on, since the
request row and the provider are the truth and the next update repairs the message.

**Which workspace's token.** With many workspaces (OAuth) every Slack call must carry the
token of the workspace it is for. :attr:`Core.client` is the client *bound* to the work under
way: for a request from Slack, the one Bolt authorized for that request's workspace (bound by
:meth:`Core.bind_request`, a global middleware); for background work, the one of the request
row's ``team_id`` (``with core.bound(await core.client_for(row.team_id))``). The binding is a
context variable, so concurrent requests never see each other's, and tasks started while it
is bound keep it. With one workspace by token, the token's client is used when nothing is
bound; with OAuth, a Slack call outside any binding is a bug and raises.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.db import Database
from bot.provider import Capabilities, ProviderClient
from bot.provider.errors import ProviderError
from bot.slack import requests, store, views
from bot.slack.models import SignRequest

log = logging.getLogger("signbot.slack")

T = TypeVar("T")

_bound: contextvars.ContextVar[AsyncWebClient | None] = contextvars.ContextVar(
    "signbot_slack_client", default=None
)
_durable: contextvars.ContextVar[bool] = contextvars.ContextVar("signbot_durable", default=False)


def transient(exc: SlackApiError) -> bool:
    """Slack said "not now" without doing anything: rate limited (429), or unavailable (503),
    after the client's own retries. Not a 500 or a gateway error: Slack may have posted
    before failing, and a post must not double."""
    status = getattr(exc.response, "status_code", 200)
    error = str(exc.response.get("error") or "")
    return status in (429, 503) or error in ("ratelimited", "service_unavailable")


class Core:
    def __init__(
        self,
        *,
        db: Database,
        provider: ProviderClient,
        client_for: Callable[[str], Awaitable[AsyncWebClient | None]],
        seal: Callable[[str], str],
        unseal: Callable[[str], str],
        default_client: AsyncWebClient | None = None,
    ) -> None:
        """``client_for(team_id)``: the workspace's client, None when signbot is not installed
        there (any more). ``default_client``: the single workspace's, in token mode."""
        self.db = db
        self.provider = provider
        self._client_for = client_for
        self._default = default_client
        self.seal, self.unseal = seal, unseal

    # ------------------------------------------------------------ the workspace's client

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client of the workspace the current work is for (see the module)."""
        client = _bound.get() or self._default
        if client is None:
            raise RuntimeError("a Slack call outside any workspace (bind a client first)")
        return client

    async def client_for(self, team_id: str) -> AsyncWebClient | None:
        """The client of ``team_id``; None when signbot is not installed there (any more)."""
        return await self._client_for(team_id)

    @contextmanager
    def bound(self, client: AsyncWebClient) -> Iterator[AsyncWebClient]:
        """Slack calls in this block (and tasks it starts) go through ``client``."""
        token = _bound.set(client)
        try:
            yield client
        finally:
            _bound.reset(token)

    async def bind_request(self, context: Any, next: Callable[[], Awaitable[Any]]) -> Any:
        """Bolt global middleware: the request's work uses the client Bolt authorized for its
        workspace. Not reset afterwards on purpose: Bolt runs a request's middleware one after
        the other (``next()`` only says "go on") and starts the listener later, in a task that
        copies the request task's context; each HTTP request runs in a task of its own."""
        if context.client is not None and context.client.token:
            _bound.set(context.client)
        return await next()

    # ------------------------------------------------------------ provider and rows

    async def caps(self) -> Capabilities:
        """The provider's extensions; none while it cannot be asked (buttons hidden, never
        shown for something that then fails)."""
        try:
            return await self.provider.capabilities()
        except ProviderError as exc:
            log.warning("provider capabilities unknown for now: %s", exc)
            return Capabilities()

    async def load(self, request_id: str) -> SignRequest | None:
        return await self.db.run(lambda s: s.get(SignRequest, request_id))

    async def find(self, team_id: str, ref: str) -> SignRequest | None:
        return await self.db.run(lambda s: store.find(s, team_id, ref))

    async def change(
        self, request_id: str, fn: Callable[[SignRequest], T]
    ) -> tuple[SignRequest, T]:
        """``fn(row)`` on the locked row in one transaction; the row and what ``fn`` said."""

        def work(session: Session) -> tuple[SignRequest, T]:
            row = session.get(SignRequest, request_id, with_for_update=True)
            if row is None:
                raise LookupError(request_id)
            result = fn(row)
            session.add(row)
            return row, result

        return await self.db.run(work)

    async def view(self, row: SignRequest, message: str | None = None) -> views.RequestView:
        caps = await self.caps()
        view = requests.view_of(row, can_remind=caps.remind, can_cancel=caps.void)
        return replace(view, message=message) if message else view

    def sign_url(self, recipient: dict[str, Any]) -> str | None:
        sealed = recipient.get("sign_url_sealed")
        if not sealed:
            return None
        try:
            return self.unseal(sealed)
        except Exception:  # a rotated deployment secret: the link is simply unknown now
            log.warning("a stored sign link could not be opened")
            return None

    # ------------------------------------------------------------ messages

    @contextmanager
    def durably(self) -> Iterator[None]:
        """Slack calls made inside are a queued post's (a task): a transient refusal raises,
        so that the task is retried later, instead of being logged and dropped."""
        marker = _durable.set(True)
        try:
            yield
        finally:
            _durable.reset(marker)

    async def call(self, what: str, method: Callable[..., Any], **params: Any) -> Any:
        """One Slack call whose refusal must not stop the flow: the answer, or None. Inside
        :meth:`durably`, "not now" (429, Slack's 5xx) raises instead: the task retries."""
        try:
            return await method(**params)
        except SlackApiError as exc:
            if _durable.get() and transient(exc):
                raise
            log.warning("Slack refused %s: %s", what, exc.response.get("error"))
            return None

    async def post_status(self, row: SignRequest, message: str | None = None) -> SignRequest:
        """The channel's status message, its ts kept on the row."""
        body = views.status_message(await self.view(row, message))
        try:
            posted = await self.client.chat_postMessage(channel=row.channel_id, **body)
        except SlackApiError as exc:
            await self.tell(
                row.requester_id,
                row.requester_id,
                f"Request #{row.number} is saved, but signbot cannot post in that channel "
                f"({exc.response.get('error')}); invite it with /invite @signbot.",
            )
            return row
        ts, channel = posted["ts"], posted["channel"]

        def keep(r: SignRequest) -> None:
            store.touch(r, message_ts=ts, channel_id=channel)

        row, _ = await self.change(row.id, keep)
        return row

    async def refresh_status(self, row: SignRequest) -> None:
        """The status message updated in place, when there is one."""
        if not row.message_ts:
            return
        body = views.status_message(await self.view(row))
        await self.call(
            "chat.update",
            self.client.chat_update,
            channel=row.channel_id,
            ts=row.message_ts,
            **body,
        )

    async def thread(self, row: SignRequest, text: str) -> None:
        """A reply under the status message (nothing when it was never posted)."""
        if row.message_ts:
            await self.call(
                "chat.postMessage",
                self.client.chat_postMessage,
                channel=row.channel_id,
                thread_ts=row.message_ts,
                text=text,
            )

    async def dm(self, user_id: str, **message: Any) -> Any:
        """A direct message (posting to a user id opens the DM); the answer, or None."""
        return await self.call("a DM", self.client.chat_postMessage, channel=user_id, **message)

    async def tell(self, channel: str, user_id: str, text: str) -> None:
        """An ephemeral message to one person; a DM when the channel refuses it."""
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user_id, text=text)
        except SlackApiError:
            await self.dm(user_id, text=text)

    async def reply(self, body: dict[str, Any], respond: Any, payload: dict[str, Any]) -> None:
        """An answer only the clicking (or typing) person sees: through the interaction's
        ``response_url`` when there is one, else an ephemeral message where they are."""
        user_id = (body.get("user") or {}).get("id") or body.get("user_id") or ""
        if body.get("response_url") and respond is not None:
            try:
                await respond(replace_original=False, **payload)
                return
            except Exception as exc:  # an expired response_url (30 min): fall back
                log.info("response_url refused the answer (%s); posting it instead", exc)
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id") or user_id
        await self.tell(channel, user_id, payload.get("text") or "")


def team_of(body: dict[str, Any]) -> str:
    """The workspace of any request Slack sends (commands, interactions, events)."""
    team = body.get("team")
    if isinstance(team, dict) and team.get("id"):
        return str(team["id"])
    return str(body.get("team_id") or (body.get("user") or {}).get("team_id") or "")


def user_of(body: dict[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or "")
    return str(body.get("user_id") or user or "")
