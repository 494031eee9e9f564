"""Typed reading of a composed YAML tree, with every complaint located on its line.

Why read PyYAML's *nodes* (``yaml.compose``) rather than the loaded dict: a node keeps its
``start_mark``, so "roles[1].fields[0].type: must be one of …" can say which line, and a
mapping node still shows duplicate keys, which ``yaml.safe_load`` silently merges (the last one
wins — a typo'd template would lose a field without a word).

A :class:`Reader` never raises for bad content: it records a :class:`TemplateError` and answers
``None``, so one pass reports every problem of a file.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.templates.spec import TemplateError

_NULL = "tag:yaml.org,2002:null"
_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x20), 0x7F))
_TEXT_CONTROL = _CONTROL - {"\t", "\n", "\r"}

#: Certyneo's API names, which template authors copy from the API documentation.
_ALIASES: Mapping[str, str] = {
    "fieldType": "type",
    "anchorText": "anchor",
    "anchorPlacement": "placement",
    "anchorIndex": "index",
    "pageNumber": "page",
    "documentIndex": "document",
    "signingOrder": "signing_order",
    "expiresInDays": "expires_in_days",
    "intervalDays": "interval_days",
    "maxCount": "max_count",
}


def line_of(node: Node) -> int:
    """1-based line where ``node`` starts."""
    return node.start_mark.line + 1


def compose(text: str) -> Node | None:
    """The single document of ``text`` as a node tree (``None`` for an empty file).

    Raises :class:`yaml.YAMLError` for invalid YAML or several documents in one file."""
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def syntax_error(path: Path, exc: yaml.YAMLError) -> TemplateError:
    """A located error for PyYAML's own complaint (its ``problem_mark`` is 0-based)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}: {problem}" if context else str(problem)
    return TemplateError(path, line, f"invalid YAML: {detail}")


class Reader:
    """Reads values off nodes for one file, collecting errors in :attr:`errors`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[TemplateError] = []

    def error(self, node: Node | None, where: str, message: str) -> None:
        line = line_of(node) if node is not None else 1
        self.errors.append(
            TemplateError(self.path, line, f"{where}: {message}" if where else message)
        )

    # --- containers ---------------------------------------------------------------------------

    def mapping(
        self,
        node: Node,
        where: str,
        keys: Collection[str],
        required: Collection[str] = (),
    ) -> dict[str, Node] | None:
        """The members of a mapping node by key; unknown, duplicate and missing keys reported.

        Unknown keys are errors, not warnings: ``reminder:`` for ``reminders:`` must not leave
        a template quietly without reminders."""
        if not isinstance(node, MappingNode):
            what = "must be" if where else "the template must be"
            self.error(node, where, f"{what} a mapping of keys to values")
            return None
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            here = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str) or key_node.tag == _NULL:
                self.error(key_node, where, "keys must be plain names")
            elif key not in keys:
                self.error(key_node, here, f"unknown key{_suggest(key, keys)}")
            elif key in out:
                self.error(key_node, here, "given twice")
            else:
                out[key] = value_node
        for key in required:
            if key not in out:
                self.error(node, where, f"missing required key {key!r}")
        return out

    def sequence(self, node: Node, where: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, where, "must be a list")
            return None
        return list(node.value)

    # --- scalars ------------------------------------------------------------------------------

    def text(
        self, node: Node, where: str, *, max_length: int, multiline: bool = False
    ) -> str | None:
        """The text as written (``yes`` stays "yes", ``2024`` stays "2024"), stripped; ``None``
        for null or empty (the caller decides whether that is allowed)."""
        if not isinstance(node, ScalarNode):
            self.error(node, where, "must be text")
            return None
        if node.tag == _NULL:
            return None
        value = str(node.value).strip()
        forbidden = _TEXT_CONTROL if multiline else _CONTROL
        if any(ch in forbidden for ch in value):
            self.error(
                node,
                where,
                "must not contain control characters"
                if multiline
                else "must be one line without control characters",
            )
            return None
        if len(value) > max_length:
            self.error(node, where, f"at most {max_length} characters (got {len(value)})")
            return None
        return value or None

    def member_text(
        self, members: dict[str, Node], where: str, key: str, max_length: int
    ) -> str | None:
        """``members[key]`` as one line of text; present but empty is an error."""
        node = members.get(key)
        if node is None:
            return None
        here = ".".join(part for part in (where, key) if part)
        before = len(self.errors)
        value = self.text(node, here, max_length=max_length)
        if value is None and len(self.errors) == before:
            self.error(node, here, "must not be empty")
        return value

    def integer(self, node: Node, where: str, *, lo: int, hi: int) -> int | None:
        value = self._scalar(node)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, where, f"must be a whole number from {lo} to {hi}")
            return None
        if not lo <= value <= hi:
            self.error(node, where, f"must be from {lo} to {hi} (got {value})")
            return None
        return value

    def number(
        self, node: Node, where: str, *, lo: float, hi: float, above: bool = False
    ) -> float | None:
        """A number in ``[lo, hi]`` (``(lo, hi]`` when ``above``)."""
        value = self._scalar(node)
        bound = f"above {lo:g}" if above else f"from {lo:g}"
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            self.error(node, where, f"must be a number {bound} to {hi:g}")
            return None
        if value > hi or value < lo or (above and value == lo):
            self.error(node, where, f"must be a number {bound} to {hi:g} (got {value:g})")
            return None
        return float(value)

    def boolean(self, node: Node, where: str) -> bool | None:
        value = self._scalar(node)
        if not isinstance(value, bool):
            self.error(node, where, "must be true or false")
            return None
        return value

    def choice(self, node: Node, where: str, choices: Collection[str]) -> str | None:
        """One of ``choices``, matched ignoring case and answered as spelled in ``choices``."""
        raw = self.text(node, where, max_length=100)
        by_folded = {c.casefold(): c for c in choices}
        if raw is None or raw.casefold() not in by_folded:
            self.error(node, where, f"must be one of {', '.join(choices)}")
            return None
        return by_folded[raw.casefold()]

    def plain(self, node: Node) -> Any:
        """The Python value of a whole subtree (for the ``bot:`` block, which is not ours)."""
        return _constructor().construct_document(node)

    def _scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return None
        try:
            return _constructor().construct_object(node, deep=True)
        except yaml.YAMLError:
            return None


def _constructor() -> yaml.constructor.SafeConstructor:
    """A fresh constructor: it keeps per-document state, so one per call is simplest."""
    return yaml.constructor.SafeConstructor()


def _suggest(key: str, keys: Collection[str]) -> str:
    alias = _ALIASES.get(key)
    if alias is not None and alias in keys:
        return f"; did you mean {alias!r}?"
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of {', '.join(sorted(keys))}"
