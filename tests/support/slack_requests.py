"""Requests exactly as Slack sends them to the bot, signed with the signing secret.

Slash commands and interactions are form-encoded (interactions as one ``payload=<json>``
field), events are JSON; all carry ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` =
``"v0=" + hex HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")``. Each builder returns
``(body bytes, headers)`` to POST as is. :func:`forge` breaks a signed request in the ways an
attacker would (another secret, a replayed old timestamp, no signature).

:func:`state_values` turns a view the bot built plus the answers a test wants into the
``view.state.values`` Slack would send back, starting from the view's own initial values.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any, Literal
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"
TEAM_ID = "T0TEST"
APP_ID = "A0APP"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
_seq = itertools.count(1)

Request = tuple[bytes, dict[str, str]]


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict:
    """The two signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def _request(body: bytes, content_type: str, secret: str, timestamp: int | None) -> Request:
    headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
    headers.update(sign(body, secret, timestamp))
    return body, headers


def _form(fields: dict[str, str], secret: str, timestamp: int | None) -> Request:
    body = urlencode(fields).encode()
    return _request(body, "application/x-www-form-urlencoded", secret, timestamp)


def _trigger() -> str:
    n = next(_seq)
    return f"{n}.{int(time.time())}.{hashlib.sha1(str(n).encode()).hexdigest()[:32]}"


def slash_command(
    text: str = "",
    *,
    user_id: str = "U0USER",
    channel_id: str = "C0CHAN",
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    response_url: str = "https://hooks.slack.com/commands/T0TEST/1/abc",
    command: str = "/sign",
    user_name: str = "alice",
    channel_name: str = "general",
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> Request:
    """``/sign text`` typed by ``user_id`` in ``channel_id``."""
    fields = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "team_domain": "test",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger(),
    }
    return _form(fields, secret, timestamp)


