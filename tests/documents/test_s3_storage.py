"""The storage contract, run against local disk and S3 (moto in server mode: a real S3 API over
HTTP), the S3 backend's own behaviour (prefix, configuration, health) and the whole app on S3."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bot.config import Settings
from bot.documents.s3 import MULTIPART_THRESHOLD, S3Options, S3Storage, parse_s3_url
from bot.documents.storage import (
    LocalStorage,
    Storage,
    StorageUnavailable,
    build_storage,
    storage_from_settings,
)
from tests.conftest import Server, Tenant, make_pdf, new_tenant, served_app, upload
from tests.support.s3 import SECRET_ACCESS_KEY, S3Server, moto_server
from tests.support.servers import free_port
from tests.support.storage import collect, keyed_calls

KEY = "acc_1/doc_01HXYZ/original"
PREFIX = "pfx/sub"
INVALID_KEYS = ["", "/abs", "a//b", "a/../b", "../x", "a/.hidden", "trailing/", "sp ace", "é"]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def app_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the apps of this module: its seal certificate is generated once."""
    return tmp_path_factory.mktemp("s3-app")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    s3: S3Server = request.getfixturevalue("s3")
    return S3Storage(s3.new_bucket(), PREFIX, s3.options)


# -- the contract, on every backend ---------------------------------------------------------


