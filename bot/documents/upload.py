"""Receive one uploaded document from a request, streaming it to a temporary file.

Two request shapes are accepted:

* ``multipart/form-data`` with a ``file`` part and an optional ``name`` field, parsed with
  python-multipart's streaming parser: the file is hashed, counted and written to disk as
  it arrives, and reading stops as soon as it passes the limit;
* ``application/json`` ``{"filename"|"name": str, "contentBase64"|"base64Pdf": str}``; the
  base64 may carry a ``data:...;base64,`` prefix and whitespace.

The limit applies to the decoded file in both cases. Anything malformed becomes one of the
domain errors (:class:`ValidationFailed`, :class:`PayloadTooLarge`,
:class:`UnsupportedMediaType`); the type of the file itself is checked later, from its
content, by :func:`bot.documents.pdf.prepare`.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from bot.errors import (
    FieldError,
    PayloadTooLarge,
    SignbotError,
    UnsupportedMediaType,
    ValidationFailed,
)

DEFAULT_FILENAME = "document.pdf"
MAX_NAME_CHARS = 255
MAX_FILENAME_CHARS = 255
MULTIPART_OVERHEAD = 1 << 20
"""Bytes a multipart body may carry beyond the file itself (boundaries, headers, fields)."""
JSON_OVERHEAD = 64 << 10
"""Bytes a JSON body may carry beyond the base64 of the file."""
CONTENT_KEYS = ("contentBase64", "base64Pdf")

_FLUSH_BYTES = 1 << 20  # multipart file data is written to disk in batches of about this
_B64_CHUNK = 1 << 20  # base64 characters decoded per step
_B64_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_B64_URLSAFE = str.maketrans("-_", "+/")
_LEADING_SPACE = re.compile(r"[ \t\r\n\f\v]*")
_UNSAFE_IN_FILENAME = re.compile(r'[<>:"|?*]')

UNSUPPORTED_BODY = "Send multipart/form-data with a `file` part, or JSON with `contentBase64`"


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    """A temporary file holding the raw uploaded bytes; the caller deletes it."""
    filename: str
    """Sanitized original file name, for display only ("document.pdf" when none given)."""
    name: str | None
    """The optional ``name`` field, stripped; ``None`` when absent or blank."""
    size: int
    """Decoded byte count."""
    sha256: str
    """Hex SHA-256 of the decoded bytes, computed while streaming."""


async def receive_upload(request: Request, *, limit_bytes: int, tmp_dir: Path) -> ReceivedFile:
    """Stream the uploaded file of ``request`` into a new temporary file in ``tmp_dir``.

    On success the caller owns (and must delete) ``ReceivedFile.path``; on any error no
    temporary file is left behind.
    """
    if limit_bytes < 1:
        raise ValueError("limit_bytes must be positive")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            "Compressed request bodies are not accepted; " + UNSUPPORTED_BODY
        )
    try:
        media, params = parse_options_header(request.headers.get("content-type", ""))
    except Exception as exc:  # a malformed header is simply not a type we accept
        raise UnsupportedMediaType(UNSUPPORTED_BODY) from exc
    if media == b"multipart/form-data":
        return await _receive_multipart(request, params, limit_bytes, tmp_dir)
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return await _receive_json(request, limit_bytes, tmp_dir)
    raise UnsupportedMediaType(UNSUPPORTED_BODY)


# --- names ------------------------------------------------------------------------------------


def safe_filename(raw: str | None) -> str:
    """A display-only base name: no directories, control or bidi characters, ≤ 255 chars.

    Never use it to build a path.
    """
    if not raw:
        return DEFAULT_FILENAME
    text = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            continue
        kept.append(" " if category == "Zs" else ch)
    text = _UNSAFE_IN_FILENAME.sub("_", "".join(kept))
    text = " ".join(text.split()).strip(" .")
    if not text:
        return DEFAULT_FILENAME
    if len(text) > MAX_FILENAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            text = stem[: MAX_FILENAME_CHARS - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            text = text[:MAX_FILENAME_CHARS].rstrip(" .")
    return text or DEFAULT_FILENAME


def clean_name(raw: str | None) -> str | None:
    """The optional display ``name``: stripped, ≤ 255 characters, no control characters."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        return None
    if len(text) > MAX_NAME_CHARS:
        raise ValidationFailed.field("name", f"must be at most {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text):
        raise ValidationFailed.field("name", "must not contain control characters")
    return text


# --- helpers ----------------------------------------------------------------------------------


def _limit_text(limit: int) -> str:
    mib = 1 << 20
    if limit % mib == 0:
        return f"{limit // mib} MB"
    return f"{limit:,} bytes"


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than the {_limit_text(limit)} limit")


def _body_error(message: str) -> ValidationFailed:
    return ValidationFailed(
        f"The request body is invalid: {message}", [FieldError("body", message)]
    )


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _new_temp(tmp_dir: Path) -> tuple[BinaryIO, Path]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)
    return os.fdopen(fd, "wb"), Path(name)


