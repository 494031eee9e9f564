"""Certyneo API v1 contract: the real app, over HTTP, checked against Certyneo's own schemas.

Certyneo published its API as a Swagger 2.0 document (``certyneo/connector-swagger.json``,
the Power Platform connector). The loader below turns its ``definitions`` into JSON Schemas
that ``jsonschema`` validates answers against, with the rules outside clients depend on:

- ``x-nullable: true`` allows ``null``; every other property refuses it (DESIGN "Nulls": a field
  Certyneo types as a plain string is omitted when unset, never ``null``). A separate walker
  reports every ``null`` in a non-nullable property, whatever its type.
- ``format: date-time`` is checked strictly: ISO 8601 in UTC with ``Z``.
- ``readOnly`` is dropped (it only means "not sent by clients"), ``required`` is kept.

Then every Certyneo operation signbot serves today is called with realistic requests and its
answer validated against the schema of its status code; error answers are validated against
``Error`` and checked as RFC 9457 problems; Certyneo's lenient input forms are exercised; and
the served OpenAPI document and ``/docs`` page are checked.

``/templates`` and ``/webhooks`` are not served yet (other issues): they are listed in
``NOT_YET_SERVED`` and left out.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jsonschema import Draft7Validator, FormatChecker
from openapi_spec_validator import OpenAPIV30SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.conftest import Server, Tenant, make_pdf, upload

# --------------------------------------------------------------------------------------
# Finding Certyneo's contract
# --------------------------------------------------------------------------------------

_ROOT = Path(__file__).resolve().parents[1]


def _find_certyneo_dir() -> Path | None:
    candidates = []
    if os.environ.get("SIGNBOT_CERTYNEO_DIR"):
        candidates.append(Path(os.environ["SIGNBOT_CERTYNEO_DIR"]))
    candidates += [
        _ROOT / "certyneo",
        _ROOT / "shared" / "certyneo",
        _ROOT.parent / "shared" / "certyneo",
    ]
    for candidate in candidates:
        if (candidate / "connector-swagger.json").is_file():
            return candidate
    return None


_CERTYNEO_DIR = _find_certyneo_dir()
if _CERTYNEO_DIR is None:
    pytest.skip(
        "certyneo/connector-swagger.json not found (set SIGNBOT_CERTYNEO_DIR)",
        allow_module_level=True,
    )
SWAGGER: dict[str, Any] = json.loads((_CERTYNEO_DIR / "connector-swagger.json").read_text())

# --------------------------------------------------------------------------------------
# The loader: Swagger 2.0 definitions -> JSON Schema (draft 7) with a registry
# --------------------------------------------------------------------------------------

SWAGGER_URI = "urn:certyneo:connector-swagger"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

#: Schema keywords whose value is one sub-schema / a list of sub-schemas / a name→schema map.
_ONE_SCHEMA = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_MAPS = ("properties",)
_DROPPED = ("readOnly", "x-nullable", "discriminator", "xml", "externalDocs", "example")


def to_json_schema(node: Any) -> Any:
    """One Swagger 2.0 Schema Object as a draft-7 JSON Schema (pure; the input is untouched)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key.startswith("x-"):
            continue
        if key in _ONE_SCHEMA and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [to_json_schema(v) for v in value]
        elif key in _SCHEMA_MAPS:
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = value
    if node.get("x-nullable") is True:
        if "$ref" in out:  # draft 7 ignores siblings of $ref: wrap it
            return {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _is_strict_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not ISO_UTC.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(_is_strict_date_time)
FORMATS.checks("int32")(_is_int32)

DEFINITIONS: dict[str, Any] = {
    name: to_json_schema(schema) for name, schema in SWAGGER["definitions"].items()
}
REGISTRY: Registry = Registry().with_resource(
    SWAGGER_URI, Resource.from_contents({"definitions": DEFINITIONS}, default_specification=DRAFT7)
)


def validator(schema: dict[str, Any]) -> Draft7Validator:
    """A validator for a Swagger schema (``{"$ref": "#/definitions/X"}`` or inline)."""
    converted = to_json_schema(schema)
    if "$ref" in converted and converted["$ref"].startswith("#/"):
        converted = {**converted, "$ref": SWAGGER_URI + converted["$ref"]}
    return Draft7Validator(converted, registry=REGISTRY, format_checker=FORMATS)


def definition(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SWAGGER["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def nulls_outside_x_nullable(schema: dict[str, Any], instance: Any, path: str = "$") -> list[str]:
    """Where ``instance`` holds ``null`` in a property its (raw Swagger) schema does not mark
    ``x-nullable`` — the strict null rule, on every object schema, however deep."""
    problems: list[str] = []
    nullable = bool(schema.get("x-nullable"))
    schema = _deref(schema)
    nullable = nullable or bool(schema.get("x-nullable"))
    if instance is None:
        return [] if nullable else [path]
    if isinstance(instance, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in instance:
                problems += nulls_outside_x_nullable(sub, instance[name], f"{path}.{name}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            problems += nulls_outside_x_nullable(schema["items"], item, f"{path}[{i}]")
    return problems


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way ``instance`` breaks ``schema``: jsonschema's errors, then the null rule."""
    errors = [
        f"{e.json_path}: {e.message}"
        for e in sorted(validator(schema).iter_errors(instance), key=lambda e: e.json_path)
    ]
    errors += [
        f"{p}: null in a property that is not x-nullable"
        for p in nulls_outside_x_nullable(schema, instance)
    ]
    return errors


def _times(instance: Any, path: str = "$") -> list[str]:
    """Members named ``…At`` (our extensions too) that are not ISO 8601 UTC with Z."""
    bad: list[str] = []
    if isinstance(instance, dict):
        for key, value in instance.items():
            if key.endswith("At") and value is not None and not _is_strict_date_time(value):
                bad.append(f"{path}.{key}={value!r}")
            bad += _times(value, f"{path}.{key}")
    elif isinstance(instance, list):
        for i, item in enumerate(instance):
            bad += _times(item, f"{path}[{i}]")
    return bad


# --------------------------------------------------------------------------------------
# Checking answers
# --------------------------------------------------------------------------------------

API = "/api/v1"
ERROR_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
}


def conforms(response: httpx.Response, path: str, method: str) -> Any:
    """Validate ``response`` against the schema Certyneo gives ``method path`` for its status
    (an unlisted error status against ``Error``); answers the parsed body."""
    op = SWAGGER["paths"][path][method.lower()]
    status = response.status_code
    listed = op["responses"].get(str(status))
    if listed is None:
        assert status >= 400, (
            f"{method} {path} answered {status}, a success Certyneo does not list: "
            f"{response.text[:500]}"
        )
        schema = definition("Error")
    else:
        schema = listed["schema"]
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if status >= 400:
        assert media == "application/problem+json", (status, media)
    else:
        assert media == "application/json", (status, media)
    body = response.json()
    errors = schema_errors(schema, body)
    assert not errors, f"{method} {path} {status} breaks Certyneo's schema:\n" + "\n".join(errors)
    assert not _times(body), _times(body)
    return body


def envelope_conforms(response: httpx.Response, path: str, method: str) -> dict[str, Any]:
    """An ``Envelope`` answer whose ``fields`` (our echo) are Certyneo ``EnvelopeField``s too."""
    body = conforms(response, path, method)
    for i, field in enumerate(body.get("fields", [])):
        errors = schema_errors(definition("EnvelopeField"), field)
        assert not errors, f"fields[{i}]: {errors}"
    assert body["createdAt"].endswith("Z")
    return body


def problem(
    response: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """A Certyneo ``Error`` that is also an RFC 9457 problem (with ``errors`` for validation)."""
    code = code or ERROR_CODES[status]
    assert response.status_code == status, (response.status_code, response.text[:500])
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media == "application/problem+json", media
    body = response.json()
    errors = schema_errors(definition("Error"), body)
    assert not errors, errors
    assert isinstance(body.get("error"), str) and body["error"].strip(), body
    assert body.get("code") == code, body
    assert isinstance(body.get("type"), str), body
    parts = urlsplit(body["type"])
    assert parts.scheme in ("http", "https") and parts.netloc, body["type"]
    assert parts.path.endswith(f"/errors/{code}"), body["type"]
    assert isinstance(body.get("title"), str) and body["title"].strip(), body
    assert body.get("status") == status, body
    assert isinstance(body.get("detail"), str) and body["detail"].strip(), body
    if field is not None:
        assert isinstance(body.get("errors"), list) and body["errors"], body
        for item in body["errors"]:
            assert set(item) >= {"field", "message"}, item
            assert isinstance(item["field"], str) and isinstance(item["message"], str), item
            assert item["message"].strip(), item
        names = [item["field"] for item in body["errors"]]
        assert any(n == field or n.startswith(field + ".") for n in names), (field, names)
    return body


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------


def future(days: int = 30) -> str:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def workspace_id(tenant: Tenant) -> str:
    response = tenant.client.get("/workspaces")
    body = conforms(response, "/workspaces", "GET")
    assert response.status_code == 200
    assert body["data"], body
    return body["data"][0]["id"]


APPROVER = "anne.approver@example.com"
SIGNER_1 = "marie.dubois@example.com"
SIGNER_2 = "jan.peeters@example.be"
VIEWER = "vera.viewer@example.com"
CC = "carl.copy@example.com"


def realistic_envelope(tenant: Tenant) -> dict[str, Any]:
    """A CreateEnvelopeRequest using every member Certyneo documents (and our ``order``,
    ``signingOrder``, ``metadata``, ``options``, ``label``)."""
    first = upload(tenant, make_pdf(3), name="contrat-cadre.pdf")
    second = upload(tenant, make_pdf(2), name="annexe-tarifs.pdf")
    return {
        "subject": "Contrat-cadre de prestation 2025 — ACME",
        "message": "Bonjour, merci de relire et signer le contrat-cadre et son annexe.",
        "documentIds": [first["id"], second["id"]],
        "recipients": [
            {"email": APPROVER, "name": "Anne Approver", "role": "APPROVER", "order": 1},
            {
                "email": SIGNER_1,
                "name": "Marie Dubois",
                "role": "SIGNER",
                "order": 2,
                "phone": "+32470123456",
            },
            {"email": SIGNER_2, "name": "Jan Peeters", "role": "SIGNER", "order": 3},
            {"email": VIEWER, "name": "Vera Viewer", "role": "VIEWER", "order": 3},
            {"email": CC, "name": "Carl Copy", "role": "CARBON_COPY", "order": 4},
        ],
        "fields": [
            {
                "recipientEmail": SIGNER_1,
                "documentIndex": 0,
                "pageNumber": 3,
                "fieldType": "SIGNATURE",
                "x": 72,
                "y": 650,
                "width": 180,
                "height": 50,
            },
            {
                "recipientEmail": SIGNER_1,
                "documentIndex": 0,
                "pageNumber": 1,
                "fieldType": "INITIALS",
                "anchorText": "Paraphe",
                "anchorPlacement": "right",
                "anchorIndex": 0,
                "x": 500,
                "y": 760,
                "width": 60,
                "height": 30,
            },
            {
                "recipientEmail": SIGNER_1,
                "documentIndex": 0,
                "pageNumber": 3,
                "fieldType": "DATE_SIGNED",
                "anchorText": "Fait à Bruxelles, le",
                "anchorPlacement": "below",
                "anchorIndex": 1,
                "x": 72,
                "y": 720,
                "width": 120,
                "height": 20,
            },
            {
                "recipientEmail": SIGNER_1,
                "documentIndex": 1,
                "pageNumber": 1,
                "fieldType": "TEXT",
                "label": "Numéro de TVA",
                "x": 300,
                "y": 200,
                "width": 200,
                "height": 24,
            },
            {
                "recipientEmail": SIGNER_2,
                "documentIndex": 1,
                "pageNumber": 2,
                "fieldType": "CHECKBOX",
                "label": "J'accepte les conditions",
                "required": False,
                "x": 72,
                "y": 300,
                "width": 16,
                "height": 16,
            },
            {
                "recipientEmail": SIGNER_2,
                "documentIndex": 1,
                "pageNumber": 2,
                "fieldType": "DROPDOWN",
                "options": ["Mensuel", "Trimestriel", "Annuel"],
                "x": 72,
                "y": 340,
                "width": 150,
                "height": 24,
            },
            {
                "recipientEmail": SIGNER_2,
                "documentIndex": 1,
                "pageNumber": 2,
                "fieldType": "RADIO_GROUP",
                "options": ["Virement", "Domiciliation"],
                "anchorText": "Mode de paiement",
                "anchorPlacement": "left",
                "x": 72,
                "y": 380,
                "width": 150,
                "height": 40,
            },
            {
                "recipientEmail": SIGNER_2,
                "documentIndex": 1,
                "pageNumber": 2,
                "fieldType": "SIGNATURE",
                "anchorText": "Signature du client",
                "x": 72,
                "y": 700,
                "width": 150,
                "height": 40,
            },
        ],
        "signingOrder": "SEQUENTIAL",
        "signatureLevel": "SIMPLE",
        "expiresAt": future(30),
        "category": "CONTRACT",
        "tags": ["Projet-42", "projet-42", "  Client ACME  "],
        "locale": "nl-BE",
        "redirectUrl": "https://portal.example.com/contrats/merci?ref=42",
        "initialsOnEveryPage": True,
        "workspaceId": workspace_id(tenant),
        "metadata": {"crmId": "OPP-1234", "amount": 1250.5, "owner": {"team": "sales"}},
    }


def create(tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    request_errors = schema_errors(definition("CreateEnvelopeRequest"), body)
    assert not request_errors, f"the test's own request is not Certyneo's: {request_errors}"
    response = tenant.client.post("/envelopes", json=body)
    assert response.status_code == 201, response.text
    return envelope_conforms(response, "/envelopes", "POST")


def simple_envelope(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    doc = upload(tenant)
    body = {
        "subject": "Contrat de prestation",
        "documentIds": [doc["id"]],
        "recipients": [{"email": "client@example.com", "name": "Marie Dubois", "role": "SIGNER"}],
        **overrides,
    }
    return create(tenant, body)


def send(tenant: Tenant, envelope_id: str) -> dict[str, Any]:
    response = tenant.client.post(f"/envelopes/{envelope_id}/send")
    assert response.status_code == 200, response.text
    return envelope_conforms(response, "/envelopes/{id}/send", "POST")


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def random_key(environment: str = "test") -> str:
    alphabet = string.ascii_letters + string.digits
    return f"sk_{environment}_" + "".join(secrets.choice(alphabet) for _ in range(32))


# --------------------------------------------------------------------------------------
# 1. The loader itself
# --------------------------------------------------------------------------------------


def _properties() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, prop, sub)
        for name, schema in SWAGGER["definitions"].items()
        for prop, sub in schema.get("properties", {}).items()
    ]


def test_loader_converts_every_definition_to_a_valid_draft7_schema() -> None:
    assert set(DEFINITIONS) == set(SWAGGER["definitions"])
    for name, schema in DEFINITIONS.items():
        Draft7Validator.check_schema(schema)
        text = json.dumps(schema)
        assert '"readOnly"' not in text and '"x-nullable"' not in text, name
    # Required lists survive; $refs resolve through the registry.
    assert DEFINITIONS["Recipient"]["required"] == ["email"]
    assert "recipientEmail" in DEFINITIONS["EnvelopeField"]["required"]
    assert validator(definition("Envelope")).is_valid({"recipients": [{"email": "a@b.c"}]})
    assert not validator(definition("Envelope")).is_valid({"recipients": [{"name": "x"}]})
    assert not validator(definition("Envelope")).is_valid({"recipients": [{"email": 5}]})


@pytest.mark.parametrize(
    ("definition_name", "prop", "sub"),
    [pytest.param(*p, id=f"{p[0]}.{p[1]}") for p in _properties()],
)
def test_loader_null_is_refused_unless_x_nullable(
    definition_name: str, prop: str, sub: dict[str, Any]
) -> None:
    instance = {prop: None}
    if definition_name == "Recipient" and prop != "email":
        instance["email"] = "a@example.com"
    if definition_name == "EnvelopeField":
        instance = {
            "recipientEmail": "a@example.com",
            "pageNumber": 1,
            "fieldType": "SIGNATURE",
            "x": 1,
            "y": 1,
            "width": 1,
            "height": 1,
            prop: None,
        }
    if definition_name == "CreateEnvelopeRequest":
        instance = {"subject": "s", "recipients": [], prop: None}
    if definition_name == "CreateWebhookSubscriptionRequest":
        instance = {"url": "https://x.example", "events": [], prop: None}
    by_schema = validator(definition(definition_name)).is_valid(instance)
    by_walker = not nulls_outside_x_nullable(definition(definition_name), instance)
    if sub.get("x-nullable"):
        assert by_schema and by_walker
    else:
        assert not by_schema, f"{definition_name}.{prop}: the converted schema accepts null"
        assert not by_walker


def test_loader_nullable_enum_and_ref() -> None:
    enum = to_json_schema({"type": "string", "enum": ["A", "B"], "x-nullable": True})
    assert enum == {"type": ["string", "null"], "enum": ["A", "B", None]}
    ref = to_json_schema({"$ref": "#/definitions/Account", "x-nullable": True})
    assert ref == {"anyOf": [{"$ref": "#/definitions/Account"}, {"type": "null"}]}
    plain = to_json_schema({"type": "string", "enum": ["A"], "readOnly": True})
    assert plain == {"type": "string", "enum": ["A"]}
    # A property *named* like a dropped keyword is kept.
    named = to_json_schema({"type": "object", "properties": {"readOnly": {"type": "boolean"}}})
    assert named["properties"] == {"readOnly": {"type": "boolean"}}
    # Nested objects are walked by the strict null check too.
    payload = definition("WebhookEventPayload")
    assert nulls_outside_x_nullable(payload, {"data": {"subject": None}}) == ["$.data.subject"]
    assert not validator(payload).is_valid({"data": {"subject": None}})


_GOOD_ENVELOPE = {
    "id": "env_01HG0000000000000000000000",
    "subject": "Contrat",
    "status": "DRAFT",
    "signatureLevel": "SIMPLE",
    "recipients": [{"email": "a@example.com", "name": "A", "status": "PENDING", "signedAt": None}],
    "expiresAt": None,
    "createdAt": "2030-01-01T00:00:00.000Z",
    "completedAt": None,
    "fields": [
        {
            "recipientEmail": "a@example.com",
            "pageNumber": 1,
            "fieldType": "SIGNATURE",
            "x": 72,
            "y": 700,
            "width": 150,
            "height": 40,
        }
    ],
}


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"message": None}, False),
        ({"subject": None}, False),
        ({"status": "SIGNED"}, False),
        ({"signatureLevel": None}, False),
        ({"recipients": [{"email": "a@example.com", "name": None}]}, False),
        ({"recipients": [{"email": "a@example.com", "accessToken": None}]}, False),
        ({"recipients": [{"name": "no email"}]}, False),
        ({"createdAt": "2030-01-01T00:00:00+00:00"}, False),
        ({"updatedAt": "2030-01-01 00:00:00"}, False),
        ({"fields": [{"recipientEmail": "a@example.com", "pageNumber": 1}]}, False),
        ({"fields": [{**_GOOD_ENVELOPE["fields"][0], "anchorText": None}]}, False),
    ],
)
def test_checker_rejects_what_typed_clients_choke_on(change: dict[str, Any], ok: bool) -> None:
    """The answer checks used below are sharp: a synthetic answer with one defect fails."""
    response = httpx.Response(200, json={**_GOOD_ENVELOPE, **change})
    if ok:
        envelope_conforms(response, "/envelopes/{id}", "GET")
    else:
        with pytest.raises(AssertionError):
            envelope_conforms(response, "/envelopes/{id}", "GET")


def test_problem_checker_is_sharp() -> None:
    good = {
        "error": "subject: is required",
        "code": "VALIDATION_ERROR",
        "type": "https://sign.example.com/errors/VALIDATION_ERROR",
        "title": "Invalid request",
        "status": 400,
        "detail": "subject: is required",
        "errors": [{"field": "subject", "message": "is required"}],
    }
    problem_json = {"content-type": "application/problem+json"}
    problem(httpx.Response(400, json=good, headers=problem_json), 400, field="subject")
    for broken, headers in (
        ({**good}, {"content-type": "application/json"}),
        ({**good, "status": 422}, problem_json),
        ({**good, "code": "BAD_REQUEST"}, problem_json),
        ({**good, "type": "/errors/VALIDATION_ERROR"}, problem_json),
        ({**good, "detail": None}, problem_json),
        ({**good, "errors": [{"field": "message", "message": "x"}]}, problem_json),
        ({k: v for k, v in good.items() if k != "title"}, problem_json),
    ):
        with pytest.raises(AssertionError):
            problem(httpx.Response(400, json=broken, headers=headers), 400, field="subject")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2030-01-31T09:30:00Z", True),
        ("2030-01-31T09:30:00.123Z", True),
        ("2030-01-31T09:30:00.123456Z", True),
        ("2030-01-31T09:30:00+00:00", False),
        ("2030-01-31T09:30:00", False),
        ("2030-01-31 09:30:00Z", False),
        ("2030-01-31", False),
        ("2030-13-31T09:30:00Z", False),
        ("2030-01-31T09:30:00z", False),
    ],
)
def test_loader_date_time_is_strict(value: str, ok: bool) -> None:
    body = {"subject": "s", "recipients": [], "expiresAt": value}
    assert validator(definition("CreateEnvelopeRequest")).is_valid(body) is ok


