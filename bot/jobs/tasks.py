"""Durable background tasks: sealing a finished envelope, sending one email or SMS.

A task row is written in the transaction that causes it (so nothing runs for a change that
rolled back) and run after commit by whichever worker claims it first: a conditional UPDATE
takes a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's single writer elsewhere).
The handler runs outside any transaction; its result is written only while the lease holds,
so a worker that died (lease expired, task taken again) cannot overwrite its successor.

A failing task is retried with backoff (``5 s * 4**(n-1)``, capped at one hour, ±20 %) until
its kind's ``max_attempts`` — ``None`` means forever: a finished envelope must never stay
unsealed because a timestamp authority was down for a night. A failure because one of our own
backing services is down (:class:`~bot.errors.Unavailable`, e.g. document storage) never uses
up the attempts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from bot import metrics
from bot.db import Database, insert_rows, plain_row
from bot.errors import Unavailable
from bot.ids import new_id
from bot.jobs.models import Task
from bot.timeutil import utcnow

log = logging.getLogger("signbot.jobs")

BATCH = 8
CAP = timedelta(hours=1)


class TaskFailed(Exception):
    """A handler's way to say "this will never work" (no retry), e.g. a refused address."""


@dataclass(frozen=True)
class Kind:
    """How a kind of task is run."""

    handler: Callable[[Task], Awaitable[None]]
    max_attempts: int | None = 8
    """Attempts before the task is marked failed (``on_give_up`` is called); None: forever."""
    lease: timedelta = timedelta(seconds=30)
    """How long a claim holds without a sign of life. A running task renews it every third
    of it (:meth:`TaskRunner._heartbeat`), so a run may take as long as it needs; a lease that
    runs out means the worker died, and another worker takes the task over."""
    on_give_up: Callable[[Task, str], Awaitable[None]] | None = None
    concurrency: int = 4
    """Tasks of this kind running at once in one worker. Each kind is its own lane: a seal
    waiting on a slow timestamp authority never holds up a one-time code's email."""


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    envelope_id: str | None = None,
    key: str | None = None,
    delay: timedelta = timedelta(0),
) -> str:
    """Write a task in the caller's transaction; it runs only if that commits.

    ``key`` deduplicates: a second task of the same kind and key is not written (e.g. one
    ``finalize`` per envelope, however many paths reach completion)."""
    task_id = new_id("task")
    if key is not None:
        exists = session.exec(select(Task.id).where(Task.kind == kind, Task.key == key)).first()
        if exists is not None:
            return exists
    row = plain_row(
        Task,
        id=task_id,
        kind=kind,
        key=key or task_id,
        envelope_id=envelope_id,
        payload=payload,
        due_at=utcnow() + delay,
    )
    insert_rows(session, Task, [row])
    return task_id


def backoff(failed_attempts: int) -> timedelta:
    nominal = min(5 * 4 ** (failed_attempts - 1), CAP.total_seconds())
    return timedelta(seconds=nominal * random.uniform(0.8, 1.2))  # noqa: S311 (spreading load)


