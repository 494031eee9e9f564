"""Document bytes in S3-compatible object storage (AWS S3, MinIO, Ceph, moto…).

``SIGNBOT_STORAGE_URL=s3://bucket/optional/prefix``: the object for key ``K`` is
``prefix/K`` in ``bucket``. boto3's client is synchronous and thread-safe; every call runs in a
worker thread of the storage's own pool (so a slow bucket never takes the threads the rest
of the process uses, e.g. for DNS) and the event loop never blocks on the network.

Errors: a missing object raises ``FileNotFoundError`` (``NoSuchKey``, or a 404 on
``HeadObject``), an invalid key ``ValueError``; anything else (a missing bucket, refused
credentials, an unreachable endpoint, botocore's retries used up) raises
:class:`~bot.documents.storage.StorageUnavailable` (503 at the API, never "not found"), its
``reason`` naming the S3 error code or botocore's message, never a credential.
:meth:`S3Storage.healthy` turns every such failure into ``False`` (``/readyz`` answers 503)
and logs why.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.documents.storage import StorageUnavailable, validate_key

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger("signbot.storage")

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
T = TypeVar("T")
#: Threads for S3 calls, per storage: enough for concurrent page images and uploads.
POOL_SIZE = 16
MULTIPART_THRESHOLD = 8 * 1024 * 1024
"""Files above this size are uploaded in parts (of this size), several at a time."""


@dataclass(frozen=True)
class S3Options:
    """How to reach the S3 API; the bucket and prefix come from the storage URL."""

    endpoint_url: str | None = None
    """An S3-compatible service (``http://minio:9000``); ``None`` means AWS."""
    region: str = "us-east-1"
    access_key_id: str | None = None
    """With :attr:`secret_access_key`; both ``None``: boto3's credential chain (environment,
    shared config files, instance or task role)."""
    secret_access_key: str | None = field(default=None, repr=False)
    path_style: bool | None = None
    """``http://host/bucket/key`` addressing. ``None``: path-style with an
    :attr:`endpoint_url` (what MinIO and most S3-compatible services expect), otherwise
    virtual-hosted (``bucket.s3.region.amazonaws.com``) whenever the bucket name allows it."""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    """Attempts per call (the first included), botocore's ``standard`` retry mode."""

    def __post_init__(self) -> None:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "S3 credentials need both SIGNBOT_S3_ACCESS_KEY_ID and "
                "SIGNBOT_S3_SECRET_ACCESS_KEY (or neither, for boto3's credential chain)"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Options:
        return cls(
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key or None,
            path_style=settings.s3_path_style,
        )

    @property
    def addressing_style(self) -> Literal["path", "virtual", "auto"]:
        if self.path_style is None:
            return "path" if self.endpoint_url else "auto"
        return "path" if self.path_style else "virtual"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``; ``ValueError`` when the
    bucket is missing or the prefix is not a valid key."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() != "s3":
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise ValueError("SIGNBOT_STORAGE_URL=s3://BUCKET[/PREFIX] needs a bucket name")
    if prefix:
        validate_key(prefix)
    return bucket, prefix


class S3Storage:
    """Objects in one bucket, under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", options: S3Options | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.options = options or S3Options()
        session = boto3.session.Session(
            aws_access_key_id=self.options.access_key_id,
            aws_secret_access_key=self.options.secret_access_key,
            region_name=self.options.region,
        )
        opts = self.options
        self._client = self._make_client(
            session, opts.max_attempts, opts.connect_timeout, opts.read_timeout
        )
        # Readiness probes want a prompt answer: one attempt, short timeouts.
        self._probe = self._make_client(
            session, 1, min(opts.connect_timeout, 2.0), min(opts.read_timeout, 5.0)
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_THRESHOLD,
            max_concurrency=4,
        )
        self._pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="s3")

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking boto3 call on the storage's own threads. A "not found" stays a
        ``ClientError`` for the caller to read; every other S3 or botocore failure becomes
        :class:`StorageUnavailable`."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except ClientError as exc:
            if _is_not_found(exc):
                raise
            raise StorageUnavailable(f"bucket {self.bucket!r} not usable: {_refusal(exc)}") from exc
        except S3UploadFailedError as exc:  # upload_file wraps the S3 error it met
            raise StorageUnavailable(f"bucket {self.bucket!r} refused an upload: {exc}") from exc
        except BotoCoreError as exc:
            # Connection refused, timeouts, DNS, no credentials found: botocore's messages
            # name the endpoint at most, never a key or secret.
            raise StorageUnavailable(f"bucket {self.bucket!r} not reachable: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, options: S3Options | None = None) -> S3Storage:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, options)

    def __repr__(self) -> str:
        where = f", endpoint={self.options.endpoint_url!r}" if self.options.endpoint_url else ""
        return f"S3Storage('s3://{self.bucket}/{self.prefix}'{where})"

    def _make_client(
        self, session: boto3.session.Session, attempts: int, connect: float, read: float
    ) -> Any:
        opts = self.options
        extra: dict[str, Any] = {}
        if opts.endpoint_url:
            # S3-compatible services do not all accept the newer default integrity checksums.
            extra["request_checksum_calculation"] = "when_required"
            extra["response_checksum_validation"] = "when_required"
        config = Config(
            connect_timeout=connect,
            read_timeout=read,
            retries={"mode": "standard", "total_max_attempts": attempts},
            s3={"addressing_style": opts.addressing_style},
            signature_version="s3v4",
            **extra,
        )
        return session.client("s3", endpoint_url=opts.endpoint_url, config=config)

    def object_key(self, key: str) -> str:
        """The S3 object name for a storage key."""
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put_file(self, key: str, src: Path) -> None:
        name = self.object_key(key)
        path = Path(src)
        if not await self._call(path.is_file):
            raise FileNotFoundError(str(src))
        await self._call(
            self._client.upload_file, str(path), self.bucket, name, Config=self._transfer
        )

    async def put_bytes(self, key: str, data: bytes) -> None:
        name = self.object_key(key)
        await self._call(self._client.put_object, Bucket=self.bucket, Key=name, Body=data)

    async def read_bytes(self, key: str) -> bytes:
        name = self.object_key(key)

        def read() -> bytes:
            body = self._get(key, name)["Body"]
            try:
                return body.read()
            finally:
                body.close()

        return await self._call(read)

    async def open_path(self, key: str) -> Path | None:
        """No local path: ``None`` once the object is known to exist (so a missing one is a
        ``FileNotFoundError`` before any response starts, as with local storage)."""
        if not await self.exists(key):
            raise FileNotFoundError(key)
        return None

    async def stream(self, key: str, chunk_size: int = 65536) -> AsyncGenerator[bytes, None]:
        name = self.object_key(key)
        response = await self._call(self._get, key, name)
        body = response["Body"]
        try:
            while chunk := await self._call(body.read, chunk_size):
                yield chunk
        finally:
            await self._call(body.close)

    async def delete(self, key: str) -> None:
        name = self.object_key(key)
        try:
            await self._call(self._client.delete_object, Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if not _is_not_found(exc):
                raise

    async def exists(self, key: str) -> bool:
        name = self.object_key(key)
        try:
            await self._call(self._client.head_object, Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _is_not_found(exc):
                await self._check_bucket()
                return False
            raise
        return True

    async def _check_bucket(self) -> None:
        """After a bare 404 on ``HeadObject`` (no body: the object or the whole bucket may be
        missing): a missing bucket is a broken deployment, not a missing file."""
        try:
            await self._call(self._client.head_bucket, Bucket=self.bucket)
        except ClientError as exc:  # only a 404 gets here; anything else is StorageUnavailable
            raise StorageUnavailable(f"bucket {self.bucket!r} not usable: {_refusal(exc)}") from exc

    async def healthy(self) -> bool:
        try:
            await self._call(self._probe.head_bucket, Bucket=self.bucket)
        except ClientError as exc:  # a bare 404: HEAD has no body to say "NoSuchBucket"
            log.warning("storage: bucket %r not usable: %s", self.bucket, _refusal(exc))
            return False
        except StorageUnavailable as exc:
            log.warning("storage: %s", exc.reason)
            return False
        except Exception as exc:
            log.warning("storage: bucket %r check failed: %s", self.bucket, type(exc).__name__)
            return False
        return True

    def _get(self, key: str, name: str) -> Any:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _is_not_found(exc):
                raise FileNotFoundError(key) from None
            raise


def _refusal(exc: ClientError) -> str:
    """What S3 refused, in words: "no such bucket (HTTP 404)", "access denied (HTTP 403)"."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.get("Code") or "")
    words = {"404": "no such bucket", "NoSuchBucket": "no such bucket"}.get(code)
    words = words or {"403": "access denied", "AccessDenied": "access denied"}.get(code)
    return f"{words or error.get('Message') or code or 'refused'} (HTTP {status})"


def _is_not_found(exc: ClientError) -> bool:
    """A missing object (not a missing bucket: that is a configuration fault)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in _NOT_FOUND
