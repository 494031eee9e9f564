"""Block Kit for every surface the bot shows: frozen dataclasses in, plain JSON-ready dicts out.

Pure module (no slack_sdk, no I/O) so each surface is tested by value and the handlers stay
thin. Two rules hold everywhere:

* user-provided text that lands in ``mrkdwn`` goes through :func:`escape` (Slack's ``&``,
  ``<``, ``>``), so a subject such as ``<!channel>`` or ``<https://evil|click>`` shows as typed
  instead of pinging a channel or masking a link; only ids matching :func:`is_slack_id` are
  wrapped in ``<@…>``;
* every text respects Slack's length limit (:data:`LIMITS`), cut with "…" — a view over a
  limit is refused whole by Slack, which is worse than a shortened subject.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.slack.ids import (
    APPROVAL,
    APPROVAL_VALUE,
    APPROVE_ACTION,
    APPROVER,
    CANCEL_ACTION,
    CHANNEL,
    EXPIRY,
    FILE,
    MEMBERS,
    MESSAGE,
    ORDER,
    OUTSIDE,
    PARALLEL,
    REJECT_ACTION,
    REJECT_CALLBACK,
    REJECT_REASON,
    REMIND,
    REMIND_ACTION,
    ROLE_EMAIL,
    ROLE_USER,
    SEQUENTIAL,
    SIGN_CALLBACK,
    SIGN_LINK_ACTION,
    SUBJECT,
    TEMPLATE,
    UPLOAD_VALUE,
    ModalMetadata,
    block_id,
    is_slack_id,
)

LIMITS = {
    "header": 150, "section": 3000, "field": 2000, "context": 2000, "button": 75,
    "button_value": 2000, "url": 3000, "option": 75, "option_value": 150, "options": 100,
    "title": 24, "submit": 24, "close": 24, "label": 2000, "hint": 2000, "placeholder": 150,
    "input_value": 3000, "confirm_title": 100, "confirm_text": 300, "confirm_button": 30,
    "message_blocks": 50, "view_blocks": 100, "fallback": 3000,
}  # fmt: skip
"""Slack's documented maxima (characters, or items for blocks/options)."""

ELLIPSIS = "…"
SUBJECT_MAX = 255
"""The service's own limit on a subject (envelopes.subject)."""
MAX_ROLE_SLOTS = 40
"""Two inputs per role plus a dozen others must fit in a modal's 100 blocks."""
MAX_LIST = 20
"""Items per App Home section or /sign list answer before "…and N more"."""
REMIND_CHOICES = (0, 1, 2, 3, 7)
EXPIRY_CHOICES = (7, 14, 30, 60)

STATUS_EMOJI = {
    "PENDING": "⏳", "SENT": "📨", "VIEWED": "👀", "SIGNED": "✅", "APPROVED": "✅",
    "DECLINED": "❌",
}  # fmt: skip
RECIPIENT_LABEL = {
    "PENDING": "waiting", "SENT": "sent", "VIEWED": "viewed", "SIGNED": "signed",
    "APPROVED": "approved", "DECLINED": "declined",
}  # fmt: skip
FINISHED = frozenset({"COMPLETED", "DECLINED", "VOIDED", "EXPIRED", "REJECTED", "FAILED"})
"""Request statuses after which nothing can happen: no buttons."""
_DONE = frozenset({"SIGNED", "APPROVED"})


# --- text primitives -----------------------------------------------------------------------
def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last being "…" when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only these three characters are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str | None, limit: int, *, multiline: bool = False) -> str:
    """Escaped and at most ``limit`` characters *after* escaping, never cutting an entity.
    One-line pieces (names, subjects) have their whitespace collapsed so that a name holding
    a newline cannot forge a line of its own ("✅ Bob — signed") in a status message."""
    text = text or ""
    if not multiline:
        text = " ".join(text.split())
    out = escape(text)
    if len(out) <= limit:
        return out
    parts: list[str] = []
    size = 0
    for char in text:
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        parts.append(piece)
        size += len(piece)
    return "".join(parts).rstrip() + ELLIPSIS


