"""The served OpenAPI document is valid 3.0.3 and /docs works offline."""

from __future__ import annotations

import copy
import enum
import re
from html.parser import HTMLParser
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI, File, Form, Path, Query, UploadFile
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from openapi_spec_validator import OpenAPIV30SpecValidator, validate
from pydantic import BaseModel, Field

from bot.web.openapi import (
    DEFAULT_SECURITY_SCHEMES,
    EXTENSION_KEY,
    STATIC_FILES,
    install_openapi,
    mark_extensions,
    to_openapi30,
)

# --------------------------------------------------------------------------------------
# A small app full of the 3.1-isms FastAPI + Pydantic v2 produce
# --------------------------------------------------------------------------------------


class SignerRole(enum.StrEnum):
    signer = "signer"
    approver = "approver"
    viewer = "viewer"


class Signer(BaseModel):
    email: str = Field(examples=["ada@example.com"])
    name: str | None = Field(default=None, examples=["Ada Lovelace"])
    role: SignerRole = SignerRole.signer
    order: Annotated[int, Field(gt=0, lt=100)] = 1


class Address(BaseModel):
    city: str
    country: Annotated[str, Field(min_length=2, max_length=2)] = "FR"


class EnvelopeIn(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200, examples=["NDA"])]
    signers: list[Signer]
    cc: list[Signer] | None = None
    address: Address | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    expires_in_days: Annotated[int | None, Field(gt=0, le=365)] = None
    reminder_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.5
    position: tuple[int, int] | None = None


class Envelope(BaseModel):
    object: Literal["envelope"] = "envelope"
    id: str = Field(examples=["env_01HZX"])
    status: Literal["draft", "sent", "completed", "declined"]
    role: SignerRole | None = None
    signers: list[Signer]
    address: Address | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    type: str
    title: str
    status: int
    detail: str | None = None


class UploadOut(BaseModel):
    object: Literal["document"] = "document"
    id: str
    filename: str | None = None
    pages: int | None = None


# Module level: with postponed annotations FastAPI resolves Depends(...) from module globals.
_app_bearer = HTTPBearer(scheme_name="bearerAuth", description="the app's own")


