"""Task leases on a real database: a long run keeps its task (heartbeat), a dead worker's task
is taken over once its lease runs out, and a graceful stop hands unfinished work back at once.

Two ``TaskRunner``s on one database stand for two replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.db import Database
from bot.documents.storage import StorageUnavailable
from bot.jobs.models import Task
from bot.jobs.tasks import Kind, TaskRunner, enqueue
from bot.timeutil import utcnow
from tests.conftest import BACKENDS, PG_URL
from tests.support.pg import migrated_database

LEASE = timedelta(seconds=0.6)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path, PG_URL, prefix="signbot_lease") as database:
        yield database


def _task(db: Database, task_id: str) -> Task:
    return db.run_sync(lambda s: s.exec(select(Task).where(Task.id == task_id)).one())


def _enqueue(db: Database) -> str:
    return db.run_sync(lambda s: enqueue(s, "work", {"n": 1}))


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_run_longer_than_its_lease_is_not_taken_over(db: Database) -> None:
    runs: list[str] = []

    async def slow(task: Task) -> None:
        runs.append("a")
        await asyncio.sleep(LEASE.total_seconds() * 4)

    async def other(task: Task) -> None:
        runs.append("b")

    a = TaskRunner(db, {"work": Kind(slow, lease=LEASE)})
    b = TaskRunner(db, {"work": Kind(other, lease=LEASE)})
    task_id = _enqueue(db)
    assert await a.run_once() == 1
    for _ in range(12):  # well past the lease: the heartbeat keeps renewing it
        await asyncio.sleep(LEASE.total_seconds() / 3)
        assert await b.run_once() == 0
    await a.drain(timeout=5)
    assert runs == ["a"]
    assert _task(db, task_id).status == "done"


async def test_a_dead_workers_task_is_taken_over_after_its_lease(db: Database) -> None:
    started = asyncio.Event()
    done: list[str] = []

    async def hangs(task: Task) -> None:
        started.set()
        await asyncio.sleep(3600)

    async def works(task: Task) -> None:
        done.append(task.id)

    dying = TaskRunner(db, {"work": Kind(hangs, lease=LEASE)})
    task_id = _enqueue(db)
    assert await dying.run_once() == 1
    await started.wait()
    # "kill -9": the run and its heartbeat stop without any goodbye to the database
    for jobs in dying._running.values():
        for job in jobs:
            job.cancel()
    await asyncio.sleep(0)
    held = _task(db, task_id)
    assert held.status == "running"

    successor = TaskRunner(db, {"work": Kind(works, lease=LEASE)})
    assert await successor.run_once() == 0  # the lease still holds
    await asyncio.sleep(LEASE.total_seconds() + 0.3)
    assert await successor.run_once() == 1
    await successor.drain(timeout=5)
    assert done == [task_id]
    assert _task(db, task_id).status == "done"


async def test_a_graceful_stop_hands_unfinished_work_back_at_once(db: Database) -> None:
    started = asyncio.Event()

    async def hangs(task: Task) -> None:
        started.set()
        await asyncio.sleep(3600)

    runner = TaskRunner(db, {"work": Kind(hangs, lease=timedelta(minutes=5))})
    task_id = _enqueue(db)
    assert await runner.run_once() == 1
    await started.wait()
    await runner.drain(timeout=0.2)
    row = _task(db, task_id)
    assert (row.status, row.claim) == ("pending", None)

    done: list[str] = []

    async def works(task: Task) -> None:
        done.append(task.id)

    successor = TaskRunner(db, {"work": Kind(works)})
    assert await successor.run_once() == 1  # no five-minute wait for the lease
    await successor.drain(timeout=5)
    assert done == [task_id]


async def test_a_stop_hands_back_only_the_runs_it_cut_short_and_claims_nothing_more(
    db: Database,
) -> None:
    async def hangs(task: Task) -> None:
        await asyncio.sleep(3600)

    async def quick(task: Task) -> None:
        return None

    runner = TaskRunner(db, {"slow": Kind(hangs), "fast": Kind(quick)})
    slow = db.run_sync(lambda s: enqueue(s, "slow", {}))
    fast = db.run_sync(lambda s: enqueue(s, "fast", {}))
    assert await runner.run_once() == 2
    await _until(lambda: _task(db, fast).status == "done")
    stopping = asyncio.create_task(runner.drain(timeout=0.5))
    await asyncio.sleep(0.1)
    later = db.run_sync(lambda s: enqueue(s, "fast", {}))
    assert await runner.run_once() == 0  # a tick during the stop takes nothing new
    await stopping
    assert (_task(db, slow).status, _task(db, slow).claim) == ("pending", None)
    assert _task(db, fast).status == "done"  # finished work is not handed back
    assert (_task(db, later).status, _task(db, later).claim) == ("pending", None)


async def test_a_run_whose_lease_was_taken_over_is_stopped(db: Database) -> None:
    from sqlalchemy import update

    started = asyncio.Event()
    stopped = asyncio.Event()

    async def hangs(task: Task) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise

    runner = TaskRunner(db, {"work": Kind(hangs, lease=LEASE)})
    task_id = _enqueue(db)
    assert await runner.run_once() == 1
    await started.wait()
    # this process stalled past its lease and another worker claimed the task meanwhile
    db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(Task).where(Task.id == task_id).values(claim="claim:successor")
        )
    )
    await asyncio.wait_for(stopped.wait(), timeout=5)
    row = _task(db, task_id)
    assert (row.status, row.claim) == ("running", "claim:successor")  # the successor's, intact


async def test_our_own_outage_never_uses_up_a_tasks_attempts(db: Database) -> None:
    """A completion email whose PDF cannot be read while storage is down waits for it, however
    long that lasts; a failure of its own still counts."""
    failures: list[Exception] = [StorageUnavailable("bucket 'docs' not reachable")] * 3
    failures.append(RuntimeError("550 mailbox unavailable"))
    given_up: list[str] = []

    async def send(task: Task) -> None:
        raise failures.pop(0)

    async def give_up(task: Task, error: str) -> None:
        given_up.append(error)

    runner = TaskRunner(db, {"work": Kind(send, max_attempts=2, lease=LEASE, on_give_up=give_up)})
    task_id = _enqueue(db)
    for attempt in range(1, 5):
        assert await runner.run_once() == 1
        await _until(lambda: _task(db, task_id).claim is None)
        task = _task(db, task_id)
        assert task.attempts == attempt
        if attempt < 4:
            assert task.status == "pending", attempt
            assert "bucket 'docs' not reachable" in (task.last_error or "")
            db.run_sync(  # the backoff has passed
                lambda s: s.exec(  # type: ignore[call-overload]
                    update(Task).where(col(Task.id) == task_id).values(due_at=utcnow())
                )
            )
    assert task.status == "failed" and "550" in (task.last_error or "")
    assert len(given_up) == 1
