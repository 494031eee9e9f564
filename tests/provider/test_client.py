"""The provider client over real HTTP: against the whole signbot app, against a fake that has
only Certyneo's routes, and (for the retry policy) against httpx's own ``MockTransport``."""

from __future__ import annotations

import ast
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.provider import (
    Capabilities,
    CreateEnvelope,
    NewField,
    NewRecipient,
    NotSupported,
    ProviderAuthError,
    ProviderClient,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    WebhookSignatureError,
    verify,
)
from bot.provider.capabilities import from_openapi, route_exists
from bot.webhooks import signature as server_signature
from tests.conftest import Server, Tenant, make_pdf
from tests.provider.certyneo_only import create_app as certyneo_only_app
from tests.support.servers import free_port, uvicorn_thread

HOOK_URL = "https://hooks.example.com/esign"  # does not resolve here: accepted, checked later


@pytest.fixture
async def client(server: Server, tenant: Tenant) -> AsyncIterator[ProviderClient]:
    async with ProviderClient(server.base_url, tenant.secret) as c:
        yield c


async def _finished(fetch: Callable[[], Awaitable[bytes]], timeout: float = 30) -> bytes:
    """Poll a download that answers 409 until the envelope's files are sealed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await fetch()
        except ProviderConflict:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------------------
# against signbot itself
# --------------------------------------------------------------------------------------


async def test_templates(client: ProviderClient) -> None:
    page = await client.list_templates(limit=2)
    assert page.pagination is not None and page.pagination.total == 3
    assert len(page.data) == 2 and page.has_more
    templates = await client.all_templates()
    assert len(templates) == 3
    nda = next(t for t in templates if t.name == "Mutual NDA")
    assert nda.id.startswith("tpl_") and nda.signer_count == 2
    assert [r.name for r in nda.roles] == ["Company", "Counterparty"]
    assert nda.reminders is not None and nda.reminders.interval_days == 3
    assert nda.default_subject and nda.expires_in_days == 30
    service = next(t for t in templates if t.name == "Service Agreement")
    assert service.approval is not None and service.approval.approver_role == "Legal Reviewer"

    detail = await client.get_template(nda.id)
    assert detail.fields and detail.documents
    with pytest.raises(ProviderNotFound) as caught:
        await client.get_template("tpl_no-such-template")
    assert "no such template" in str(caught.value)


async def test_capabilities_from_openapi(client: ProviderClient) -> None:
    caps = await client.capabilities()
    assert (caps.void, caps.remind, caps.template_detail, caps.rotate_secret) == (True,) * 4
    assert caps.detected_by == "openapi"
    assert await client.capabilities() is caps  # cached


def test_capabilities_from_an_openapi_document() -> None:
    certyneo_like = {"swagger": "2.0", "paths": {"/envelopes/{id}/send": {"post": {}}}}
    assert from_openapi(certyneo_like) is None  # says nothing of our extensions
    assert from_openapi({"openapi": "3.0.3"}) is None and from_openapi([]) is None
    marked = {
        "paths": {
            "/v1/envelopes/{envelopeId}/void/": {"post": {"x-signbot-extension": True}},
            "/v1/envelopes/{envelopeId}/remind": {"get": {}},  # wrong method: not it
            "/v1/templates/{tid}": {"get": {"x-signbot-extension": True}},
        }
    }
    assert from_openapi(marked) == Capabilities(
        void=True, template_detail=True, detected_by="openapi"
    )


@pytest.mark.parametrize(
    ("status", "exists"),
    [
        *[(405, True), (400, True), (403, True), (409, True)],
        *[(404, False), (200, False), (302, False), (501, False)],
        *[(401, None), (429, None), (500, None), (503, None)],
    ],
)
def test_what_a_probe_status_says(status: int, exists: bool | None) -> None:
    assert route_exists(status) is exists


class _HideOpenAPI(httpx.AsyncBaseTransport):
    """A real transport that answers 404 for ``/openapi.json``, as a provider without one."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/openapi.json":
            return httpx.Response(404, text="<html>Not Found</html>")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_capabilities_by_probe_on_signbot(server: Server, tenant: Tenant) -> None:
    transport = _HideOpenAPI()
    async with ProviderClient(
        f"{server.base_url}/api/v1/", tenant.secret, transport=transport
    ) as client:
        caps = await client.capabilities()
    assert (caps.void, caps.remind, caps.template_detail, caps.rotate_secret) == (True,) * 4
    assert caps.detected_by == "probe"
    assert "/api/v1/envelopes/signbot-capability-probe/void" in transport.paths


