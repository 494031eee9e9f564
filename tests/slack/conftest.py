"""The bot's deployments for the Slack tests, and what a test does through Slack.

:func:`start` serves one whole signbot app with Slack pointed at the local fake (as in
``test_bot_e2e``); ``extensions=False`` puts a proxy between the bot and the service that
answers 404 for signbot's extensions (``void``, ``remind``, the OpenAPI document), which is
what the hosted Certyneo looks like to the bot.

Helpers drive the bot exactly as Slack would (signed requests over HTTP): :meth:`Deployment.
new_request` types ``/sign``, submits the modal with an uploaded PDF, and waits for the row
to get its status message.
"""

from __future__ import annotations

import email as email_parser
import email.policy as email_policy
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bot import migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.envelopes.models import Envelope as ServiceEnvelope
from bot.slack.models import BotSetting, SignRequest
from tests.conftest import make_pdf
from tests.support.servers import free_port, uvicorn_thread
from tests.support.slack_fake import Call, SlackFake, slack_fake
from tests.support.slack_requests import (
    SIGNING_SECRET,
    TEAM_ID,
    block_actions,
    button_click,
    event_callback,
    slash_command,
    view_submission,
)

USERS = {
    "U0REQ": ("rita", "Rita Requester", "rita@acme.example"),
    "U0ADA": ("ada", "Ada Lovelace", "ada@acme.example"),
    "U0BOB": ("bob", "Bob Builder", "bob@acme.example"),
    "U0CAR": ("carol", "Carol Member", "carol@acme.example"),
    "U0APP": ("alan", "Alan Approver", "alan@acme.example"),
    "U0EVE": ("eve", "Eve Stranger", "eve@acme.example"),
}


class Deployment:
    def __init__(self, base: str, db: Database, fake: SlackFake, data_dir: Path) -> None:
        self.base, self.db, self.fake, self.data_dir = base, db, fake, data_dir
        self._answers = 0

    # --- Slack → bot ------------------------------------------------------------------------
    def post(self, request: tuple[bytes, dict[str, str]]) -> httpx.Response:
        body, headers = request
        return httpx.post(f"{self.base}/slack/events", content=body, headers=headers, timeout=30)

    def answer_url(self) -> tuple[str, str]:
        """A fresh ``response_url`` on the fake and its name (to wait for the answer)."""
        self._answers += 1
        name = f"answer-{self._answers}-{time.monotonic_ns()}"
        return self.fake.response_url(name), name

    def answer(self, name: str, timeout: float = 20) -> Call:
        """What the bot said through the response_url ``name``."""
        return self.fake.wait_for("response_url", lambda c: c.get("_name") == name, timeout)

    def command(self, text: str, user: str, *, team_id: str = TEAM_ID) -> Call:
        """``/sign text`` typed by ``user``; the bot's ephemeral answer (after the ack)."""
        url, name = self.answer_url()
        response = self.post(
            slash_command(
                text, user_id=user, channel_id="C0DEALS", team_id=team_id, response_url=url
            )
        )
        assert response.status_code == 200, response.text
        return self.answer(name)

    def click(
        self,
        action_id: str,
        value: str,
        user: str,
        *,
        channel: str = "C0DEALS",
        message_ts: str = "1700000000.000100",
        team_id: str = TEAM_ID,
    ) -> str:
        """A button click in a message; the name of its response_url (see :meth:`answer`)."""
        url, name = self.answer_url()
        payload = button_click(
            action_id,
            value,
            user_id=user,
            team_id=team_id,
            channel_id=channel,
            message_ts=message_ts,
            response_url=url,
        )
        response = self.post(block_actions(payload))
        assert response.status_code == 200, response.text
        return name

    def event(self, event: dict[str, Any], team_id: str = TEAM_ID) -> None:
        response = self.post(event_callback(event, team_id))
        assert response.status_code == 200, response.text

    # --- a request from /sign to its status message -----------------------------------------
    def new_request(
        self,
        subject: str,
        *,
        requester: str = "U0REQ",
        members: tuple[str, ...] = (),
        outside: str = "",
        approver: str | None = None,
        sequential: bool = False,
        team_id: str = TEAM_ID,
    ) -> SignRequest:
        started = time.monotonic()
        typed = slash_command(
            "", user_id=requester, channel_id="C0DEALS", team_id=team_id,
            response_url=self.fake.response_url("sign"),
        )  # fmt: skip
        assert self.post(typed).status_code == 200
        opened = self.fake.wait_for(
            "views.open",
            lambda c: c.at >= started and _as_dict(c["view"]).get("callback_id") == "sign_submit",
            timeout=10,
        )
        view = _as_dict(opened["view"])
        pdf = self.fake.add_file(f"{subject}.pdf", make_pdf(1))
        answers: dict[str, Any] = {
            "file": [pdf],
            "subject": subject,
            "members": list(members),
            "outside": outside,
            "order": "sequential" if sequential else "parallel",
            "channel": "C0DEALS",
        }
        if approver:
            answers.update(approval=["approval"], approver=approver)
        response = self.post(view_submission(view, requester, answers, team_id=team_id))
        assert response.status_code == 200, response.text
        assert "errors" not in response.text, response.text
        return self.row(lambda r: r.subject == subject and bool(r.message_ts))

    # --- reading state ----------------------------------------------------------------------
    def row(self, predicate: Callable[[SignRequest], bool], timeout: float = 20) -> SignRequest:
        """The first request row matching ``predicate``, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.db.run_sync(lambda s: s.query(SignRequest).all())  # type: ignore[attr-defined]
            found = [r for r in rows if predicate(r)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, "no request row matched in time"
            time.sleep(0.05)

    def envelope(self, envelope_id: str) -> ServiceEnvelope | None:
        """The envelope as the signing service holds it (None once deleted)."""
        return self.db.run_sync(lambda s: s.get(ServiceEnvelope, envelope_id))

    def mails(self, kind: str, address: str) -> list[Path]:
        slug = address.replace("@", "-").replace(".", "-")
        return sorted((self.data_dir / "mail").glob(f"*{kind}-{slug}*.eml"))

    def mail_link(self, kind: str, address: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for path in self.mails(kind, address):
                message = email_parser.message_from_bytes(
                    path.read_bytes(), policy=email_policy.default
                )
                text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
                found = re.search(r"https?://\S+/sign/[A-Za-z0-9_-]+", text)
                if found:
                    return found.group(0)
            assert time.monotonic() < deadline, f"no {kind} mail for {address}"
            time.sleep(0.05)

    def dm(self, user: str, predicate: Callable[[Call], bool] | None = None, timeout: float = 20):
        """A chat.postMessage to ``user`` (a DM), matching ``predicate``."""
        return self.fake.wait_for(
            "chat.postMessage",
            lambda c: c.get("channel") == user and (predicate is None or predicate(c)),
            timeout,
        )


def _as_dict(view: object) -> dict:
    return json.loads(view) if isinstance(view, str) else view  # type: ignore[return-value]


def text_of(call: Call) -> str:
    """Everything a message or view shows, as one string (for assertions)."""
    return json.dumps({k: call.params.get(k) for k in ("text", "blocks", "view")})


def buttons(blocks: Any) -> dict[str, dict[str, Any]]:
    """The buttons of some blocks by action id (accessories included)."""
    out: dict[str, dict[str, Any]] = {}
    for block in _as_dict(blocks) if isinstance(blocks, str) else blocks or []:
        elements = list(block.get("elements") or [])
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") == "button":
                out[element["action_id"]] = element
    return out


def sign(url: str, name: str) -> None:
    """Sign on the signer page as ``name`` (an uploaded PDF: a signature block, no fields)."""
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200, page.text[:500]
    form = {"name": name, "mode": "typed", "typed": name, "consent": "yes"}
    initials = "".join(part[0] for part in name.split())
    signed = httpx.post(f"{url}/sign", data={**form, "initials": initials}, timeout=30)
    assert signed.status_code == 303, signed.text[:2000]


# --- a provider without signbot's extensions --------------------------------------------------
EXTENSION_TAILS = ("/void", "/remind", "/rotate-secret")


def no_extensions_proxy(target: str) -> FastAPI:
    """Forwards everything to ``target`` but signbot's extensions and its OpenAPI document,
    which answer 404 as on a provider that has only Certyneo's routes."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    client = httpx.AsyncClient(base_url=target, timeout=30)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def forward(path: str, request: Request) -> Response:
        if path == "openapi.json" or ("/" + path).endswith(EXTENSION_TAILS):
            return JSONResponse({"error": "Not found", "code": "NOT_FOUND"}, status_code=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        answer = await client.request(
            request.method,
            "/" + path,
            params=request.query_params,
            content=await request.body(),
            headers=headers,
        )
        drop = ("content-length", "transfer-encoding", "content-encoding", "connection")
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in drop}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    return app


