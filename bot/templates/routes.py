"""Routes: ``GET /templates`` (Certyneo's) and ``GET /templates/{id}`` (our extension).

Templates are deployment-wide for now: every key with ``envelopes:read`` sees the same list,
whatever its account or environment. They are sorted by name (not "most recent first" like
the other lists: a template has no creation time worth ordering by, and the picker reads
better alphabetically).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request

from bot.accounts.context import AuthContext
from bot.errors import NotFound
from bot.templates.registry import Registry
from bot.templates.schemas import template_json
from bot.web.auth import AuthenticatedRoute, requires
from bot.web.pagination import Page, page_params
from bot.web.paths import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["Templates"], route_class=AuthenticatedRoute)


async def registry_of(request: Request) -> Registry:
    """The app's templates: ``app.state.templates``, set at startup by ``create_app``.

    When an app was composed without it, the folder of its settings is loaded on first use
    (once; a later assignment of the same content by a racing request is harmless)."""
    state = request.app.state
    registry = getattr(state, "templates", None)
    if registry is None:
        folder = state.settings.templates_dir
        registry = await anyio.to_thread.run_sync(Registry.load, folder)
        state.templates = registry
    return registry  # type: ignore[no-any-return]


@router.get("/templates", summary="List templates")
async def list_templates(
    request: Request,
    ctx: AuthContext = requires("envelopes:read"),
    page: Page = Depends(page_params),
) -> Any:
    """The deployment's templates, by name, with their roles and defaults (extensions)."""
    templates = (await registry_of(request)).all()
    shown = templates[page.offset : page.offset + page.limit]
    return page.wrap([template_json(t) for t in shown], len(templates))


@router.get("/templates/{template_id}", summary="Get a template")
async def get_template(
    template_id: str, request: Request, ctx: AuthContext = requires("envelopes:read")
) -> Any:
    """One template, with its documents and fields (where each role fills what)."""
    template = (await registry_of(request)).get(template_id)
    if template is None:
        raise NotFound(f"Template {template_id[:60]} not found")
    return template_json(template, detail=True)