async def test_document_envelope_lifecycle(client: ProviderClient) -> None:
    pdf = make_pdf(2)
    doc = await client.upload_document(pdf, "contrat.pdf", name="Contrat")
    assert doc.id.startswith("doc_") and doc.name == "Contrat"
    assert doc.page_count == 2 and doc.sha256 == hashlib.sha256(pdf).hexdigest()

    payload = CreateEnvelope(
        subject="Contrat de prestation",
        document_ids=[doc.id],
        recipients=[NewRecipient(email="marie@example.com", name="Marie Dubois")],
        fields=[NewField(recipient_email="marie@example.com", page_number=2, x=72, y=600)],
    )
    draft = await client.create_envelope(payload)
    assert draft.status == "DRAFT" and draft.document_ids == [doc.id]
    assert draft.recipients[0].access_token and draft.recipients[0].sign_url

    sent = await client.send_envelope(draft.id)
    assert sent.status == "SENT" and sent.recipients[0].access_token
    with pytest.raises(ProviderConflict):
        await client.delete_envelope(draft.id)
    fetched = await client.get_envelope(draft.id)
    assert fetched.status == "SENT" and fetched.recipients[0].access_token is None
    assert fetched.created_at is not None and not fetched.is_finished
    listed = await client.list_envelopes(status="SENT")
    assert draft.id in [e.id for e in listed.data]

    reminded = await client.remind_envelope(draft.id)
    assert [r.email for r in reminded.reminded] == ["marie@example.com"]
    with pytest.raises(ProviderConflict) as caught:
        await client.audit_trail(draft.id)
    assert caught.value.message.startswith("The signing service refused the request: Envelope")

    voided = await client.void_envelope(draft.id, "Wrong amount")
    assert voided.status == "VOIDED" and voided.void_reason == "Wrong amount"
    assert voided.is_finished
    trail = await _finished(lambda: client.audit_trail(draft.id))
    assert trail.startswith(b"%PDF-")
    with pytest.raises(ProviderConflict):
        await client.signed_document(draft.id)
    with pytest.raises(ProviderConflict):
        await client.remind_envelope(draft.id)


async def test_envelope_from_template(client: ProviderClient) -> None:
    nda = next(t for t in await client.all_templates() if t.name == "Mutual NDA")
    envelope = await client.create_envelope(
        {
            "subject": nda.default_subject,
            "templateId": nda.id,
            "recipients": [
                {"email": "company@example.com", "name": "Company"},
                {"email": "other@example.com", "name": "Counterparty"},
            ],
        }
    )
    assert envelope.template_id == nda.id and envelope.document_ids
    assert [r.email for r in envelope.recipients] == ["company@example.com", "other@example.com"]
    assert (await client.send_envelope(envelope.id)).status == "SENT"


async def test_idempotency_key_replays_the_first_answer(client: ProviderClient) -> None:
    doc = await client.upload_document(make_pdf(1), "a.pdf")
    body = {"subject": "Once", "documentIds": [doc.id], "recipients": [{"email": "a@example.com"}]}
    first = await client.create_envelope(body, idempotency_key="create-once-1")
    again = await client.create_envelope(body, idempotency_key="create-once-1")
    assert again.id == first.id
    other = await client.create_envelope(body)
    assert other.id != first.id
    await client.delete_envelope(other.id)
    with pytest.raises(ProviderNotFound):
        await client.get_envelope(other.id)


async def test_webhooks(client: ProviderClient) -> None:
    events = ["envelope.completed", "envelope.declined"]
    created = await client.ensure_webhook(HOOK_URL, events)
    assert created is not None and created.secret and created.secret.startswith("whsec_")
    again = await client.ensure_webhook(HOOK_URL, events)
    assert again is not None and again.id == created.id and again.secret is None
    assert [h.id for h in await client.list_webhooks()] == [created.id]

    rotated = await client.rotate_webhook_secret(created.id)
    assert rotated.secret and rotated.secret != created.secret
    await client.delete_webhook(created.id)
    assert await client.list_webhooks() == []


async def test_bad_key_is_an_auth_error(server: Server) -> None:
    key = "sk_test_definitely-not-a-key"
    async with ProviderClient(server.base_url, key) as client:
        with pytest.raises(ProviderAuthError) as caught:
            await client.list_templates()
    error = caught.value
    assert error.status == 401 and error.code == "UNAUTHORIZED"
    assert error.message.startswith("The signing service did not accept signbot's API key")
    assert key not in str(error) and key not in repr(error) and key not in repr(client)