def _build_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post(
        "/v1/envelopes",
        response_model=Envelope,
        status_code=201,
        responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
        summary="Create an envelope",
    )
    async def create_envelope(
        body: EnvelopeIn,
        idempotency_key: Annotated[str | None, Query(max_length=64, examples=["k1"])] = None,
    ) -> Envelope:
        raise NotImplementedError

    @app.get(
        "/v1/envelopes/{envelope_id}",
        response_model=Envelope,
        responses={404: {"model": ErrorBody}},
    )
    async def get_envelope(
        envelope_id: Annotated[str, Path(min_length=3, examples=["env_01HZX"])],
        role: SignerRole | None = None,
        limit: Annotated[int, Query(gt=0, le=100)] = 10,
    ) -> Envelope:
        raise NotImplementedError

    @app.get("/v1/envelopes", response_model=list[Envelope] | None)
    async def list_envelopes(status: Literal["draft", "sent"] | None = None) -> Any:
        raise NotImplementedError

    @app.post("/v1/documents", response_model=UploadOut, responses={413: {"model": ErrorBody}})
    async def upload_document(
        file: Annotated[UploadFile, File(description="A PDF")],
        name: Annotated[str | None, Form()] = None,
        attachments: Annotated[list[UploadFile] | None, File()] = None,
    ) -> UploadOut:
        raise NotImplementedError

    @app.post("/v1/slack/interactions")
    async def slack_interactions(payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @app.get("/v1/envelopes/{envelope_id}/audit-trail.pdf")
    async def audit_trail(envelope_id: str) -> bytes | None:
        raise NotImplementedError

    return app


def _is_extension(method: str, path: str) -> bool:
    return path.startswith("/v1/slack/") or (method == "GET" and path.endswith(".pdf"))


def _installed_app(**kwargs: Any) -> FastAPI:
    app = _build_app()
    install_openapi(
        app,
        extension_routes=_is_extension,
        title="signbot",
        version="0.1.0",
        description="Certyneo-compatible API",
        **kwargs,
    )
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _fetch_doc(app: FastAPI) -> dict[str, Any]:
    async with _client(app) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _errors(doc: dict[str, Any]) -> list[str]:
    return [str(e).splitlines()[0] for e in OpenAPIV30SpecValidator(doc).iter_errors()]


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


# --------------------------------------------------------------------------------------
# /openapi.json
# --------------------------------------------------------------------------------------


async def test_served_document_is_valid_openapi_30() -> None:
    doc = await _fetch_doc(_installed_app())

    assert doc["openapi"] == "3.0.3"
    assert _errors(doc) == []
    validate(doc, cls=OpenAPIV30SpecValidator)


def test_raw_fastapi_document_is_not_valid_openapi_30() -> None:
    app = _build_app()
    raw = get_openapi(title="signbot", version="0.1.0", routes=app.routes)
    assert raw["openapi"].startswith("3.1")
    with pytest.raises(Exception):
        validate(raw, cls=OpenAPIV30SpecValidator)
    # Not just the version string: the schemas themselves are 3.1-only.
    relabelled = {**copy.deepcopy(raw), "openapi": "3.0.3"}
    assert _errors(relabelled)
    with pytest.raises(Exception):
        validate(relabelled, cls=OpenAPIV30SpecValidator)


async def test_no_31_keywords_survive() -> None:
    doc = await _fetch_doc(_installed_app())
    for node in _walk(doc["components"]["schemas"]):
        assert node.get("type") != "null"
        assert not isinstance(node.get("type"), list)
        for key in ("const", "examples", "prefixItems", "contentMediaType", "$defs"):
            assert key not in node, (key, node)
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert node[key] is True
        if "$ref" in node:
            assert set(node) == {"$ref"}, node
    assert "webhooks" not in doc


async def test_conversion_details() -> None:
    doc = await _fetch_doc(_installed_app())
    schemas = doc["components"]["schemas"]

    envelope = schemas["Envelope"]["properties"]
    # Literal -> enum; Optional $ref -> allOf + nullable; examples -> example.
    assert envelope["object"]["enum"] == ["envelope"]
    assert envelope["status"]["enum"] == ["draft", "sent", "completed", "declined"]
    assert envelope["address"] == {
        "allOf": [{"$ref": "#/components/schemas/Address"}],
        "nullable": True,
    }
    assert envelope["role"]["allOf"] == [{"$ref": "#/components/schemas/SignerRole"}]
    assert envelope["role"]["nullable"] is True
    assert envelope["id"]["example"] == "env_01HZX"
    assert envelope["metadata"]["type"] == "object"

    envelope_in = schemas["EnvelopeIn"]["properties"]
    assert envelope_in["cc"]["type"] == "array"
    assert envelope_in["cc"]["nullable"] is True
    assert envelope_in["cc"]["items"] == {"$ref": "#/components/schemas/Signer"}
    expires = envelope_in["expires_in_days"]
    assert expires["type"] == "integer"
    assert expires["nullable"] is True
    assert (expires["minimum"], expires["exclusiveMinimum"]) == (0, True)
    assert expires["maximum"] == 365
    assert "exclusiveMaximum" not in expires
    ratio = envelope_in["reminder_ratio"]
    assert (ratio["minimum"], ratio.get("exclusiveMinimum", False)) == (0, False)
    assert (ratio["maximum"], ratio["exclusiveMaximum"]) == (1, True)
    assert envelope_in["position"]["items"] == {"type": "integer"}

    signer = schemas["Signer"]["properties"]
    assert signer["name"] == {
        "type": "string",
        "nullable": True,
        "title": "Name",
        "example": "Ada Lovelace",
    }
    assert signer["role"]["allOf"] == [{"$ref": "#/components/schemas/SignerRole"}]
    assert signer["role"]["default"] == "signer"
    assert schemas["SignerRole"]["enum"] == ["signer", "approver", "viewer"]

    upload_body_ref = doc["paths"]["/v1/documents"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]["schema"]["$ref"]
    upload_body = schemas[upload_body_ref.rsplit("/", 1)[1]]["properties"]
    assert upload_body["file"]["type"] == "string"
    assert upload_body["file"]["format"] == "binary"
    assert upload_body["attachments"]["items"] == {"type": "string", "format": "binary"}
    assert upload_body["attachments"]["nullable"] is True

    get_op = doc["paths"]["/v1/envelopes/{envelope_id}"]["get"]
    params = {p["name"]: p for p in get_op["parameters"]}
    assert params["envelope_id"]["schema"]["example"] == "env_01HZX"
    assert params["role"]["schema"]["nullable"] is True
    assert params["limit"]["schema"]["exclusiveMinimum"] is True
    assert get_op["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }

    list_op = doc["paths"]["/v1/envelopes"]["get"]
    list_schema = list_op["responses"]["200"]["content"]["application/json"]["schema"]
    assert list_schema["type"] == "array"
    assert list_schema["nullable"] is True
    status = {p["name"]: p for p in list_op["parameters"]}["status"]["schema"]
    assert status["enum"] == ["draft", "sent", None]
    assert status["nullable"] is True


async def test_extensions_are_marked() -> None:
    doc = await _fetch_doc(_installed_app())
    slack = doc["paths"]["/v1/slack/interactions"]["post"]
    assert slack[EXTENSION_KEY] is True
    assert slack["summary"].endswith("(signbot extension)")
    audit = doc["paths"]["/v1/envelopes/{envelope_id}/audit-trail.pdf"]["get"]
    assert audit[EXTENSION_KEY] is True
    create = doc["paths"]["/v1/envelopes"]["post"]
    assert EXTENSION_KEY not in create
    assert create["summary"] == "Create an envelope"


def test_mark_extensions_is_pure_and_idempotent() -> None:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/a": {"get": {"summary": "A", "responses": {}}, "post": {"responses": {}}},
            "/b": {"get": {"summary": "B", "responses": {}}},
        },
    }
    before = copy.deepcopy(doc)
    calls: list[tuple[str, str]] = []

    def flag(method: str, path: str) -> bool:
        calls.append((method, path))
        return path == "/a"

    once = mark_extensions(doc, flag)
    twice = mark_extensions(once, flag)
    assert doc == before
    assert ("GET", "/a") in calls and ("POST", "/a") in calls
    assert once == twice
    assert once["paths"]["/a"]["get"]["summary"] == "A (signbot extension)"
    assert once["paths"]["/a"]["post"]["summary"] == "(signbot extension)"
    assert once["paths"]["/a"]["post"][EXTENSION_KEY] is True
    assert once["paths"]["/b"]["get"] == {"summary": "B", "responses": {}}