def quote(text: str | None, limit: int) -> str:
    """User prose (a message, a reason) as a mrkdwn block quote: every line starts with
    ``>``, so nothing in it can pass for the bot's own lines."""
    lines = safe((text or "").strip(), limit - 21, multiline=True).splitlines()
    kept = [">" + line for line in lines[:20]]
    return "\n".join(kept) + (ELLIPSIS if len(lines) > 20 else "")


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object: no escaping needed (Slack shows it literally), never empty."""
    return {"type": "plain_text", "text": truncate(text.strip() or "-", limit), "emoji": True}


def md(text: str, limit: int = LIMITS["section"]) -> dict[str, Any]:
    """A mrkdwn object from text that is already safe (built from :func:`safe` pieces)."""
    return {"type": "mrkdwn", "text": truncate(text or " ", limit)}


def user_ref(user_id: str | None, name: str | None = None, email: str | None = None) -> str:
    """``<@U…>`` for a workspace member, else the escaped name and email."""
    if user_id and is_slack_id(user_id):
        return f"<@{user_id}>"
    name_part = safe(name, 100) if name else ""
    if email:
        return f"{name_part} ({safe(email, 254)})" if name_part else safe(email, 254)
    return name_part or "someone"


def slack_date(when: datetime | None) -> str:
    """A date Slack renders in the reader's own time zone, with an ISO fallback. A naive
    datetime is taken as UTC (the bot stores UTC), not as the server's local time."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"<!date^{int(when.timestamp())}^{{date_short}}|{when.date().isoformat()}>"


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, LIMITS["option"]), "value": value[: LIMITS["option_value"]]}


def _section(text: str, bid: str | None = None, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": md(text)}
    if bid:
        block["block_id"] = bid
    block.update(extra)
    return block


def _context(text: str, bid: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "context", "elements": [md(text, LIMITS["context"])]}
    if bid:
        block["block_id"] = bid
    return block


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "text": plain(text, LIMITS["button"]), "action_id": action_id}
    button["value"] = value[: LIMITS["button_value"]]
    if style:
        button["style"] = style
    return button


def _link_button(url: str | None, text: str = "Review and sign") -> dict[str, Any] | None:
    """A URL button, or None when the URL is unusable (not http(s), or over Slack's limit):
    a broken row should not make Slack refuse the whole view."""
    if not url or not url.startswith(("https://", "http://")) or len(url) > LIMITS["url"]:
        return None
    button = _button(text, SIGN_LINK_ACTION, "open", "primary")
    button["url"] = url
    return button


def _lines_to_sections(lines: Sequence[str], prefix: str, max_blocks: int) -> list[dict]:
    """Lines packed into as few sections as fit Slack's 3000 characters, at most
    ``max_blocks`` of them, the last one saying how many lines were left out."""
    blocks: list[dict[str, Any]] = []
    current: list[str] = []
    limit = LIMITS["section"] - 40  # room for the "…and N more" line

    def flush() -> None:
        if current:
            blocks.append(_section("\n".join(current), f"{prefix}.{len(blocks)}"))
            current.clear()

    for index, line in enumerate(lines):
        line = truncate(line, limit)
        if current and len("\n".join([*current, line])) > limit:
            flush()
            if len(blocks) == max_blocks:
                blocks[-1]["text"]["text"] += f"\n…and {len(lines) - index} more"
                return blocks
        current.append(line)
    flush()
    return blocks


def _fallback(text: str) -> str:
    return truncate(text, LIMITS["fallback"])


# --- the sign modal ------------------------------------------------------------------------
@dataclass(frozen=True)
class TemplateRole:
    name: str
    """Shown to the sender ("Candidate")."""
    role: str = "SIGNER"
    """SIGNER, APPROVER, VIEWER or CARBON_COPY."""


@dataclass(frozen=True)
class TemplateChoice:
    """A template as the provider's ``GET /templates`` describes it (extensions optional:
    the hosted Certyneo sends only id and name)."""

    id: str
    name: str
    roles: tuple[TemplateRole, ...] = ()
    subject: str | None = None
    message: str | None = None
    signing_order: str | None = None
    remind_days: int | None = None
    expiry_days: int | None = None
    approval_required: bool = False
    description: str | None = None


