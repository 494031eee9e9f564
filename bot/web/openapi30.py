"""OpenAPI 3.1 → 3.0.3, as a pure function of the document.

FastAPI (with Pydantic v2) generates OpenAPI 3.1 documents whose schemas use JSON Schema
2020-12 keywords (``anyOf`` with ``{"type": "null"}``, ``const``, ``examples``, numeric
``exclusiveMinimum``, ``prefixItems``, ``contentMediaType`` ...). Certyneo clients and most
code generators expect OpenAPI 3.0, so :func:`to_openapi30` rewrites the generated document
into a valid 3.0.3 one. ``bot.web.openapi`` serves it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

OPENAPI_VERSION = "3.0.3"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Keywords an OpenAPI 3.0 Schema Object may carry (besides ``x-`` extensions).
_SCHEMA_KEYS_30 = frozenset(
    {
        "$ref",
        "title",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "enum",
        "type",
        "not",
        "allOf",
        "oneOf",
        "anyOf",
        "items",
        "properties",
        "additionalProperties",
        "description",
        "format",
        "default",
        "nullable",
        "discriminator",
        "readOnly",
        "writeOnly",
        "example",
        "externalDocs",
        "deprecated",
        "xml",
    }
)
_TYPES_30 = frozenset({"array", "boolean", "integer", "number", "object", "string"})
# Keys that only annotate a schema; on a null-union they may sit next to the merged member.
_ANNOTATION_KEYS = frozenset(
    {
        "title",
        "description",
        "default",
        "example",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "externalDocs",
        "nullable",
    }
)
_COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")
_COMPONENT_SECTIONS = (
    "schemas",
    "responses",
    "parameters",
    "examples",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "callbacks",
)
# Values under these keys are data, not OpenAPI structure: never rewrite ``$ref`` in them.
_DATA_KEYS = frozenset({"default", "example", "enum", "value", "const"})


# --------------------------------------------------------------------------------------
# 3.1 -> 3.0 conversion
# --------------------------------------------------------------------------------------


def _is_null_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "null" or kind == ["null"]:
        return True
    if "const" in schema and schema["const"] is None and "type" not in schema:
        return True
    return schema.get("enum") == [None] and "type" not in schema


def _dedupe(schemas: Iterable[Any]) -> list[Any]:
    seen: set[str] = set()
    out: list[Any] = []
    for item in schemas:
        key = json.dumps(item, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _one_of_schemas(schemas: list[Any]) -> Any:
    """A single schema accepting any of ``schemas`` (``{}`` when empty)."""
    unique = _dedupe(schemas)
    if not unique:
        return {}
    if len(unique) == 1:
        return unique[0]
    return {"anyOf": unique}


class _Converter:
    def __init__(self) -> None:
        # ``$defs`` found inside schemas, hoisted into ``components.schemas``.
        self.hoisted: dict[str, Any] = {}

    # ---- schemas ---------------------------------------------------------------------

    def schema(self, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return {"not": {}}
        if not isinstance(value, dict):
            return value
        s = dict(value)
        nullable = s.pop("nullable", False) is True

        for defs_key in ("$defs", "definitions"):
            defs = s.pop(defs_key, None)
            if isinstance(defs, dict):
                for name, sub in defs.items():
                    self.hoisted.setdefault(name, sub)

        # type: [..] lists and the bare "null" type.
        kind = s.get("type")
        if isinstance(kind, list):
            types = _dedupe(t for t in kind if t != "null")
            nullable = nullable or len(types) != len(kind)
            if len(types) == 1:
                s["type"] = types[0]
            else:
                del s["type"]
                if types:
                    self._add_alternatives(s, [{"type": t} for t in types])
        elif kind == "null":
            del s["type"]
            nullable = True
            if "enum" not in s and "const" not in s:
                s["enum"] = [None]

        # anyOf / oneOf with a {"type": "null"} member -> nullable.
        for keyword in ("anyOf", "oneOf"):
            members = s.get(keyword)
            if not isinstance(members, list) or not any(_is_null_schema(m) for m in members):
                continue
            nullable = True
            rest = [m for m in members if not _is_null_schema(m)]
            if len(rest) > 1:
                s[keyword] = rest
                continue
            del s[keyword]
            # A discriminator needs the union it discriminates; the union is gone.
            s.pop("discriminator", None)
            if not rest:
                if "enum" not in s and "type" not in s:
                    s["enum"] = [None]
                continue
            member = rest[0]
            if member is True:
                member = {}
            elif member is False:
                member = {"not": {}}
            if not isinstance(member, dict):
                continue
            clash = [k for k in member if k in s and k not in _ANNOTATION_KEYS]
            if clash:
                s["allOf"] = [*s.get("allOf", []), member]
            else:
                for key, sub in member.items():
                    s.setdefault(key, sub)
            # The merged member may bring its own 3.1-isms (nested null unions, $ref ...).
            s["nullable"] = True
            return self.schema(s)

        if "const" in s:
            const = s.pop("const")
            s.setdefault("enum", [const])
            if const is None:
                nullable = True

        examples = s.pop("examples", None)
        if "example" not in s:
            if isinstance(examples, list) and examples:
                s["example"] = examples[0]
            elif isinstance(examples, dict) and examples:
                s["example"] = next(iter(examples.values()))

        self._exclusive_bound(s, "exclusiveMinimum", "minimum", lower=True)
        self._exclusive_bound(s, "exclusiveMaximum", "maximum", lower=False)

        encoding = s.pop("contentEncoding", None)
        media_type = s.pop("contentMediaType", None)
        s.pop("contentSchema", None)
        if (encoding is not None or media_type is not None) and s.get("type", "string") == (
            "string"
        ):
            s["type"] = "string"
            if "format" not in s:
                s["format"] = "byte" if encoding in ("base64", "base64url") else "binary"

        prefix = s.pop("prefixItems", None)
        items = s.get("items")
        if isinstance(prefix, list):
            if items is True or (isinstance(items, dict) and not items):
                s["items"] = {}
            else:
                extra = [items] if isinstance(items, dict) else []
                s["items"] = _one_of_schemas([*prefix, *extra])
        elif isinstance(items, list):
            extra = s.pop("additionalItems", None)
            tail = [extra] if isinstance(extra, dict) else []
            s["items"] = _one_of_schemas([*items, *tail])
        elif items is False:
            s["items"] = {}
            s["maxItems"] = 0

        pattern_props = s.pop("patternProperties", None)
        if isinstance(pattern_props, dict) and pattern_props:
            current = s.get("additionalProperties")
            if current is None or current is True:
                s["additionalProperties"] = _one_of_schemas(list(pattern_props.values()))

        if s.get("type") == "array" and "items" not in s:
            s["items"] = {}

        # Drop everything 3.0 does not know.
        s = {k: v for k, v in s.items() if k in _SCHEMA_KEYS_30 or k.startswith("x-")}
        if "type" in s and s["type"] not in _TYPES_30:
            del s["type"]

        # Recurse into sub-schemas.
        if isinstance(s.get("properties"), dict):
            s["properties"] = {k: self.schema(v) for k, v in s["properties"].items()}
        additional = s.get("additionalProperties")
        if additional is not None and not isinstance(additional, bool):
            s["additionalProperties"] = self.schema(additional)
        for key in ("items", "not"):
            if key in s:
                s[key] = self.schema(s[key])
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(s.get(key), list):
                s[key] = [self.schema(m) for m in s[key]]

        if "required" in s:
            raw_required = s["required"] if isinstance(s["required"], list) else []
            required = _dedupe(r for r in raw_required if isinstance(r, str))
            if required:
                s["required"] = required
            else:
                del s["required"]
        if "enum" in s and not isinstance(s["enum"], list):
            del s["enum"]
        if "enum" in s and not s["enum"]:
            del s["enum"]
            s.setdefault("not", {})
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if flag in s and (not isinstance(s[flag], bool) or bound not in s):
                del s[flag]

        if isinstance(s.get("enum"), list) and None in s["enum"]:
            nullable = True
        # ``x: str = None`` really does produce null; 3.0 validators reject a null default
        # on a non-nullable schema, so say so.
        if "default" in s and s["default"] is None:
            nullable = True
        if nullable:
            s["nullable"] = True
            if "enum" in s and None not in s["enum"]:
                s["enum"] = [*s["enum"], None]

        if "$ref" in s and len(s) > 1:
            ref = s.pop("$ref")
            s["allOf"] = [{"$ref": ref}, *s.get("allOf", [])]
        return s

    @staticmethod
    def _add_alternatives(s: dict[str, Any], alternatives: list[Any]) -> None:
        if "anyOf" not in s:
            s["anyOf"] = alternatives
        else:
            s["allOf"] = [*s.get("allOf", []), {"anyOf": alternatives}]

    @staticmethod
    def _exclusive_bound(s: dict[str, Any], flag: str, bound: str, *, lower: bool) -> None:
        value = s.get(flag)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        del s[flag]
        current = s.get(bound)
        if not isinstance(current, int | float) or isinstance(current, bool):
            tighter = True
        else:
            tighter = value >= current if lower else value <= current
        if tighter:
            s[bound] = value
            s[flag] = True

    # ---- document structure -----------------------------------------------------------

    @staticmethod
    def _examples_list(obj: dict[str, Any]) -> None:
        examples = obj.get("examples")
        if isinstance(examples, list):
            del obj["examples"]
            if examples and "example" not in obj:
                obj["example"] = examples[0]

    @staticmethod
    def _reference(obj: dict[str, Any]) -> dict[str, Any] | None:
        if "$ref" in obj:
            return {"$ref": obj["$ref"]}
        return None

    def content(self, content: Any) -> None:
        if not isinstance(content, dict):
            return
        for media in content.values():
            if not isinstance(media, dict):
                continue
            if "schema" in media:
                media["schema"] = self.schema(media["schema"])
            self._examples_list(media)
            encoding = media.get("encoding")
            if isinstance(encoding, dict):
                for enc in encoding.values():
                    if isinstance(enc, dict) and isinstance(enc.get("headers"), dict):
                        enc["headers"] = {k: self.parameter(v) for k, v in enc["headers"].items()}

    def parameter(self, param: Any) -> Any:
        """Parameter or Header Object (same shape as far as schemas go)."""
        if not isinstance(param, dict):
            return param
        ref = self._reference(param)
        if ref is not None:
            return ref
        if "schema" in param:
            param["schema"] = self.schema(param["schema"])
        self._examples_list(param)
        self.content(param.get("content"))
        return param

    def request_body(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        ref = self._reference(body)
        if ref is not None:
            return ref
        self.content(body.get("content"))
        return body

    def response(self, response: Any) -> Any:
        if not isinstance(response, dict):
            return response
        ref = self._reference(response)
        if ref is not None:
            return ref
        response.setdefault("description", "")
        if isinstance(response.get("headers"), dict):
            response["headers"] = {k: self.parameter(v) for k, v in response["headers"].items()}
        self.content(response.get("content"))
        return response

    def callbacks(self, callbacks: Any) -> Any:
        if not isinstance(callbacks, dict):
            return callbacks
        for name, callback in list(callbacks.items()):
            if not isinstance(callback, dict):
                continue
            ref = self._reference(callback)
            if ref is not None:
                callbacks[name] = ref
                continue
            for expression, item in callback.items():
                callback[expression] = self.path_item(item)
        return callbacks

    def operation(self, op: Any) -> Any:
        if not isinstance(op, dict):
            return op
        if isinstance(op.get("parameters"), list):
            op["parameters"] = [self.parameter(p) for p in op["parameters"]]
        if "requestBody" in op:
            op["requestBody"] = self.request_body(op["requestBody"])
        if isinstance(op.get("responses"), dict):
            op["responses"] = {k: self.response(v) for k, v in op["responses"].items()}
        else:
            op["responses"] = {"default": {"description": ""}}
        if "callbacks" in op:
            op["callbacks"] = self.callbacks(op["callbacks"])
        return op

    def path_item(self, item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        if "$ref" in item:
            # 3.0 path items may carry $ref, but 3.1's summary/description siblings are
            # not meant to override the referenced item there: keep the reference only.
            return {"$ref": item["$ref"]}
        if isinstance(item.get("parameters"), list):
            item["parameters"] = [self.parameter(p) for p in item["parameters"]]
        for method in HTTP_METHODS:
            if method in item:
                item[method] = self.operation(item[method])
        return item

    def components(self, components: dict[str, Any]) -> None:
        components.pop("pathItems", None)
        sections: dict[str, Callable[[Any], Any]] = {
            "schemas": self.schema,
            "parameters": self.parameter,
            "headers": self.parameter,
            "requestBodies": self.request_body,
            "responses": self.response,
            "callbacks": self.callbacks,
        }
        for section, convert in sections.items():
            entries = components.get(section)
            if isinstance(entries, dict):
                components[section] = {name: convert(v) for name, v in entries.items()}

    def hoist_defs(self, components: dict[str, Any]) -> None:
        schemas = components.setdefault("schemas", {})
        while self.hoisted:
            pending, self.hoisted = self.hoisted, {}
            for name, sub in pending.items():
                if name not in schemas:
                    schemas[name] = self.schema(sub)
        if not schemas:
            del components["schemas"]


def _sanitize_component_names(components: dict[str, Any]) -> dict[str, str]:
    """Rename components whose names 3.0 rejects; return ``{old_ref: new_ref}``."""
    renames: dict[str, str] = {}
    for section in _COMPONENT_SECTIONS:
        entries = components.get(section)
        if not isinstance(entries, dict):
            continue
        if all(_COMPONENT_NAME.match(name) for name in entries):
            continue
        renamed: dict[str, Any] = {}
        for name, value in entries.items():
            new = name
            if not _COMPONENT_NAME.match(name):
                new = re.sub(r"[^a-zA-Z0-9.\-_]", "_", name) or "_"
                base, n = new, 1
                while new in entries or new in renamed:
                    n += 1
                    new = f"{base}_{n}"
                renames[f"#/components/{section}/{name}"] = f"#/components/{section}/{new}"
            renamed[new] = value
        components[section] = renamed
    return renames


def _rewrite_ref(ref: str, renames: dict[str, str]) -> str:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            ref = "#/components/schemas/" + ref[len(prefix) :]
    return renames.get(ref, ref)


def _rewrite_refs(node: Any, renames: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                node[key] = _rewrite_ref(value, renames)
            elif key == "discriminator" and isinstance(value, dict):
                mapping = value.get("mapping")
                if isinstance(mapping, dict):
                    value["mapping"] = {
                        k: _rewrite_ref(v, renames) if isinstance(v, str) else v
                        for k, v in mapping.items()
                    }
            elif key not in _DATA_KEYS:
                _rewrite_refs(value, renames)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, renames)


def to_openapi30(doc: dict[str, Any]) -> dict[str, Any]:
    """Convert a FastAPI-generated OpenAPI 3.1 document into a valid OpenAPI 3.0.3 one.

    Pure: the input is deep-copied and never mutated.
    """
    out: dict[str, Any] = copy.deepcopy(doc)
    out["openapi"] = OPENAPI_VERSION
    out.pop("webhooks", None)
    out.pop("jsonSchemaDialect", None)

    info = out.get("info")
    if isinstance(info, dict):
        summary = info.pop("summary", None)
        if summary and not info.get("description"):
            info["description"] = summary
        license_info = info.get("license")
        if isinstance(license_info, dict):
            license_info.pop("identifier", None)

    conv = _Converter()
    paths = out.get("paths")
    if not isinstance(paths, dict):
        paths = out["paths"] = {}
    for path, item in paths.items():
        paths[path] = conv.path_item(item)

    components = out.get("components")
    if isinstance(components, dict):
        conv.components(components)
    if conv.hoisted:
        components = out.setdefault("components", {})
        conv.hoist_defs(components)

    renames = _sanitize_component_names(components) if isinstance(components, dict) else {}
    _rewrite_refs(out, renames)
    return out
