"""The deployment's templates: every valid ``*.yaml`` of one folder, loaded once at startup.

A broken template is logged and left out — never fatal, and never taking the others down:
a typo in one file must not stop a deployment from serving its other templates or its API.
``signbot templates check`` runs the same code (:func:`check`) so what it reports is exactly
what the server would refuse.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from bot.templates.loader import load_template
from bot.templates.spec import Template, TemplateError, template_id

log = logging.getLogger("signbot.templates")

SUFFIX = ".yaml"
"""Only these files are templates; ``_source/``, README.md and the PDFs are not looked at."""


class Registry:
    """Templates by id. Immutable once built: safe to share between requests and threads."""

    def __init__(self, templates: Iterable[Template] = (), errors: Iterable[TemplateError] = ()):
        self._by_id = {t.id: t for t in templates}
        self._sorted = sorted(self._by_id.values(), key=lambda t: (t.name.casefold(), t.id))
        self.errors: list[TemplateError] = list(errors)
        """Why each refused template was refused (several lines per file are possible)."""

    @classmethod
    def load(cls, folder: Path) -> Registry:
        """Load every template of ``folder``; never raises for a broken template.

        A missing folder is an empty registry (templates are optional) and an INFO line."""
        started = time.perf_counter()
        if not folder.is_dir():
            log.info("templates: no folder at %s, none offered", folder)
            return cls()
        templates, errors = _scan(folder)
        by_file: dict[Path, list[TemplateError]] = defaultdict(list)
        for error in errors:
            by_file[error.path].append(error)
        for path, problems in by_file.items():
            reasons = "; ".join(f"line {e.line}: {e.message}" for e in problems)
            log.warning("template %s refused: %s", path, reasons)
        log.info(
            "templates: %d loaded from %s in %.0f ms%s",
            len(templates),
            folder,
            (time.perf_counter() - started) * 1000,
            f", {len(by_file)} refused" if by_file else "",
        )
        return cls(templates, errors)

    def get(self, template_id: str) -> Template | None:
        return self._by_id.get(template_id)

    def all(self) -> list[Template]:
        """Every template, by name (ignoring case), then id."""
        return list(self._sorted)

    def __len__(self) -> int:
        return len(self._by_id)


def check(folder: Path) -> list[TemplateError]:
    """Every problem of every template in ``folder`` (empty when all are valid)."""
    if not folder.is_dir():
        return [TemplateError(folder, 1, "is not a folder")]
    return _scan(folder)[1]


def template_files(folder: Path) -> list[Path]:
    """The folder's ``*.yaml`` files (not hidden, not in subfolders), by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix == SUFFIX and not p.name.startswith(".") and p.is_file()
    )


def _scan(folder: Path) -> tuple[list[Template], list[TemplateError]]:
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path in template_files(folder):
        by_id[template_id(path)].append(path)
    templates: list[Template] = []
    errors: list[TemplateError] = []
    for tid, paths in by_id.items():
        if len(paths) > 1:  # neither wins: which one would be arbitrary
            for path in paths:
                others = ", ".join(p.name for p in paths if p != path)
                errors.append(
                    TemplateError(path, 1, f"its id {tid} is also the id of {others}; rename one")
                )
            continue
        template, problems = load_template(paths[0])
        if template is not None:
            templates.append(template)
        errors.extend(problems)
    errors.sort(key=lambda e: (str(e.path), e.line))
    return templates, errors
