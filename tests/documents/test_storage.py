"""The local storage backend and build_storage (bot.documents.storage)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from bot.documents.s3 import S3Storage
from bot.documents.storage import LocalStorage, Storage, build_storage, validate_key
from tests.support.storage import keyed_calls

KEY = "acc_1/doc_01HXYZ/original"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file() and p.name != LocalStorage.MARKER]


async def test_bytes_round_trip(storage: LocalStorage) -> None:
    assert not await storage.exists(KEY)
    await storage.put_bytes(KEY, b"%PDF-1.7 hello")
    assert await storage.exists(KEY)
    assert await storage.read_bytes(KEY) == b"%PDF-1.7 hello"
    assert (storage.root / "acc_1" / "doc_01HXYZ" / "original").read_bytes() == b"%PDF-1.7 hello"


async def test_stream_yields_chunks(storage: LocalStorage) -> None:
    data = b"x" * 10 + b"y" * 10 + b"z" * 5
    await storage.put_bytes("a/b", data)
    chunks = [chunk async for chunk in storage.stream("a/b", chunk_size=10)]
    assert chunks == [b"x" * 10, b"y" * 10, b"z" * 5]


async def test_overwrite_is_atomic_and_leaves_no_temp_files(storage: LocalStorage) -> None:
    await storage.put_bytes(KEY, b"one")
    await asyncio.gather(*(storage.put_bytes(KEY, b"two" * n) for n in range(1, 6)))
    assert (await storage.read_bytes(KEY)).startswith(b"two")
    assert leftovers(storage.root) == []


async def test_a_failed_write_leaves_nothing_behind(storage: LocalStorage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await storage.put_file(KEY, tmp_path / "missing")
    assert not await storage.exists(KEY)
    assert leftovers(storage.root) == []


async def test_delete_and_delete_missing(storage: LocalStorage) -> None:
    await storage.put_bytes(KEY, b"data")
    await storage.delete(KEY)
    assert not await storage.exists(KEY)
    await storage.delete(KEY)  # missing is fine
    await storage.delete("never/was/there")


async def test_missing_objects_raise_file_not_found(storage: LocalStorage) -> None:
    with pytest.raises(FileNotFoundError):
        await storage.read_bytes(KEY)
    with pytest.raises(FileNotFoundError):
        await storage.open_path(KEY)
    with pytest.raises(FileNotFoundError):
        [chunk async for chunk in storage.stream(KEY)]


BAD_KEYS = [
    "",
    "../escape",
    "a/../../escape",
    "a/..",
    "..",
    ".",
    "/etc/passwd",
    "a//b",
    "a/./b",
    "a/",
    ".hidden",
    "a/.tmp-x",
    "a\\b",
    "..\\..\\windows",
    "a b",
    "a\x00b",
    "caf\u00e9",
    "a:b",
    "x" * 600,
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_that_could_escape_the_root_are_refused(storage: LocalStorage, key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        await storage.put_bytes(key, b"nope")
    for call in keyed_calls(storage, key):
        with pytest.raises(ValueError):
            await call()
    with pytest.raises(ValueError):
        [chunk async for chunk in storage.stream(key)]
    assert not (storage.root.parent / "escape").exists()


@pytest.mark.parametrize("key", ["a", "acc_x/doc_y/original", "a-b_c.d/e.pdf", "A1/B2/c..d"])
def test_ordinary_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


async def test_healthy(storage: LocalStorage, tmp_path: Path) -> None:
    assert await storage.healthy()
    assert leftovers(storage.root) == []
    broken = LocalStorage(tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    (tmp_path / "gone").write_text("a file where the directory should be")
    assert not await broken.healthy()


def test_build_storage(tmp_path: Path) -> None:
    default = build_storage(None, tmp_path / "default")
    assert isinstance(default, LocalStorage) and default.root == (tmp_path / "default").resolve()
    assert isinstance(default, Storage)
    assert build_storage("", tmp_path / "default").root == (tmp_path / "default").resolve()
    explicit = build_storage(f"file://{tmp_path}/elsewhere", tmp_path / "default")
    assert explicit.root == (tmp_path / "elsewhere").resolve()
    bare = build_storage(str(tmp_path / "bare"), tmp_path / "default")
    assert bare.root == (tmp_path / "bare").resolve()
    assert isinstance(build_storage("s3://bucket/prefix", tmp_path), S3Storage)
    with pytest.raises(ValueError):
        build_storage("ftp://example.org/x", tmp_path)
