"""The signer pages at ``/sign/{token}``: plain HTML forms first, JavaScript only improving them.

Thin: parse the form, call ``bot.signing.ceremony`` in one transaction, render a Jinja2
template in the recipient's language. Every answer carries a strict Content-Security-Policy
(no inline script, nothing from elsewhere), refuses framing (clickjacking a signature) and is
never cached. Tokens are credentials: they never reach a log line (``bot.logs`` redacts
``/sign/…`` paths) and pages send no Referer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlmodel import Session, col, select

from bot.documents.models import Document
from bot.documents.previews import Previews
from bot.envelopes.models import EnvelopeDocument, Recipient
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.i18n import Translator
from bot.signing import ceremony, fields, otp
from bot.signing.ceremony import Opened, SignForm, Visit
from bot.timeutil import iso, to_utc, utcnow

log = logging.getLogger("signbot.signing")

router = APIRouter(include_in_schema=False)
CATALOG = Path(__file__).parent / "locales"
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"signer.css": "text/css", "signer.js": "text/javascript"}
OTP_COOKIE = "signbot_otp"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self' https:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_WIDTH, PAGE_HEIGHT = 893, 1263
"""An A4 page's preview size, for the images' aspect ratio before they load."""

_templates = Environment(
    loader=PackageLoader("bot.signing", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _visit(request: Request) -> Visit:
    return Visit(
        request.client.host if request.client else None,
        (request.headers.get("user-agent") or "")[:512] or None,
    )


def _proof(request: Request) -> ceremony.Proof:
    secret = request.app.state.token_secret
    cookie = request.cookies.get(OTP_COOKIE)

    def proven(recipient: Recipient) -> bool:
        return otp.otp_cookie_ok(secret, recipient.id, recipient.token_version, cookie)

    return proven


def _html(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = _templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _not_found() -> HTMLResponse:
    t = Translator(CATALOG, None)
    return _html("status.html", 404, t=t, state="notfound", account="", subject="")


def _documents(session: Session, envelope_id: str) -> list[dict[str, Any]]:
    rows = session.exec(
        select(EnvelopeDocument, Document)
        .join(Document, col(Document.id) == col(EnvelopeDocument.document_id))
        .where(EnvelopeDocument.envelope_id == envelope_id)
        .order_by(col(EnvelopeDocument.position))
    )
    return [
        {
            "index": link.position,
            "name": doc.name,
            "pages": doc.page_count,
            "key": doc.pdf_storage_key,
            "sha256": doc.pdf_sha256,
            "width": PAGE_WIDTH,
            "height": PAGE_HEIGHT,
        }
        for link, doc in rows
    ]


def _render(
    opened: Opened,
    token: str,
    documents: list[dict[str, Any]] | None,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    refused: bool = False,
) -> HTMLResponse:
    envelope, recipient = opened.envelope, opened.recipient
    t = Translator(CATALOG, recipient.locale or envelope.locale)
    common = {
        "t": t,
        "state": opened.state,
        "account": opened.account_name,
        "subject": envelope.subject,
        "envelope_id": envelope.id,
        "test_mode": envelope.environment == "test",
        "token": token,
        "errors": errors or {},
    }
    if opened.state == "otp":
        expires = recipient.otp_expires_at
        return _html(
            "otp.html",
            status,
            **common,
            code_sent=expires is not None and to_utc(expires) > utcnow(),
            masked_email=_mask(recipient.email),
            digits=otp.DIGITS,
            minutes=int(otp.VALIDITY.total_seconds() // 60),
        )
    if opened.state not in ("act", "view"):
        return _html(
            "status.html", status, **common, waiting_for=opened.waiting_for, refused=refused
        )
    role = recipient.role
    approver = role == "APPROVER"
    own = fields.mine(opened.agg.fields, recipient.id) if opened.state == "act" else []
    return _html(
        "sign.html",
        status,
        **common,
        role=role,
        title_key="title.view"
        if opened.state == "view"
        else ("title.approve" if approver else "title.act"),
        intro_key="intro.viewer"
        if opened.state == "view"
        else ("intro.approver" if approver else "intro.signer"),
        message=envelope.message,
        expires=(iso(envelope.expires_at) or "")[:16].replace("T", " ") + " UTC"
        if envelope.expires_at
        else None,
        documents=_with_pages(documents or [], own),
        wants_initials=fields.asks_initials(own, envelope.initials_on_every_page),
        form=form
        or {
            "name": recipient.name,
            "typed": recipient.name,
            "mode": "typed",
            "initials": fields.default_initials(recipient.name),
        },
    )


def _with_pages(documents: list[dict[str, Any]], own: list[Any]) -> list[dict[str, Any]]:
    """Each document's pages with this signer's fields: boxes over the image, inputs below."""
    out = []
    for doc in documents:
        pages = []
        for number in range(1, doc["pages"] + 1):
            width, height = fields.page_size(own, doc["index"], number)
            on_page = [  # an unplaced field is listed on its given page: never unreachable
                f
                for f in own
                if f.document_index == doc["index"] and (f.placed_page or f.page_number) == number
            ]
            pages.append(
                {
                    "number": number,
                    "width": round(width, 2),
                    "height": round(height, 2),
                    "overlays": fields.overlays(own, doc["index"], number),
                    "inputs": on_page,
                }
            )
        out.append({**doc, "page_list": pages})
    return out


def _mask(email: str) -> str:
    """``jane.doe@example.com`` → ``j•••@example.com``: enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


