"""The machinery behind ``messages``: catalogs seen from Jinja2, dates in words, safe text.

Each message has two templates: ``NAME.html.j2``, rendered with autoescape on, and
``NAME.txt.j2``, without. Both receive ``t`` (the catalog) and ``b`` (emphasis):

- in HTML, ``t(key, **values)`` escapes the catalog text *and* every value, then substitutes,
  so a subject such as ``<script>`` arrives as text; ``b(value)`` wraps an escaped value in
  ``<strong>`` and is kept as markup by ``t``;
- in text, ``t`` is the plain translator and ``b`` does nothing.

So a template line such as ``{{ t("invitation.intro.sign", account=b(account)) }}`` is written
once per format and is safe in both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from bot.i18n import Translator

HERE = Path(__file__).parent
LOCALES = HERE / "locales"
TEMPLATES = HERE / "templates"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")
_SPACES = re.compile(r"[ \t]+")


def translator(locale: str | None) -> Translator:
    """The notify catalog in ``locale`` (regional tags and unknown ones fall back)."""
    return Translator(LOCALES, locale)


def one_line(text: str | None, limit: int = 200) -> str:
    """User text bound for a header, a title or an SMS: no line breaks, no control
    characters, runs of blanks collapsed, at most ``limit`` characters (an ellipsis marks the
    cut). Headers are where injection happens, so this runs on every name and subject."""
    text = _LINE_BREAKS.sub(" ", text or "")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return truncate(text, limit)


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ellipsis), 0)].rstrip() + ellipsis


def multiline(text: str | None, limit: int = 5000) -> str:
    """The sender's message: line breaks kept (CRLF and CR become LF), other control
    characters dropped, at most three blank lines in a row."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return truncate(text.strip(), limit)


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes in this code base are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_date(moment: datetime, t: Translator) -> str:
    """``28 November 2026``, ``28. November 2026``, ``ngày 28 tháng 11 năm 2026``: month
    names and word order come from the catalog, so no babel is needed."""
    moment = as_utc(moment)
    day = t("date.first_day") if moment.day == 1 else str(moment.day)
    return t("date.format", day=day, month=t(f"date.month.{moment.month}"), year=moment.year)


def format_datetime(moment: datetime, t: Translator) -> str:
    """The date in words and the time, always in UTC and saying so: we do not know the
    reader's time zone, and a deadline must not be ambiguous."""
    moment = as_utc(moment)
    return t("date.with_time", date=format_date(moment, t), time=moment.strftime("%H:%M"))


class HtmlCatalog:
    """``t`` for HTML templates: catalog text and values escaped, then substituted."""

    def __init__(self, t: Translator) -> None:
        self._t = t

    def __call__(self, key: str, **values: Any) -> Markup:
        template = escape(self._t(key))
        return template.format(**values) if values else template


def strong(value: Any) -> Markup:
    return Markup("<strong>{}</strong>").format(value)


def nl2br(value: str) -> Markup:
    """Escape, then turn the sender's line breaks into ``<br>``."""
    return Markup("<br>\n").join(escape(line) for line in str(value).split("\n"))


def _plain(value: Any) -> Any:
    return value


@cache
def _environment() -> Environment:
    """One environment: ``*.html.j2`` autoescaped, ``*.txt.j2`` not."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nl2br"] = nl2br
    return env


def render_pair(name: str, t: Translator, variables: dict[str, Any]) -> tuple[str, str]:
    """``(html, text)`` of the templates ``name.html.j2`` and ``name.txt.j2``."""
    env = _environment()
    html = env.get_template(f"{name}.html.j2").render(**variables, t=HtmlCatalog(t), b=strong)
    text = env.get_template(f"{name}.txt.j2").render(**variables, t=t, b=_plain)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return html, text
