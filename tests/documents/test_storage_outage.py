"""The default store (local disk) failing under a running app, as a lost volume would.

Clients are told to retry (503 ``UNAVAILABLE``, never a 500 or a "not found"), nothing
half-made is kept, ``/readyz`` says so, and a document deleted meanwhile is deleted for the
client at once, its files removed by the ``purge`` task once the disk is back.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlmodel import select

from bot.config import Settings
from bot.documents.purge import KIND
from bot.jobs.models import Task
from tests.conftest import make_pdf, new_tenant, served_app, upload
from tests.support.cluster import until
from tests.support.servers import free_port


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

        away = root.with_name("files-away")
        root.rename(away)
        root.write_bytes(b"")  # where the volume was: not a directory any more
        try:
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
        finally:
            root.unlink()
            away.rename(root)

        assert all(p.exists() for p in files)  # the disk came back as it was
        until(lambda: not any(p.exists() for p in files), timeout=30, what="the files purged")
        task = server.db.run_sync(lambda s: s.exec(select(Task).where(Task.kind == KIND)).one())
        assert task.status == "done" and task.attempts >= 2
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
        tenant.client.close()
