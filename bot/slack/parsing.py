"""Reading what people type: ``/sign`` arguments, "Name <email>" lines, submitted modals.

Pure module (email_validator without DNS is the only dependency, the same check the service
applies, so an address the bot accepts is never refused later). Errors are sentences for the
person who typed the input, naming the line or the field, because Slack shows them as is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email

from bot.slack.ids import (
    APPROVAL,
    APPROVAL_VALUE,
    APPROVER,
    CHANNEL,
    EXPIRY,
    FILE,
    MEMBERS,
    MESSAGE,
    ORDER,
    OUTSIDE,
    REJECT_REASON,
    REMIND,
    ROLE_EMAIL,
    ROLE_USER,
    SEQUENTIAL,
    SUBJECT,
    TEMPLATE,
    UPLOAD_VALUE,
    ModalMetadata,
    base_of,
    slot_index,
)

MAX_OUTSIDE = 100
"""People per "outside" box: an envelope takes at most 100 recipients."""
MAX_REASON = 1000
"""The service's limit on a void reason."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_QUOTED = re.compile(r'^"(?P<name>(?:[^"\\]|\\.)*)"\s*<(?P<email>[^<>]*)>$')
_BRACKETED = re.compile(r"^(?P<name>[^<>\"]*?)\s*<(?P<email>[^<>]*)>$")
_TRAILING = re.compile(r"^(?P<name>[^<>\"@]*?)\s+(?P<email>\S+@\S*)$")
_ENVELOPE = re.compile(r"^env_[A-Za-z0-9]{1,64}$")
_NUMBER = re.compile(r"^#?(?P<n>[0-9]{1,9})$")
_TEMPLATE_QUERY = re.compile(r"^[\w][\w .'&()/+-]{0,79}$")