async def test_security_schemes() -> None:
    doc = await _fetch_doc(_installed_app())
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == DEFAULT_SECURITY_SCHEMES["apiKeyHeader"]
    assert schemes["apiKeyHeader"]["in"] == "header"
    assert schemes["apiKeyHeader"]["name"] == "Authorization"
    assert "security" not in doc

    security = [{"bearerAuth": []}, {"apiKeyHeader": []}]
    doc = await _fetch_doc(_installed_app(security=security))
    assert doc["security"] == security
    assert _errors(doc) == []

    doc = await _fetch_doc(_installed_app(security_schemes={}))
    assert "securitySchemes" not in doc.get("components", {})


async def test_app_defined_security_scheme_wins() -> None:
    app = _build_app()

    @app.get("/v1/me")
    async def me(creds: Annotated[HTTPAuthorizationCredentials, Depends(_app_bearer)]) -> str:
        raise NotImplementedError

    install_openapi(app, extension_routes=_is_extension, title="t", version="1", description="d")
    doc = await _fetch_doc(app)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["description"] == "the app's own"
    assert schemes["apiKeyHeader"] == DEFAULT_SECURITY_SCHEMES["apiKeyHeader"]
    assert doc["paths"]["/v1/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert _errors(doc) == []


async def test_document_is_cached() -> None:
    app = _installed_app()
    assert app.openapi() is app.openapi()
    async with _client(app) as client:
        first = (await client.get("/openapi.json")).json()
        second = (await client.get("/openapi.json")).json()
    assert first == second


def test_to_openapi30_handles_hand_written_31_snippets() -> None:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "t",
            "version": "1",
            "summary": "short",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "webhooks": {"ping": {"post": {"responses": {"200": {"description": "ok"}}}}},
        "paths": {},
        "components": {
            "schemas": {
                "Multi": {"type": ["string", "integer", "null"]},
                "Pair": {"type": "array", "prefixItems": [{"type": "integer"}], "items": False},
                "Tagged": {
                    "$ref": "#/components/schemas/Multi",
                    "description": "a ref with a sibling",
                },
                "Hoist": {
                    "type": "object",
                    "properties": {"inner": {"$ref": "#/$defs/Inner"}},
                    "$defs": {"Inner": {"type": "string", "const": "x"}},
                },
                "Bytes": {"type": "string", "contentEncoding": "base64"},
                "Anything": {"type": "object", "additionalProperties": True},
                "Never": False,
                "Weird Name[Generic]": {
                    "type": "object",
                    "patternProperties": {"^x": {"type": "integer"}},
                    "unevaluatedProperties": False,
                    "propertyNames": {"pattern": "^x"},
                    "dependentRequired": {"a": ["b"]},
                    "if": {"required": ["a"]},
                    "then": {"required": ["b"]},
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$id": "urn:weird",
                    "required": [],
                },
                "UsesWeird": {"$ref": "#/components/schemas/Weird Name[Generic]"},
                "NullableEnum": {"enum": ["a", None]},
                "NullDefault": {"type": "string", "default": None, "required": True},
                "Either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            }
        },
    }
    before = copy.deepcopy(doc)
    out = to_openapi30(doc)
    assert doc == before, "to_openapi30 must not mutate its input"
    assert _errors(out) == []

    assert "webhooks" not in out and "jsonSchemaDialect" not in out
    assert "summary" not in out["info"] and out["info"]["description"] == "short"
    assert out["info"]["license"] == {"name": "MIT"}
    schemas = out["components"]["schemas"]
    assert schemas["Multi"]["nullable"] is True
    assert schemas["Multi"]["anyOf"] == [{"type": "string"}, {"type": "integer"}]
    assert schemas["Pair"]["items"] == {"type": "integer"}
    assert schemas["Tagged"] == {
        "allOf": [{"$ref": "#/components/schemas/Multi"}],
        "description": "a ref with a sibling",
    }
    assert schemas["Hoist"]["properties"]["inner"] == {"$ref": "#/components/schemas/Inner"}
    assert schemas["Inner"] == {"type": "string", "enum": ["x"]}
    assert schemas["Bytes"] == {"type": "string", "format": "byte"}
    assert schemas["Never"] == {"not": {}}
    weird = schemas["Weird_Name_Generic_"]
    assert weird == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert schemas["UsesWeird"] == {"$ref": "#/components/schemas/Weird_Name_Generic_"}
    assert schemas["NullableEnum"] == {"enum": ["a", None], "nullable": True}
    assert schemas["NullDefault"] == {"type": "string", "default": None, "nullable": True}
    assert schemas["Either"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "nullable": True,
    }


# --------------------------------------------------------------------------------------
# /docs (offline Swagger UI)
# --------------------------------------------------------------------------------------


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attr in ("src", "href"):
            if values.get(attr):
                self.urls.append(values[attr] or "")
        self._in_script = tag == "script" and not values.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


async def test_docs_page_uses_only_local_assets() -> None:
    app = _installed_app()
    async with _client(app) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html

        parser = _AssetCollector()
        parser.feed(html)
        assert parser.urls, "the page references no assets"
        names = set()
        for url in parser.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, url
            assert parts.path.startswith("/docs/static/"), url
            names.add(parts.path.rsplit("/", 1)[1])

            asset = await client.get(url)
            assert asset.status_code == 200, url
            name = parts.path.rsplit("/", 1)[1]
            expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}[
                name[name.rindex(".") :]
            ]
            assert asset.headers["content-type"].split(";")[0] == expected
            assert "max-age=31536000" in asset.headers["cache-control"]
            assert asset.content

        assert {
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "swagger-ui-standalone-preset.js",
        } <= names
        script = "\n".join(parser.inline_scripts)
        assert "SwaggerUIBundle(" in script
        assert re.search(r'"url":\s*"/openapi\.json"', script)
        assert '"validatorUrl": null' in script