def _envelope(kind: str, user_id: str, team_id: str) -> dict[str, Any]:
    return {
        "type": kind,
        "team": {"id": team_id, "domain": "test"},
        "user": {"id": user_id, "username": "alice", "name": "alice", "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": _trigger(),
        "is_enterprise_install": False,
        "enterprise": None,
    }


def interaction(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> Request:
    """Any interaction payload, form-encoded as ``payload=<json>``."""
    return _form({"payload": json.dumps(payload)}, secret, timestamp)


def block_actions(payload: dict[str, Any], **kwargs: Any) -> Request:
    """A ``block_actions`` payload (build one with :func:`button_click`)."""
    return interaction(payload, **kwargs)


def button_click(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0USER",
    team_id: str = TEAM_ID,
    channel_id: str | None = "C0CHAN",
    message: dict[str, Any] | None = None,
    message_ts: str = "1700000000.000100",
    view: dict[str, Any] | None = None,
    block_id: str = "request_actions",
    response_url: str = "https://hooks.slack.com/actions/T0TEST/1/abc",
) -> dict[str, Any]:
    """The ``block_actions`` payload of a button click in a message (or in ``view``)."""
    payload = _envelope("block_actions", user_id, team_id)
    action = {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "action_ts": f"{time.time():.6f}",
    }
    payload["actions"] = [action]
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = view
    else:
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel_id, "name": "general"}
        payload["message"] = {"type": "message", "ts": message_ts, **(message or {})}
        payload["response_url"] = response_url
    return payload


def select_in_view(
    view: dict[str, Any],
    block_id: str,
    action_id: str,
    value: str,
    *,
    user_id: str = "U0USER",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when a ``dispatch_action`` static_select in
    an open modal changes (``view`` as the fake returned it, with its id and hash)."""
    payload = _envelope("block_actions", user_id, team_id)
    option = _find_option(_element(view, block_id), value)
    payload["container"] = {"type": "view", "view_id": view.get("id")}
    payload["view"] = {**view, "state": {"values": state_values(view, {block_id: value})}}
    payload["actions"] = [
        {
            "type": "static_select",
            "action_id": action_id,
            "block_id": block_id,
            "selected_option": option,
            "action_ts": f"{time.time():.6f}",
        }
    ]
    return payload


def view_submission(
    view: dict[str, Any],
    user: str = "U0USER",
    values: dict[str, Any] | None = None,
    *,
    team_id: str = TEAM_ID,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> Request:
    """Submitting ``view`` (as the bot built it). ``values`` are either Slack's own
    ``state.values`` (keys map to ``{action_id: {...}}``) or simple answers by block id given
    to :func:`state_values`."""
    is_raw = values and all(
        isinstance(v, dict) and v and all(isinstance(s, dict) and "type" in s for s in v.values())
        for v in values.values()
    )
    state = values if is_raw else state_values(view, values or {})
    payload = _envelope("view_submission", user, team_id)
    view_id = view.get("id") or f"V{next(_seq):08X}"
    payload["view"] = {
        "id": view_id,
        "team_id": team_id,
        "type": view.get("type", "modal"),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": state},
        "hash": view.get("hash", f"{int(time.time())}.abc"),
        "root_view_id": view_id,
        "previous_view_id": None,
        "app_id": APP_ID,
        "bot_id": "B0BOT",
        **{k: v for k, v in view.items() if k in ("title", "blocks", "submit", "close")},
    }
    payload["response_urls"] = []
    return interaction(payload, secret=secret, timestamp=timestamp)


def event_callback(
    event: dict[str, Any],
    team_id: str = TEAM_ID,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> Request:
    """An Events API delivery (e.g. ``{"type": "app_home_opened", "user": "U…"}``)."""
    now = int(time.time())
    body = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": {"event_ts": f"{now}.000100", **event},
        "type": "event_callback",
        "event_id": f"Ev{next(_seq):08X}",
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": "U0BOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return _request(json.dumps(body).encode(), "application/json", secret, timestamp)


def url_verification(challenge: str, *, secret: str = SIGNING_SECRET) -> Request:
    body = {"token": "legacy", "challenge": challenge, "type": "url_verification"}
    return _request(json.dumps(body).encode(), "application/json", secret, None)


def forge(
    request: Request,
    how: Literal["secret", "stale", "missing", "body"] = "secret",
    secret: str = SIGNING_SECRET,
) -> Request:
    """``request`` made unacceptable: signed with another secret, correctly signed but six
    minutes old (a replay; ``secret`` is the one the request was signed with), without
    signature headers, or with a body changed after signing."""
    body, headers = request
    headers = dict(headers)
    if how == "secret":
        headers.update(sign(body, "not-the-secret", int(headers["X-Slack-Request-Timestamp"])))
    elif how == "stale":
        headers.update(sign(body, secret, int(time.time()) - 6 * 60))
    elif how == "missing":
        headers.pop("X-Slack-Signature")
        headers.pop("X-Slack-Request-Timestamp")
    else:
        body = body + b"&x=1" if b"=" in body[:20] else body.replace(b"}", b',"x":1}', 1)
    return body, headers


# --- view state -----------------------------------------------------------------------------
def _inputs(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in view.get("blocks", []) if b.get("type") == "input"]


def _element(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    for block in _inputs(view):
        if block.get("block_id") == block_id:
            return block["element"]
    known = [b.get("block_id") for b in _inputs(view)]
    raise KeyError(f"no input block {block_id!r} in the view (it has {known})")


def _find_option(element: dict[str, Any], value: str) -> dict[str, Any]:
    for option in element.get("options", []):
        if option["value"] == value:
            return option
    raise KeyError(f"{value!r} is not an option of {element.get('action_id')!r}")


def _state(element: dict[str, Any], answer: Any, given: bool) -> dict[str, Any]:
    kind = element["type"]
    out: dict[str, Any] = {"type": kind}
    if kind in ("static_select", "radio_buttons"):
        if not given:
            out["selected_option"] = element.get("initial_option")
        else:
            out["selected_option"] = None if answer is None else _find_option(element, answer)
    elif kind == "checkboxes":
        chosen = [_find_option(element, v) for v in answer or []] if given else None
        out["selected_options"] = chosen if given else element.get("initial_options", [])
    elif kind == "users_select":
        out["selected_user"] = answer if given else element.get("initial_user")
    elif kind == "multi_users_select":
        out["selected_users"] = list(answer or []) if given else element.get("initial_users", [])
    elif kind == "conversations_select":
        initial = element.get("initial_conversation")
        if initial is None and element.get("default_to_current_conversation"):
            initial = "C0CHAN"  # where the test's /sign was typed, unless it says otherwise
        out["selected_conversation"] = answer if given else initial
    elif kind == "file_input":
        out["files"] = list(answer or []) if given else []
    else:
        out["value"] = answer if given else element.get("initial_value")
    return out


def state_values(view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """``view.state.values`` for ``view`` with ``answers`` (block id → text, option value,
    user id(s), channel id, checked values or file objects); unanswered inputs keep the
    view's initial values, as in Slack. Unknown block ids raise, to catch a renamed block."""
    for block_id in answers:
        _element(view, block_id)
    out: dict[str, Any] = {}
    for block in _inputs(view):
        element = block["element"]
        given = block["block_id"] in answers
        state = _state(element, answers.get(block["block_id"]), given)
        out[block["block_id"]] = {element["action_id"]: state}
    return out
