"""Removing a deleted document's files, even when the store is down at that moment.

A document's row is deleted in a transaction that also queues a ``purge`` task naming its
files; the request then removes them at once when it can (so a delete is visible in the
bucket immediately, as users expect). When the store fails just then, the request still
succeeds (the document *is* deleted) and the task removes the files once the store is back,
retried with backoff for as long as it takes: a signed contract someone deleted must not
linger in a bucket because S3 blinked. Deleting a missing file is not an error, so the task
finding nothing left is the common, cheap case.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import anyio
from sqlmodel import Session

from bot.db import Database
from bot.documents.storage import Storage, StorageUnavailable
from bot.jobs.models import Task
from bot.jobs.tasks import TaskFailed, enqueue

log = logging.getLogger("signbot.storage")

KIND = "purge"


def queue_purge(session: Session, keys: Iterable[str | None]) -> list[str]:
    """Queue the removal of ``keys`` in the caller's transaction; the keys, deduplicated."""
    wanted = sorted({k for k in keys if k})
    if wanted:
        enqueue(session, KIND, {"keys": wanted})
    return wanted


async def remove_now(storage: Storage, keys: Iterable[str]) -> bool:
    """Best effort, for a request: whether every file is gone. A failing store is logged
    (naming the files left) and never fails the request."""
    wanted = [k for k in keys if k]
    for index, key in enumerate(wanted):
        try:
            await storage.delete(key)
        except StorageUnavailable as exc:
            log.warning("storage: %s; not removed yet: %s", exc.reason, ", ".join(wanted[index:]))
            return False
    return True


async def discard(db: Database, storage: Storage, keys: Iterable[str | None]) -> None:
    """Remove the files of a request that failed half-way (stored, then refused), which no
    row refers to. Shielded: a client hanging up must not leave them behind. Files the store
    will not remove now are queued for the purge task; if even that fails (the database is
    down too), they are logged as orphaned, for an operator to remove."""
    wanted = sorted({k for k in keys if k})
    if not wanted:
        return
    with anyio.CancelScope(shield=True):
        if await remove_now(storage, wanted):
            return
        try:
            await db.run(lambda s: queue_purge(s, wanted))
        except Exception as exc:
            log.error(
                "storage: orphaned files, remove them by hand: %s (%s)", ", ".join(wanted), exc
            )


class Purger:
    """The ``purge`` task's handler: delete every named file (raising keeps it queued)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def __call__(self, task: Task) -> None:
        for key in task.payload.get("keys", []):
            try:
                await self.storage.delete(key)
            except ValueError as exc:  # not a key this store could ever hold: no retry
                raise TaskFailed(str(exc)) from exc