async def test_validation_error_keeps_field_errors(client: ProviderClient) -> None:
    doc = await client.upload_document(make_pdf(1), "a.pdf")
    with pytest.raises(ProviderRejected) as caught:
        await client.create_envelope(
            {"subject": "x", "documentIds": [doc.id], "recipients": [{"email": "not-an-email"}]}
        )
    error = caught.value
    assert type(error) is ProviderRejected
    assert error.status == 400 and error.code == "VALIDATION_ERROR"
    assert [e.field for e in error.errors] == ["recipients.0.email"]
    assert error.message.startswith("The signing service refused the request: recipients.0.email:")


async def test_unknown_envelope_is_not_found(client: ProviderClient) -> None:
    with pytest.raises(ProviderNotFound) as caught:
        await client.get_envelope("env_01HG0000000000000000000000")
    assert caught.value.status == 404
    assert caught.value.message.startswith("The signing service has no such envelope")
    # an id is one path segment: it cannot reach another route
    with pytest.raises(ProviderNotFound):
        await client.get_envelope("../keys")


# --------------------------------------------------------------------------------------
# against a provider with only Certyneo's routes
# --------------------------------------------------------------------------------------

FAKE_KEY = "sk_test_certyneo_only_key"


@pytest.fixture(scope="module")
def certyneo() -> Iterator[str]:
    with uvicorn_thread(certyneo_only_app(FAKE_KEY)) as base:
        yield base


async def test_certyneo_only_provider(certyneo: str) -> None:
    async with ProviderClient(certyneo, FAKE_KEY) as client:
        caps = await client.capabilities()
        assert (caps.void, caps.remind, caps.template_detail, caps.rotate_secret) == (False,) * 4
        assert caps.detected_by == "probe"

        templates = await client.all_templates()
        assert [t.id for t in templates] == ["tpl_nda", "tpl_offer"]
        assert templates[1].description is None and templates[1].roles == []
        with pytest.raises(NotSupported) as unsupported:
            await client.get_template("tpl_nda")
        assert unsupported.value.feature == "template_detail"

        doc = await client.upload_document(make_pdf(1), "a.pdf")
        draft = await client.create_envelope(
            {"subject": "Hi", "documentIds": [doc.id], "recipients": [{"email": "a@example.com"}]}
        )
        assert draft.status == "DRAFT" and draft.document_ids == [] and draft.signing_order is None
        sent = await client.send_envelope(draft.id)
        assert sent.status == "SENT" and sent.recipients[0].access_token
        assert (await client.get_envelope(draft.id)).recipients[0].access_token is None

        with pytest.raises(NotSupported) as cancelled:
            await client.void_envelope(draft.id, "changed my mind")
        assert str(cancelled.value) == "This signing service does not support cancelling a request"
        with pytest.raises(NotSupported):
            await client.remind_envelope(draft.id)
        with pytest.raises(ProviderConflict):
            await client.signed_document(draft.id)

        with pytest.raises(ProviderRejected) as rejected:
            await client.create_envelope({"subject": "x", "recipients": [{"email": "nope"}]})
        assert rejected.value.message.startswith("The signing service refused the request: ")
        assert rejected.value.errors == [] and rejected.value.code == "VALIDATION_ERROR"

        first = await client.ensure_webhook(HOOK_URL, ["envelope.completed"])
        second = await client.ensure_webhook(HOOK_URL, ["envelope.completed"])
        assert first is not None and first.secret
        assert second is not None and second.id == first.id and second.secret is None
        with pytest.raises(NotSupported):
            await client.rotate_webhook_secret(first.id)

    async with ProviderClient(certyneo, "sk_test_wrong") as bad:
        with pytest.raises(ProviderAuthError):
            await bad.list_envelopes()


# --------------------------------------------------------------------------------------
# retries, with httpx's MockTransport
# --------------------------------------------------------------------------------------

ENVELOPE = {"id": "env_1", "subject": "s", "status": "SENT", "recipients": []}


def _scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering ``answers`` in turn (the last one repeats); records requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handler), seen


