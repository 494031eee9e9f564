"""Page-based lists: ``?page=`` from 1, ``?limit=`` default 20, clamped to 100."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import Query

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Page:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def wrap(self, data: list[Any], total: int) -> dict[str, Any]:
        """Certyneo's list shape: ``{data, pagination: {total, page, pageSize, pages}}``."""
        return {
            "data": data,
            "pagination": {
                "total": total,
                "page": self.page,
                "pageSize": self.limit,
                "pages": math.ceil(total / self.limit) if total else 0,
            },
        }


def page_params(
    page: int = Query(1, ge=1, le=1_000_000, description="Which page, from 1."),
    limit: int = Query(
        DEFAULT_LIMIT, ge=1, description="Items per page; values above 100 are clamped to 100."
    ),
) -> Page:
    return Page(page, min(limit, MAX_LIMIT))