@contextmanager
def start(data_dir: Path, *, extensions: bool = True) -> Iterator[Deployment]:
    with slack_fake() as fake:
        for user_id, (name, real, address) in USERS.items():
            fake.add_user(user_id, name, real_name=real, email=address)
        port = free_port()
        with _proxy(f"http://127.0.0.1:{port}", enabled=not extensions) as provider_url:
            settings = Settings(
                data_dir=data_dir,
                port=port,
                jobs_interval_seconds=0.2,
                webhook_retry_base_seconds=0.5,
                slack_signing_secret=SIGNING_SECRET,
                slack_bot_token="xoxb-test-token",
                slack_api_url=fake.base_url,
                rate_limit_enabled=False,
                provider_url=provider_url,
            )
            db = Database(settings.effective_database_url)
            migrations.upgrade(db)
            if provider_url is not None:
                # another provider URL needs its own key (the bot never sends a local one away)
                settings = settings.model_copy(update={"provider_key": _live_key(db)})
            with uvicorn_thread(create_app(settings, db), port) as base:
                deadline = time.monotonic() + 20
                while db.run_sync(lambda s: s.get(BotSetting, "webhook_secret")) is None:
                    assert time.monotonic() < deadline, "the bot never registered its webhook"
                    time.sleep(0.05)
                yield Deployment(base, db, fake, data_dir)
            db.dispose()


def _live_key(db: Database) -> str:
    from bot.accounts import service as accounts

    def work(session: Any) -> str:
        account = accounts.default_account(session)
        scopes = ["envelopes:read", "envelopes:write", "webhooks:write"]
        return accounts.create_key(session, account.id, "live", "proxied bot", scopes).secret

    return db.run_sync(work)


@contextmanager
def _proxy(target: str, *, enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    with uvicorn_thread(no_extensions_proxy(target)) as base:
        yield base


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One app per test module, with a provider that has signbot's extensions."""
    with start(tmp_path_factory.mktemp("slack-bot")) as running:
        yield running
