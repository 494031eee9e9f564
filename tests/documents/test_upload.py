"""Receiving uploads (bot.documents.upload) through a tiny Starlette app, and once through a
real uvicorn server to prove a large upload is streamed and cut off, not buffered."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import uvicorn
from PIL import Image
from pypdf import PdfWriter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.documents.pdf import prepare
from bot.documents.upload import MULTIPART_OVERHEAD, json_body_cap, receive_upload
from bot.errors import PayloadTooLarge, SignbotError, UnsupportedMediaType, ValidationFailed

MiB = 1 << 20
STATUS = {ValidationFailed: 422, PayloadTooLarge: 413, UnsupportedMediaType: 415}
BOUNDARY = "----signbot-test-boundary"


# --- the app under test -----------------------------------------------------------------------


def make_app(limit: int, tmp_dir: Path, work_dir: Path) -> Starlette:
    async def upload(request: Request) -> JSONResponse:
        try:
            received = await receive_upload(request, limit_bytes=limit, tmp_dir=tmp_dir)
            try:
                prepared = await anyio.to_thread.run_sync(prepare, received.path, work_dir)
            finally:
                received.path.unlink()
        except SignbotError as exc:
            body = {
                "code": exc.code,
                "message": exc.message,
                "errors": [
                    {"field": e.field, "message": e.message} for e in getattr(exc, "errors", [])
                ],
            }
            return JSONResponse(body, status_code=STATUS[type(exc)])
        if prepared.converted:
            prepared.pdf_path.unlink()
        return JSONResponse(
            {
                "filename": received.filename,
                "name": received.name,
                "size": received.size,
                "sha256": received.sha256,
                "mimeType": prepared.mime_type,
                "pageCount": prepared.page_count,
                "converted": prepared.converted,
            },
            status_code=201,
        )

    return Starlette(routes=[Route("/upload", upload, methods=["POST"])])


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    tmp_dir, work_dir = tmp_path / "tmp", tmp_path / "work"
    yield tmp_dir, work_dir
    # Whatever happened, no temporary file outlives the request.
    for d in (tmp_dir, work_dir):
        assert not d.exists() or list(d.iterdir()) == []


@pytest.fixture
def app(dirs: tuple[Path, Path]) -> Starlette:
    return make_app(1 * MiB, *dirs)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


# --- payloads ---------------------------------------------------------------------------------


def make_pdf(pages: int = 1) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def make_png(size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 255, 200)).save(buf, "PNG")
    return buf.getvalue()


def part(name: str, value: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + value + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


async def post_multipart(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/upload", content=body, headers=MULTIPART)


def error_fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


# --- multipart: happy paths -------------------------------------------------------------------


async def test_multipart_pdf_is_received(client: httpx.AsyncClient) -> None:
    pdf = make_pdf(3)
    response = await client.post(
        "/upload",
        files={"file": ("contract.pdf", pdf, "application/pdf")},
        data={"name": "  Employment contract  "},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "filename": "contract.pdf",
        "name": "Employment contract",
        "size": len(pdf),
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "mimeType": "application/pdf",
        "pageCount": 3,
        "converted": False,
    }


async def test_multipart_png_becomes_a_one_page_pdf(client: httpx.AsyncClient) -> None:
    response = await client.post("/upload", files={"file": ("scan.png", make_png(), "image/png")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mimeType"] == "image/png"
    assert body["converted"] is True and body["pageCount"] == 1
    assert body["name"] is None


async def test_type_comes_from_content_not_from_name_or_declared_type(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/upload", files={"file": ("photo.jpg", make_pdf(), "image/jpeg")})
    assert response.json()["mimeType"] == "application/pdf"
    response = await client.post(
        "/upload", files={"file": ("evil.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")}
    )
    assert response.status_code == 415
    assert "Only PDF, PNG and JPEG" in response.json()["message"]


async def test_a_missing_filename_defaults_and_unknown_fields_are_ignored(
    client: httpx.AsyncClient,
) -> None:
    body = multipart(
        part("comment", b"x" * 10_000), part("file", make_pdf()), part("other", b"", "x.bin")
    )
    response = await post_multipart(client, body)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "document.pdf"


async def test_a_file_of_exactly_the_limit_is_accepted(dirs: tuple[Path, Path]) -> None:
    pdf = make_pdf()
    app = make_app(len(pdf), *dirs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.post("/upload", files={"file": ("a.pdf", pdf)})
        too_big = await c.post("/upload", files={"file": ("a.pdf", pdf + b"\n")})
    assert ok.status_code == 201
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("C:\\Users\\me\\scan.pdf", "scan.pdf"),
        ("/abs/path/doc.pdf", "doc.pdf"),
        ("..", "document.pdf"),
        ("", "document.pdf"),
        ("evil\x00.pdf", "evil.pdf"),
        ("line\x01\x1fbreak\x7f.pdf", "linebreak.pdf"),
        ("invoice\u202egpj.pdf", "invoicegpj.pdf"),
        ("  .hidden.pdf  ", "hidden.pdf"),
        ('a<b>c:d|e?f*g".pdf', "a_b_c_d_e_f_g_.pdf"),
        ("Déclaration d\u2019impôts.pdf", "Déclaration d\u2019impôts.pdf"),
        ("x" * 400 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
async def test_file_names_are_reduced_to_a_safe_basename(
    client: httpx.AsyncClient, sent: str, shown: str
) -> None:
    head = (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + sent.replace('"', '\\"').encode("utf-8")
        + b'"\r\n\r\n'
    )
    body = head + make_pdf() + f"\r\n--{BOUNDARY}--\r\n".encode()
    response = await post_multipart(client, body)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == shown


# --- multipart: broken input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"this is not multipart at all",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\n%PDF-'.encode(),
        f"--{BOUNDARY}\r\nNo-Colon-Header\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{"a" * 10_000}'
        f'"\r\n\r\nx\r\n--{BOUNDARY}--\r\n'.encode(),
        f"--{BOUNDARY}\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(50)) + "\r\n",
    ],
    ids=[
        "empty",
        "garbage",
        "truncated",
        "bad-header",
        "no-disposition",
        "not-form-data",
        "huge-header",
        "many-headers",
    ],
)
async def test_broken_multipart_is_a_validation_error(
    client: httpx.AsyncClient, body: bytes | str
) -> None:
    payload = body.encode() if isinstance(body, str) else body
    response = await post_multipart(client, payload)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "ctype",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        f"multipart/form-data; boundary={'b' * 300}",
    ],
)
async def test_a_bad_boundary_is_a_validation_error(client: httpx.AsyncClient, ctype: str) -> None:
    response = await client.post("/upload", content=b"whatever", headers={"content-type": ctype})
    assert response.status_code == 422
    assert error_fields(response) == ["body"]


async def test_missing_empty_or_repeated_file_part(client: httpx.AsyncClient) -> None:
    missing = await post_multipart(client, multipart(part("name", b"Contract")))
    assert missing.status_code == 422 and error_fields(missing) == ["file"]
    empty = await post_multipart(client, multipart(part("file", b"", "a.pdf")))
    assert empty.status_code == 422 and error_fields(empty) == ["file"]
    assert "empty" in empty.json()["message"]
    twice = await post_multipart(
        client, multipart(part("file", make_pdf(), "a.pdf"), part("file", make_pdf(), "b.pdf"))
    )
    assert twice.status_code == 422 and error_fields(twice) == ["file"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("N" * 255, True),
        ("é" * 255, True),
        ("N" * 256, False),
        ("N" * 10_240, False),
        ("bad\x00name", False),
        ("two\nlines", False),
    ],
)
async def test_the_name_field_is_capped_and_clean(
    client: httpx.AsyncClient, value: str, ok: bool
) -> None:
    body = multipart(part("name", value.encode()), part("file", make_pdf(), "a.pdf"))
    response = await post_multipart(client, body)
    if ok:
        assert response.status_code == 201
        assert response.json()["name"] == value
    else:
        assert response.status_code == 422
        assert error_fields(response) == ["name"]


async def test_a_name_that_is_not_utf8_is_refused(client: httpx.AsyncClient) -> None:
    body = multipart(part("name", b"\xff\xfe\xfa"), part("file", make_pdf(), "a.pdf"))
    response = await post_multipart(client, body)
    assert response.status_code == 422 and error_fields(response) == ["name"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "application/pdf"}, 415),
        ({"content-type": "multipart/mixed; boundary=x"}, 415),
        ({}, 415),
        ({"content-type": "application/json", "content-encoding": "gzip"}, 415),
    ],
)
async def test_other_request_types_are_unsupported(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/upload", content=make_pdf(), headers=headers)
    assert response.status_code == status
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


# --- JSON / base64 ----------------------------------------------------------------------------


async def test_json_base64_pdf_is_received(client: httpx.AsyncClient) -> None:
    pdf = make_pdf(2)
    response = await client.post(
        "/upload",
        json={
            "filename": "../nda.pdf",
            "name": "NDA",
            "contentBase64": base64.b64encode(pdf).decode(),
        },
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "filename": "nda.pdf",
        "name": "NDA",
        "size": len(pdf),
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "mimeType": "application/pdf",
        "pageCount": 2,
        "converted": False,
    }


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: "data:application/pdf;base64," + base64.b64encode(b).decode(),
        lambda b: "  DATA:application/pdf;BASE64," + base64.b64encode(b).decode(),
        lambda b: base64.encodebytes(b).decode(),  # MIME style: a newline every 76 chars
        lambda b: "\r\n".join(base64.b64encode(b).decode()[i : i + 64] for i in range(0, 9999, 64)),
        lambda b: " ".join(base64.b64encode(b).decode()),
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
    ],
    ids=["data-url", "data-url-caps", "mime-lines", "crlf", "spaces", "urlsafe-unpadded"],
)
async def test_json_base64_variants(client: httpx.AsyncClient, encode: Any) -> None:
    pdf = make_pdf()
    assert len(pdf) < 9999 * 3 // 4
    response = await client.post("/upload", json={"name": "x", "contentBase64": encode(pdf)})
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert response.json()["filename"] == "x"


async def test_json_alias_and_png(client: httpx.AsyncClient) -> None:
    png = make_png()
    response = await client.post("/upload", json={"base64Pdf": base64.b64encode(png).decode()})
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "document.pdf"
    assert response.json()["mimeType"] == "image/png"
    assert response.json()["size"] == len(png)


async def test_json_decoded_size_limit(dirs: tuple[Path, Path]) -> None:
    pdf = make_pdf()
    app = make_app(len(pdf), *dirs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.post("/upload", json={"contentBase64": base64.b64encode(pdf).decode()})
        over = await c.post(
            "/upload", json={"contentBase64": base64.b64encode(pdf + b"\n").decode()}
        )
        huge_body = await c.post(
            "/upload", json={"contentBase64": "A" * (json_body_cap(len(pdf)) + 10)}
        )
    assert ok.status_code == 201
    assert over.status_code == 413
    assert huge_body.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{not json", "body"),
        (b"\xff\xfe{}", "body"),
        (b"[1, 2]", "body"),
        (b'"a string"', "body"),
        (b"null", "body"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b"{}", "contentBase64"),
        (b'{"contentBase64": null}', "contentBase64"),
        (b'{"contentBase64": 42}', "contentBase64"),
        (b'{"contentBase64": ["JVBERi0="]}', "contentBase64"),
        (b'{"base64Pdf": {"a": 1}}', "base64Pdf"),
        (b'{"contentBase64": ""}', "contentBase64"),
        (b'{"contentBase64": "   \\n "}', "contentBase64"),
        (b'{"contentBase64": "JVBERi0$$$"}', "contentBase64"),
        (b'{"contentBase64": "JVBE\\u00e9Ri0="}', "contentBase64"),
        (b'{"contentBase64": "JVBERi0=JVBE"}', "contentBase64"),
        (b'{"contentBase64": "JVBERi0xL"}', "contentBase64"),
        (b'{"contentBase64": "data:application/pdf,JVBERi0x"}', "contentBase64"),
        (b'{"contentBase64": "data:application/pdf;base64"}', "contentBase64"),
        (b'{"contentBase64": "JVBERi0x", "filename": 7}', "filename"),
        (b'{"contentBase64": "JVBERi0x", "name": ["x"]}', "name"),
        (b'{"contentBase64": "JVBERi0x", "name": "' + b"n" * 10_240 + b'"}', "name"),
    ],
)
async def test_broken_json_is_a_validation_error(
    client: httpx.AsyncClient, body: bytes, field: str
) -> None:
    response = await client.post(
        "/upload", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert error_fields(response) == [field]


async def test_json_with_padding_split_across_decode_chunks(dirs: tuple[Path, Path]) -> None:
    # Big enough to span several internal decode steps, with padding only at the very end.
    data = make_pdf() + b"%" + bytes(range(256)) * 9000
    data += b"\n" * ((1 - len(data)) % 3)  # so that the base64 ends in "=="
    app = make_app(4 * MiB, *dirs)
    text = base64.b64encode(data).decode()
    assert text.endswith("==") and len(text) > 2 * 1_048_576
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        good = await c.post("/upload", json={"contentBase64": text})
        bad = await c.post("/upload", json={"contentBase64": text[:1_048_572] + "=" + text})
    assert good.status_code == 201, good.text
    assert good.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert bad.status_code == 422


# --- streaming: the app stops reading once the limit is passed ---------------------------------


class Recorder:
    """Drive the ASGI app by hand and count how much of the body it pulls."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def post(self, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, int]:
        pulled = 0
        status = 0
        iterator = iter(chunks)

        async def receive() -> dict[str, Any]:
            nonlocal pulled
            chunk = next(iterator, None)
            if chunk is None:
                return {"type": "http.request", "body": b"", "more_body": False}
            pulled += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/upload",
            "raw_path": b"/upload",
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 1234),
            "server": ("test", 80),
        }
        await self.app(scope, receive, send)
        return status, pulled