# --------------------------------------------------------------------------------------
# 2. Every Certyneo operation signbot serves, validated against its response schema
# --------------------------------------------------------------------------------------

#: Certyneo operations covered below (method, swagger path).
COVERED = {
    ("GET", "/account/me"),
    ("GET", "/workspaces"),
    ("GET", "/envelopes"),
    ("POST", "/envelopes"),
    ("GET", "/envelopes/{id}"),
    ("DELETE", "/envelopes/{id}"),
    ("POST", "/envelopes/{id}/send"),
    ("GET", "/envelopes/{id}/signed-document"),
    ("GET", "/envelopes/{id}/audit-trail"),
    ("POST", "/documents"),
    ("GET", "/templates"),
}
#: Certyneo operations signbot does not serve yet (their own issues).
NOT_YET_SERVED = {
    ("POST", "/webhooks"),
    ("DELETE", "/webhooks/{id}"),
}
_METHODS = ("get", "post", "put", "patch", "delete")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _operations(paths: dict[str, Any], prefix: str = "") -> set[tuple[str, str]]:
    return {
        (method.upper(), _shape(prefix + path))
        for path, item in paths.items()
        for method in item
        if method in _METHODS
    }


@pytest.fixture(scope="module")
def openapi_doc(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


def test_every_certyneo_operation_is_covered_or_known_pending(openapi_doc: dict[str, Any]) -> None:
    certyneo = _operations(SWAGGER["paths"])
    expected = {(m, _shape(p)) for m, p in COVERED | NOT_YET_SERVED}
    assert certyneo == expected, "the swagger changed: cover the new operations"
    served = _operations(openapi_doc["paths"])
    missing = {(m, p) for m, p in COVERED if (m, _shape(API + p)) not in served}
    assert not missing, f"covered Certyneo operations absent from /openapi.json: {missing}"


def test_account_me(tenant: Tenant) -> None:
    response = tenant.client.get("/account/me")
    assert response.status_code == 200, response.text
    body = conforms(response, "/account/me", "GET")
    assert body["id"] == tenant.account_id
    assert isinstance(body["name"], str) and body["name"]


def test_templates(tenant: Tenant) -> None:
    response = tenant.client.get("/templates")
    assert response.status_code == 200, response.text
    body = conforms(response, "/templates", "GET")
    assert {t["id"] for t in body["data"]} >= {"tpl_mutual-nda", "tpl_service-agreement"}
    for template in body["data"]:
        assert template["signerCount"] >= 1 and template["documentCount"] >= 1


def test_workspaces(tenant: Tenant) -> None:
    response = tenant.client.get("/workspaces")
    assert response.status_code == 200, response.text
    body = conforms(response, "/workspaces", "GET")
    assert len(body["data"]) >= 1
    for workspace in body["data"]:
        assert workspace["id"] and workspace["name"]
        assert workspace["role"] in ("OWNER", "MEMBER")


def test_upload_document_multipart(tenant: Tenant) -> None:
    content = make_pdf(3)
    response = tenant.client.post(
        "/documents",
        files={"file": ("contrat.pdf", content, "application/pdf")},
        data={"name": "Contrat 2025"},
    )
    assert response.status_code == 201, response.text
    body = conforms(response, "/documents", "POST")
    assert body["id"].startswith("doc_")
    assert body["name"] == "Contrat 2025"
    assert body["mimeType"] == "application/pdf"
    assert body["size"] == len(content)
    assert isinstance(body["status"], str) and body["status"]
    assert body["pageCount"] == 3
    assert body["createdAt"].endswith("Z")

    # Without ``name``: the file's own name.
    response = tenant.client.post(
        "/documents", files={"file": ("annexe.pdf", make_pdf(1), "application/pdf")}
    )
    assert response.status_code == 201, response.text
    assert conforms(response, "/documents", "POST")["name"].startswith("annexe")


def test_create_realistic_envelope(tenant: Tenant) -> None:
    request = realistic_envelope(tenant)
    env = create(tenant, request)

    assert env["id"].startswith("env_")
    assert env["status"] == "DRAFT"
    assert env["subject"] == request["subject"]
    assert env["message"] == request["message"]
    assert env["signatureLevel"] == "SIMPLE"
    assert _instant(env["expiresAt"]) == _instant(request["expiresAt"])
    assert env.get("completedAt") is None
    assert env["signingOrder"] == "SEQUENTIAL"
    assert env["documentIds"] == request["documentIds"]
    assert env["tags"] == ["projet-42", "client acme"]
    assert env["locale"] in ("nl-BE", "nl")
    assert env["redirectUrl"] == request["redirectUrl"]
    assert env["initialsOnEveryPage"] is True
    assert env["workspaceId"] == request["workspaceId"]
    assert env["metadata"] == request["metadata"]
    assert env["category"] == "CONTRACT"

    sent_recipients = request["recipients"]
    assert [r["email"] for r in env["recipients"]] == [r["email"] for r in sent_recipients]
    assert [r["role"] for r in env["recipients"]] == [r["role"] for r in sent_recipients]
    assert [r["name"] for r in env["recipients"]] == [r["name"] for r in sent_recipients]
    assert [r["order"] for r in env["recipients"]] == [1, 2, 3, 3, 4]
    for recipient in env["recipients"]:
        assert recipient["status"] == "PENDING"
        assert recipient.get("signedAt") is None
        assert isinstance(recipient["accessToken"], str) and len(recipient["accessToken"]) >= 32
    assert len({r["accessToken"] for r in env["recipients"]}) == len(env["recipients"])

    assert len(env["fields"]) == len(request["fields"])
    for sent_field, echoed in zip(request["fields"], env["fields"], strict=True):
        for key in ("recipientEmail", "documentIndex", "pageNumber", "fieldType"):
            assert echoed[key] == sent_field[key], key
        for key in ("x", "y", "width", "height"):
            assert echoed[key] == pytest.approx(sent_field[key]), key
        if "anchorText" in sent_field:
            assert echoed["anchorText"] == sent_field["anchorText"]
            assert echoed["anchorPlacement"] == sent_field.get("anchorPlacement", "right")
            assert echoed["anchorIndex"] == sent_field.get("anchorIndex", 0)
        else:
            assert "anchorText" not in echoed  # omitted, never null
        if "options" in sent_field:
            assert echoed["options"] == sent_field["options"]
    assert {f["fieldType"] for f in env["fields"]} == {
        "SIGNATURE",
        "INITIALS",
        "DATE_SIGNED",
        "TEXT",
        "CHECKBOX",
        "DROPDOWN",
        "RADIO_GROUP",
    }


def test_get_send_get_realistic_envelope(tenant: Tenant) -> None:
    env = create(tenant, realistic_envelope(tenant))
    tokens = {r["email"]: r["accessToken"] for r in env["recipients"]}

    response = tenant.client.get(f"/envelopes/{env['id']}")
    assert response.status_code == 200, response.text
    got = envelope_conforms(response, "/envelopes/{id}", "GET")
    assert got["id"] == env["id"] and got["status"] == "DRAFT"
    for recipient in got["recipients"]:
        assert "accessToken" not in recipient and "signUrl" not in recipient
    assert got["fields"] == env["fields"]

    sent = send(tenant, env["id"])
    assert sent["status"] == "SENT"
    assert {r["email"]: r["accessToken"] for r in sent["recipients"]} == tokens
    for recipient in sent["recipients"]:
        assert recipient["signUrl"].endswith(f"/sign/{recipient['accessToken']}")
    statuses = {r["email"]: r["status"] for r in sent["recipients"]}
    # SEQUENTIAL: only the first group (the approver, order 1) is invited.
    assert statuses == {
        APPROVER: "SENT",
        SIGNER_1: "PENDING",
        SIGNER_2: "PENDING",
        VIEWER: "PENDING",
        CC: "PENDING",
    }

    response = tenant.client.get(f"/envelopes/{env['id']}")
    again = envelope_conforms(response, "/envelopes/{id}", "GET")
    assert again["status"] == "SENT"
    assert all("accessToken" not in r for r in again["recipients"])


def test_list_envelopes_filters_and_pages(tenant: Tenant) -> None:
    first = simple_envelope(tenant, subject="Premier")
    second = simple_envelope(tenant, subject="Deuxième")
    third = simple_envelope(tenant, subject="Troisième")
    send(tenant, second["id"])

    response = tenant.client.get("/envelopes")
    assert response.status_code == 200, response.text
    body = conforms(response, "/envelopes", "GET")
    assert [e["id"] for e in body["data"]] == [third["id"], second["id"], first["id"]]
    assert body["pagination"] == {"total": 3, "page": 1, "pageSize": 20, "pages": 1}
    for envelope in body["data"]:
        assert all("accessToken" not in r for r in envelope["recipients"])
        assert envelope["createdAt"].endswith("Z")

    response = tenant.client.get("/envelopes", params={"status": "SENT"})
    assert response.status_code == 200, response.text
    body = conforms(response, "/envelopes", "GET")
    assert [e["id"] for e in body["data"]] == [second["id"]]
    assert all(e["status"] == "SENT" for e in body["data"])
    assert body["pagination"]["total"] == 1

    response = tenant.client.get("/envelopes", params={"page": 2, "limit": 1})
    assert response.status_code == 200, response.text
    body = conforms(response, "/envelopes", "GET")
    assert [e["id"] for e in body["data"]] == [second["id"]]
    assert body["pagination"] == {"total": 3, "page": 2, "pageSize": 1, "pages": 3}

    response = tenant.client.get("/envelopes", params={"limit": 500})
    assert response.status_code == 200, response.text
    body = conforms(response, "/envelopes", "GET")
    assert body["pagination"]["pageSize"] == 100
    assert len(body["data"]) == 3

    response = tenant.client.get("/envelopes", params={"status": "COMPLETED"})
    body = conforms(response, "/envelopes", "GET")
    assert body["data"] == [] and body["pagination"]["total"] == 0


def test_delete_draft_then_sent(tenant: Tenant) -> None:
    draft_env = simple_envelope(tenant)
    response = tenant.client.delete(f"/envelopes/{draft_env['id']}")
    assert response.status_code == 200, response.text
    assert conforms(response, "/envelopes/{id}", "DELETE") == {"success": True}
    problem(tenant.client.get(f"/envelopes/{draft_env['id']}"), 404)

    sent_env = simple_envelope(tenant)
    send(tenant, sent_env["id"])
    response = tenant.client.delete(f"/envelopes/{sent_env['id']}")
    conforms(response, "/envelopes/{id}", "DELETE")
    problem(response, 409)
    still = tenant.client.get(f"/envelopes/{sent_env['id']}")
    assert envelope_conforms(still, "/envelopes/{id}", "GET")["status"] == "SENT"


def test_signed_document_and_audit_trail_before_the_end_are_409(tenant: Tenant) -> None:
    env = simple_envelope(tenant)
    for state in ("DRAFT", "SENT"):
        if state == "SENT":
            send(tenant, env["id"])
        for suffix in ("signed-document", "audit-trail"):
            response = tenant.client.get(f"/envelopes/{env['id']}/{suffix}")
            conforms(response, f"/envelopes/{{id}}/{suffix}", "GET")
            problem(response, 409)


# --------------------------------------------------------------------------------------
# 3. Error bodies: Certyneo's Error and RFC 9457 problem+json
# --------------------------------------------------------------------------------------


def _recipient(**overrides: Any) -> dict[str, Any]:
    return {"email": "client@example.com", "name": "Marie Dubois", "role": "SIGNER", **overrides}


INVALID_CREATES: list[tuple[str, dict[str, Any], str]] = [
    ("bad email", {"recipients": [_recipient(email="not-an-email")]}, "recipients.0.email"),
    ("missing email", {"recipients": [{"name": "Marie"}]}, "recipients.0.email"),
    (
        "second email bad",
        {"recipients": [_recipient(), _recipient(email="x@")]},
        "recipients.1.email",
    ),
    ("unknown role", {"recipients": [_recipient(role="BOSS")]}, "recipients.0.role"),
    ("no recipients", {"recipients": []}, "recipients"),
    ("no subject", {"subject": None}, "subject"),
    ("unsupported locale", {"locale": "xx-YY"}, "locale"),
    ("http redirect", {"redirectUrl": "http://example.com/done"}, "redirectUrl"),
    ("past expiry", {"expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
    ("garbage expiry", {"expiresAt": "next tuesday"}, "expiresAt"),
    ("too many tags", {"tags": [f"t{i}" for i in range(11)]}, "tags"),
    ("tag too long", {"tags": ["x" * 41]}, "tags.0"),
    ("qualified level", {"signatureLevel": "QUALIFIED"}, "signatureLevel"),
    ("unknown category", {"category": "RECIPE"}, "category"),
    ("unknown document", {"documentIds": ["doc_01HZZZZZZZZZZZZZZZZZZZZZZZ"]}, "documentIds.0"),
    ("template and documents", {"templateId": "tpl_nda"}, "templateId"),
    ("unknown workspace", {"workspaceId": "ws_nope"}, "workspaceId"),
    (
        "field for a stranger",
        {"fields": [{"recipientEmail": "stranger@example.com"}]},
        "fields.0.recipientEmail",
    ),
    (
        "dropdown without options",
        {"fields": [{"recipientEmail": "client@example.com", "fieldType": "DROPDOWN"}]},
        "fields.0",
    ),
    (
        "page out of range",
        {"fields": [{"recipientEmail": "client@example.com", "pageNumber": 9}]},
        "fields.0.pageNumber",
    ),
    (
        "unknown field type",
        {"fields": [{"recipientEmail": "client@example.com", "fieldType": "LASER"}]},
        "fields.0.fieldType",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [pytest.param(o, f, id=name) for name, o, f in INVALID_CREATES],
)
def test_400_validation_errors_name_the_field(
    tenant: Tenant, overrides: dict[str, Any], field: str
) -> None:
    doc = upload(tenant)
    body = {
        "subject": "Contrat de prestation",
        "documentIds": [doc["id"]],
        "recipients": [_recipient()],
        **overrides,
    }
    if body["subject"] is None:
        del body["subject"]
    response = tenant.client.post("/envelopes", json=body)
    assert response.status_code != 422
    conforms(response, "/envelopes", "POST")
    problem(response, 400, field=field)


NUL = "\u0000"
NUL_CREATES: list[tuple[str, dict[str, Any], str]] = [
    ("subject", {"subject": f"Contrat{NUL}"}, "subject"),
    ("message", {"message": f"Bonjour{NUL}"}, "message"),
    ("recipient name", {"recipients": [_recipient(name=f"Marie{NUL}")]}, "recipients.0.name"),
    ("tag", {"tags": [f"projet{NUL}"]}, "tags.0"),
    ("redirectUrl", {"redirectUrl": f"https://example.com/{NUL}"}, "redirectUrl"),
    ("workspaceId", {"workspaceId": f"ws_{NUL}"}, "workspaceId"),
    ("documentId", {"documentIds": [f"doc_{NUL}"]}, "documentIds.0"),
    (
        "anchorText",
        {"fields": [{"recipientEmail": "client@example.com", "anchorText": f"Sign{NUL}"}]},
        "fields.0.anchorText",
    ),
    (
        "field label",
        {"fields": [{"recipientEmail": "client@example.com", "label": f"TVA{NUL}"}]},
        "fields.0.label",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [pytest.param(o, f, id=name) for name, o, f in NUL_CREATES],
)
def test_400_for_nul_characters_never_500(
    tenant: Tenant, overrides: dict[str, Any], field: str
) -> None:
    """Bad input is a 400 on every backend (PostgreSQL refuses NUL in text: that must not
    surface as a 500); ``POST /documents`` already answers ``name: must not contain control
    characters`` for the same input."""
    doc = upload(tenant)
    body = {
        "subject": "Contrat de prestation",
        "documentIds": [doc["id"]],
        "recipients": [_recipient()],
        **overrides,
    }
    response = tenant.client.post("/envelopes", json=body)
    assert response.status_code < 500, response.text[:300]
    conforms(response, "/envelopes", "POST")
    problem(response, 400, field=field)


def test_400_for_bad_json_and_bad_query(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/envelopes", content=b'{"subject": ', headers={"Content-Type": "application/json"}
    )
    problem(response, 400)

    response = tenant.client.get("/envelopes", params={"status": "SIGNED_BY_MAGIC"})
    conforms(response, "/envelopes", "GET")
    problem(response, 400, field="status")

    response = tenant.client.get("/envelopes", params={"page": 0})
    problem(response, 400, field="page")

    response = tenant.client.get("/envelopes", params={"limit": "many"})
    problem(response, 400, field="limit")

    response = tenant.client.post("/documents", files={"name": (None, "no file")})
    conforms(response, "/documents", "POST")
    problem(response, 400, field="file")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
        "RANDOM_TEST",
        "RANDOM_LIVE",
    ],
)
def test_401_unauthorized(server: Server, authorization: str | None) -> None:
    headers = {}
    if authorization == "RANDOM_TEST":
        authorization = f"Bearer {random_key('test')}"
    elif authorization == "RANDOM_LIVE":
        authorization = random_key("live")
    if authorization is not None:
        headers["Authorization"] = authorization
    with httpx.Client(base_url=f"{server.base_url}{API}", timeout=30) as client:
        for method, path, swagger_path in (
            ("GET", "/account/me", "/account/me"),
            ("GET", "/envelopes", "/envelopes"),
            ("POST", "/envelopes/env_01HZZZZZZZZZZZZZZZZZZZZZZZ/send", "/envelopes/{id}/send"),
        ):
            response = client.request(method, path, headers=headers)
            conforms(response, swagger_path, method)
            problem(response, 401)


def test_403_missing_scope(tenant: Tenant) -> None:
    env = simple_envelope(tenant)
    read_only = tenant.client_for(tenant.new_key(scopes=["envelopes:read"]))
    try:
        assert read_only.get(f"/envelopes/{env['id']}").status_code == 200
        for method, path, swagger_path, kwargs in (
            ("POST", "/envelopes", "/envelopes", {"json": {"subject": "x", "recipients": []}}),
            ("POST", f"/envelopes/{env['id']}/send", "/envelopes/{id}/send", {}),
            ("DELETE", f"/envelopes/{env['id']}", "/envelopes/{id}", {}),
            (
                "POST",
                "/documents",
                "/documents",
                {"files": {"file": ("c.pdf", make_pdf(1), "application/pdf")}},
            ),
        ):
            response = read_only.request(method, path, **kwargs)
            conforms(response, swagger_path, method)
            body = problem(response, 403)
            assert "envelopes:write" in body["error"]
    finally:
        read_only.close()
    # Nothing happened.
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "DRAFT"


def test_404_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = simple_envelope(other_tenant)
    for envelope_id in ("env_01HZZZZZZZZZZZZZZZZZZZZZZZ", "nope", theirs["id"]):
        for method, suffix, swagger_path in (
            ("GET", "", "/envelopes/{id}"),
            ("DELETE", "", "/envelopes/{id}"),
            ("POST", "/send", "/envelopes/{id}/send"),
            ("GET", "/signed-document", "/envelopes/{id}/signed-document"),
            ("GET", "/audit-trail", "/envelopes/{id}/audit-trail"),
        ):
            response = tenant.client.request(method, f"/envelopes/{envelope_id}{suffix}")
            conforms(response, swagger_path, method)
            problem(response, 404)
    # Their envelope is untouched.
    got = other_tenant.client.get(f"/envelopes/{theirs['id']}")
    assert got.status_code == 200 and got.json()["status"] == "DRAFT"
    # An unknown route is a problem too.
    problem(tenant.client.get("/no-such-route"), 404)


def test_409_conflicts(tenant: Tenant) -> None:
    env = simple_envelope(tenant)
    send(tenant, env["id"])
    response = tenant.client.post(f"/envelopes/{env['id']}/send")
    conforms(response, "/envelopes/{id}/send", "POST")
    problem(response, 409)
    response = tenant.client.delete(f"/envelopes/{env['id']}")
    body = problem(response, 409)
    assert "DRAFT" in body["error"]
    response = tenant.client.get(f"/envelopes/{env['id']}/signed-document")
    body = problem(response, 409)
    assert "COMPLETED" in body["error"]


def test_problem_type_points_at_a_served_page(tenant: Tenant) -> None:
    body = problem(tenant.client.get("/envelopes/env_01HZZZZZZZZZZZZZZZZZZZZZZZ"), 404)
    assert body["type"].startswith(tenant.server.settings.effective_public_url + "/errors/")
    page = httpx.get(body["type"], timeout=30)
    assert page.status_code == 200
    assert "NOT_FOUND" in page.text


# --------------------------------------------------------------------------------------
# 4. Certyneo's input forms
# --------------------------------------------------------------------------------------


def test_bearer_prefix_is_optional(tenant: Tenant) -> None:
    with httpx.Client(
        base_url=f"{tenant.server.base_url}{API}",
        headers={"Authorization": tenant.secret},
        timeout=30,
    ) as bare:
        response = bare.get("/account/me")
        assert response.status_code == 200, response.text
        assert conforms(response, "/account/me", "GET")["id"] == tenant.account_id
        doc = bare.post(
            "/documents", files={"file": ("contrat.pdf", make_pdf(1), "application/pdf")}
        )
        assert doc.status_code == 201, doc.text
        response = bare.post(
            "/envelopes",
            json={
                "subject": "Contrat",
                "documentIds": [doc.json()["id"]],
                "recipients": [{"email": "client@example.com", "name": "Marie Dubois"}],
            },
        )
        assert response.status_code == 201, response.text
        env = envelope_conforms(response, "/envelopes", "POST")
        response = bare.post(f"/envelopes/{env['id']}/send")
        assert response.status_code == 200, response.text
        assert envelope_conforms(response, "/envelopes/{id}/send", "POST")["status"] == "SENT"
    # Lower-case scheme, extra spaces: still the same key.
    with httpx.Client(
        base_url=f"{tenant.server.base_url}{API}",
        headers={"Authorization": f"bearer   {tenant.secret}"},
        timeout=30,
    ) as spaced:
        assert spaced.get("/account/me").status_code == 200


def test_recipient_role_defaults_to_signer(tenant: Tenant) -> None:
    env = simple_envelope(
        tenant,
        recipients=[
            {"email": "client@example.com", "name": "Marie Dubois"},
            {"email": "second@example.com"},
        ],
    )
    assert [r["role"] for r in env["recipients"]] == ["SIGNER", "SIGNER"]
    assert all(isinstance(r["name"], str) and r["name"] for r in env["recipients"])
    got = envelope_conforms(tenant.client.get(f"/envelopes/{env['id']}"), "/envelopes/{id}", "GET")
    assert [r["role"] for r in got["recipients"]] == ["SIGNER", "SIGNER"]


def test_envelope_field_defaults_are_applied_and_echoed(tenant: Tenant) -> None:
    doc = upload(tenant)
    response = tenant.client.post(
        "/envelopes",
        json={
            "subject": "Contrat",
            "documentIds": [doc["id"]],
            "recipients": [{"email": "client@example.com", "name": "Marie Dubois"}],
            "fields": [{"recipientEmail": "client@example.com"}],
        },
    )
    assert response.status_code == 201, response.text
    env = envelope_conforms(response, "/envelopes", "POST")
    expected = {
        "recipientEmail": "client@example.com",
        "x": 72,
        "y": 700,
        "width": 150,
        "height": 40,
        "pageNumber": 1,
        "documentIndex": 0,
        "fieldType": "SIGNATURE",
    }
    for source in (
        env,
        envelope_conforms(tenant.client.get(f"/envelopes/{env['id']}"), "/envelopes/{id}", "GET"),
    ):
        (field,) = source["fields"]
        assert {k: field[k] for k in expected} == expected
        assert "anchorText" not in field


def test_access_token_on_create_and_send_only(tenant: Tenant) -> None:
    env = simple_envelope(tenant)
    (created,) = env["recipients"]
    assert created["accessToken"]
    listed = conforms(tenant.client.get("/envelopes"), "/envelopes", "GET")
    assert all("accessToken" not in r for e in listed["data"] for r in e["recipients"])
    got = envelope_conforms(tenant.client.get(f"/envelopes/{env['id']}"), "/envelopes/{id}", "GET")
    assert "accessToken" not in got["recipients"][0]
    sent = send(tenant, env["id"])
    assert sent["recipients"][0]["accessToken"] == created["accessToken"]
    got = envelope_conforms(tenant.client.get(f"/envelopes/{env['id']}"), "/envelopes/{id}", "GET")
    assert "accessToken" not in got["recipients"][0]


def test_statuses_and_times_are_certyneos(tenant: Tenant) -> None:
    statuses = set(SWAGGER["definitions"]["Envelope"]["properties"]["status"]["enum"])
    env = simple_envelope(tenant)
    assert env["status"] in statuses
    assert ISO_UTC.match(env["createdAt"]) and env["createdAt"].endswith("Z")
    sent = send(tenant, env["id"])
    assert sent["status"] in statuses
    assert ISO_UTC.match(sent["createdAt"])
    # Unset nullable times are null or absent; set ones are ISO UTC with Z.
    assert sent.get("completedAt") is None
    assert sent.get("expiresAt") is None
    with_expiry = simple_envelope(tenant, expiresAt=future(10))
    assert ISO_UTC.match(with_expiry["expiresAt"])


# --------------------------------------------------------------------------------------
# 5. /openapi.json and /docs
# --------------------------------------------------------------------------------------

#: The seed page's route table, documents / envelopes / keys rows (webhooks: other issue).
SEED_ROUTES = {
    ("POST", "/documents"),
    ("GET", "/documents"),
    ("GET", "/documents/{id}"),
    ("DELETE", "/documents/{id}"),
    ("GET", "/envelopes"),
    ("POST", "/envelopes"),
    ("GET", "/envelopes/{id}"),
    ("PATCH", "/envelopes/{id}"),
    ("DELETE", "/envelopes/{id}"),
    ("POST", "/envelopes/{id}/send"),
    ("GET", "/envelopes/{id}/audit-trail"),
    ("GET", "/envelopes/{id}/signed-document"),
    ("GET", "/keys"),
    ("POST", "/keys"),
    ("DELETE", "/keys/{id}"),
}


def test_seed_table_matches_our_list() -> None:
    seed = _CERTYNEO_DIR.parent / "seed" / "certyneo-developer-page.vi.txt"
    if not seed.is_file():
        pytest.skip("seed page not available")
    rows = re.findall(r"^\| (GET|POST|PATCH|DELETE) \| /api/v1(/\S+) \|", seed.read_text(), re.M)
    table = {(m, p) for m, p in rows if not p.startswith("/webhooks")}
    assert table == SEED_ROUTES


def test_openapi_is_valid_30_and_lists_the_seed_routes(openapi_doc: dict[str, Any]) -> None:
    assert openapi_doc["openapi"].startswith("3.0.")
    errors = [str(e).splitlines()[0] for e in OpenAPIV30SpecValidator(openapi_doc).iter_errors()]
    assert errors == []
    served = _operations(openapi_doc["paths"])
    missing = {(m, p) for m, p in SEED_ROUTES if (m, _shape(API + p)) not in served}
    assert not missing, f"seed routes missing from /openapi.json: {sorted(missing)}"


def test_openapi_marks_extensions_only(openapi_doc: dict[str, Any]) -> None:
    def operation(method: str, shape: str) -> dict[str, Any]:
        for path, item in openapi_doc["paths"].items():
            if _shape(path) == _shape(shape) and method.lower() in item:
                return item[method.lower()]
        raise AssertionError(f"{method} {shape} not in /openapi.json")

    assert operation("POST", f"{API}/envelopes/{{id}}/void").get("x-signbot-extension") is True
    content = operation("GET", f"{API}/documents/{{id}}/content")
    assert content.get("x-signbot-extension") is True
    for method, path in COVERED | SEED_ROUTES:
        assert not operation(method, API + path).get("x-signbot-extension"), (method, path)


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_docs_page_loads_only_local_assets(server: Server) -> None:
    page = httpx.get(f"{server.base_url}/docs", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for remote in ("http://", "https://", "//cdn", "unpkg", "jsdelivr"):
        assert remote not in html, remote
    parser = _Assets()
    parser.feed(html)
    paths = [urlsplit(u).path for u in parser.urls]
    assert any(p.endswith(".js") for p in paths), parser.urls
    assert any(p.endswith(".css") for p in paths), parser.urls
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("//"), url
        asset = httpx.get(f"{server.base_url}{url}", timeout=30)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert "/openapi.json" in html