def _discard(f: BinaryIO, path: Path) -> None:
    try:
        f.close()
    finally:
        path.unlink(missing_ok=True)


def _decode_text(raw: bytes) -> str:
    """Header parameters arrive as raw bytes: UTF-8 from browsers, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --- multipart --------------------------------------------------------------------------------


class _MultipartSink:
    """The parser's callbacks: route the ``file`` part to disk and keep the ``name`` field."""

    FILE, NAME, IGNORED = "file", "name", "ignored"
    MAX_NAME_BYTES = MAX_NAME_CHARS * 4 + 64

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.seen_file = False
        self.filename: str | None = None
        self.name_bytes: bytearray | None = None
        self.ended = False
        self._role: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._role = None
        self._headers = {}
        self._field.clear()
        self._value.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition")
        if disposition is None:
            raise _body_error("a multipart part has no Content-Disposition header")
        kind, params = parse_options_header(disposition.decode("latin-1"))
        field = params.get(b"name")
        if kind != b"form-data" or field is None:
            raise _body_error("a multipart part is not a named form-data field")
        if field == b"file":
            if self.seen_file:
                raise ValidationFailed.field("file", "send exactly one file")
            self.seen_file = True
            self._role = self.FILE
            raw_filename = params.get(b"filename")
            self.filename = _decode_text(raw_filename) if raw_filename else None
        elif field == b"name":
            if self.name_bytes is not None:
                raise ValidationFailed.field("name", "send it only once")
            self.name_bytes = bytearray()
            self._role = self.NAME
        else:
            self._role = self.IGNORED

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._role == self.FILE:
            self.size += end - start
            if self.size > self.limit:
                raise _too_large(self.limit)
            chunk = data[start:end]
            self.pending.append(chunk)
            self.pending_bytes += len(chunk)
        elif self._role == self.NAME:
            assert self.name_bytes is not None
            self.name_bytes += data[start:end]
            if len(self.name_bytes) > self.MAX_NAME_BYTES:
                raise ValidationFailed.field("name", f"must be at most {MAX_NAME_CHARS} characters")

    def on_part_end(self) -> None:
        self._role = None

    def on_end(self) -> None:
        self.ended = True

    def take_pending(self) -> list[bytes]:
        chunks, self.pending, self.pending_bytes = self.pending, [], 0
        return chunks


def _write_chunks(f: BinaryIO, hasher: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)
        f.write(chunk)


async def _receive_multipart(
    request: Request, params: dict[bytes, bytes], limit: int, tmp_dir: Path
) -> ReceivedFile:
    boundary = params.get(b"boundary")
    if not boundary:
        raise _body_error("the multipart/form-data Content-Type has no boundary")
    body_cap = limit + MULTIPART_OVERHEAD
    declared = _declared_length(request)
    if declared is not None and declared > body_cap:
        raise _too_large(limit)

    sink = _MultipartSink(limit)
    try:
        parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    except (FormParserError, ValueError) as exc:
        raise _body_error("the multipart boundary is invalid") from exc

    hasher = hashlib.sha256()
    f, path = _new_temp(tmp_dir)
    try:
        received = 0
        disk_error: OSError | None = None
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                received += len(chunk)
                if disk_error is not None:
                    continue  # read (and drop) the rest, so the client hears our answer
                if received > body_cap:
                    # Only possible with other parts than the file: the file alone is capped.
                    raise PayloadTooLarge(
                        f"The request body is larger than the {_limit_text(body_cap)} limit"
                    )
                if sink.ended:
                    break  # only an epilogue can follow the closing boundary: ignore it
                try:
                    parser.write(chunk)
                except SignbotError:
                    raise
                except Exception as exc:  # FormParserError, or worse on hostile input
                    raise _body_error("it is not valid multipart/form-data") from exc
                if sink.pending_bytes >= _FLUSH_BYTES:
                    try:
                        pending = sink.take_pending()
                        await anyio.to_thread.run_sync(_write_chunks, f, hasher, pending)
                    except OSError as exc:  # a full disk: answered 503 once the body is in
                        disk_error = exc
        except ClientDisconnect as exc:
            raise _body_error("the upload was interrupted") from exc
        if disk_error is not None:
            raise disk_error
        parser.finalize()
        if not sink.ended:
            raise _body_error("the multipart body is incomplete (no closing boundary)")
        if not sink.seen_file:
            raise ValidationFailed.field("file", "is required: send the document in a `file` part")
        if sink.size == 0:
            raise ValidationFailed.field("file", "is empty")

        name: str | None = None
        if sink.name_bytes is not None:
            try:
                text = bytes(sink.name_bytes).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationFailed.field("name", "must be UTF-8 text") from exc
            name = clean_name(text)

        await anyio.to_thread.run_sync(_finish, f, hasher, sink.take_pending())
    except BaseException:
        _discard(f, path)
        raise
    return ReceivedFile(
        path=path,
        filename=safe_filename(sink.filename),
        name=name,
        size=sink.size,
        sha256=hasher.hexdigest(),
    )


