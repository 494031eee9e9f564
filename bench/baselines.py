"""Baseline servers for ``bench/api.py``: the cheapest honest versions of what our endpoints do.

Why baselines at all: absolute req/s on these machines are noisy and depend on the core, so our
endpoints are judged against bare FastAPI apps measured in the same run, on the same machine,
served the same way. Each baseline is one process started as::

    python bench/baselines.py KIND --port P [--database-url URL] [--log-level info]

KIND is one of:

* ``hello``       — (a) ``GET /hello`` answering a constant dict: the framework's ceiling.
* ``read-sync``   — (b) ``GET /rows/{id}``, a sync ``def`` doing one primary-key read through a
  SQLModel ``Session`` (FastAPI runs it in its thread pool).
* ``read-async``  — (c) the same read as ``async def`` calling the sync session directly on the
  event loop (what ``Database.run`` does on SQLite).
* ``insert``      — (d) ``POST /rows``, the naive insert: sync ``def``, one ``Session`` and one
  commit per request, writers left to fight for SQLite's lock.

"Served the same way" means: the engine is built by ``bot.db.Database`` (so the SQLite pragmas —
WAL, synchronous=NORMAL, busy_timeout 5000 — and the PostgreSQL pool are the app's own), logging
is configured by ``bot.logs.configure``, and ``uvicorn.run`` gets the keyword arguments of
``bot/cli.py``'s ``serve`` (:data:`SERVE_OPTIONS`; ``bench/api.py`` warns if they drift apart).
uvicorn's own access log is off in both; signbot writes its access line from its request-id
middleware (``bot.web.requestid``), so that line is part of what is measured for signbot and
absent from the baselines.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlmodel import Field, Session, SQLModel, func, select

from bot import cli, logs
from bot.db import Database

KINDS = ("hello", "read-sync", "read-async", "insert")
DB_KINDS = ("read-sync", "read-async", "insert")

#: The keyword arguments ``bot/cli.py`` passes to ``uvicorn.run`` besides app, host and port.
SERVE_OPTIONS: dict[str, Any] = cli.SERVE_OPTIONS

#: Rows seeded for the read baselines; ``READ_ID`` is the one every request reads.
SEED_ROWS = 1000
READ_ID = "row_000500"


class BenchRow(SQLModel, table=True):
    """A small row with a string primary key, like our tables (``new_id``)."""

    __tablename__ = "bench_rows"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    created_at: datetime


class RowIn(BaseModel):
    name: str


def prepare(db: Database) -> None:
    """Create the table and seed it once (before serving, so requests never see DDL)."""
    SQLModel.metadata.create_all(db.engine, tables=[BenchRow.__table__])  # type: ignore[list-item]
    with db.session() as session:
        if session.exec(select(func.count()).select_from(BenchRow)).one() == 0:
            now = datetime.now(UTC)
            for i in range(SEED_ROWS):
                session.add(BenchRow(id=f"row_{i:06d}", name=f"row {i}", created_at=now))


def _row_json(row: BenchRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "createdAt": row.created_at.isoformat()}


def build(kind: str, db: Database | None) -> FastAPI:
    """The baseline app of ``kind`` (plus ``/healthz``, which the bench waits on)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if kind == "hello":

        @app.get("/hello")
        async def hello() -> dict[str, str]:
            return {"hello": "world"}

        return app

    assert db is not None
    engine = db.engine

    if kind == "read-sync":

        @app.get("/rows/{row_id}")
        def read_sync(row_id: str) -> dict[str, Any]:
            with Session(engine) as session:
                row = session.get(BenchRow, row_id)
                if row is None:
                    raise HTTPException(404)
                return _row_json(row)

    elif kind == "read-async":

        @app.get("/rows/{row_id}")
        async def read_async(row_id: str) -> dict[str, Any]:
            with Session(engine) as session:
                row = session.get(BenchRow, row_id)
                if row is None:
                    raise HTTPException(404)
                return _row_json(row)

    elif kind == "insert":

        @app.post("/rows", status_code=201)
        def insert(body: RowIn) -> dict[str, Any]:
            row_id = f"row_{uuid.uuid4().hex}"
            with Session(engine) as session:
                session.add(BenchRow(id=row_id, name=body.name, created_at=datetime.now(UTC)))
                session.commit()
            return {"id": row_id}

    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(kind)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logs.configure(args.log_level)
    db = None
    if args.kind in DB_KINDS:
        if not args.database_url:
            parser.error(f"{args.kind} needs --database-url")
        db = Database(args.database_url)
        prepare(db)
    uvicorn.run(build(args.kind, db), host="127.0.0.1", port=args.port, **SERVE_OPTIONS)


if __name__ == "__main__":
    main()