@dataclass(frozen=True)
class ModalForm:
    """What the sign modal shows; ``template_id`` None means "Upload a PDF instead"."""

    templates: tuple[TemplateChoice, ...] = ()
    template_id: str | None = None
    channel_id: str | None = None
    response_url: str | None = None
    team_id: str | None = None
    subject: str | None = None
    message: str | None = None
    approver_id: str | None = None
    remind_days: int = 3
    expiry_days: int = 30
    members: tuple[str | None, ...] = ()
    """Members proposed by default (a template's ``bot:`` block): one per role slot, in
    order, or the initial members of the free list; entries that are not Slack ids are ignored."""
    notice: str | None = None
    """A line shown on top, e.g. "No template matches “foo”"."""

    @property
    def selected(self) -> TemplateChoice | None:
        return next((t for t in self.usable_templates if t.id == self.template_id), None)

    @property
    def usable_templates(self) -> tuple[TemplateChoice, ...]:
        """Templates whose id fits an option value; one option is kept for "Upload"."""
        fits = [t for t in self.templates if 0 < len(t.id) <= LIMITS["option_value"]]
        return tuple(fits[: LIMITS["options"] - 1])


def _input(bid: str, label: str, element: dict, *, optional: bool = False, **extra: Any) -> dict:
    element = {**element, "action_id": bid.split(".", 1)[0]}
    block = {"type": "input", "block_id": bid, "label": plain(label, LIMITS["label"])}
    block.update(element=element, optional=optional, **extra)
    if isinstance(block.get("hint"), str):
        block["hint"] = plain(block["hint"], LIMITS["hint"])
    return block


def _text_input(
    initial: str | None, max_length: int, *, multiline: bool = False, placeholder: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "max_length": max_length}
    if multiline:
        element["multiline"] = True
    if initial and initial.strip():
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder, LIMITS["placeholder"])
    return element


def _days_select(choices: Sequence[int], initial: int, label: Any) -> dict[str, Any]:
    values = sorted({*choices, initial}) if initial >= 0 else list(choices)
    options = [_option(label(d), str(d)) for d in values]
    chosen = next(o for o in options if o["value"] == str(initial if initial >= 0 else values[0]))
    return {"type": "static_select", "options": options, "initial_option": chosen}


def _remind_label(days: int) -> str:
    return {0: "No reminders", 1: "Every day", 7: "Every week"}.get(days, f"Every {days} days")


def sign_modal(form: ModalForm) -> dict[str, Any]:
    """The ``/sign`` modal. Re-rendered through ``views.update`` when the template changes;
    see :mod:`bot.slack.ids` for why prefilled block ids carry the template id."""
    chosen = form.selected
    variant = (chosen.id,) if chosen else ()
    blocks: list[dict[str, Any]] = []
    if form.notice:
        blocks.append(_context(f":warning: {safe(form.notice, 500)}", "notice"))
    if form.usable_templates:
        upload = _option("Upload a PDF instead", UPLOAD_VALUE)
        options = [_option(t.name, t.id) for t in form.usable_templates] + [upload]
        initial = next((o for o in options if chosen and o["value"] == chosen.id), upload)
        select = {"type": "static_select", "options": options, "initial_option": initial}
        hint = chosen.description if chosen and chosen.description else None
        extra = {"hint": hint} if hint else {}
        blocks.append(_input(TEMPLATE, "Template", select, dispatch_action=True, **extra))
    if chosen is None:
        element = {"type": "file_input", "filetypes": ["pdf"], "max_files": 1}
        blocks.append(_input(FILE, "Document (PDF)", element))
    subject = (chosen.subject or chosen.name) if chosen else form.subject
    blocks.append(_input(block_id(SUBJECT, *variant), "Subject", _text_input(subject, SUBJECT_MAX)))
    message = chosen.message if chosen else form.message
    element = _text_input(message, LIMITS["input_value"], multiline=True)
    blocks.append(_input(block_id(MESSAGE, *variant), "Message", element, optional=True))
    blocks.extend(_recipient_blocks(chosen, form.members))
    sequential = bool(chosen and (chosen.signing_order or "").upper() == "SEQUENTIAL")
    orders = [_option("Everyone at once", PARALLEL), _option("One after another", SEQUENTIAL)]
    radio = {"type": "radio_buttons", "options": orders, "initial_option": orders[sequential]}
    blocks.append(_input(block_id(ORDER, *variant), "Signing order", radio))
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "default_to_current_conversation": True,
    }
    if is_slack_id(form.channel_id):
        channel["initial_conversation"] = form.channel_id
    blocks.append(_input(CHANNEL, "Post updates in", channel))
    remind = chosen.remind_days if chosen and chosen.remind_days is not None else form.remind_days
    element = _days_select(REMIND_CHOICES, remind, _remind_label)
    blocks.append(_input(block_id(REMIND, *variant), "Reminders", element))
    expiry = chosen.expiry_days if chosen and chosen.expiry_days else form.expiry_days
    element = _days_select(EXPIRY_CHOICES, expiry, lambda d: f"{d} days")
    blocks.append(_input(block_id(EXPIRY, *variant), "Expires after", element))
    approval_option = _option("Ask for approval before sending", APPROVAL_VALUE)
    checkbox: dict[str, Any] = {"type": "checkboxes", "options": [approval_option]}
    required = bool(chosen and chosen.approval_required)
    if required:
        checkbox["initial_options"] = [approval_option]
    hint = {"hint": "This template requires approval."} if required else {}
    blocks.append(_input(block_id(APPROVAL, *variant), "Approval", checkbox, optional=True, **hint))
    approver: dict[str, Any] = {"type": "users_select"}
    if is_slack_id(form.approver_id):
        approver["initial_user"] = form.approver_id
    blocks.append(_input(APPROVER, "Approver", approver, optional=True))
    metadata = ModalMetadata(
        channel_id=form.channel_id,
        template_id=chosen.id if chosen else None,
        response_url=form.response_url,
        team_id=form.team_id,
    )
    return {
        "type": "modal",
        "callback_id": SIGN_CALLBACK,
        "title": plain("Request signatures", LIMITS["title"]),
        "submit": plain("Send", LIMITS["submit"]),
        "close": plain("Cancel", LIMITS["close"]),
        "private_metadata": metadata.encode(),
        "blocks": blocks,
    }


