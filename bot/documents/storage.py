"""Where document bytes live: the :class:`Storage` interface and its local-disk backend
(the S3 one is :mod:`bot.documents.s3`, imported only when configured).

Keys are relative, slash-separated names such as ``acc_x/doc_y/original``. A missing key
raises ``FileNotFoundError`` (except in :meth:`Storage.delete` and :meth:`Storage.exists`);
an invalid key raises ``ValueError`` — keys are made by the service, never by clients.

A store that cannot be used right now (a bucket unreachable or refusing our credentials, a
disk full or read-only) raises :class:`StorageUnavailable`, whatever the backend: the API
answers it with 503 ``UNAVAILABLE`` and ``Retry-After`` (the client retries, nothing half-made
is kept), a background task retries it on its next attempt. It is never a 500 (not our bug)
nor a 404 (the document is not gone).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote

from bot.errors import Unavailable

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.documents.s3 import S3Options

T = TypeVar("T")

_KEY_CHARS = re.compile(r"[A-Za-z0-9_./-]+")
MAX_KEY_LENGTH = 512


class StorageUnavailable(Unavailable):
    """The document store failed for a reason of its own, not of the key asked for.

    The message is for clients and says nothing of the store; ``reason`` (the backend's own
    words, never a credential) is for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__("Document storage is temporarily unavailable; retry in a few seconds")
        self.reason = reason

    def __str__(self) -> str:  # what logs and a task's last error show
        return f"document storage unavailable: {self.reason}"


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

    def stream(self, key: str, chunk_size: int = 65536) -> AsyncGenerator[bytes, None]:
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

    MARKER = ".signbot-store"
    """A file the store writes in its root when it is made. Its absence later means the root
    is not the store any more (a volume unmounted, leaving an empty mount point; a directory
    removed): every read would then look like a missing file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / self.MARKER
        try:
            if not marker.exists():
                marker.write_bytes(b"signbot document store\n")
        except OSError:  # a read-only store (e.g. `signbot verify` on a mounted copy)
            pass
        self._marked = marker.is_file()

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

        await self._io(self._write_atomic, target, copy)

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path_for(key)
        await self._io(self._write_atomic, target, lambda out: out.write(data))

    async def read_bytes(self, key: str) -> bytes:
        return await self._io(self.path_for(key).read_bytes)

    async def open_path(self, key: str) -> Path | None:
        path = self.path_for(key)
        if not await self.exists(key):
            raise FileNotFoundError(key)
        return path

    async def stream(self, key: str, chunk_size: int = 65536) -> AsyncGenerator[bytes, None]:
        path = self.path_for(key)
        f = await self._io(path.open, "rb")
        try:
            while chunk := await self._io(f.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    async def delete(self, key: str) -> None:
        path = self.path_for(key)

        def remove() -> None:
            self._check_root()  # "already gone" only counts when the store is there
            path.unlink(missing_ok=True)

        await self._io(remove)

    async def exists(self, key: str) -> bool:
        path = self.path_for(key)

        def probe() -> bool:
            if path.is_file():
                return True
            self._check_root()
            return False

        return await self._io(probe)

    def _check_root(self) -> None:
        """Called when a file is missing and before a write: is it the file, or the whole
        store (a volume unmounted, removed or replaced)? Only the first is an answer about the
        key; the store is never recreated behind the operator's back."""
        if not self.root.is_dir():
            raise StorageUnavailable(f"the storage directory {self.root} is gone")
        if self._marked and not (self.root / self.MARKER).is_file():
            raise StorageUnavailable(
                f"the storage directory {self.root} lost its {self.MARKER} (not the store any "
                "more: a volume not mounted?)"
            )

    async def _io(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """A blocking file call in a thread; a failing disk (full, read-only, I/O error, a
        root gone) becomes :class:`StorageUnavailable`. A missing file stays
        ``FileNotFoundError``: that is an answer about the key."""

        def run() -> T:
            try:
                return fn(*args, **kwargs)
            except FileNotFoundError:
                self._check_root()
                raise

        try:
            return await asyncio.to_thread(run)
        except (FileNotFoundError, StorageUnavailable):
            raise
        except OSError as exc:
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def healthy(self) -> bool:
        def probe() -> bool:
            try:
                self._check_root()
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=".health-") as f:
                    f.write(b"ok")
                    f.flush()
            except (OSError, StorageUnavailable):
                return False
            return True

        return await asyncio.to_thread(probe)

    def _write_atomic(self, target: Path, write: Callable[[BinaryIO], object]) -> None:
        self._check_root()
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
