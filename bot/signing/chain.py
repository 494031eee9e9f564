"""The audit log's hash chain: each entry carries the hash of the one before it.

Pure (no I/O). The same functions compute the hash when an event is recorded, embed the log in
the audit-trail PDF (``audit-log.json``) and re-check it in ``signbot verify``, so a log whose
entry was edited, removed or reordered no longer verifies.

An entry is a JSON object with ``seq`` (1, 2, …), ``at`` (ISO 8601 UTC), ``event``, ``actor``,
``ip``, ``userAgent``, ``details`` (an object), ``prevHash`` (the previous entry's ``hash``;
64 zeros for the first) and ``hash``: the hex SHA-256 of the canonical JSON of the entry
without its ``hash`` member (keys sorted, no spaces, UTF-8).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FORMAT = "signbot-audit/1"
ATTACHMENT_NAME = "audit-log.json"


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes hashed: every member but ``hash``, keys sorted, compact, UTF-8."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def link(entry: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """``entry`` with its ``prevHash`` and ``hash`` set, chained after ``prev_hash``."""
    chained = {**entry, "prevHash": prev_hash}
    chained["hash"] = entry_hash(chained)
    return chained


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    entries: int
    problem: str | None = None
    """What broke first, e.g. "entry 4: hash does not match its content"."""


def verify_chain(entries: Sequence[Mapping[str, Any]]) -> ChainResult:
    """Re-compute every hash and link; the first inconsistency is reported."""
    prev = GENESIS
    for index, entry in enumerate(entries, start=1):
        if entry.get("seq") != index:
            return ChainResult(
                False,
                len(entries),
                f"entry {index}: sequence number is {entry.get('seq')!r}, expected {index}",
            )
        if entry.get("prevHash") != prev:
            return ChainResult(
                False,
                len(entries),
                f"entry {index}: does not follow entry {index - 1} (prevHash mismatch)",
            )
        if entry.get("hash") != entry_hash(entry):
            return ChainResult(
                False, len(entries), f"entry {index}: hash does not match its content"
            )
        prev = str(entry["hash"])
    if not entries:
        return ChainResult(False, 0, "the log is empty")
    return ChainResult(True, len(entries))


def document(envelope_id: str, entries: Sequence[Mapping[str, Any]]) -> bytes:
    """The ``audit-log.json`` attachment embedded in the audit-trail PDF."""
    body = {"format": FORMAT, "envelopeId": envelope_id, "entries": list(entries)}
    return json.dumps(body, ensure_ascii=False, indent=1).encode()
