"""The default store (local disk) failing under a running app, as a lost volume would.

Clients are told to retry (503 ``UNAVAILABLE``, never a 500 or a "not found"), nothing
half-made is kept, ``/readyz`` says so, and a document deleted meanwhile is deleted for the
client at once, its files removed by the ``purge`` task once the disk is back.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.config import Settings
from bot.documents.purge import KIND
from bot.documents.storage import LocalStorage
from bot.jobs.models import Task
from tests.conftest import make_pdf, new_tenant, served_app, upload
from tests.support.cluster import until
from tests.support.servers import free_port


@contextmanager
def volume_lost(root: Path) -> Iterator[None]:
    """The store's directory gone (a file where it was) until the block ends."""
    away = root.with_name("files-away")
    root.rename(away)
    root.write_bytes(b"")
    try:
        yield
    finally:
        root.unlink()
        away.rename(root)


def test_a_lost_disk_answers_503_and_a_delete_meanwhile_is_finished_later(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, port=free_port(), rate_limit_enabled=False, jobs_interval_seconds=0.2
    )
    with served_app(settings) as server:
        tenant = new_tenant(server)
        doc = upload(tenant, make_pdf(2))
        root = settings.storage_root
        files = [p for p in root.rglob("*") if p.is_file() and doc["id"] in str(p)]
        assert files, "the upload left no file on disk"

        with volume_lost(root):
            refused = tenant.client.post(
                "/documents", files={"file": ("late.pdf", make_pdf(1), "application/pdf")}
            )
            unreadable = tenant.client.get(f"/documents/{doc['id']}/content")
            for answer in (refused, unreadable):
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "5"
                assert answer.json()["code"] == "UNAVAILABLE"
            ready = httpx.get(f"{server.base_url}/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["storage"] == "error"
            listed = tenant.client.get("/documents").json()
            assert [d["id"] for d in listed["data"]] == [doc["id"]]  # nothing half-made

            deleted = tenant.client.delete(f"/documents/{doc['id']}")
            assert deleted.status_code == 200, deleted.text
            assert tenant.client.get(f"/documents/{doc['id']}").status_code == 404

            def purge_tried() -> Task | None:
                return server.db.run_sync(
                    lambda s: s.exec(
                        select(Task).where(Task.kind == KIND, Task.attempts >= 1)
                    ).first()
                )

            tried = until(purge_tried, timeout=10, what="a first purge attempt")
            assert tried.status == "pending"  # failed: retried later, saying why
            assert "document storage unavailable" in (tried.last_error or "")

        assert all(p.exists() for p in files)  # the disk came back as it was

        def purge_task() -> Task:
            return server.db.run_sync(lambda s: s.exec(select(Task).where(Task.kind == KIND)).one())

        until(lambda: purge_task().status == "done", timeout=30, what="the purge task done")
        assert not any(p.exists() for p in files)
        assert purge_task().attempts >= 2
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
        tenant.client.close()


@contextmanager
def tiny_disk(path: Path, size: str = "96k") -> Iterator[Path]:
    """A real, nearly full file system at ``path`` (a tmpfs of ``size``). Where this process
    may not mount one (mounting needs root) the test is skipped, saying why, unless ``CI`` is
    set: CI runs as root on a machine that allows it, and must run it."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: it must be possible)")
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("full", ["uploads", "store"])
def test_a_full_disk_answers_503_and_keeps_nothing(tmp_path: Path, full: str) -> None:
    """``uploads``: the data dir's tmp/ (where an upload is received) is full; ``store``: the
    document store is."""
    settings = Settings(data_dir=tmp_path, port=free_port(), rate_limit_enabled=False)
    target = tmp_path / "tmp" if full == "uploads" else settings.storage_root
    big = make_pdf(1) + b"%" + os.urandom(300_000) + b"\n"  # a PDF with a large comment
    with tiny_disk(target), served_app(settings) as server:
        tenant = new_tenant(server)
        small = upload(tenant, make_pdf(1))  # fits
        refused = tenant.client.post(
            "/documents", files={"file": ("big.pdf", big, "application/pdf")}
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "UNAVAILABLE"
        assert refused.headers["retry-after"] == "5"
        listed = tenant.client.get("/documents").json()
        assert [d["id"] for d in listed["data"]] == [small["id"]]
        stored = [p for p in settings.storage_root.rglob("*") if p.is_file()]
        assert all(small["id"] in str(p) for p in stored if p.name != LocalStorage.MARKER)
        tenant.client.close()


def test_an_edit_while_the_store_is_down_is_kept_and_placed_at_send(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=free_port(), rate_limit_enabled=False)
    signer = "ana@example.com"
    with served_app(settings) as server:
        tenant = new_tenant(server)
        doc = upload(tenant, make_pdf(2))
        created = tenant.client.post(
            "/envelopes",
            json={
                "subject": "Edited during an outage",
                "documentIds": [doc["id"]],
                "recipients": [{"email": signer, "name": "Ana"}],
                "fields": [{"recipientEmail": signer, "pageNumber": 1, "x": 100, "y": 100}],
            },
        )
        assert created.status_code == 201, created.text
        envelope_id = created.json()["id"]
        assert created.json()["fields"][0]["placement"]["pageNumber"] == 1

        with volume_lost(settings.storage_root):
            moved = [{"recipientEmail": signer, "pageNumber": 2, "x": 50, "y": 60}]
            patched = tenant.client.patch(f"/envelopes/{envelope_id}", json={"fields": moved})
            assert patched.status_code == 200, patched.text  # saved: not "retry"
            field = patched.json()["fields"][0]
            assert field["pageNumber"] == 2 and "placement" not in field  # no stale placement
            held = tenant.client.post(f"/envelopes/{envelope_id}/send")
            assert held.status_code == 503 and held.json()["code"] == "UNAVAILABLE"
            assert tenant.client.get(f"/envelopes/{envelope_id}").json()["status"] == "DRAFT"

        sent = tenant.client.post(f"/envelopes/{envelope_id}/send")
        assert sent.status_code == 200, sent.text
        placed = tenant.client.get(f"/envelopes/{envelope_id}").json()["fields"][0]
        assert placed["placement"]["pageNumber"] == 2
        tenant.client.close()
