"""Where document bytes live: the :class:`Storage` interface and its local-disk backend
(the S3 one is :mod:`bot.documents.s3`, imported only when configured).

Keys are relative, slash-separated names such as ``acc_x/doc_y/original``. A missing key
raises ``FileNotFoundError`` (except in :meth:`Storage.delete` and :meth:`Storage.exists`);
an invalid key raises ``ValueError`` — keys are made by the service, never by clients.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.documents.s3 import S3Options

_KEY_CHARS = re.compile(r"[A-Za-z0-9_./-]+")
MAX_KEY_LENGTH = 512


@runtime_checkable
class Storage(Protocol):
    async def put_file(self, key: str, src: Path) -> None:
        """Store a copy of the local file ``src`` (which the caller still owns)."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def read_bytes(self, key: str) -> bytes: ...

    async def open_path(self, key: str) -> Path | None:
        """The object's local path when the backend has one (for ``FileResponse``), else
        ``None`` (callers then :meth:`stream` it); ``FileNotFoundError`` when there is no such
        object."""
        ...

    def stream(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The object's bytes in chunks: ``async for chunk in storage.stream(key)``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing one is fine."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def healthy(self) -> bool: ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object name, else raise ``ValueError``."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid storage key: {key!r}")
    if not _KEY_CHARS.fullmatch(key):
        raise ValueError(f"invalid storage key: {key!r}")
    for segment in key.split("/"):
        # Empty segments ("a//b", "/abs", "trailing/"), ".", ".." and hidden names (which
        # the backend uses for its temporary files) are all refused.
        if not segment or segment.startswith("."):
            raise ValueError(f"invalid storage key: {key!r}")
    return key


class LocalStorage:
    """Objects as files under ``root``; writes are atomic (temporary file + ``os.replace``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The file a key maps to; never outside :attr:`root`."""
        path = self.root.joinpath(*validate_key(key).split("/"))
        if not path.is_relative_to(self.root):  # belt and braces: validate_key forbids it
            raise ValueError(f"invalid storage key: {key!r}")
        return path

    async def put_file(self, key: str, src: Path) -> None:
        target = self.path_for(key)

        def copy(out: BinaryIO) -> None:
            with Path(src).open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)

        await asyncio.to_thread(self._write_atomic, target, copy)

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path_for(key)
        await asyncio.to_thread(self._write_atomic, target, lambda out: out.write(data))

    async def read_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_for(key).read_bytes)

    async def open_path(self, key: str) -> Path | None:
        path = self.path_for(key)
        if not await asyncio.to_thread(path.is_file):
            raise FileNotFoundError(key)
        return path

    async def stream(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        f = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def healthy(self) -> bool:
        def probe() -> bool:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=".health-") as f:
                    f.write(b"ok")
                    f.flush()
            except OSError:
                return False
            return True

        return await asyncio.to_thread(probe)

    @staticmethod
    def _write_atomic(target: Path, write: Callable[[BinaryIO], object]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def storage_from_settings(settings: Settings) -> Storage:
    """The backend the settings name (``SIGNBOT_STORAGE_URL`` and, for ``s3://``, the
    ``SIGNBOT_S3_*`` options)."""
    s3 = None
    if _scheme(settings.storage_url) == "s3":
        from bot.documents.s3 import S3Options

        s3 = S3Options.from_settings(settings)
    return build_storage(settings.storage_url, settings.storage_root, s3)


def build_storage(url: str | None, default_root: Path, s3: S3Options | None = None) -> Storage:
    """The backend a ``SIGNBOT_STORAGE_URL`` names: unset or ``file://PATH`` (or a bare path)
    is local disk; ``s3://BUCKET[/PREFIX]`` is S3-compatible object storage reached with
    ``s3`` (default: AWS, boto3's credential chain)."""
    if url is None or not url.strip():
        return LocalStorage(default_root)
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        return LocalStorage(Path(url))
    scheme = scheme.lower()
    if scheme == "file":
        # file:///abs/path, file://relative/path, file://localhost/abs/path
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        path = unquote(rest)
        return LocalStorage(Path(path) if path else default_root)
    if scheme == "s3":
        from bot.documents.s3 import S3Storage

        return S3Storage.from_url(url, s3)
    raise ValueError(f"Unsupported storage URL scheme {scheme!r}: use file:// or s3://")


def _scheme(url: str | None) -> str | None:
    scheme, sep, _ = (url or "").strip().partition("://")
    return scheme.lower() if sep else None