def multipart_stream(file_size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()
    block = b"\0" * chunk
    sent = 9
    while sent < file_size:
        piece = block[: min(chunk, file_size - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_an_oversized_multipart_upload_is_cut_off_while_streaming(
    dirs: tuple[Path, Path],
) -> None:
    limit = 2 * MiB
    status, pulled = await Recorder(make_app(limit, *dirs)).post(
        MULTIPART, multipart_stream(limit + MiB // 2)
    )
    assert status == 413
    assert limit < pulled <= limit + 2 * 64 * 1024  # stopped right after the limit


async def test_a_declared_length_far_over_the_limit_is_refused_before_reading(
    dirs: tuple[Path, Path],
) -> None:
    limit = 2 * MiB
    app = make_app(limit, *dirs)
    length = str(limit + MULTIPART_OVERHEAD + 1)
    status, pulled = await Recorder(app).post(
        {**MULTIPART, "content-length": length}, multipart_stream(limit * 3)
    )
    assert (status, pulled) == (413, 0)
    json_length = str(json_body_cap(limit) + 1)
    status, pulled = await Recorder(app).post(
        {"content-type": "application/json", "content-length": json_length}, iter([b"{}"] * 10)
    )
    assert (status, pulled) == (413, 0)


async def test_an_oversized_json_body_is_cut_off_while_streaming(dirs: tuple[Path, Path]) -> None:
    limit = 1 * MiB
    cap = json_body_cap(limit)
    chunks = iter([b'{"contentBase64": "'] + [b"A" * 65536] * 40 + [b'"}'])
    status, pulled = await Recorder(make_app(limit, *dirs)).post(
        {"content-type": "application/json"}, chunks
    )
    assert status == 413
    assert pulled <= cap + 65536


async def test_a_client_that_disconnects_mid_upload_gets_a_validation_error(
    dirs: tuple[Path, Path],
) -> None:
    app = make_app(MiB, *dirs)
    messages = iter(
        [
            {"type": "http.request", "body": next(multipart_stream(1000)), "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "headers": [(b"content-type", MULTIPART["content-type"].encode())],
        "query_string": b"",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 422


# --- a real server: 60 MiB against a 50 MiB limit ----------------------------------------------


def test_a_60_mib_upload_to_a_real_server_is_refused_without_buffering(
    dirs: tuple[Path, Path],
) -> None:
    limit = 50 * MiB
    app = make_app(limit, *dirs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    pulled = 0

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def counted_receive() -> dict[str, Any]:
            nonlocal pulled
            message = await receive()
            pulled += len(message.get("body", b""))
            return message

        await app(scope, counted_receive, send)

    server = uvicorn.Server(uvicorn.Config(counting, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

        # No Content-Length (chunked), so the server cannot refuse up front: it must stream.
        tracemalloc.start()
        try:
            with httpx.Client(timeout=120) as client:
                response = client.post(
                    f"http://127.0.0.1:{port}/upload",
                    content=multipart_stream(60 * MiB),
                    headers=MULTIPART,
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    # Server and client share this process: the peak of everything Python allocated during
    # the request stays far below the 60 MiB that went over the wire.
    assert peak < 12 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    # The app stopped pulling the body just past the limit.
    assert limit < pulled < limit + MiB