async def _page(
    request: Request,
    token: str,
    work: Any,
    *,
    form: dict[str, str] | None = None,
    after: str | None = None,
) -> Response:
    """Run one ceremony step and answer: a redirect after a successful POST, else the page.

    ``work(session)`` returns the :class:`Opened` state; refusals come back as pages:
    unknown link 404, not allowed now 409 (with the status page), bad form 400 (the form
    again, each error next to its field)."""
    db = request.app.state.db

    def run(session: Session) -> tuple[Opened, list[dict[str, Any]] | None]:
        opened = work(session)
        documents = (
            _documents(session, opened.envelope.id) if opened.state in ("act", "view") else None
        )
        return opened, documents

    try:
        opened, documents = await db.run(run)
    except NotFound:
        return _not_found()
    except ValidationFailed as exc:
        errors = {e.field: e.message for e in exc.errors}
        opened, documents = await db.run(_reopen(request, token))
        return _render(opened, token, documents, status=400, errors=errors, form=form)
    except Conflict:
        opened = await db.run(
            lambda s: ceremony.open_page(s, token, _visit(request), _proof(request))
        )
        return _render(opened, token, None, status=409, refused=True)
    if after is not None:
        _wake(request)
        target = after
        if after == "done" and opened.envelope.redirect_url:
            target = opened.envelope.redirect_url
        elif after == "done":
            target = f"/sign/{token}"
        return RedirectResponse(target, status_code=303, headers=HEADERS)
    return _render(opened, token, documents)


def _reopen(request: Request, token: str) -> Any:
    """The page as it stands (after a refused step), with its documents."""
    visit, proof = _visit(request), _proof(request)

    def work(session: Session) -> tuple[Opened, list[dict[str, Any]]]:
        opened = ceremony.open_page(session, token, visit, proof)
        return opened, _documents(session, opened.envelope.id)

    return work


def _wake(request: Request) -> None:
    """Notices and the seal should not wait for the worker's next tick."""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


