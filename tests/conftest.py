"""Fixtures: the whole app served over real HTTP, on SQLite and (when configured) PostgreSQL.

``SIGNBOT_TEST_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) adds a
PostgreSQL run of every API test: a throwaway database is created beside the given one and
dropped at the end. ``SIGNBOT_TEST_REDIS_URL`` puts the rate limiter of the served app on Redis.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pypdf import PdfWriter

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from tests.support.pg import throwaway_database
from tests.support.servers import free_port, uvicorn_thread

PG_URL = os.environ.get("SIGNBOT_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("SIGNBOT_TEST_REDIS_URL")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
        ],
    ),
]


def make_pdf(pages: int = 1, width: float = 612, height: float = 792) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width, height)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    return make_pdf(2)


@pytest.fixture(scope="session")
def throwaway_pg() -> Iterator[str]:
    """A fresh PostgreSQL database on the configured server, dropped afterwards."""
    assert PG_URL
    with throwaway_database(PG_URL) as url:
        yield url


@dataclass
class Server:
    """A running signbot app, reached over real HTTP on loopback."""

    base_url: str
    settings: Settings
    db: Database
    app: FastAPI
    backend: str


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    backend = request.param
    data_dir = tmp_path_factory.mktemp(f"data-{backend}")
    database_url = None
    if backend == "postgresql":
        database_url = request.getfixturevalue("throwaway_pg")
    settings = Settings(
        data_dir=data_dir, database_url=database_url, port=free_port(), redis_url=REDIS_URL
    )
    with served_app(settings, backend) as served:
        yield served


@contextmanager
def served_app(settings: Settings, backend: str = "sqlite") -> Iterator[Server]:
    """The app ``settings`` describe, migrated and served over HTTP on ``settings.port``."""
    db = Database(settings.effective_database_url)
    try:
        migrations.upgrade(db)
        app = create_app(settings, db)
        with uvicorn_thread(app, settings.port) as base:
            yield Server(base, settings, db, app, backend)
    finally:
        db.dispose()


@dataclass
class Tenant:
    """A fresh account with a key, and an HTTP client that presents it."""

    account_id: str
    key_id: str
    secret: str
    client: httpx.Client
    server: Server

    def new_key(self, environment: str = "test", scopes: list[str] | None = None) -> str:
        new = self.server.db.run_sync(
            lambda s: accounts.create_key(s, self.account_id, environment, "extra", scopes)
        )
        return new.secret

    def client_for(self, secret: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.server.base_url}/api/v1",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )


def new_tenant(server: Server, environment: str = "test") -> Tenant:
    def work(session):  # type: ignore[no-untyped-def]
        account = accounts.create_account(session, f"acct-{uuid.uuid4().hex[:12]}")
        return account.id, accounts.create_key(session, account.id, environment, "tests")

    account_id, new = server.db.run_sync(work)
    client = httpx.Client(
        base_url=f"{server.base_url}/api/v1",
        headers={"Authorization": f"Bearer {new.secret}"},
        timeout=30,
    )
    return Tenant(account_id, new.key.id, new.secret, client, server)


@pytest.fixture
def tenant(server: Server) -> Iterator[Tenant]:
    t = new_tenant(server)
    yield t
    t.client.close()


@pytest.fixture
def other_tenant(server: Server) -> Iterator[Tenant]:
    t = new_tenant(server)
    yield t
    t.client.close()


def upload(tenant: Tenant, content: bytes | None = None, name: str = "contrat.pdf") -> dict:
    response = tenant.client.post(
        "/documents", files={"file": (name, content or make_pdf(2), "application/pdf")}
    )
    assert response.status_code == 201, response.text
    return response.json()


def draft(tenant: Tenant, **overrides: object) -> dict:
    doc = upload(tenant)
    body = {
        "subject": "Contrat de prestation",
        "documentIds": [doc["id"]],
        "recipients": [{"email": "client@example.com", "name": "Marie Dubois", "role": "SIGNER"}],
        **overrides,
    }
    response = tenant.client.post("/envelopes", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "signbot-data"
    path.mkdir()
    return path