def _recipient_blocks(
    chosen: TemplateChoice | None, defaults: tuple[str | None, ...] = ()
) -> list[dict[str, Any]]:
    """Free members/outside inputs, or one member-or-email pair per template role."""
    proposed = [d if is_slack_id(d) else None for d in defaults]
    if chosen is None or not chosen.roles:
        members: dict[str, Any] = {"type": "multi_users_select"}
        initial = [d for d in proposed if d]
        if initial:
            members["initial_users"] = initial
        outside = _text_input(
            None, LIMITS["input_value"], multiline=True, placeholder="Jane Doe <jane@example.com>"
        )
        return [
            _input(MEMBERS, "Workspace members", members, optional=True),
            _input(
                OUTSIDE,
                "People outside Slack",
                outside,
                optional=True,
                hint="One per line: Jane Doe <jane@example.com> or just the address.",
            ),
        ]
    heading = "*Recipients* — a member, or someone outside Slack, for each role"
    blocks = [_section(heading, block_id("recipients", chosen.id))]
    kinds = {"APPROVER": "approves", "VIEWER": "views", "CARBON_COPY": "gets a copy"}
    for index, role in enumerate(chosen.roles[:MAX_ROLE_SLOTS]):
        kind = kinds.get(role.role.upper())
        label = f"{role.name} ({kind})" if kind else role.name
        user = {"type": "users_select", "placeholder": plain("Choose a member", 150)}
        if index < len(proposed) and proposed[index]:
            user["initial_user"] = proposed[index]
        email = _text_input(None, 320, placeholder="or Jane Doe <jane@example.com>")
        blocks.append(_input(block_id(ROLE_USER, chosen.id, index), label, user, optional=True))
        blocks.append(
            _input(
                block_id(ROLE_EMAIL, chosen.id, index),
                f"{label}: or outside Slack",
                email,
                optional=True,
            )
        )
    if len(chosen.roles) > MAX_ROLE_SLOTS:
        more = len(chosen.roles) - MAX_ROLE_SLOTS
        text = f"{more} more roles do not fit in Slack: use the web app."
        blocks.append(_context(text, block_id("roles_more", chosen.id)))
    return blocks


