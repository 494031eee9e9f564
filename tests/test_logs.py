"""Log output: signing tokens never reach a line (any logger, messages, extra fields,
tracebacks); JSON lines carry the request id echoed in ``X-Request-Id``; ``signbot serve``
writes nothing but JSON lines when asked to."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request

from bot import logs, migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from tests.conftest import Server, draft, new_tenant
from tests.support.servers import free_port, signbot_serve, uvicorn_thread


def test_tokens_are_redacted_everywhere() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactTokens())
    root.addHandler(handler)
    try:
        logging.getLogger("signbot.web.deep.child").error("GET %s", "/sign/TOKEN1abc")
        logging.getLogger("some.library").warning("%s %s", "GET", "/sign/TOKEN2abc?x=1")
        try:
            raise ValueError("while serving /sign/TOKEN3abc")
        except ValueError:
            logging.getLogger("anything").exception("failed on /sign/TOKEN4abc")
    finally:
        root.removeHandler(handler)
    out = stream.getvalue()
    assert "TOKEN" not in out
    assert out.count("/sign/[redacted]") == 5


# ------------------------------------------------------------------ request ids and JSON lines

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An API-only app over real HTTP, with one extra route that logs from inside a request
    through an unrelated logger (the request id must reach every logger)."""
    port = free_port()
    settings = Settings(data_dir=tmp_path_factory.mktemp("logs"), port=port, role="api")
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)
    app = create_app(settings, db)

    async def chatty(request: Request) -> dict[str, str]:
        token = (await request.json())["token"]
        logging.getLogger("some.library").warning("looked at /sign/%s", token)
        return {"ok": "yes"}

    app.add_api_route("/test-chatty", chatty, methods=["POST"], include_in_schema=False)
    with uvicorn_thread(app, port) as base:
        yield Server(base, settings, db, app, "sqlite")
    db.dispose()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged meanwhile, through signbot's JSON handler."""
    stream = io.StringIO()
    handler = logs.build_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    time.sleep(0.1)  # the server thread writes its access line after the answer
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access(entries: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [
        e for e in entries if e["logger"] == "signbot.access" and e.get("request_id") == request_id
    ]
    assert len(found) == 1, entries
    return found[0]


def test_json_lines_carry_the_request_id_echoed_in_the_answer(
    api: Server, captured: io.StringIO
) -> None:
    response = httpx.get(f"{api.base_url}/healthz")
    request_id = response.headers["x-request-id"]
    assert HEX_ID.fullmatch(request_id)
    line = access(lines(captured), request_id)
    assert line["level"] == "INFO" and line["ts"].endswith("Z")
    assert (line["method"], line["route"], line["path"], line["status"]) == (
        "GET",
        "/healthz",
        "/healthz",
        200,
    )
    assert isinstance(line["duration_ms"], float) and line["client"] == "127.0.0.1"


@pytest.mark.parametrize("sent", ["abc", "req.2024-01-01_x", "A" * 64])
def test_a_sane_request_id_from_the_client_is_kept(
    api: Server, captured: io.StringIO, sent: str
) -> None:
    response = httpx.get(f"{api.base_url}/api/v1/envelopes", headers={"X-Request-Id": sent})
    assert response.status_code == 401  # no key: an error answer carries it all the same
    assert response.headers["x-request-id"] == sent
    assert access(lines(captured), sent)["route"] == "/api/v1/envelopes"


@pytest.mark.parametrize("sent", ["A" * 65, "x" * 200, 'quo"te', "two words", "é", "a/b", ""])
def test_an_insane_request_id_is_replaced(api: Server, captured: io.StringIO, sent: str) -> None:
    response = httpx.get(
        f"{api.base_url}/healthz", headers=[(b"X-Request-Id", sent.encode("latin-1"))]
    )
    echoed = response.headers["x-request-id"]
    assert echoed != sent and HEX_ID.fullmatch(echoed)
    access(lines(captured), echoed)
    assert sent not in captured.getvalue() or len(sent) < 2


def test_signing_tokens_never_reach_the_output(api: Server, captured: io.StringIO) -> None:
    tenant = new_tenant(api)
    envelope = draft(tenant)
    sent = tenant.client.post(f"/envelopes/{envelope['id']}/send").json()
    url = sent["recipients"][0]["signUrl"]
    token = url.rsplit("/", 1)[1]

    page = httpx.get(url, headers={"X-Request-Id": "page-1"})
    assert page.status_code == 200
    bad = httpx.post(f"{url}/sign", data={"name": ""}, headers={"X-Request-Id": "form-1"})
    assert bad.status_code == 400
    chatty = httpx.post(
        f"{api.base_url}/test-chatty", json={"token": token}, headers={"X-Request-Id": "chat-1"}
    )
    assert chatty.status_code == 200
    tenant.client.close()

    entries = lines(captured)
    line = access(entries, "page-1")
    assert (line["route"], line["path"]) == ("/sign/{token}", "/sign/[redacted]")
    assert '"GET /sign/[redacted]"' in line["msg"]
    assert access(entries, "form-1")["route"] == "/sign/{token}/sign"
    inside = [e for e in entries if e["logger"] == "some.library"]
    assert inside and inside[0]["request_id"] == "chat-1"
    assert inside[0]["msg"] == "looked at /sign/[redacted]"
    assert token not in captured.getvalue()


def test_text_lines_name_the_request() -> None:
    stream = io.StringIO()
    handler = logs.build_handler("text", stream)
    record = logging.LogRecord(
        "signbot.x", logging.INFO, __file__, 1, "at /sign/%s", ("T0K",), None
    )
    reset = logs.REQUEST_ID.set("rid-7")
    try:
        handler.handle(record)
    finally:
        logs.REQUEST_ID.reset(reset)
    out = stream.getvalue()
    assert out.rstrip().endswith("signbot.x: at /sign/[redacted] [request rid-7]"), out
    assert logs.use_json("auto", io.StringIO()) and not logs.use_json("text")


def test_serve_writes_only_json_lines(data_dir: Path) -> None:
    with signbot_serve(data_dir, env={"SIGNBOT_LOG_FORMAT": "json"}) as base:
        assert httpx.get(f"{base}/sign/SeCrEtToKeN123abc").status_code == 404
        assert httpx.get(f"{base}/readyz", headers={"X-Request-Id": "probe-9"}).status_code == 200
    output = (data_dir / "serve.log").read_text()
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert "SeCrEtToKeN123abc" not in output
    by_logger = {e["logger"] for e in entries}
    assert "uvicorn.error" in by_logger  # uvicorn's own lines go through the same handler
    assert "uvicorn.access" not in by_logger  # one access line per request: ours
    assert access(entries, "probe-9")["route"] == "/readyz"
    assert any(e["path"] == "/sign/[redacted]" for e in entries if e["logger"] == "signbot.access")
    assert any(e["msg"].startswith("signbot serving on") for e in entries)