async def test_429_honours_retry_after() -> None:
    transport, seen = _scripted(
        httpx.Response(429, headers={"Retry-After": "1"}, json={"code": "RATE_LIMITED"}),
        httpx.Response(200, json=ENVELOPE),
    )
    async with ProviderClient("https://provider.test", "sk_test_x", transport=transport) as c:
        started = time.monotonic()
        envelope = await c.get_envelope("env_1")
        elapsed = time.monotonic() - started
    assert envelope.id == "env_1" and len(seen) == 2
    assert 0.9 <= elapsed < 3
    assert seen[0].headers["authorization"] == "Bearer sk_test_x"
    assert seen[0].headers["user-agent"].startswith("signbot-bot/")
    assert str(seen[0].url) == "https://provider.test/api/v1/envelopes/env_1"


async def test_429_with_a_long_wait_gives_up_at_once() -> None:
    transport, seen = _scripted(httpx.Response(429, headers={"Retry-After": "60"}))
    async with ProviderClient("https://provider.test", "sk_test_x", transport=transport) as c:
        with pytest.raises(RateLimited) as caught:
            await c.get_envelope("env_1")
    assert len(seen) == 1 and caught.value.retry_after == 60
    assert "try again in 60 seconds" in str(caught.value)


async def test_503_twice_then_200_on_get() -> None:
    transport, seen = _scripted(
        httpx.Response(503), httpx.Response(503), httpx.Response(200, json=ENVELOPE)
    )
    async with ProviderClient("https://provider.test", "sk_test_x", transport=transport) as c:
        assert (await c.get_envelope("env_1")).status == "SENT"
    assert len(seen) == 3


async def test_503_exhausts_the_attempts() -> None:
    transport, seen = _scripted(httpx.Response(503))
    async with ProviderClient(
        "https://provider.test", "sk_test_x", retries=2, transport=transport
    ) as c:
        with pytest.raises(ProviderUnavailable) as caught:
            await c.get_envelope("env_1")
    assert len(seen) == 3 and caught.value.status == 503
    assert "unavailable right now" in str(caught.value)


async def test_post_without_key_is_not_retried_after_sending() -> None:
    transport, seen = _scripted(httpx.Response(503), httpx.Response(201, json={"id": "wh_1"}))
    async with ProviderClient("https://provider.test", "sk_test_x", transport=transport) as c:
        with pytest.raises(ProviderUnavailable):
            await c.create_webhook(HOOK_URL, ["envelope.completed"])
    assert len(seen) == 1 and "idempotency-key" not in seen[0].headers


async def test_send_is_retried_with_one_generated_key() -> None:
    transport, seen = _scripted(httpx.Response(502), httpx.Response(200, json=ENVELOPE))
    async with ProviderClient("https://provider.test", "sk_test_x", transport=transport) as c:
        await c.send_envelope("env_1")
    keys = [r.headers.get("idempotency-key") for r in seen]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]


async def test_read_timeout_retries_gets_but_not_keyless_posts() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("timed out", request=request)

    transport = httpx.MockTransport(handler)
    async with ProviderClient(
        "https://provider.test", "sk_test_x", timeout=2, retries=1, transport=transport
    ) as c:
        with pytest.raises(ProviderUnavailable) as caught:
            await c.list_envelopes()
        assert calls == 2
        assert str(caught.value) == (
            "The signing service at provider.test did not answer within 2 seconds; "
            "try again in a few minutes."
        )
        calls = 0
        with pytest.raises(ProviderUnavailable):
            await c.create_webhook(HOOK_URL, ["envelope.sent"])
        assert calls == 1


async def test_connect_error_is_unavailable_quickly() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with ProviderClient(closed, "sk_test_x", retries=2) as c:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as caught:
            await c.create_webhook(HOOK_URL, ["envelope.sent"])  # unsent: retried even so
        assert time.monotonic() - started < 3
    assert "could not be reached" in str(caught.value) and caught.value.status is None


async def test_unreadable_answer_and_internal_error() -> None:
    transport, _ = _scripted(
        httpx.Response(200, text="<html>hello</html>"),
        httpx.Response(500, json={"error": "boom", "code": "INTERNAL"}),
    )
    async with ProviderClient("https://provider.test/api/v1", "k", transport=transport) as c:
        with pytest.raises(ProviderError) as unreadable:
            await c.get_envelope("env_1")
        assert unreadable.value.code == "BAD_RESPONSE"
        with pytest.raises(ProviderError) as internal:
            await c.get_envelope("env_1")
    assert type(internal.value) is ProviderError and internal.value.status == 500
    assert str(internal.value) == (
        "The signing service failed with an internal error (HTTP 500): boom"
    )


