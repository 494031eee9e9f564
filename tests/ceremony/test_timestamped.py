"""A deployment with ``SIGNBOT_TSA_URL``: completed envelopes are sealed PAdES B-LT, with a
timestamp from a real RFC 3161 authority on loopback and the validation data embedded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot import migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.signing.verify import load_roots, verify_pdf
from tests.conftest import Server, new_tenant, upload
from tests.signing.tsa import local_tsa
from tests.support.servers import free_port, uvicorn_thread


@pytest.fixture(scope="module")
def timestamped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with local_tsa() as tsa:
        data_dir = tmp_path_factory.mktemp("tsa-data")
        roots = data_dir / "tsa-root.der"
        roots.write_bytes(tsa.root.dump())
        port = free_port()
        settings = Settings(
            data_dir=data_dir,
            port=port,
            tsa_url=tsa.url,
            tsa_roots=roots,
            jobs_interval_seconds=0.2,
        )
        db = Database(settings.effective_database_url)
        migrations.upgrade(db)
        with uvicorn_thread(create_app(settings, db), port) as base:
            yield Server(base, settings, db, None, "sqlite")  # type: ignore[arg-type]
        db.dispose()


def test_completed_envelope_is_sealed_b_lt(timestamped: Server, tmp_path: Path) -> None:
    tenant = new_tenant(timestamped)
    document = upload(tenant)
    envelope = tenant.client.post(
        "/envelopes",
        json={
            "subject": "Timestamped",
            "documentIds": [document["id"]],
            "recipients": [{"email": "t@example.com", "name": "Tess"}],
        },
    ).json()
    assert tenant.client.post(f"/envelopes/{envelope['id']}/send").status_code == 200
    url = envelope["recipients"][0]["signUrl"]
    form = {"name": "Tess", "mode": "typed", "typed": "Tess", "consent": "yes"}
    assert httpx.post(f"{url}/sign", data=form).status_code == 303
    deadline = time.monotonic() + 30
    while True:
        signed = tenant.client.get(f"/envelopes/{envelope['id']}/signed-document")
        if signed.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert signed.status_code == 200, signed.text
    root = load_roots([timestamped.settings.data_dir / "seal" / "root.pem"])
    report = verify_pdf(signed.content, root)
    assert report.ok, report
    seal = report.signatures[0]
    assert seal.level == "B-LT" and seal.timestamp_time is not None