def _finish(f: BinaryIO, hasher: Any, chunks: list[bytes]) -> None:
    _write_chunks(f, hasher, chunks)
    f.close()


# --- JSON -------------------------------------------------------------------------------------


def json_body_cap(limit: int) -> int:
    """Largest JSON body accepted for a ``limit``-byte file: its base64 plus 64 KiB."""
    return -(-limit * 4 // 3) + JSON_OVERHEAD


async def _receive_json(request: Request, limit: int, tmp_dir: Path) -> ReceivedFile:
    cap = json_body_cap(limit)
    declared = _declared_length(request)
    if declared is not None and declared > cap:
        raise _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            if len(body) + len(chunk) > cap:
                raise _too_large(limit)
            body += chunk
    except ClientDisconnect as exc:
        raise _body_error("the upload was interrupted") from exc
    data = await anyio.to_thread.run_sync(_parse_json, body)
    del body
    key, content, filename, name = _json_fields(data)
    del data
    return await anyio.to_thread.run_sync(
        _decode_json_upload, key, content, filename, name, limit, tmp_dir
    )


def _parse_json(body: bytearray) -> Any:
    if not body.strip():
        raise _body_error("it is empty; send a JSON object with `contentBase64`")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError
        raise _body_error("it is not valid JSON") from exc


def _json_fields(data: Any) -> tuple[str, str, str | None, str | None]:
    if not isinstance(data, dict):
        raise _body_error("it must be a JSON object")
    key = next((k for k in CONTENT_KEYS if data.get(k) is not None), None)
    if key is None:
        raise ValidationFailed.field("contentBase64", "is required: the file, base64-encoded")
    content = data[key]
    if not isinstance(content, str):
        raise ValidationFailed.field(key, "must be a string of base64")
    strings: dict[str, str | None] = {}
    for field in ("filename", "name"):
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise ValidationFailed.field(field, "must be a string")
        strings[field] = value
    return key, content, strings["filename"], strings["name"]


def _decode_json_upload(
    key: str, content: str, filename: str | None, name: str | None, limit: int, tmp_dir: Path
) -> ReceivedFile:
    cleaned_name = clean_name(name)
    display = safe_filename(filename or name)
    f, path = _new_temp(tmp_dir)
    try:
        size, digest = _decode_base64(content, f, key, limit)
        f.close()
    except BaseException:
        _discard(f, path)
        raise
    return ReceivedFile(path=path, filename=display, name=cleaned_name, size=size, sha256=digest)


def _decode_base64(text: str, out: BinaryIO, key: str, limit: int) -> tuple[int, str]:
    """Decode base64 ``text`` into ``out`` a chunk at a time; return (size, sha256 hex).

    Accepts a ``data:<type>;base64,`` prefix, ASCII whitespace anywhere, the URL-safe
    alphabet and missing ``=`` padding; refuses any other character.
    """
    match = _LEADING_SPACE.match(text)
    start = match.end() if match else 0
    if text[start : start + 5].lower() == "data:":
        comma = text.find(",", start, start + 512)
        if comma < 0:
            raise _bad_base64(key)
        if not text[start:comma].lower().endswith(";base64"):
            raise ValidationFailed.field(key, "a data: URL must be base64-encoded (;base64,)")
        start = comma + 1

    hasher = hashlib.sha256()
    size = 0
    carry = ""
    padded = False
    for pos in range(start, len(text), _B64_CHUNK):
        piece = _B64_SPACE.sub("", text[pos : pos + _B64_CHUNK])
        if not piece:
            continue
        if padded:
            raise _bad_base64(key)  # data after the final padding
        piece = carry + piece.translate(_B64_URLSAFE)
        usable = len(piece) - len(piece) % 4
        block, carry = piece[:usable], piece[usable:]
        if not block:
            continue
        raw = _b64(block, key)
        padded = block.endswith("=")
        size += len(raw)
        if size > limit:
            raise _too_large(limit)
        hasher.update(raw)
        out.write(raw)
    if carry:
        if padded or len(carry) == 1:
            raise _bad_base64(key)
        raw = _b64(carry + "=" * (4 - len(carry)), key)
        size += len(raw)
        if size > limit:
            raise _too_large(limit)
        hasher.update(raw)
        out.write(raw)
    if size == 0:
        raise ValidationFailed.field(key, "is empty")
    return size, hasher.hexdigest()


def _bad_base64(key: str) -> ValidationFailed:
    return ValidationFailed.field(key, "is not valid base64")


def _b64(block: str, key: str) -> bytes:
    try:
        return binascii.a2b_base64(block.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise _bad_base64(key) from exc