def test_base_url_and_key_checks() -> None:
    with pytest.raises(ValueError):
        ProviderClient("ftp://x", "k")
    with pytest.raises(ValueError):
        ProviderClient("https://x", "  ")
    assert ProviderClient("https://x/", "k").base_url == "https://x/api/v1"
    assert ProviderClient("https://x/esign/api/v1/", "k").base_url == "https://x/esign/api/v1"


# --------------------------------------------------------------------------------------
# webhook verification
# --------------------------------------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = json.dumps({"id": "evt_1", "event": "envelope.completed", "data": {}}).encode()


def _signed(body: bytes = BODY, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    """Signed by signbot's own webhook signer (the server's, not the client's)."""
    return server_signature.headers(secret, "evt_1", int(at or time.time()), body)


def test_verify_accepts_both_schemes() -> None:
    assert verify(BODY, _signed(), SECRET)["event"] == "envelope.completed"
    headers = _signed()
    certyneo_only = {"X-Certyneo-Signature": headers["X-Certyneo-Signature"]}
    assert verify(BODY, certyneo_only, SECRET)["id"] == "evt_1"
    standard_only = {k: v for k, v in headers.items() if k.startswith("webhook-")}
    assert verify(BODY, standard_only, SECRET)["id"] == "evt_1"


def test_verify_refuses_forgeries() -> None:
    headers = _signed()
    forged = {**headers, "X-Certyneo-Signature": hmac.new(b"x", BODY, "sha256").hexdigest()}
    with pytest.raises(WebhookSignatureError, match="X-Certyneo-Signature"):
        verify(BODY, forged, SECRET)
    with pytest.raises(WebhookSignatureError):
        verify(BODY.replace(b"completed", b"declined"), headers, SECRET)
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    bad_standard = {
        **_signed(secret=other),
        "X-Certyneo-Signature": headers["X-Certyneo-Signature"],
    }
    with pytest.raises(WebhookSignatureError, match="webhook-signature"):
        verify(BODY, bad_standard, SECRET)


def test_verify_refuses_stale_future_and_missing() -> None:
    now = time.time()
    with pytest.raises(WebhookSignatureError, match="too old"):
        verify(BODY, _signed(at=now - 301), SECRET, now=now)
    with pytest.raises(WebhookSignatureError, match="future"):
        verify(BODY, _signed(at=now + 301), SECRET, now=now)
    assert verify(BODY, _signed(at=now - 299), SECRET, now=now)
    with pytest.raises(WebhookSignatureError, match="no signature"):
        verify(BODY, {"Content-Type": "application/json"}, SECRET)
    incomplete = {k: v for k, v in _signed().items() if k != "webhook-id"}
    with pytest.raises(WebhookSignatureError, match="incomplete"):
        verify(BODY, incomplete, SECRET)


def test_verify_cross_checks_with_standardwebhooks() -> None:
    # signed by the standardwebhooks package, among several signatures → accepted by ours
    now = datetime.now(UTC)
    theirs = Webhook(SECRET).sign("msg_1", now, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": f"v1,{base64.b64encode(b'x' * 32).decode()} {theirs}",
    }
    assert verify(BODY, headers, SECRET)["id"] == "evt_1"
    # what ours accepts, the standardwebhooks package accepts too — and refuses a forgery
    ours = _signed()
    assert verify(BODY, ours, SECRET) == Webhook(SECRET).verify(BODY, ours)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY + b" ", ours)
    with pytest.raises(WebhookSignatureError):
        verify(BODY + b" ", ours, SECRET)


# --------------------------------------------------------------------------------------
# the import rule
# --------------------------------------------------------------------------------------

ALLOWED_FIRST_PARTY = {"bot.errors", "bot.ids", "bot.provider"}
ALLOWED_THIRD_PARTY = {"httpx", "pydantic"}


def test_provider_imports_only_stdlib_httpx_pydantic_errors_ids() -> None:
    """The same rule as import-linter's contract: the client must work with no server code."""
    package = Path(__file__).resolve().parents[2] / "bot" / "provider"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "bot":
                    assert any(
                        name == allowed or name.startswith(allowed + ".")
                        for allowed in ALLOWED_FIRST_PARTY
                    ), f"{path.name} imports {name}"
                else:
                    assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (
                        f"{path.name} imports {name}"
                    )
