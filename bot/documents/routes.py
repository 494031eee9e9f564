"""Routes: ``/documents``. Upload streams to a temp file, is checked in a worker thread, then
stored; the row is written only once the file is safely in storage."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlmodel import Session

from bot.accounts.context import AuthContext
from bot.documents import purge, service
from bot.documents.models import Document
from bot.documents.pdf import prepare
from bot.documents.upload import receive_upload
from bot.ids import new_id
from bot.timeutil import iso
from bot.web.auth import AuthenticatedRoute, requires
from bot.web.pagination import Page, page_params
from bot.web.paths import API_PREFIX
from bot.web.responses import Done, idempotent

router = APIRouter(prefix=API_PREFIX, tags=["Documents"], route_class=AuthenticatedRoute)


def document_json(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "name": doc.name,
        "mimeType": doc.mime_type,
        "size": doc.size,
        "status": doc.status,
        "pageCount": doc.page_count,
        "sha256": doc.sha256,
        "createdAt": iso(doc.created_at),
    }


async def ingest_file(
    request: Request,
    ctx: AuthContext,
    path: Path,
    *,
    filename: str,
    name: str | None,
    size: int,
    sha256: str,
    work_dir: Path,
) -> service.Ingested:
    """Check and store one uploaded file; shared by ``POST /documents`` and the one-shot
    envelope form."""
    display = service.display_name(name, filename)
    prepared = await anyio.to_thread.run_sync(prepare, path, work_dir)
    doc_id = new_id("document")
    storage = request.app.state.storage
    original_key, pdf_key = service.storage_keys(ctx, doc_id, prepared.converted)
    pdf_sha = sha256
    if prepared.converted:
        pdf_sha = await anyio.to_thread.run_sync(service.file_sha256, prepared.pdf_path)
        await storage.put_file(pdf_key, prepared.pdf_path)
    try:
        await storage.put_file(original_key, path)
    except BaseException:
        await purge.discard(request.app.state.db, storage, [pdf_key] if prepared.converted else [])
        raise
    return service.Ingested(
        id=doc_id,
        name=display,
        filename=filename,
        mime_type=prepared.mime_type,
        size=size,
        sha256=sha256,
        page_count=prepared.page_count,
        storage_key=original_key,
        pdf_storage_key=pdf_key,
        pdf_sha256=pdf_sha,
    )


@router.post("/documents", status_code=201, summary="Upload document")
async def upload_document(request: Request, ctx: AuthContext = requires("envelopes:write")) -> Any:
    """Multipart ``file`` (+ ``name``) or JSON ``{filename|name, contentBase64}``; PDF, PNG or
    JPEG (an image becomes a one-page PDF), 50 MB at most, type read from the content."""
    settings = request.app.state.settings
    tmp_root = settings.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(dir=tmp_root))
    try:
        received = await receive_upload(
            request, limit_bytes=settings.max_upload_bytes, tmp_dir=work_dir
        )

        async def handler(done: Done) -> tuple[int, dict[str, Any]]:
            item = await ingest_file(
                request,
                ctx,
                received.path,
                filename=received.filename,
                name=received.name,
                size=received.size,
                sha256=received.sha256,
                work_dir=work_dir,
            )

            def work(session: Session) -> dict[str, Any]:
                payload = document_json(service.record(session, ctx, item))
                done(session, 201, payload)
                return payload

            try:
                return 201, await request.app.state.db.run(work)
            except BaseException:  # e.g. the database is down: no row refers to the files
                state = request.app.state
                await purge.discard(
                    state.db, state.storage, [item.storage_key, item.pdf_storage_key]
                )
                raise

        fingerprint = f"{received.sha256}:{received.name or ''}:{received.filename}".encode()
        return await idempotent(request, ctx, handler, body=fingerprint)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@router.get("/documents", summary="List documents")
async def list_documents(
    request: Request,
    ctx: AuthContext = requires("envelopes:read"),
    page: Page = Depends(page_params),
) -> Any:
    rows, total = await request.app.state.db.run(
        lambda s: service.list_documents(s, ctx, offset=page.offset, limit=page.limit)
    )
    return page.wrap([document_json(d) for d in rows], total)


@router.get("/documents/{document_id}", summary="Fetch document metadata")
async def get_document(
    document_id: str, request: Request, ctx: AuthContext = requires("envelopes:read")
) -> Any:
    doc = await request.app.state.db.run(lambda s: service.get(s, ctx, document_id))
    return document_json(doc)


@router.get(
    "/documents/{document_id}/content",
    summary="Download the stored file",
    response_class=FileResponse,
    responses={200: {"content": {"application/pdf": {}, "image/png": {}, "image/jpeg": {}}}},
)
async def document_content(
    document_id: str, request: Request, ctx: AuthContext = requires("envelopes:read")
) -> Any:
    doc = await request.app.state.db.run(lambda s: service.get(s, ctx, document_id))
    storage = request.app.state.storage
    headers = {"Content-Disposition": _attachment(doc.name, doc.mime_type)}
    path = await storage.open_path(doc.storage_key)
    if path is not None:
        return FileResponse(path, media_type=doc.mime_type, headers=headers)
    chunks = storage.stream(doc.storage_key)
    # The first read (S3's GET) happens before the answer starts, so a store failing now is
    # still a clean 503 rather than a 200 cut short.
    first = await anext(chunks, b"")

    async def body() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    return StreamingResponse(body(), media_type=doc.mime_type, headers=headers)


def _attachment(name: str, mime_type: str) -> str:
    from urllib.parse import quote

    ascii_name = "".join(c if (c.isascii() and c.isalnum()) or c in "._- " else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@router.delete("/documents/{document_id}", summary="Delete document")
async def delete_document(
    document_id: str, request: Request, ctx: AuthContext = requires("envelopes:write")
) -> Any:
    """409 while an envelope carries the document."""

    def work(session: Session) -> list[str]:
        doc = service.delete(session, ctx, document_id)
        return purge.queue_purge(session, (doc.storage_key, doc.pdf_storage_key))

    keys = await request.app.state.db.run(work)
    await purge.remove_now(request.app.state.storage, keys)
    return {"success": True}
