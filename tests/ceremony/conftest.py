"""A server that really sends mail: SMTP to an aiosmtpd on loopback, tasks every 0.2 s.

Its own database (and data dir): its worker must not share tasks with the suite's main server,
whose mail goes to files. Scoped to this package: its worker ticks five times a second, and
it should not keep doing so through the rest of the suite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bot.config import Settings
from tests.conftest import BACKENDS, PG_URL, Server, Tenant, new_tenant, served_app
from tests.support.mailbox import Mailbox, smtp_server
from tests.support.pg import throwaway_database
from tests.support.servers import free_port


@dataclass
class MailServer(Server):
    mailbox: Mailbox = None  # type: ignore[assignment]


@pytest.fixture(scope="package", params=BACKENDS)
def mail_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailServer]:
    backend = request.param
    with contextlib.ExitStack() as stack:
        mailbox, smtp_port = stack.enter_context(smtp_server())
        database_url = None
        if backend == "postgresql":
            assert PG_URL
            database_url = stack.enter_context(throwaway_database(PG_URL))
        settings = Settings(
            data_dir=tmp_path_factory.mktemp(f"mail-{backend}"),
            database_url=database_url,
            port=free_port(),
            smtp_url=f"smtp://127.0.0.1:{smtp_port}",
            smtp_from="contracts@signbot.test",
            jobs_interval_seconds=0.2,
            rate_limit_enabled=False,
        )
        served = stack.enter_context(served_app(settings, backend))
        yield MailServer(served.base_url, settings, served.db, served.app, backend, mailbox)


@pytest.fixture
def live(mail_server: MailServer) -> Iterator[Tenant]:
    """A live-key tenant on the mail server: its envelopes' email goes through SMTP."""
    tenant = new_tenant(mail_server, "live")
    yield tenant
    tenant.client.close()


@pytest.fixture
def sandbox(mail_server: MailServer) -> Iterator[Tenant]:
    tenant = new_tenant(mail_server, "test")
    yield tenant
    tenant.client.close()
