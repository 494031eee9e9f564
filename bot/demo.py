"""``signbot demo``: a newcomer signs in a browser within a minute of installing.

It provisions a sandbox key on the default account, then drives the real API over HTTP (the
same path an integrator's code takes): uploads a sample agreement made here, creates an
envelope for two made-up people in sequence, sends it, waits until the invitations are
written to the local mail folder, and prints the sign links and where each email went.
Sandbox envelopes never send real email, so nothing leaves the machine.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

from bot.accounts import service as accounts
from bot.db import Database

RECIPIENTS = (
    {"name": "Ada Lovelace", "email": "ada@example.com", "order": 1},
    {"name": "Grace Hopper", "email": "grace@example.com", "order": 2},
)

_CLAUSES = (
    (
        "1. Purpose",
        "The parties wish to explore a business relationship and, for that purpose "
        "only, may disclose confidential information to each other.",
    ),
    (
        "2. Confidential information",
        "Any information disclosed by one party to the other, in "
        "any form, that is marked confidential or that a reasonable person would understand to "
        "be confidential.",
    ),
    (
        "3. Obligations",
        "The receiving party keeps the information confidential, uses it only "
        "for the purpose, and shares it only with people who need to know it and are bound by "
        "similar obligations.",
    ),
    ("4. Term", "These obligations last three years from the date of the last signature."),
    ("5. Law", "This agreement is governed by the law of the place of the disclosing party."),
)


def sample_pdf() -> bytes:
    """A short mutual non-disclosure agreement, made here (no file to ship)."""
    out = io.BytesIO()
    styles = getSampleStyleSheet()
    story = [
        Paragraph("Mutual Non-Disclosure Agreement (sample)", styles["Title"]),
        Paragraph(
            "Between Ada Lovelace and Grace Hopper. This is a demonstration document "
            "created by <b>signbot demo</b>; it has no legal effect.",
            styles["Normal"],
        ),
        Spacer(1, 12),
    ]
    for title, text in _CLAUSES:
        story += [Paragraph(title, styles["Heading3"]), Paragraph(text, styles["Normal"])]
    SimpleDocTemplate(out, pagesize=A4, title="Mutual NDA (sample)").build(story)
    return out.getvalue()


def provision_key(db: Database) -> str:
    """A new sandbox key on the default account (created if this is a fresh install)."""

    def work(session):  # type: ignore[no-untyped-def]
        account = accounts.default_account(session)
        return accounts.create_key(session, account.id, "test", "signbot demo").secret

    return db.run_sync(work)


@dataclass(frozen=True)
class Invitee:
    name: str
    email: str
    sign_url: str
    email_file: Path | None


def run(
    base_url: str, secret: str, mail_dir: Path, timeout: float = 30.0
) -> tuple[str, list[Invitee]]:
    """Send the sample envelope through the API; returns its id and the invitees."""
    api = httpx.Client(
        base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    with api:
        document = api.post(
            "/documents", files={"file": ("mutual-nda-sample.pdf", sample_pdf(), "application/pdf")}
        )
        document.raise_for_status()
        created = api.post(
            "/envelopes",
            json={
                "subject": "Mutual NDA (signbot demo)",
                "message": "This is signbot's demo: sign it in your browser, then look at "
                "the sealed PDF and its audit trail.",
                "documentIds": [document.json()["id"]],
                "recipients": list(RECIPIENTS),
            },
        )
        created.raise_for_status()
        envelope = created.json()
        since = time.time() - 1
        api.post(f"/envelopes/{envelope['id']}/send").raise_for_status()
        links = {r["email"]: r["signUrl"] for r in envelope["recipients"]}
        files = _wait_for_mail(mail_dir, {RECIPIENTS[0]["email"]}, since, timeout)
    return envelope["id"], [
        Invitee(r["name"], r["email"], links[r["email"]], files.get(r["email"])) for r in RECIPIENTS
    ]


def _wait_for_mail(
    mail_dir: Path, emails: set[str], since: float, timeout: float
) -> dict[str, Path]:
    """The invitation files written since ``since``, once the worker has written them (the
    first signer's at send; the second's when the first has signed)."""
    found: dict[str, Path] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and set(found) != emails:
        for path in sorted(mail_dir.glob("*-invitation-*.eml")) if mail_dir.exists() else []:
            for email in emails:
                slug = email.replace("@", "-").replace(".", "-")
                if slug in path.name and path.stat().st_mtime >= since:
                    found[email] = path
        time.sleep(0.2)
    return found
