"""Languages signers are served in. A regional BCP-47 tag falls back to its language."""

from __future__ import annotations

import re

SUPPORTED = ("en", "fr", "de", "nl", "vi")
DEFAULT = "en"
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


def canonical(tag: str) -> str:
    """``nl_be`` → ``nl-BE``; raises ValueError for a tag we cannot serve."""
    tag = tag.strip()
    if not _TAG.match(tag):
        raise ValueError(f"{tag[:40]!r} is not a BCP-47 language tag")
    parts = re.split(r"[-_]", tag)
    language = parts[0].lower()
    if language not in SUPPORTED:
        raise ValueError(
            f"unsupported locale {tag[:40]!r}; supported: {', '.join(SUPPORTED)} "
            "(regional variants such as en-GB or nl-BE fall back to their language)"
        )
    rest = [
        p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p.lower() for p in parts[1:]
    ]
    return "-".join([language, *rest])
