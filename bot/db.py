"""Engine, sessions and the unit of work; migrations at start.

Why the unit of work runs where it does: on SQLite the database is a library call on a local
file, so ``Database.run`` executes it inline on the event loop. That serializes writers within
the process (SQLite allows one writer at a time anyway; letting threads fight for the lock gave
~1 s p99 at 32 connections, see FACTS.md) and saves a thread hop per request. On PostgreSQL the
work waits on the network, so it runs in a worker thread and the loop keeps serving.

Services never commit: ``run`` commits once when the function returns and rolls back when it
raises, which is the request or job boundary DESIGN.md asks for.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import anyio.to_thread
import psycopg
from sqlalchemy import event, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, SQLModel, create_engine

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """WAL lets readers run beside the writer; NORMAL sync is durable at checkpoints."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One engine and the way work is run against it."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.drivername in ("postgresql", "postgres"):
            # A plain postgresql:// URL means psycopg 3, the driver signbot ships with.
            self.url = self.url.set(drivername="postgresql+psycopg")
            url = self.url.render_as_string(hide_password=False)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 5}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # A database that goes silent (a partition, a dead host) rather than refusing:
            # keepalives and a send timeout make a pooled connection fail within ~30 s instead
            # of hanging a request thread for the kernel's ~15 minutes.
            connect_args = (
                {
                    "connect_timeout": 5,
                    "keepalives": 1,
                    "keepalives_idle": 10,
                    "keepalives_interval": 5,
                    "keepalives_count": 3,
                    "tcp_user_timeout": 30_000,
                }
                if self.url.get_backend_name() == "postgresql"
                else {}
            )
            self.engine = create_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_timeout=10,  # then 503 UNAVAILABLE, not a request queued for 30 s
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args=connect_args,
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error (sync callers: CLI)."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def run_sync(self, fn: Callable[[Session], T]) -> T:
        with self.session() as session:
            return fn(session)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as connection:
            return fn(connection)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run read-only Core queries on a plain connection: no Session, no unit of work, no
        COMMIT — the hot read paths (key lookup, ``GET /envelopes/{id}``) use it."""
        if self.is_sqlite:
            return self.read_sync(fn)
        return await anyio.to_thread.run_sync(self.read_sync, fn)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` as one transaction: inline on SQLite, in a thread otherwise."""
        if self.is_sqlite:
            return self.run_sync(fn)
        return await anyio.to_thread.run_sync(self.run_sync, fn)

    def ping(self) -> None:
        """Raise when the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


#: SQLSTATEs of a server going away or refusing work (besides class 08, connection exception):
#: admin shutdown (a fast stop/restart), crash shutdown, "starting up / shutting down", and
#: too many connections.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


#: What a database call can raise: the exception types a caller checks with
#: :func:`database_unavailable`.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, PoolTimeout, psycopg.Error)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached right now (retry later), as opposed
    to a bug in a query: connection refused or lost, server shutting down or starting up,
    too many connections, or no pooled connection within the pool's timeout."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy recognised a disconnect
            return True
        exc = exc.orig
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        state = exc.sqlstate
        # No SQLSTATE: raised by the client library itself (could not connect, connection
        # closed or lost); a server's complaint about a query always carries one.
        return state is None or state.startswith("08") or state in _UNAVAILABLE_SQLSTATES
    return False


def check_reachable(db: Database) -> str | None:
    """A readable reason when the database cannot be reached, else None (CLI and readyz)."""
    try:
        db.ping()
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return None


# ------------------------------------------------------------------ plain rows for hot writes


def plain_row(model: type[SQLModel], **values: Any) -> SimpleNamespace:
    """A row of ``model`` as a plain object (defaults filled in), for Core inserts.

    Why: building and flushing ORM instances costs ~1 ms per envelope on the hottest write
    path (``POST /envelopes``); a plain object has the same attribute names, so presenters
    take either, and ``insert_rows`` writes it with one executemany per table.
    """
    fields = model.model_fields
    for name, info in fields.items():
        if name not in values:
            values[name] = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    return SimpleNamespace(**values)


@cache
def _column_keys(model: type[SQLModel]) -> dict[str, str]:
    """Attribute name → column name (they differ where a name is reserved, e.g. metadata_)."""
    return {attr.key: attr.columns[0].key for attr in sa_inspect(model).column_attrs}


def insert_rows(session: Session, model: type[SQLModel], rows: list[SimpleNamespace]) -> None:
    """Insert plain rows in the session's transaction (no unit-of-work bookkeeping)."""
    if not rows:
        return
    keys = _column_keys(model)
    session.execute(
        insert(model.__table__),  # type: ignore[attr-defined]
        [{keys[k]: v for k, v in vars(row).items() if k in keys} for row in rows],
    )


#: Tries of :func:`shared_value` before it gives up (each losing a race reads the winner's).
SHARED_VALUE_ATTEMPTS = 10


def shared_value(db: Database, model: type[SQLModel], key: str, make: Callable[[], str]) -> str:
    """The ``value`` under ``key`` in a key/value table, created once with ``make()``: every
    replica reads the same one, and when two create it at the same first start the primary key
    lets one win and the other reads the winner's."""

    def read(session: Session) -> str | None:
        row: Any = session.get(model, key)
        return row.value if row else None

    for attempt in range(SHARED_VALUE_ATTEMPTS):
        value = db.run_sync(read)
        if value is not None:
            return value
        try:
            made = make()  # may write rows of its own, which another replica may race for
            db.run_sync(lambda s, v=made: s.add(model(key=key, value=v)))
        except IntegrityError:
            # another replica got there first (the value, or something make() needed):
            # read again, after a short pause in case its transaction is still open
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError(f"could not read or create the shared setting {key!r}")
