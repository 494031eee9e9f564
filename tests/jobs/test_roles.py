"""``--role``: api serves without background work, worker works without serving the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from tests.support.servers import free_port, uvicorn_thread


@pytest.mark.parametrize("role", ["api", "worker", "all"])
def test_roles(role: str, tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path, port=port, role=role)  # type: ignore[arg-type]
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)
    secret = db.run_sync(
        lambda s: accounts.create_key(s, accounts.default_account(s).id, "test").secret
    )
    app = create_app(settings, db)
    with uvicorn_thread(app, port) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        listed = httpx.get(f"{base}/api/v1/envelopes", headers={"Authorization": secret})
        assert listed.status_code == (404 if role == "worker" else 200)
        assert hasattr(app.state, "worker") == (role != "api")
    db.dispose()