@router.get("/sign/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response(status_code=404)
    return FileResponse(
        STATIC / name,
        media_type=STATIC_FILES[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/sign/{token}")
async def page(token: str, request: Request) -> Response:
    visit, proof = _visit(request), _proof(request)
    return await _page(request, token, lambda s: ceremony.open_page(s, token, visit, proof))


def _field(form: Any, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


@router.post("/sign/{token}/sign")
async def sign(token: str, request: Request) -> Response:
    form = await request.form()
    mode, drawn = _field(form, "mode", 10), _field(form, "drawn", ceremony.MAX_DRAWN_BYTES * 2)
    drawn_png = None
    if mode == "drawn" and drawn:
        try:
            drawn_png = await anyio.to_thread.run_sync(ceremony.clean_drawing, drawn)
        except ValueError:
            drawn_png = None
    submitted = SignForm(
        name=_field(form, "name", 400),
        mode=mode,
        typed=_field(form, "typed", 400),
        drawn=drawn,
        drawn_png=drawn_png,
        consent=_field(form, "consent", 10) == "yes",
        values={k: _field(form, k, 600) for k in form if k.startswith("field_")},
        initials=_field(form, "initials", 40),
    )
    visit, proof = _visit(request), _proof(request)
    echo = {
        "name": submitted.name,
        "typed": submitted.typed,
        "mode": submitted.mode,
        "initials": submitted.initials,
        **submitted.values,
    }
    return await _page(
        request,
        token,
        lambda s: ceremony.sign(s, token, visit, submitted, proof),
        form=echo,
        after="done",
    )


@router.post("/sign/{token}/approve")
async def approve(token: str, request: Request) -> Response:
    form = await request.form()
    consent = _field(form, "consent", 10) == "yes"
    visit, proof = _visit(request), _proof(request)
    return await _page(
        request,
        token,
        lambda s: ceremony.approve(s, token, visit, consent, proof),
        after="done",
    )


@router.post("/sign/{token}/decline")
async def decline(token: str, request: Request) -> Response:
    return await _with_text(request, token, "reason", ceremony.decline)


@router.post("/sign/{token}/return")
async def return_to_sender(token: str, request: Request) -> Response:
    return await _with_text(request, token, "changes", ceremony.return_to_sender)


async def _with_text(request: Request, token: str, name: str, step: Any) -> Response:
    """A step that takes one text from the form (a decline's reason, requested changes)."""
    form = await request.form()
    text = _field(form, name, 1000)
    visit, proof = _visit(request), _proof(request)
    return await _page(
        request,
        token,
        lambda s: step(s, token, visit, text, proof),
        after=f"/sign/{token}",
    )


@router.post("/sign/{token}/otp")
async def send_code(token: str, request: Request) -> Response:
    db, secret, box = (
        request.app.state.db,
        request.app.state.token_secret,
        request.app.state.secret_box,
    )
    visit = _visit(request)

    def work(session: Session) -> bool:
        return otp.send_code(session, token, visit, secret, box.seal)

    try:
        sent = await db.run(work)
    except NotFound:
        return _not_found()
    except Conflict:
        return RedirectResponse(f"/sign/{token}", status_code=303, headers=HEADERS)
    if not sent:
        opened = await db.run(lambda s: ceremony.open_page(s, token, visit, _proof(request)))
        return _render(opened, token, None, status=429, errors={"send": "too_many_codes"})
    _wake(request)
    return RedirectResponse(f"/sign/{token}", status_code=303, headers=HEADERS)


@router.post("/sign/{token}/otp/verify")
async def verify_code(token: str, request: Request) -> Response:
    form = await request.form()
    code = _field(form, "code", 20)
    db, secret = request.app.state.db, request.app.state.token_secret
    visit = _visit(request)
    try:
        recipient, problem = await db.run(lambda s: otp.check_code(s, token, visit, code, secret))
    except NotFound:
        return _not_found()
    if problem is not None:
        opened = await db.run(lambda s: ceremony.open_page(s, token, visit, _proof(request)))
        return _render(opened, token, None, status=400, errors={"code": problem})
    response = RedirectResponse(f"/sign/{token}", status_code=303, headers=HEADERS)
    response.set_cookie(
        OTP_COOKIE,
        otp.otp_cookie_value(secret, recipient, utcnow()),
        max_age=int(otp.SESSION.total_seconds()),
        path=f"/sign/{token}",
        httponly=True,
        secure=request.url.scheme == "https" or request.app.state.public_url.startswith("https:"),
        samesite="lax",
    )
    return response


async def _viewable(request: Request, token: str) -> list[dict[str, Any]] | None:
    """The documents, when this link may show them now (not finished, code given)."""
    proof = _proof(request)

    def work(session: Session) -> list[dict[str, Any]] | None:
        link = ceremony.recipient_for(session, token)
        if ceremony.peek(session, link, proof) not in ("act", "view"):
            return None
        return _documents(session, link.envelope_id)

    try:
        return await request.app.state.db.run(work)
    except NotFound:
        return None


@router.get("/sign/{token}/pages/{index}/{number}")
async def page_image(token: str, index: int, number: int, request: Request) -> Response:
    documents = await _viewable(request, token)
    doc = next((d for d in documents or [] if d["index"] == index), None)
    if doc is None or not 1 <= number <= doc["pages"]:
        return Response(status_code=404, headers=HEADERS)
    previews: Previews = request.app.state.previews
    image = await previews.page(doc["key"], doc["sha256"], number)
    headers = {**HEADERS, "Cache-Control": "private, max-age=600"}
    return Response(image, media_type="image/webp", headers=headers)


@router.get("/sign/{token}/documents/{index}")
async def document_pdf(token: str, index: int, request: Request) -> Response:
    documents = await _viewable(request, token)
    doc = next((d for d in documents or [] if d["index"] == index), None)
    if doc is None:
        return Response(status_code=404, headers=HEADERS)
    data = await request.app.state.storage.read_bytes(doc["key"])
    filename = "".join(c for c in doc["name"] if c.isalnum() or c in " ._-")[:80] or "document"
    if not filename.lower().endswith(".pdf"):
        filename += ".pdf"
    headers = {**HEADERS, "Content-Disposition": f'inline; filename="{filename}"'}
    return Response(data, media_type="application/pdf", headers=headers)
