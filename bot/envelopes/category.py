"""Certyneo's envelope categories, inferred from the subject when the sender gives none."""

from __future__ import annotations

import re

CATEGORIES = (
    "CONTRACT",
    "AGREEMENT",
    "INVOICE",
    "LETTER",
    "QUOTE",
    "NDA",
    "HR",
    "LEGAL",
    "REPORT",
    "PROPOSAL",
    "OTHER",
)

# First match wins, so the specific ones (NDA) come before the general (CONTRACT).
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "NDA",
        (
            "nda",
            "non-disclosure",
            "confidential",
            "confidentialit",
            "geheimhaltung",
            "vertraulich",
            "geheimhouding",
            "bảo mật",
        ),
    ),
    ("INVOICE", ("invoice", "facture", "rechnung", "factuur", "hóa đơn", "hoá đơn")),
    ("QUOTE", ("quote", "quotation", "devis", "angebot", "offerte", "báo giá")),
    ("PROPOSAL", ("proposal", "proposition", "vorschlag", "voorstel", "đề xuất")),
    (
        "HR",
        (
            "employment",
            "offer letter",
            "onboarding",
            "payroll",
            "embauche",
            "travail",
            "arbeitsvertrag",
            "arbeidsovereenkomst",
            "lao động",
            "nhân sự",
        ),
    ),
    ("AGREEMENT", ("agreement", "accord", "vereinbarung", "overeenkomst", "thỏa thuận")),
    ("CONTRACT", ("contract", "contrat", "vertrag", "contract", "hợp đồng")),
    ("LEGAL", ("legal", "juridique", "power of attorney", "procuration", "vollmacht", "pháp lý")),
    ("REPORT", ("report", "rapport", "bericht", "verslag", "báo cáo")),
    ("LETTER", ("letter", "lettre", "brief", "thư")),
)


#: One compiled pattern per category: a keyword counts at the start of a word.
_PATTERNS = tuple(
    (category, re.compile("|".join(rf"(?<!\w){re.escape(w)}" for w in words)))
    for category, words in _KEYWORDS
)


def infer(subject: str) -> str:
    text = subject.lower()
    for category, pattern in _PATTERNS:
        if pattern.search(text):
            return category
    return "OTHER"
