"""What the storage tests ask of every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bot.documents.storage import Storage


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def keyed_calls(storage: Storage, key: str) -> list[Callable[[], Awaitable[Any]]]:
    """Every call of the storage interface that takes only a key: each must fail alike for a
    key it refuses, or a store that is not working."""
    return [
        lambda: storage.read_bytes(key),
        lambda: collect(storage.stream(key)),
        lambda: storage.delete(key),
        lambda: storage.exists(key),
        lambda: storage.open_path(key),
    ]