def claim(session: Session, kinds: dict[str, Kind], token: str, limit: int = BATCH) -> list[Task]:
    """Lease up to ``limit`` due tasks of the known kinds to the claimer ``token``."""
    now = utcnow()
    due = or_(
        (col(Task.status) == "pending") & (col(Task.due_at) <= now),
        (col(Task.status) == "running") & (col(Task.leased_until) < now),
    )
    candidates = list(
        session.exec(
            select(Task)
            .where(due, col(Task.kind).in_(list(kinds)))
            .order_by(col(Task.due_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    taken: list[Task] = []
    for task in candidates:
        lease_until = now + kinds[task.kind].lease
        result = session.exec(  # type: ignore[call-overload]
            update(Task)
            .where(col(Task.id) == task.id, due)
            .values(status="running", leased_until=lease_until, claim=token)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            task.status, task.leased_until = "running", lease_until
            taken.append(task)
    return taken


def _settle(task_id: str, token: str, **values: Any) -> Callable[[Session], bool]:
    """Write the run's result only if this claimer still holds the lease."""

    def work(session: Session) -> bool:
        result = session.exec(  # type: ignore[call-overload]
            update(Task)
            .where(
                col(Task.id) == task_id,
                col(Task.status) == "running",
                col(Task.claim) == token,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)

    return work


class TaskRunner:
    """Claims due tasks and runs each in the background on the worker's loop, up to each
    kind's ``concurrency``; a pass claims only what free lanes can take, and returns at once."""

    def __init__(self, db: Database, kinds: dict[str, Kind]) -> None:
        self.db = db
        self.kinds = kinds
        self._running: dict[str, set[asyncio.Task[None]]] = {name: set() for name in kinds}
        self._claims: dict[asyncio.Task[None], tuple[str, str]] = {}
        """Each run in flight → the (task id, claim token) it holds."""
        self._stopping = False

    def _free(self) -> dict[str, int]:
        return {
            name: kind.concurrency - len(self._running[name])
            for name, kind in self.kinds.items()
            if kind.concurrency > len(self._running[name])
        }

    async def run_once(self) -> int:
        """One pass; returns how many tasks it started (the caller loops while it is busy)."""
        free = self._free()
        if not free or self._stopping:
            return 0
        token = "claim:" + secrets.token_hex(8)
        lanes = {name: self.kinds[name] for name in free}
        tasks = await self.db.run(lambda s: claim(s, lanes, token, limit=sum(free.values())))
        started = 0
        for task in tasks:
            if free.get(task.kind, 0) <= 0:
                # more of this kind than its lane takes: hand it back at once
                await self.db.run(_settle(task.id, token, status="pending", claim=None))
                continue
            free[task.kind] -= 1
            job = asyncio.get_running_loop().create_task(self._run(task, token))
            self._running[task.kind].add(job)
            self._claims[job] = (task.id, token)
            job.add_done_callback(self._running[task.kind].discard)
            job.add_done_callback(lambda done: self._claims.pop(done, None))
            started += 1
        return started

    async def drain(self, timeout: float) -> None:
        """Let running tasks finish (graceful stop). Those still running after ``timeout``
        are cancelled and handed back at once, so that another replica takes them over now
        rather than when their lease would have run out."""
        self._stopping = True  # nothing new is claimed from here on
        running = [job for jobs in self._running.values() for job in jobs]
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=timeout)
        if not pending:
            return
        # exactly the runs cut short, read before their end forgets them
        held = [self._claims[job] for job in pending if job in self._claims]
        for job in pending:
            job.cancel()
        await asyncio.wait(pending, timeout=5)
        log.warning("stopping: %d task(s) cut short and handed back", len(held))
        for task_id, token in held:
            await self.db.run(_settle(task_id, token, status="pending", claim=None))

    async def _heartbeat(
        self, task_id: str, token: str, lease: timedelta, run: asyncio.Task[Any]
    ) -> None:
        """Renew the lease while the handler runs. A claim found lost (this process stalled
        past its lease and another worker took the task) stops the run: two workers must
        not send the same email."""
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                held = await self.db.run(_settle(task_id, token, leased_until=utcnow() + lease))
            except Exception:  # the database may be restarting: try again next beat
                log.warning("could not renew the lease of task %s", task_id, exc_info=True)
                continue
            if not held:
                log.warning("task %s: lease lost (taken over after a stall); stopping it", task_id)
                run.cancel()
                return

    async def _run(self, task: Task, token: str) -> None:
        kind = self.kinds[task.kind]
        attempts = task.attempts + 1
        this = asyncio.current_task()
        assert this is not None
        beat = asyncio.get_running_loop().create_task(
            self._heartbeat(task.id, token, kind.lease, this)
        )
        try:
            await kind.handler(task)
        except Exception as exc:  # every failure is recorded, none kills the pass
            beat.cancel()
            error = _describe(exc)
            permanent = isinstance(exc, TaskFailed)
            # Our own backing service down (document storage, say) is no fault of the task's:
            # it waits, with backoff, however long the outage lasts, rather than giving up a
            # completion email after its kind's attempts.
            ours_down = isinstance(exc, Unavailable)
            exhausted = kind.max_attempts is not None and attempts >= kind.max_attempts
            give_up = permanent or (exhausted and not ours_down)
            if give_up:
                log.warning("task %s (%s) failed for good: %s", task.id, task.kind, error)
                if kind.on_give_up is not None:
                    await kind.on_give_up(task, error)
                values: dict[str, Any] = {"status": "failed", "finished_at": utcnow()}
                metrics.task_outcome(task.kind, "failed")
            else:
                log.warning(
                    "task %s (%s) failed (attempt %d), will retry: %s",
                    task.id,
                    task.kind,
                    attempts,
                    error,
                )
                values = {"status": "pending", "due_at": utcnow() + backoff(attempts)}
                metrics.task_outcome(task.kind, "retry")
            await self.db.run(
                _settle(
                    task.id,
                    token,
                    attempts=attempts,
                    leased_until=None,
                    claim=None,
                    last_error=error,
                    **values,
                )
            )
            return
        finally:
            beat.cancel()
        metrics.task_outcome(task.kind, "done")
        await self.db.run(
            _settle(
                task.id,
                token,
                status="done",
                attempts=attempts,
                leased_until=None,
                claim=None,
                finished_at=utcnow(),
                last_error=None,
            )
        )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]
