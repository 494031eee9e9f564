"""The API's view of a template: Certyneo's ``Template`` plus our extensions.

Certyneo's members: ``id``, ``name``, ``description``, ``signerCount``, ``documentCount``.
Extensions (marked so in the OpenAPI document by the route): ``roles``, ``signingOrder``,
``defaultSubject``, ``defaultMessage``, ``reminders`` (the shape envelope creation takes),
``expiresInDays``, ``approval``; the single-template route adds ``documents`` and ``fields``.
Unset members are omitted, never ``null`` (typed clients choke on it). The ``bot:`` block of
the YAML is the Slack bot's and is not served.
"""

from __future__ import annotations

from typing import Any

from bot.templates.spec import Template, TemplateField


def template_json(template: Template, *, detail: bool = False) -> dict[str, Any]:
    t = template
    out: dict[str, Any] = {"id": t.id, "name": t.name}
    if t.description:
        out["description"] = t.description
    out["signerCount"] = t.signer_count
    out["documentCount"] = len(t.documents)
    out["roles"] = [{"name": r.name, "role": r.role, "order": r.order} for r in t.roles]
    out["signingOrder"] = t.signing_order
    out["defaultSubject"] = t.default_subject
    if t.default_message:
        out["defaultMessage"] = t.default_message
    if t.reminders is not None:
        out["reminders"] = {"intervalDays": t.reminders[0], "maxCount": t.reminders[1]}
    if t.expires_in_days is not None:
        out["expiresInDays"] = t.expires_in_days
    approval: dict[str, Any] = {"required": t.approval_required}
    if t.approver_role:
        approval["approverRole"] = t.approver_role
    out["approval"] = approval
    if detail:
        out["documents"] = [{"index": i, "name": p.name} for i, p in enumerate(t.documents)]
        out["fields"] = [field_json(t, f) for f in t.fields]
    return out


def field_json(template: Template, field: TemplateField) -> dict[str, Any]:
    """Certyneo's ``EnvelopeField`` with the role (index and name) in place of an email."""
    out: dict[str, Any] = {
        "roleIndex": field.role_index,
        "role": template.roles[field.role_index].name,
        "documentIndex": field.document_index,
        "pageNumber": field.page_number,
        "fieldType": field.field_type,
    }
    if field.anchor_text:
        out["anchorText"] = field.anchor_text
        out["anchorPlacement"] = field.anchor_placement
        out["anchorIndex"] = field.anchor_index
    out.update(x=field.x, y=field.y, width=field.width, height=field.height)
    out["required"] = field.required
    if field.label:
        out["label"] = field.label
    if field.options:
        out["options"] = list(field.options)
    return out