async def test_every_whitelisted_static_file_is_served() -> None:
    async with _client(_installed_app()) as client:
        for name, media_type in STATIC_FILES.items():
            response = await client.get(f"/docs/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == media_type


async def _raw_get(app: FastAPI, raw_path: str) -> tuple[int, bytes]:
    """GET ``raw_path`` exactly as given (httpx would normalise ``..`` segments away)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 12345),
    }
    status = 0
    body = b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    await app(scope, receive, send)
    return status, body


@pytest.mark.parametrize(
    "path",
    [
        "/docs/static/../../etc/passwd",
        "/docs/static/../../../../../../etc/passwd",
        "/docs/static/..%2F..%2Fetc%2Fpasswd",
        "/docs/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/docs/static/..",
        "/docs/static/.",
        "/docs/static/%2e%2e",
        "/docs/static/swagger-ui.css/../../../../etc/passwd",
        "/docs/static/..%5C..%5Cetc%5Cpasswd",
        "/docs/static/index.html",
        "/docs/static/oauth2-redirect.html",
        "/docs/static/swagger-ui-bundle.js.map",
        "/docs/static/swagger-initializer.js",
        "/docs/static/swagger-ui.js",
        "/docs/static/SWAGGER-UI.CSS",
        "/docs/static/nope.js",
        "/docs/static/",
        "/docs/static",
    ],
)
async def test_static_rejects_unknown_and_traversal(path: str) -> None:
    app = _installed_app()
    status, body = await _raw_get(app, path)
    assert status == 404, (path, status)
    assert b"root:" not in body


async def test_static_traversal_through_http_client_is_404() -> None:
    async with _client(_installed_app()) as client:
        for path in ("/docs/static/../../etc/passwd", "/docs/static/..%2F..%2Fetc%2Fpasswd"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "root:" not in response.text


async def test_docs_routes_are_not_in_schema_and_fastapi_pages_are_off() -> None:
    app = _installed_app()
    doc = await _fetch_doc(app)
    assert not any(p.startswith(("/docs", "/openapi")) for p in doc["paths"])
    async with _client(app) as client:
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/docs/oauth2-redirect")).status_code == 404


async def test_builtin_fastapi_docs_are_replaced() -> None:
    app = FastAPI()  # default openapi_url/docs_url: CDN-based pages
    install_openapi(
        app, extension_routes=lambda m, p: False, title="t", version="1", description="d"
    )
    async with _client(app) as client:
        doc = (await client.get("/openapi.json")).json()
        page = (await client.get("/docs")).text
    assert doc["openapi"] == "3.0.3"
    assert "cdn.jsdelivr.net" not in page and "/docs/static/swagger-ui-bundle.js" in page


async def test_docs_respects_root_path() -> None:
    app = _installed_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, root_path="/api"), base_url="http://testserver"
    ) as client:
        page = await client.get("/api/docs")
    assert page.status_code == 200
    assert 'src="/api/docs/static/swagger-ui-bundle.js' in page.text
    assert '"url": "/api/openapi.json"' in page.text