def reject_modal(request_id: str) -> dict[str, Any]:
    """Asks an approver why; the reason is required (Slack enforces a non-optional input)."""
    reason = _text_input(None, 1000, multiline=True, placeholder="What should change?")
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "title": plain("Reject request", LIMITS["title"]),
        "submit": plain("Reject", LIMITS["submit"]),
        "close": plain("Back", LIMITS["close"]),
        "private_metadata": json.dumps({"request": str(request_id)[:200]}),
        "blocks": [_input(REJECT_REASON, "Reason", reason)],
    }


# --- request tracking: channel message, approval DM, App Home ------------------------------
@dataclass(frozen=True)
class RecipientView:
    name: str
    email: str | None = None
    user_id: str | None = None
    """Set when the recipient is a workspace member: shown as a mention."""
    status: str = "PENDING"
    """PENDING, SENT, VIEWED, SIGNED, APPROVED or DECLINED (the provider's)."""
    role: str = "SIGNER"
    reason: str | None = None
    """Why they declined."""


@dataclass(frozen=True)
class RequestView:
    """One signature request as the bot tracks it."""

    id: str
    """The bot's request id: the buttons' value (unique across workspaces)."""
    number: int
    """The short number shown in Slack (``#12``), per workspace."""
    subject: str
    requester_id: str
    status: str
    """CREATING, AWAITING_APPROVAL, REJECTED, SENT, DELIVERED, PARTIALLY_SIGNED, RETURNED_TO_SENDER,
    COMPLETED, DECLINED, VOIDED, EXPIRED or FAILED."""
    recipients: tuple[RecipientView, ...] = ()
    envelope_id: str | None = None
    can_remind: bool = False
    """The provider has the remind extension and someone still has to act."""
    can_cancel: bool = False
    """The provider has the void extension (or the request awaits approval)."""
    approver_id: str | None = None
    actor_id: str | None = None
    """Who cancelled (VOIDED) or rejected (REJECTED)."""
    reason: str | None = None
    """Why it was cancelled, rejected, returned or failed."""
    message: str | None = None
    expires_at: datetime | None = None


def _signed_count(req: RequestView) -> tuple[int, int]:
    acting = [r for r in req.recipients if r.role.upper() in ("SIGNER", "APPROVER")]
    return sum(r.status.upper() in _DONE for r in acting), len(acting)


def _because(reason: str | None) -> str:
    return f"\n{quote(reason, 1000)}" if reason and reason.strip() else ""


def status_line(req: RequestView) -> str:
    """One mrkdwn line (or two, with a quoted reason) saying where the request stands."""
    status = req.status.upper()
    done, total = _signed_count(req)
    if status == "CREATING":
        return "⏳ Preparing the envelope…"
    if status == "AWAITING_APPROVAL":
        return f"⏳ Waiting for approval from {user_ref(req.approver_id, 'the approver')}"
    if status == "REJECTED":
        who = user_ref(req.actor_id or req.approver_id, "the approver")
        return f"❌ Not approved by {who}{_because(req.reason)}"
    if status == "COMPLETED":
        return "✅ Completed: everyone signed"
    if status == "DECLINED":
        decliner = next((r for r in req.recipients if r.status.upper() == "DECLINED"), None)
        if decliner is None:
            return f"❌ Declined{_because(req.reason)}"
        who = user_ref(decliner.user_id, decliner.name, decliner.email)
        return f"❌ Declined by {who}{_because(decliner.reason or req.reason)}"
    if status == "VOIDED":
        who = f" by {user_ref(req.actor_id)}" if is_slack_id(req.actor_id) else ""
        return f"🚫 Cancelled{who}{_because(req.reason)}"
    if status == "EXPIRED":
        return f"⌛ Expired with {done} of {total} signed"
    if status == "FAILED":
        return f"⚠️ Could not be sent{_because(req.reason)}"
    if status == "RETURNED_TO_SENDER":
        return f"↩️ Returned to the sender for changes{_because(req.reason)}"
    due = f" · expires {slack_date(req.expires_at)}" if req.expires_at else ""
    return f"📨 Out for signature: {done} of {total} signed{due}"


def recipient_line(r: RecipientView) -> str:
    status = r.status.upper()
    emoji = STATUS_EMOJI.get(status, "❔")
    label = RECIPIENT_LABEL.get(status, safe(status.lower(), 30))
    role = r.role.upper()
    kind = {"APPROVER": " (approver)", "VIEWER": " (viewer)", "CARBON_COPY": " (copy)"}
    return f"{emoji} {user_ref(r.user_id, r.name, r.email)}{kind.get(role, '')}: {label}"


