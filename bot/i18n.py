"""Message catalogs for what people read: signer pages and emails.

A catalog is a folder of flat JSON files, one per language (``en.json``, ``fr.json``…), mapping
a key to a ``str.format`` template. English is complete by definition; another language falls
back to English key by key, so a missing translation shows English, never a key name.
Regional tags fall back to their language (``nl-BE`` → ``nl``), as ``bot.locales`` says.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from bot.locales import DEFAULT, SUPPORTED


def language(tag: str | None) -> str:
    """``nl-BE`` → ``nl``; anything unsupported or empty → English."""
    lang = (tag or DEFAULT).replace("_", "-").split("-")[0].lower()
    return lang if lang in SUPPORTED else DEFAULT


@cache
def _load(folder: Path, lang: str) -> dict[str, str]:
    path = folder / f"{lang}.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data.items()}


class Translator:
    """``t("sign.button")`` in one language, English behind it."""

    def __init__(self, folder: Path, tag: str | None) -> None:
        self.lang = language(tag)
        self._own = _load(folder, self.lang)
        self._en = _load(folder, DEFAULT)

    def __call__(self, key: str, **values: Any) -> str:
        template = self._own.get(key) or self._en.get(key)
        if template is None:
            raise KeyError(f"no message {key!r} in the catalog")
        return template.format(**values) if values else template