async def test_bytes_round_trip_and_delete(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    assert not await storage.exists(KEY)
    await storage.put_bytes(KEY, b"%PDF-1.7 hello")
    assert await storage.exists(KEY)
    assert await storage.read_bytes(KEY) == b"%PDF-1.7 hello"
    await storage.put_bytes(KEY, b"%PDF-1.7 again")  # overwrite
    assert await storage.read_bytes(KEY) == b"%PDF-1.7 again"
    await storage.delete(KEY)
    assert not await storage.exists(KEY)
    await storage.delete(KEY)  # a missing one is fine
    assert await storage.healthy()


@pytest.fixture(params=["local-replaced", "local-removed", "local-unmounted", "s3"])
def broken_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A store that stopped working: a root replaced by a file, removed, or an empty mount
    point left where the volume was; a bucket that does not exist."""
    if request.param.startswith("local"):
        local = LocalStorage(tmp_path / "files")
        shutil.rmtree(local.root)
        if request.param == "local-replaced":
            local.root.write_bytes(b"not a directory")
        elif request.param == "local-unmounted":
            local.root.mkdir()
        return local
    s3: S3Server = request.getfixturevalue("s3")
    return S3Storage("no-bucket-by-that-name", PREFIX, s3.options)


async def test_a_failing_store_is_unavailable_never_not_found(
    broken_storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(StorageUnavailable) as raised:
        await broken_storage.put_bytes(KEY, b"%PDF-1.7 contract")
    assert raised.value.reason and SECRET_ACCESS_KEY not in raised.value.reason
    source = tmp_path / "upload.pdf"
    source.write_bytes(b"%PDF-1.7 uploaded")
    with pytest.raises(StorageUnavailable):
        await broken_storage.put_file(KEY, source)
    assert "temporarily unavailable" in raised.value.message  # what a client is told
    for call in keyed_calls(broken_storage, KEY):
        with pytest.raises(StorageUnavailable):
            await call()
    assert not await broken_storage.healthy()
    if isinstance(broken_storage, LocalStorage):  # nothing recreated behind the operator's back
        assert not (broken_storage.root / "acc_1").exists()


async def test_put_file_copies_and_leaves_the_source(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "upload.part"
    data = bytes(range(256)) * 1000
    src.write_bytes(data)
    await storage.put_file(KEY, src)
    assert src.read_bytes() == data
    assert await storage.read_bytes(KEY) == data
    path = await storage.open_path(KEY)
    if isinstance(storage, S3Storage):
        assert path is None  # callers stream it instead
    else:
        assert path is not None and path.read_bytes() == data
        assert isinstance(storage, LocalStorage) and path.is_relative_to(storage.root)
    assert b"".join(await collect(storage.stream(KEY))) == data
    with pytest.raises(FileNotFoundError):
        await storage.put_file("other/key", tmp_path / "missing")
    assert not await storage.exists("other/key")


async def test_stream_yields_chunks(storage: Storage) -> None:
    data = b"x" * 10 + b"y" * 10 + b"z" * 5
    await storage.put_bytes("a/b", data)
    assert await collect(storage.stream("a/b", chunk_size=10)) == [b"x" * 10, b"y" * 10, b"z" * 5]


async def test_a_missing_key_is_file_not_found(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        await storage.read_bytes("acc_1/nothing/here")
    with pytest.raises(FileNotFoundError):
        await storage.open_path("acc_1/nothing/here")
    with pytest.raises(FileNotFoundError):
        await collect(storage.stream("acc_1/nothing/here"))
    assert not await storage.exists("acc_1/nothing/here")
    await storage.delete("acc_1/nothing/here")


async def test_an_invalid_key_is_refused_everywhere(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for key in INVALID_KEYS:
        for call in (
            storage.put_bytes(key, b"x"),
            storage.put_file(key, src),
            storage.read_bytes(key),
            storage.open_path(key),
            storage.exists(key),
            storage.delete(key),
            collect(storage.stream(key)),
        ):
            with pytest.raises(ValueError, match="invalid storage key"):
                await call


async def test_a_large_object_round_trips(storage: Storage, tmp_path: Path) -> None:
    """Past the multipart threshold: S3 receives it in parts (its ETag says how many)."""
    size = MULTIPART_THRESHOLD + 1_234_567
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    src = tmp_path / "big.pdf"
    src.write_bytes(data)
    await storage.put_file(KEY, src)
    assert await storage.read_bytes(KEY) == data
    chunks = await collect(storage.stream(KEY, chunk_size=1 << 20))
    assert b"".join(chunks) == data and max(map(len, chunks)) <= 1 << 20
    if isinstance(storage, S3Storage):
        head = storage._client.head_object(Bucket=storage.bucket, Key=storage.object_key(KEY))
        assert head["ETag"].strip('"').endswith("-2")  # two parts
        assert head["ContentLength"] == size


# -- S3 only ----------------------------------------------------------------------------------


async def test_objects_live_under_the_prefix(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    under = build_storage(f"s3://{bucket}/{PREFIX}/", Path("/unused"), s3.options)
    assert isinstance(under, S3Storage) and (under.bucket, under.prefix) == (bucket, PREFIX)
    bare = build_storage(f"s3://{bucket}", Path("/unused"), s3.options)
    assert isinstance(bare, S3Storage) and bare.prefix == ""
    await under.put_bytes(KEY, b"under")
    await bare.put_bytes("top/level", b"bare")
    assert s3.keys(bucket) == [f"{PREFIX}/{KEY}", "top/level"]
    assert await bare.read_bytes(f"{PREFIX}/{KEY}") == b"under"
    assert not await under.exists("top/level")


def test_urls_and_options() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("S3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ("s3://", "s3:///prefix", "s3://bucket/a/../b", "s3://bucket/.x"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)
    with pytest.raises(ValueError, match="both"):
        S3Options(access_key_id="AKIA")
    assert S3Options().addressing_style == "auto"
    assert S3Options(endpoint_url="http://minio:9000").addressing_style == "path"
    assert S3Options(endpoint_url="http://minio:9000", path_style=False).addressing_style == (
        "virtual"
    )
    assert S3Options(path_style=True).addressing_style == "path"


def test_settings_from_the_environment_and_secrets_kept_out_of_reprs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "SIGNBOT_STORAGE_URL": "s3://docs/signbot",
        "SIGNBOT_S3_ENDPOINT_URL": "http://minio.internal:9000",
        "SIGNBOT_S3_REGION": "eu-west-3",
        "SIGNBOT_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "SIGNBOT_S3_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-very-secret",
        "SIGNBOT_S3_PATH_STYLE": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path)
    storage = storage_from_settings(settings)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("docs", "signbot")
    assert storage.options == S3Options(
        endpoint_url="http://minio.internal:9000",
        region="eu-west-3",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="wJalrXUtnFEMI-very-secret",
        path_style=False,
    )
    client = storage._client
    assert client.meta.region_name == "eu-west-3"
    assert client.meta.endpoint_url == "http://minio.internal:9000"
    assert client.meta.config.s3 == {"addressing_style": "virtual"}
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert storage._probe.meta.config.retries["total_max_attempts"] == 1
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (5.0, 30.0)
    for text in (repr(settings), str(settings), repr(storage), repr(storage.options)):
        assert "very-secret" not in text
    # Unset: local disk, as before.
    monkeypatch.delenv("SIGNBOT_STORAGE_URL")
    assert isinstance(storage_from_settings(Settings(data_dir=tmp_path)), LocalStorage)


async def test_a_missing_bucket_is_unhealthy_and_never_passes_for_a_missing_file(
    s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    storage = S3Storage("no-such-bucket-here", "", s3.options)
    with caplog.at_level(logging.WARNING, logger="signbot.storage"):
        assert not await storage.healthy()
    assert "no such bucket" in caplog.text and "no-such-bucket-here" in caplog.text
    assert SECRET_ACCESS_KEY not in caplog.text
    with pytest.raises(StorageUnavailable) as raised:  # a configuration fault, not "purged"
        await storage.read_bytes(KEY)
    assert "no such bucket" in raised.value.reason and "no-such-bucket-here" in raised.value.reason


# -- the whole app on S3 ----------------------------------------------------------------------


@contextmanager
def app_on_s3(s3: S3Server, data_dir: Path) -> Iterator[tuple[Server, str]]:
    """signbot served over HTTP with its documents in a fresh bucket; yields (server, bucket)."""
    bucket = s3.new_bucket()
    settings = Settings(
        data_dir=data_dir,
        port=free_port(),
        storage_url=f"s3://{bucket}/pfx",
        rate_limit_enabled=False,
        jobs_interval_seconds=0.2,
        **s3.settings,
    )
    with served_app(settings) as server:
        assert isinstance(server.app.state.storage, S3Storage)
        yield server, bucket


@contextmanager
def tenant_of(server: Server) -> Iterator[Tenant]:
    tenant = new_tenant(server)
    try:
        yield tenant
    finally:
        tenant.client.close()


def test_upload_download_and_readiness_follow_the_bucket(
    app_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        moto_server() as s3,
        app_on_s3(s3, app_data_dir) as (server, bucket),
        tenant_of(server) as tenant,
    ):
        pdf = make_pdf(3)
        doc = upload(tenant, pdf, name="contrat été.pdf")
        got = tenant.client.get(f"/documents/{doc['id']}/content")
        assert got.status_code == 200, got.text
        assert got.content == pdf
        assert got.headers["content-type"] == "application/pdf"
        assert "filename*=UTF-8''contrat%20%C3%A9t%C3%A9.pdf" in got.headers["content-disposition"]
        stored = s3.keys(bucket)
        assert stored, "nothing in the bucket"
        for key in stored:  # e.g. pfx/acc_…/test/doc_…/original
            assert key.startswith(f"pfx/{tenant.account_id}/") and doc["id"] in key
        bodies = [s3.client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in stored]
        assert pdf in bodies
        assert not server.settings.storage_root.exists()  # nothing on local disk

        ready = httpx.get(f"{server.base_url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["storage"] == "ok"

        deleted = tenant.client.delete(f"/documents/{doc['id']}")
        assert deleted.status_code == 200, deleted.text
        assert s3.keys(bucket) == []
        kept = upload(tenant, pdf, name="kept.pdf")

        s3.stop()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="signbot.storage"):
            down = httpx.get(f"{server.base_url}/readyz", timeout=10)
        assert time.monotonic() - started < 3  # one attempt, short timeouts: probes stay prompt
        assert down.status_code == 503
        assert down.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "storage": "error"},
        }
        assert "not reachable" in caplog.text and bucket in caplog.text
        assert SECRET_ACCESS_KEY not in caplog.text

        # The API says "retry later" (never a 500, never "not found") and keeps nothing half-made.
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            refused = tenant.client.post(
                "/documents", files={"file": ("late.pdf", make_pdf(1), "application/pdf")}
            )
            unreadable = tenant.client.get(f"/documents/{kept['id']}/content")
        for answer in (refused, unreadable):
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.headers["retry-after"] == "5"
            assert answer.json()["code"] == "UNAVAILABLE"
            assert "storage" in answer.json()["error"] and bucket not in answer.text
        assert "answering 503" in caplog.text and "not reachable" in caplog.text
        assert SECRET_ACCESS_KEY not in caplog.text
        listed = tenant.client.get("/documents").json()
        assert [d["id"] for d in listed["data"]] == [kept["id"]]
        assert tenant.client.get(f"/documents/{kept['id']}").status_code == 200  # the row is fine


def _wait_for(tenant: Tenant, path: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = tenant.client.get(path)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_sign_and_seal_with_documents_in_s3(s3: S3Server, app_data_dir: Path) -> None:
    with app_on_s3(s3, app_data_dir) as (server, bucket), tenant_of(server) as tenant:
        doc = upload(tenant, make_pdf(2))
        created = tenant.client.post(
            "/envelopes",
            json={
                "subject": "Contrat sur S3",
                "documentIds": [doc["id"]],
                "recipients": [{"email": "marie@example.com", "name": "Marie Dubois"}],
            },
        )
        assert created.status_code == 201, created.text
        envelope = created.json()
        sent = tenant.client.post(f"/envelopes/{envelope['id']}/send")
        assert sent.status_code == 200, sent.text
        url = envelope["recipients"][0]["signUrl"]

        page = httpx.get(url, timeout=30)  # the signer page reads the PDF from the bucket
        assert page.status_code == 200 and "Contrat sur S3" in page.text
        signed = httpx.post(
            f"{url}/sign",
            data={
                "name": "Marie Dubois",
                "mode": "typed",
                "typed": "Marie Dubois",
                "consent": "yes",
            },
            timeout=30,
        )
        assert signed.status_code == 303, signed.text

        sealed = _wait_for(tenant, f"/envelopes/{envelope['id']}/signed-document")
        assert sealed.status_code == 200, sealed.text
        assert sealed.content.startswith(b"%PDF")
        trail = _wait_for(tenant, f"/envelopes/{envelope['id']}/audit-trail")
        assert trail.status_code == 200, trail.text
        envelope_keys = [
            k for k in s3.keys(bucket, f"pfx/{tenant.account_id}/") if envelope["id"] in k
        ]
        contents = {
            k: s3.client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in envelope_keys
        }
        assert sealed.content in contents.values()
        assert trail.content in contents.values()
        assert not server.settings.storage_root.exists()