def status_message(req: RequestView) -> dict[str, Any]:
    """The channel message tracking a request, updated in place (``chat.update``)."""
    finished = req.status.upper() in FINISHED
    context = [f"Requested by {user_ref(req.requester_id)}", f"#{req.number}"]
    if req.envelope_id:
        context.append(f"envelope {safe(req.envelope_id, 80)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": "subject", "text": plain(req.subject, LIMITS["header"])},
        _context(" · ".join(context), "requested"),
    ]
    lines = [recipient_line(r) for r in req.recipients]
    blocks.extend(_lines_to_sections(lines, "recipients", LIMITS["message_blocks"] - 6))
    blocks.append(_section(status_line(req), "status"))
    buttons = []
    if not finished and req.can_remind and req.status.upper() != "AWAITING_APPROVAL":
        buttons.append(_button("Remind", REMIND_ACTION, req.id))
    if not finished and req.can_cancel:
        cancel = _button("Cancel", CANCEL_ACTION, req.id, "danger")
        cancel["confirm"] = {
            "title": plain("Cancel this request?", LIMITS["confirm_title"]),
            "text": plain("Nobody will be able to sign it any more.", LIMITS["confirm_text"]),
            "confirm": plain("Cancel request", LIMITS["confirm_button"]),
            "deny": plain("Keep it", LIMITS["confirm_button"]),
            "style": "danger",
        }
        buttons.append(cancel)
    if buttons:
        blocks.append({"type": "actions", "block_id": "request_actions", "elements": buttons})
    # The fallback feeds notifications: no mentions in it, or every update would ping people.
    word = req.status.replace("_", " ").lower()
    text = f"Signature request #{req.number}: {safe(req.subject, 300)} ({word})"
    return {"text": _fallback(text), "blocks": blocks}


def approval_dm(req: RequestView) -> dict[str, Any]:
    """The approver's DM: Approve / Reject while pending, the outcome afterwards."""
    subject = safe(req.subject, SUBJECT_MAX + 40)
    intro = (
        f"{user_ref(req.requester_id)} asks for your approval before sending "
        f"*{subject}* (#{req.number}) for signature."
    )
    blocks: list[dict[str, Any]] = [_section(intro, "intro")]
    who = [f"• {user_ref(r.user_id, r.name, r.email)}" for r in req.recipients]
    blocks.extend(_lines_to_sections(who, "recipients", 10))
    if req.message and req.message.strip():
        blocks.append(_section(quote(req.message, 2000), "message"))
    if req.status.upper() == "AWAITING_APPROVAL":
        buttons = [
            _button("Approve", APPROVE_ACTION, req.id, "primary"),
            _button("Reject", REJECT_ACTION, req.id, "danger"),
        ]
        blocks.append({"type": "actions", "block_id": "approval_actions", "elements": buttons})
    elif req.status.upper() == "REJECTED":
        blocks.append(_context(f"You rejected it.{_because(req.reason)}", "outcome"))
    else:
        blocks.append(_context(status_line(req), "outcome"))
    text = f"Approval needed: {safe(req.subject, 300)} (#{req.number})"
    return {"text": _fallback(text), "blocks": blocks}


@dataclass(frozen=True)
class WaitingItem:
    """Something waiting for the home's owner to sign."""

    subject: str
    sign_url: str | None
    requester_id: str | None = None
    requester_name: str | None = None
    status: str = "SENT"
    """The owner's own recipient status (SENT, VIEWED)."""
    expires_at: datetime | None = None


def _summary(req: RequestView) -> str:
    return f"*{safe(req.subject, SUBJECT_MAX + 40)}* · #{req.number}\n{status_line(req)}"