# --- "Name <email>" lines -------------------------------------------------------------------
def _email(value: str) -> str | None:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _show(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "…"


def parse_person(line: str) -> tuple[tuple[str, str] | None, str | None]:
    """One ``Jane Doe <jane@example.com>``, ``"Doe, Jane" <jane@x.fr>``, ``Jane Doe
    jane@example.com`` or bare address: ``((name, email), None)`` or ``(None, why)``. A bare
    address is its own name (the service needs one; guessing it from the address would be
    wrong as often as right)."""
    text = line.strip()
    if _CONTROL.search(text):
        return None, f"'{_show(text)}' contains control characters"
    match = _QUOTED.match(text)
    if match:
        name, raw = re.sub(r"\\(.)", r"\1", match["name"]).strip(), match["email"]
    elif (match := _BRACKETED.match(text)) or (match := _TRAILING.match(text)):
        name, raw = match["name"].strip(), match["email"]
    else:
        name, raw = "", text
    if not raw.strip() or any(c in raw for c in '<>"'):
        return None, f"'{_show(text)}' is not of the form Name <email>"
    email = _email(raw)
    if email is None:
        return None, f"'{_show(raw.strip())}' is not an email address"
    if len(name) > 200:
        return None, f"the name '{_show(name)}' is too long (200 characters at most)"
    return (name or email, email), None


def parse_outside(text: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    """Every non-empty line is one person: ``([(name, email)…], ["line 2: …"…])``. The same
    address twice is an error rather than a silent merge: it is usually a typo for another."""
    people: list[tuple[str, str]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        person, error = parse_person(line)
        if error:
            errors.append(f"line {number}: {error}")
        elif person:
            if person[1].lower() in seen:
                errors.append(f"line {number}: {person[1]} is listed twice")
                continue
            seen.add(person[1].lower())
            people.append(person)
    if len(people) > MAX_OUTSIDE:
        errors.append(f"{len(people)} people: {MAX_OUTSIDE} at most")
    return people, errors


# --- /sign arguments ------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestRef:
    """A request as the user names it: ``#12``/``12`` (the bot's number) or ``env_…``."""

    number: int | None = None
    envelope_id: str | None = None

    def __str__(self) -> str:
        return f"#{self.number}" if self.number is not None else str(self.envelope_id)


Action = Literal["open", "list", "status", "remind", "cancel", "help"]


@dataclass(frozen=True)
class Command:
    action: Action
    template: str | None = None
    """``open`` only: the raw words after /sign; the bot matches id, slug or name prefix."""
    ref: RequestRef | None = None
    reason: str | None = None
    """``cancel`` only."""
    error: str | None = None
    """Set with ``action="help"`` when the text made no sense; shown above the help."""


def parse_ref(word: str) -> RequestRef | None:
    if match := _NUMBER.match(word):
        number = int(match["n"])
        return RequestRef(number=number) if number > 0 else None
    if _ENVELOPE.match(word):
        return RequestRef(envelope_id=word)
    return None


def parse_command(text: str | None) -> Command:
    """``/sign`` arguments → what to do. Keywords win over template names (a template called
    "list" is still reachable from the modal's select)."""
    words = (text or "").split()
    if not words:
        return Command("open")
    verb = words[0].lower()
    if verb in ("help", "-h", "--help", "?"):
        return Command("help")
    if verb == "list":
        if len(words) > 1:
            return Command("help", error="`/sign list` takes nothing after it.")
        return Command("list")
    if verb in ("status", "remind", "cancel"):
        usage = f"`/sign {verb} 12` (a request number, `#12` or an `env_…` id)"
        if len(words) < 2:
            return Command("help", error=f"Which request? Try {usage}.")
        ref = parse_ref(words[1])
        if ref is None:
            return Command("help", error=f"'{_show(words[1])}' is not a request. Try {usage}.")
        if verb == "cancel":
            reason = " ".join(words[2:]) or None
            if reason and len(reason) > MAX_REASON:
                return Command("help", error=f"The reason is too long ({MAX_REASON} at most).")
            return Command("cancel", ref=ref, reason=reason)
        if len(words) > 2:
            return Command("help", error=f"`/sign {verb}` takes one request. Try {usage}.")
        return Command(verb, ref=ref)  # type: ignore[arg-type]
    if len(words) == 1 and parse_ref(words[0]):
        return Command("status", ref=parse_ref(words[0]))
    query = " ".join(words)
    if _TEMPLATE_QUERY.match(query):
        return Command("open", template=query)
    return Command("help", error=f"I don't know '{_show(query)}'.")


# --- submitted modals -----------------------------------------------------------------------
def read_state(values: dict[str, Any] | None) -> dict[str, Any]:
    """``view.state.values`` flattened to ``{block_id: value}``: the text, the selected
    option's value, the user/conversation id(s), the checked values or the files — whatever
    the element holds, None when empty."""
    out: dict[str, Any] = {}
    for block, actions in (values or {}).items():
        for state in (actions or {}).values():
            kind = state.get("type")
            if kind in ("static_select", "radio_buttons", "external_select"):
                value = (state.get("selected_option") or {}).get("value")
            elif kind == "checkboxes":
                value = [o.get("value") for o in state.get("selected_options") or []]
            elif kind == "multi_users_select":
                value = list(state.get("selected_users") or [])
            elif kind == "users_select":
                value = state.get("selected_user")
            elif kind == "conversations_select":
                value = state.get("selected_conversation")
            elif kind == "channels_select":
                value = state.get("selected_channel")
            elif kind == "file_input":
                value = list(state.get("files") or [])
            else:
                value = state.get("value")
            out[block] = value
    return out


@dataclass(frozen=True)
class SlackFile:
    """A file uploaded through the modal's file_input (download it with the bot token)."""

    id: str
    name: str
    mimetype: str | None = None
    size: int | None = None
    url: str | None = None
    """``url_private_download`` (or ``url_private``)."""


@dataclass(frozen=True)
class Slot:
    """A template role filled in: a member, or someone outside Slack."""

    index: int
    user_id: str | None = None
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Submission:
    metadata: ModalMetadata
    template_id: str | None
    file: SlackFile | None
    subject: str
    message: str
    members: tuple[str, ...]
    outside: tuple[tuple[str, str], ...]
    slots: tuple[Slot, ...]
    """Template roles in role order (empty without a template or for one without roles)."""
    sequential: bool
    channel_id: str | None
    remind_days: int
    expiry_days: int
    approval: bool
    """Checked, or an approver was chosen (choosing one and forgetting the box means it)."""
    approver_id: str | None


def _int(value: Any, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


def _slack_file(files: list[dict[str, Any]] | None) -> SlackFile | None:
    if not files:
        return None
    f = files[0]
    url = f.get("url_private_download") or f.get("url_private")
    name = f.get("name") or f.get("title") or "document.pdf"
    return SlackFile(str(f.get("id", "")), name, f.get("mimetype"), f.get("size"), url)


def parse_submission(
    values: dict[str, Any] | None, private_metadata: str | None, requester_id: str | None = None
) -> tuple[Submission | None, dict[str, str]]:
    """The sign modal's ``view.state.values`` → ``(Submission, {})`` or ``(None, errors)``
    with errors keyed by the block ids as rendered, ready for ``response_action: errors``."""
    state = read_state(values)
    by_base: dict[str, tuple[str, Any]] = {}
    slots: dict[int, dict[str, Any]] = {}
    for block, value in state.items():
        index = slot_index(block)
        if index is None:
            by_base[base_of(block)] = (block, value)
        else:
            slots.setdefault(index, {})[base_of(block)] = (block, value)

    def get(base: str) -> Any:
        return by_base.get(base, ("", None))[1]

    def where(base: str) -> str:
        return by_base.get(base, (base, None))[0] or base

    errors: dict[str, str] = {}
    metadata = ModalMetadata.decode(private_metadata)
    template = get(TEMPLATE)
    template_id = None if template in (None, UPLOAD_VALUE) else str(template)
    if TEMPLATE in by_base and template_id != metadata.template_id:
        errors[where(TEMPLATE)] = "The form was still changing: check it and send again."
    file = _slack_file(get(FILE))
    if template_id is None and file is None:
        errors[where(FILE)] = "Attach a PDF, or choose a template."
    elif file and not (
        file.name.lower().endswith(".pdf") or (file.mimetype or "") == "application/pdf"
    ):
        errors[where(FILE)] = "Only PDF documents can be sent for signature."
    subject = " ".join((get(SUBJECT) or "").split())
    if not subject:
        errors[where(SUBJECT)] = "Give the request a subject."
    members = tuple(dict.fromkeys(get(MEMBERS) or []))
    outside, bad = parse_outside(get(OUTSIDE))
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        errors[where(OUTSIDE)] = "; ".join(bad[:3]) + more
    filled: list[Slot] = []
    for index in sorted(slots):
        user_block, user = slots[index].get(ROLE_USER, ("", None))
        email_block, text = slots[index].get(ROLE_EMAIL, ("", None))
        if user and text and text.strip():
            errors[email_block] = "Choose a member or type an address, not both."
        elif user:
            filled.append(Slot(index, user_id=user))
        elif text and text.strip():
            person, error = parse_person(text)
            if error or person is None:
                errors[email_block] = error or "Not an email address."
            else:
                filled.append(Slot(index, name=person[0], email=person[1]))
        else:
            errors[user_block or email_block] = "Choose someone for this role."
    if not slots and not members and not outside and not bad:
        errors[where(MEMBERS)] = "Add at least one recipient: a member or someone outside Slack."
    channel = get(CHANNEL)
    if CHANNEL in by_base and not channel:
        errors[where(CHANNEL)] = "Choose where to post updates."
    approver = get(APPROVER)
    approval = APPROVAL_VALUE in (get(APPROVAL) or []) or bool(approver)
    if approval and not approver:
        errors[where(APPROVER)] = "Choose who approves the request."
    elif approver and approver == requester_id:
        errors[where(APPROVER)] = "Choose someone other than yourself."
    if errors:
        return None, errors
    return Submission(
        metadata=metadata,
        template_id=template_id,
        file=file if template_id is None else None,
        subject=subject,
        message=(get(MESSAGE) or "").strip(),
        members=members,
        outside=tuple(outside),
        slots=tuple(filled),
        sequential=get(ORDER) == SEQUENTIAL,
        channel_id=channel or metadata.channel_id,
        remind_days=_int(get(REMIND), 0),
        expiry_days=_int(get(EXPIRY), 30) or 30,
        approval=approval,
        approver_id=approver,
    ), {}


def parse_reject(
    values: dict[str, Any] | None, private_metadata: str | None
) -> tuple[str | None, str, dict[str, str]]:
    """The reject modal → ``(request id, reason, errors)``."""
    try:
        request_id = json.loads(private_metadata or "{}").get("request")
    except (ValueError, AttributeError):
        request_id = None
    reason = (read_state(values).get(REJECT_REASON) or "").strip()
    errors = {} if reason else {REJECT_REASON: "Say why, so the requester can fix it."}
    return (str(request_id) if request_id else None), reason, errors
