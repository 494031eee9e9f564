"""Which of signbot's extensions a provider has, and how the client finds out.

Detected once per client and cached (``ProviderClient.capabilities()``):

1. **From the OpenAPI document.** ``GET {origin}/openapi.json`` (the origin being the base URL
   without ``/api/v1``). When it answers a document whose operations carry
   ``x-signbot-extension`` (signbot marks its own that way), that document is trusted: a
   capability is there exactly when its operation is listed. A path is compared by its tail
   with parameters blanked (``/api/v1/envelopes/{envelope_id}/void`` → ``/envelopes/{}/void``),
   so any prefix and parameter name work.
2. **Else by cheap, harmless probes** (the hosted Certyneo publishes no such document):

   * ``void``, ``remind``, ``rotate_secret``: a ``GET`` on the POST-only route with a made-up
     id. A framework that has the route answers **405** (or a 4xx of the route: 400, 403, 409…);
     one that lacks it answers **404** (or a catch-all page's 200). A GET changes nothing,
     whatever the provider.
   * ``template_detail``: ``GET /templates?limit=1`` then ``GET /templates/{first id}``. The
     list says that template exists, so a 404 (or 405) can only mean "no such route". With no
     template at all there is nothing to detail: reported False.

   A 401, a 429 or a 5xx during detection raises (nothing is cached), so a flaky moment never
   pins a wrong answer for the client's lifetime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

EXTENSION_KEY = "x-signbot-extension"

PROBE_ID = "signbot-capability-probe"
"""The made-up id of the probes: not an id any provider issues."""

#: capability → (HTTP method, path tail with parameters blanked)
OPERATIONS: dict[str, tuple[str, str]] = {
    "void": ("post", "/envelopes/{}/void"),
    "remind": ("post", "/envelopes/{}/remind"),
    "template_detail": ("get", "/templates/{}"),
    "rotate_secret": ("post", "/webhooks/{}/rotate-secret"),
}

#: capability → the path a GET probe tries (the route's real method is POST)
PROBES: dict[str, str] = {
    "void": f"/envelopes/{PROBE_ID}/void",
    "remind": f"/envelopes/{PROBE_ID}/remind",
    "rotate_secret": f"/webhooks/{PROBE_ID}/rotate-secret",
}

_PARAM = re.compile(r"\{[^}/]*\}")
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


@dataclass(frozen=True)
class Capabilities:
    """signbot extensions the provider offers. The hosted Certyneo has none of them."""

    void: bool = False
    """``POST /envelopes/{id}/void``: cancel a sent envelope."""
    remind: bool = False
    """``POST /envelopes/{id}/remind``: remind pending signers now."""
    template_detail: bool = False
    """``GET /templates/{id}`` (and the roles and defaults it implies)."""
    rotate_secret: bool = False
    """``POST /webhooks/{id}/rotate-secret``."""
    detected_by: str = "probe"
    """How they were found: ``"openapi"`` or ``"probe"`` (informational)."""


def from_openapi(doc: Any) -> Capabilities | None:
    """Capabilities listed by an OpenAPI document, or ``None`` when it marks no operation
    with ``x-signbot-extension`` (then it says nothing about our extensions)."""
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, dict):
        return None
    listed: set[tuple[str, str]] = set()
    marked = False
    for path, item in paths.items():
        if not isinstance(path, str) or not isinstance(item, dict):
            continue
        blank = _PARAM.sub("{}", path.rstrip("/"))
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                listed.add((method, blank))
                marked = marked or operation.get(EXTENSION_KEY) is True
    if not marked:
        return None

    def has(name: str) -> bool:
        method, tail = OPERATIONS[name]
        return any(m == method and p.endswith(tail) for m, p in listed)

    return Capabilities(
        void=has("void"),
        remind=has("remind"),
        template_detail=has("template_detail"),
        rotate_secret=has("rotate_secret"),
        detected_by="openapi",
    )


def route_exists(status: int) -> bool | None:
    """What the status of a GET on a POST-only route says: True (the route is there: 405, or
    a refusal of the route itself — 400, 403, 409, 422), False (404, 410, 501, and a 2xx or
    3xx, which only a catch-all page gives to a GET there), ``None`` (nothing can be
    concluded: 401, 429, 5xx — the caller raises)."""
    if status in (401, 429) or (status >= 500 and status != 501):
        return None
    return status in (400, 403, 405, 409, 422)