def home_view(sent: Sequence[RequestView], waiting: Sequence[WaitingItem]) -> dict[str, Any]:
    """App Home: what I sent, what waits for my signature (the newest first, as given)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": "waiting", "text": plain("Waiting for my signature", 150)}
    ]
    for index, item in enumerate(waiting[:MAX_LIST]):
        who = user_ref(item.requester_id, item.requester_name)
        due = f" · expires {slack_date(item.expires_at)}" if item.expires_at else ""
        label = RECIPIENT_LABEL.get(item.status.upper(), "waiting")
        text = f"*{safe(item.subject, SUBJECT_MAX + 40)}*\nfrom {who} · {label}{due}"
        button = _link_button(item.sign_url)
        extra = {"accessory": button} if button else {}
        blocks.append(
            _section(text if button else text + "\n_link unavailable_", f"waiting.{index}", **extra)
        )
    if not waiting:
        blocks.append(_context("Nothing waits for your signature.", "waiting.none"))
    elif len(waiting) > MAX_LIST:
        blocks.append(_context(f"…and {len(waiting) - MAX_LIST} more.", "waiting.more"))
    blocks.append({"type": "divider"})
    blocks.append({"type": "header", "block_id": "sent", "text": plain("Sent by me", 150)})
    blocks.extend(_section(_summary(r), f"sent.{i}") for i, r in enumerate(sent[:MAX_LIST]))
    if not sent:
        blocks.append(_context("Nothing yet: type `/sign` in any channel.", "sent.none"))
    elif len(sent) > MAX_LIST:
        blocks.append(_context(f"…and {len(sent) - MAX_LIST} more: `/sign list`.", "sent.more"))
    return {"type": "home", "blocks": blocks}


def signer_dm(
    *,
    subject: str,
    sign_url: str,
    requester_id: str | None = None,
    requester_name: str | None = None,
    message: str | None = None,
    expires_at: datetime | None = None,
    reminder: bool = False,
) -> dict[str, Any]:
    """A DM to a recipient who is a workspace member; raises ValueError without a usable
    link, since the DM exists only to carry it."""
    button = _link_button(sign_url)
    if button is None:
        raise ValueError("sign_url must be an http(s) URL of at most 3000 characters")
    who = user_ref(requester_id, requester_name or "Someone")
    head = "Reminder: " if reminder else ""
    text = f"{head}{who} asks you to sign *{safe(subject, SUBJECT_MAX + 40)}*."
    if expires_at:
        text += f"\nExpires {slack_date(expires_at)}."
    blocks = [_section(text, "invite", accessory=button)]
    if message and message.strip():
        blocks.append(_section(quote(message, 2000), "message"))
    fallback = f"{head}please sign: {safe(subject, 300)}"
    return {"text": _fallback(fallback), "blocks": blocks}


def list_message(requests: Sequence[RequestView]) -> dict[str, Any]:
    """``/sign list``: an ephemeral answer with the requester's latest requests."""
    if not requests:
        return ephemeral("You have no signature requests yet. Type `/sign` to start one.")
    blocks = [_section(_summary(r), f"request.{i}") for i, r in enumerate(requests[:MAX_LIST])]
    if len(requests) > MAX_LIST:
        blocks.append(_context(f"…and {len(requests) - MAX_LIST} older ones.", "more"))
    text = f"Your signature requests ({len(requests)})"
    return {"response_type": "ephemeral", "text": text, "blocks": blocks}


def help_text() -> str:
    """``/sign help``: mrkdwn, static (no user text in it)."""
    return "\n".join(
        [
            "*Request signatures from Slack*",
            "`/sign`: open the form (a template or your own PDF, recipients, reminders…)",
            "`/sign nda`: open the form with the template whose id, slug or name starts with it",
            "`/sign list`: your latest requests",
            "`/sign status 12`: where request #12 stands (`#12` and `env_…` work too)",
            "`/sign remind 12`: remind whoever has not signed yet",
            "`/sign cancel 12 reason…`: cancel a request nobody can sign any more",
            "`/sign help`: this message",
        ]
    )


def ephemeral(text_mrkdwn: str) -> dict[str, Any]:
    """A response_url/respond() payload only the user sees, from already-safe mrkdwn."""
    return {
        "response_type": "ephemeral",
        "text": _fallback(text_mrkdwn),
        "blocks": [_section(text_mrkdwn, "notice")],
    }


def ephemeral_error(message: str) -> dict[str, Any]:
    """An error only the user sees; ``message`` is escaped (it may quote their input)."""
    return ephemeral(f":warning: {safe(message, 2900, multiline=True)}")
