"""A fake Slack Web API on loopback: the one edge of the system the tests fake (DESIGN.md).

A real HTTP server (stdlib ``ThreadingHTTPServer`` in a daemon thread) answering
``POST|GET /api/<method>`` the way Slack does — ``{"ok": true, ...}`` with HTTP 200, errors as
``{"ok": false, "error": "..."}`` — so the bot runs its real ``AsyncWebClient`` against it
(``base_url=fake.base_url``). Every call is recorded (method, params, token) for assertions.

Besides the API methods, it serves what Slack serves elsewhere: the upload URLs that
``files.getUploadURLExternal`` hands out, ``url_private(_download)`` links (bot token
required), and ``response_url``\\ s (:meth:`SlackFake.response_url`).

Views given to ``views.open|update|push|publish`` are validated with slack_sdk's models, and
messages must have ``text`` or ``blocks``: Slack refuses those with ``invalid_arguments`` /
``no_text`` too, and a test should fail the same way production would.

Many workspaces: the fake is also a Slack app with OAuth credentials (``client_id``,
``client_secret``). A test registers an install with :meth:`SlackFake.add_install_code` (the
``code`` Slack would put in the redirect after the user clicked "Allow"); ``oauth.v2.access``
exchanges it once for a new bot token of that workspace, which every method then accepts,
``auth.test`` answering with that workspace's identity. :meth:`SlackFake.revoke_team` does
what an uninstall does to the tokens (``token_revoked`` afterwards).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

JSON_PARAMS = frozenset({"blocks", "view", "attachments", "files", "metadata", "profile"})
"""Params Slack takes as JSON whether they come in a JSON body or as form strings; decoded so
assertions read the same whichever way the client sent them."""


@dataclass
class Call:
    """One request as the fake received it."""

    method: str
    """The API method (``chat.postMessage``), or ``upload`` / ``download`` / ``response_url``."""
    params: dict[str, Any]
    token: str | None
    http_method: str = "POST"
    content_type: str = ""
    at: float = field(default_factory=time.monotonic)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


class SlackFake:
    """State and behaviour of the fake; :func:`slack_fake` serves it over HTTP."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        team_id: str = "T0TEST",
        team: str = "Test Workspace",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A0APP",
    ) -> None:
        self.tokens = {token}
        self.token = token
        self.team_id, self.team, self.app_id = team_id, team, app_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.root = ""
        """``http://127.0.0.1:PORT``, set once serving."""
        self.users: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.homes: dict[str, dict[str, Any]] = {}
        self.dms: dict[str, str] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, list[tuple[str, int, dict[str, str]]]] = {}
        self._calls: list[Call] = []
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self.client_id = "1111111111.2222222222"
        self.client_secret = "fake-client-secret"
        self.identities: dict[str, dict[str, Any]] = {}
        """Bot tokens issued by ``oauth.v2.access`` → the workspace and bot they belong to."""
        self.revoked: set[str] = set()
        self._codes: dict[str, dict[str, Any]] = {}
        self.add_user(bot_user_id, "signbot", is_bot=True)

    # --- configuration ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What ``AsyncWebClient(base_url=...)`` takes."""
        return f"{self.root}/api/"

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/Paris",
    ) -> dict[str, Any]:
        """A workspace member as ``users.info`` describes one."""
        real = real_name or name
        profile: dict[str, Any] = {"real_name": real, "display_name": name}
        if email:
            profile["email"] = email
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "deleted": deleted,
            "is_bot": is_bot,
            "is_app_user": False,
            "tz": tz,
            "profile": profile,
        }
        with self._cond:
            self.users[user_id] = user
        return user

    def add_file(
        self, name: str, content: bytes, mimetype: str = "application/pdf", file_id: str = ""
    ) -> dict[str, Any]:
        """A file someone uploaded (e.g. through the modal's file_input): its Slack object,
        whose ``url_private_download`` serves ``content`` to the bot token only."""
        file_id = file_id or self._id("F")
        info = self._file_object(file_id, name, name, mimetype, len(content))
        with self._cond:
            self.files[file_id] = info
            self.file_bytes[file_id] = content
        return dict(info)

    def add_install_code(
        self,
        team_id: str,
        team_name: str = "",
        *,
        installer: str = "U0REQ",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        scopes: str = "commands,chat:write,chat:write.public,im:write,users:read",
        redirect_uri: str | None = None,
        enterprise: dict[str, str] | None = None,
        is_enterprise_install: bool = False,
    ) -> str:
        """An install of this app into ``team_id`` that ``installer`` just allowed: the
        ``code`` Slack sends to the redirect URL, good for one ``oauth.v2.access``. When
        ``redirect_uri`` is given, the exchange must name the same one (as Slack requires)."""
        code = f"{self._id('C')}.{team_id}"
        with self._cond:
            self._codes[code] = {
                "team": {"id": team_id, "name": team_name or f"Workspace {team_id}"},
                "installer": installer,
                "bot_user_id": bot_user_id,
                "bot_id": bot_id,
                "scopes": scopes,
                "redirect_uri": redirect_uri,
                "enterprise": enterprise,
                "is_enterprise_install": is_enterprise_install,
            }
        return code

    def bot_token(self, team_id: str) -> str:
        """The latest bot token issued to ``team_id`` (not revoked)."""
        with self._cond:
            issued = [
                t
                for t, who in self.identities.items()
                if who["team_id"] == team_id and t not in self.revoked
            ]
        if not issued:
            raise AssertionError(f"no bot token was issued to {team_id}")
        return issued[-1]

    def revoke_team(self, team_id: str) -> None:
        """What uninstalling the app does: every token of ``team_id`` stops working."""
        with self._cond:
            for token, who in self.identities.items():
                if who["team_id"] == team_id:
                    self.revoked.add(token)
                    self.tokens.discard(token)

    def fail_next(self, method: str, error: str = "internal_error") -> None:
        """The next call of ``method`` answers ``{"ok": false, "error": error}``."""
        with self._cond:
            self._failures.setdefault(method, []).append((error, 200, {}))

    def rate_limit_next(self, method: str, retry_after: int = 1) -> None:
        """The next call of ``method`` answers HTTP 429 with ``Retry-After``, as Slack does."""
        with self._cond:
            headers = {"Retry-After": str(retry_after)}
            self._failures.setdefault(method, []).append(("ratelimited", 429, headers))

    def server_error_next(self, method: str, status: int = 503) -> None:
        """The next call of ``method`` answers HTTP ``status`` (Slack's own trouble)."""
        with self._cond:
            self._failures.setdefault(method, []).append(("service_unavailable", status, {}))

    def response_url(self, name: str = "") -> str:
        """A ``response_url`` on the fake; POSTs to it are recorded as ``response_url`` calls
        with the JSON body as params and ``_name`` set to ``name``."""
        return f"{self.root}/response/{quote(name or self._id('R'))}"

    # --- assertions -------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def last(self, method: str) -> Call:
        found = self.calls(method)
        if not found:
            seen = sorted({c.method for c in self.calls()})
            raise AssertionError(f"no {method} call (calls so far: {seen})")
        return found[-1]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
    ) -> Call:
        """The first call of ``method`` matching ``predicate``, waiting up to ``timeout`` s
        for it (the bot acts after acking, so its calls land after the HTTP answer)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for call in self._calls:
                    if call.method == method and (predicate is None or predicate(call)):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self._calls]
                    raise AssertionError(f"no matching {method} within {timeout} s: {seen}")
                self._cond.wait(left)

    async def async_wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
    ) -> Call:
        """:meth:`wait_for` from async code: waits in a worker thread, so the event loop
        keeps running the handler that is about to make the call."""
        return await asyncio.to_thread(self.wait_for, method, predicate, timeout)

    def reset(self) -> None:
        """Forget calls and pending failures; users, files and messages stay."""
        with self._cond:
            self._calls.clear()
            self._failures.clear()

    # --- plumbing ---------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):08X}"

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _file_object(
        self, file_id: str, name: str, title: str, mimetype: str, size: int
    ) -> dict[str, Any]:
        path = f"{self.root}/files-pri/{self.team_id}-{file_id}"
        return {
            "id": file_id,
            "created": int(time.time()),
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1].lower() if "." in name else "binary",
            "size": size,
            "user": self.bot_user_id,
            "is_external": False,
            "url_private": f"{path}/{quote(name)}",
            "url_private_download": f"{path}/download/{quote(name)}",
        }

    def record(self, call: Call) -> tuple[str, int, dict[str, str]] | None:
        """Store ``call``; returns the failure to answer with, if one was queued."""
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
            queued = self._failures.get(call.method)
            return queued.pop(0) if queued else None

    def handle(self, method: str, p: dict[str, Any], token: str | None) -> dict[str, Any]:
        """The answer to one API call (the token is already checked)."""
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        with self._cond:
            if method == "auth.test":
                return self._m_auth_test(p, token)
            return handler(p)

    def oauth_access(self, p: dict[str, Any], authorization: str) -> dict[str, Any]:
        """``oauth.v2.access``: the app's credentials (HTTP Basic, or ``client_id`` /
        ``client_secret`` in the body) and a registered code → a v2 install payload."""
        client_id, client_secret = p.get("client_id"), p.get("client_secret")
        if authorization.lower().startswith("basic "):
            try:
                pair = base64.b64decode(authorization[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return {"ok": False, "error": "invalid_client_id"}
            client_id, _, client_secret = pair.partition(":")
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        with self._cond:
            grant = self._codes.pop(str(p.get("code")), None)
            if grant is None:
                return {"ok": False, "error": "invalid_code"}
            if grant["redirect_uri"] and p.get("redirect_uri") != grant["redirect_uri"]:
                return {"ok": False, "error": "bad_redirect_uri"}
            team = grant["team"]
            token = f"xoxb-{team['id']}-{next(self._seq)}-{self._id('K').lower()}"
            self.tokens.add(token)
            self.identities[token] = {
                "team_id": team["id"],
                "team": team["name"],
                "user_id": grant["bot_user_id"],
                "bot_id": grant["bot_id"],
                "scopes": grant["scopes"],
                "enterprise_id": (grant["enterprise"] or {}).get("id"),
            }
        return {
            "ok": True,
            "app_id": self.app_id,
            "authed_user": {"id": grant["installer"]},
            "scope": grant["scopes"],
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": grant["bot_user_id"],
            "team": team,
            "enterprise": grant["enterprise"],
            "is_enterprise_install": grant["is_enterprise_install"],
        }

    # --- methods ----------------------------------------------------------------------------
    def _m_auth_test(self, p: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        who = self.identities.get(token or "")
        if who is not None:
            return {
                "ok": True,
                "url": f"https://{who['team_id'].lower()}.slack.com/",
                "team": who["team"],
                "user": "signbot",
                "team_id": who["team_id"],
                "user_id": who["user_id"],
                "bot_id": who["bot_id"],
                "enterprise_id": who["enterprise_id"],
                "is_enterprise_install": False,
            }
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": self.team,
            "user": "signbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _check_view(self, view: Any) -> dict[str, Any] | None:
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        try:
            View(**view).validate_json()
        except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
            messages = [f"[ERROR] {exc}"]
            meta = {"messages": messages}
            return {"ok": False, "error": "invalid_arguments", "response_metadata": meta}
        return None

    def _store_view(self, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
        view_id = view_id or self._id("V")
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._id('H')}",
            "root_view_id": view_id,
            "previous_view_id": None,
            "private_metadata": "",
            "callback_id": "",
            **view,
        }
        self.views[view_id] = stored
        return stored

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("trigger_id") and not p.get("interactivity_pointer"):
            return {"ok": False, "error": "invalid_trigger_id"}
        bad = self._check_view(p.get("view"))
        return bad or {"ok": True, "view": self._store_view(p["view"])}

    _m_views_push = _m_views_open

    def _m_views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        view_id = p.get("view_id") or next(
            (k for k, v in self.views.items() if v.get("external_id") == p.get("external_id")),
            None,
        )
        if not view_id or view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        if p.get("hash") and p["hash"] != self.views[view_id]["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        bad = self._check_view(p.get("view"))
        return bad or {"ok": True, "view": self._store_view(p["view"], view_id)}

    def _m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("user_id") not in self.users:
            return {"ok": False, "error": "user_not_found"}
        bad = self._check_view(p.get("view"))
        if bad:
            return bad
        self.homes[p["user_id"]] = self._store_view(p["view"])
        return {"ok": True, "view": self.homes[p["user_id"]]}

    def _channel(self, channel: str | None) -> str | None:
        """Posting to a user id posts in the DM with them, as Slack does."""
        if not channel:
            return None
        if channel[0] in "UW":
            return self._dm(channel) if channel in self.users else None
        return channel

    def _dm(self, user_id: str) -> str:
        return self.dms.setdefault(user_id, "D" + user_id[1:])

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
            return {"ok": False, "error": "no_text"}
        ts = self._ts()
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "ts": ts}
        message.update({k: p[k] for k in ("text", "blocks", "thread_ts") if p.get(k)})
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        key = (self._channel(p.get("channel")) or "", str(p.get("ts", "")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        message = self.messages[key]
        message.update({k: p[k] for k in ("text", "blocks") if k in p})
        message["edited"] = {"user": self.bot_user_id, "ts": self._ts()}
        text = message.get("text", "")
        return {"ok": True, "channel": key[0], "ts": key[1], "text": text, "message": message}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        if self._channel(p.get("channel")) is None:
            return {"ok": False, "error": "channel_not_found"}
        if p.get("user") not in self.users:
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self._ts()}

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(p.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _m_users_lookupByEmail(self, p: dict[str, Any]) -> dict[str, Any]:
        wanted = str(p.get("email", "")).lower()
        for user in self.users.values():
            if user["profile"].get("email", "").lower() == wanted and not user["deleted"]:
                return {"ok": True, "user": user}
        return {"ok": False, "error": "users_not_found"}

    def _m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(p.get("users", "")).split(",") if u]
        if p.get("channel"):
            return {"ok": True, "channel": {"id": p["channel"]}}
        if len(users) != 1 or users[0] not in self.users:
            return {"ok": False, "error": "user_not_found" if users else "users_list_not_supplied"}
        channel = {"id": self._dm(users[0])}
        if str(p.get("return_im", "")).lower() in ("1", "true"):
            channel.update(is_im=True, user=users[0], created=int(time.time()))
        return {"ok": True, "no_op": False, "already_open": False, "channel": channel}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(p.get("length", ""))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not p.get("filename") or length < 1:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._id("F")
        self._pending_uploads[file_id] = {"filename": p["filename"], "length": length}
        return {"ok": True, "upload_url": f"{self.root}/upload/v1/{file_id}", "file_id": file_id}

    def upload(self, file_id: str, content: bytes) -> bool:
        with self._cond:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return False
            pending["content"] = content
            return True

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        out = []
        for entry in files:
            pending = self._pending_uploads.get(str(entry.get("id")))
            if pending is None or "content" not in pending:
                return {"ok": False, "error": "file_not_found"}
        for entry in files:
            pending = self._pending_uploads.pop(entry["id"])
            name = pending["filename"]
            title = entry.get("title") or name
            size = len(pending["content"])
            info = self._file_object(entry["id"], name, title, _guess_type(name), size)
            if p.get("channel_id"):
                info["channels"] = [p["channel_id"]]
            self.files[entry["id"]] = info
            self.file_bytes[entry["id"]] = pending["content"]
            out.append(info)
        return {"ok": True, "files": out}

    def _m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        info = self.files.get(str(p.get("file")))
        return {"ok": True, "file": info} if info else {"ok": False, "error": "file_not_found"}

    def download(self, path: str) -> tuple[str, bytes] | None:
        """``/files-pri/T-F/[download/]name`` → (mimetype, bytes), or None."""
        parts = path.split("/")
        if len(parts) < 4 or not parts[2].startswith(self.team_id + "-"):
            return None
        file_id = parts[2][len(self.team_id) + 1 :]
        with self._cond:
            if file_id not in self.file_bytes:
                return None
            return self.files[file_id]["mimetype"], self.file_bytes[file_id]


def _guess_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower()
    return {"pdf": "application/pdf", "png": "image/png", "txt": "text/plain"}.get(
        ext, "application/octet-stream"
    )


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    for key in JSON_PARAMS & params.keys():
        if isinstance(params[key], str):
            with suppress(ValueError):
                params[key] = json.loads(params[key])
    return params


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields of a multipart body; file parts as bytes."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        is_file = part.get_filename() is not None
        out[str(name)] = payload if is_file else payload.decode("utf-8", "replace")
    return out


class _Handler(BaseHTTPRequestHandler):
    fake: SlackFake
    server_version = "FakeSlack/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: calls are recorded, not logged."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: dict[str, Any], status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _token(self, params: dict[str, Any]) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return params.pop("token", None)

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        self._dispatch(self._body())

    def _dispatch(self, body: bytes) -> None:
        url = urlsplit(self.path)
        ctype = self.headers.get("Content-Type", "")
        params: dict[str, Any] = dict(parse_qsl(url.query, keep_blank_values=True))
        fake = self.fake
        if url.path.startswith("/upload/v1/"):
            content = body
            if ctype.startswith("multipart/form-data"):
                parts = [v for v in _multipart(ctype, body).values() if isinstance(v, bytes)]
                content = parts[0] if parts else b""
            file_id = url.path.rsplit("/", 1)[-1]
            fake.record(Call("upload", {"file_id": file_id, "size": len(content)}, None))
            ok = fake.upload(file_id, content)
            return self._send(200 if ok else 404, f"OK - {len(content)}".encode(), "text/plain")
        if url.path.startswith("/files-pri/"):
            token = self._token(params)
            fake.record(Call("download", {"path": url.path}, token, "GET"))
            if token not in fake.tokens:
                return self._send(403, b"<html>sign in</html>", "text/html")
            found = fake.download(url.path)
            if found is None:
                return self._send(404, b"not found", "text/plain")
            return self._send(200, found[1], found[0])
        if url.path.startswith("/response/"):
            data = json.loads(body or b"{}") if "json" in ctype else dict(parse_qsl(body.decode()))
            data["_name"] = url.path.split("/", 2)[2]
            fake.record(Call("response_url", _decode(data), None, "POST", ctype))
            return self._send(200, b"ok", "text/plain")
        if not url.path.startswith("/api/"):
            return self._send(404, b"not found", "text/plain")
        method = url.path[len("/api/") :]
        if "json" in ctype and body:
            params.update(json.loads(body))
        elif ctype.startswith("multipart/form-data"):
            params.update(_multipart(ctype, body))
        elif body:
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        token = self._token(params)
        call = Call(method, _decode(params), token, self.command, ctype)
        failure = fake.record(call)
        if failure is not None:
            error, status, headers = failure
            return self._json({"ok": False, "error": error}, status, headers)
        if method == "oauth.v2.access":
            return self._json(fake.oauth_access(call.params, self.headers.get("Authorization", "")))
        if not token:
            return self._json({"ok": False, "error": "not_authed"})
        if token in fake.revoked:
            return self._json({"ok": False, "error": "token_revoked"})
        if token not in fake.tokens:
            return self._json({"ok": False, "error": "invalid_auth"})
        self._json(fake.handle(method, call.params, token))


@contextmanager
def slack_fake(**kwargs: Any) -> Iterator[SlackFake]:
    """Serve a :class:`SlackFake` on a free loopback port for the duration."""
    fake = SlackFake(**kwargs)
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake.root = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="slack-fake", daemon=True
    )  # a short poll interval: shutdown() waits for one
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
