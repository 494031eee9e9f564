"""Parse and check one ``templates/NAME.yaml``: a :class:`Template`, or every reason it is not.

The format is described in ``templates/README.md``. Checking is strict on purpose — unknown
keys, wrong types, a missing or encrypted PDF, an anchor the document does not contain, an
occurrence index past the last one — because a template that loads must produce envelopes
that work; each complaint carries the file and the line it is about.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import yaml
from yaml.nodes import Node, ScalarNode

from bot.templates import spec
from bot.templates.fields import FieldDraft, check_fields, read_field
from bot.templates.nodes import Reader, compose, syntax_error
from bot.templates.pdfs import PdfFacts, inspect
from bot.templates.spec import Template, TemplateError, TemplateRole

TOP_KEYS = (
    "name",
    "description",
    "document",
    "documents",
    "subject",
    "message",
    "signing_order",
    "reminders",
    "expires_in_days",
    "approval",
    "roles",
    "bot",
)
ROLE_KEYS = ("name", "role", "order", "fields")


def load_template(path: Path) -> tuple[Template | None, list[TemplateError]]:
    """The template described by the YAML file at ``path``, or ``None`` and its errors."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return None, [TemplateError(path, 1, f"cannot be read ({exc.strerror or exc})")]
    except UnicodeDecodeError:
        return None, [TemplateError(path, 1, "is not UTF-8 text")]
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        return None, [syntax_error(path, exc)]
    if root is None:
        return None, [TemplateError(path, 1, "the file is empty")]
    template, errors = _Loader(path).load(root)
    return template, sorted(errors, key=lambda e: e.line)


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.read = Reader(path)
        self.ordered: list[Node] = []
        """The ``order`` members given, in role order."""

    def load(self, root: Node) -> tuple[Template | None, list[TemplateError]]:
        r = self.read
        top = r.mapping(root, "", TOP_KEYS, required=("name", "roles"))
        if top is None:
            return None, r.errors
        if not spec.slug(self.path.stem):
            r.error(root, "", "the file name has no letter or digit to make the template's id")
        name = r.member_text(top, "", "name", 100)
        description = self._text(top, "description", 1000, multiline=True) or ""
        subject = self._text(top, "subject", 255)
        if subject and "{{" in subject:
            r.error(top["subject"], "subject", "placeholders are not filled in; write plain text")
        message = self._text(top, "message", 10000, multiline=True)
        documents = self._documents(top, root)
        roles, drafts = self._roles(top)
        order = self._signing_order(top, roles)
        if order == "PARALLEL":  # one routing group
            roles = tuple(TemplateRole(role.name, role.role, 1) for role in roles)
        reminders = self._reminders(top.get("reminders"))
        expires = None
        if "expires_in_days" in top:
            expires = r.integer(top["expires_in_days"], "expires_in_days", lo=1, hi=365)
        required, approver = self._approval(top.get("approval"), roles)
        bot = self._bot(top["bot"]) if "bot" in top else {}
        fields = check_fields(self.read, drafts, documents)
        if r.errors or name is None:
            return None, r.errors
        return Template(
            id=spec.template_id(self.path),
            name=name,
            description=description,
            path=self.path,
            documents=tuple(p for p, _ in documents),
            roles=roles,
            fields=fields,
            default_subject=subject or name,
            default_message=message,
            signing_order=order,
            reminders=reminders,
            expires_in_days=expires,
            approval_required=required,
            approver_role=approver,
            bot=MappingProxyType(bot),  # shared by every request: read-only
        ), []

    # --- top level ----------------------------------------------------------------------------

    def _text(
        self, members: dict[str, Node], key: str, max_length: int, *, multiline: bool = False
    ) -> str | None:
        node = members.get(key)
        if node is None:
            return None
        return self.read.text(node, key, max_length=max_length, multiline=multiline)

    def _documents(self, top: dict[str, Node], root: Node) -> list[tuple[Path, PdfFacts | None]]:
        """The PDFs with their facts (``None`` when unusable, already reported)."""
        r = self.read
        if "document" in top and "documents" in top:
            r.error(top["documents"], "documents", "give either 'document' or 'documents'")
            return []
        named: list[tuple[str, Node, str]] = []
        if "documents" in top:
            items = r.sequence(top["documents"], "documents") or []
            if not 1 <= len(items) <= spec.MAX_DOCUMENTS:
                r.error(top["documents"], "documents", f"list 1 to {spec.MAX_DOCUMENTS} files")
            for i, node in enumerate(items):
                value = r.member_text({"": node}, f"documents[{i}]", "", 255)
                if value:
                    named.append((value, node, f"documents[{i}]"))
        elif "document" in top:
            value = r.member_text(top, "", "document", 255)
            if value:
                named.append((value, top["document"], "document"))
        else:
            named.append((f"{self.path.stem}.pdf", root, "document (default NAME.pdf)"))
        out: list[tuple[Path, PdfFacts | None]] = []
        seen: set[Path] = set()
        folder = self.path.parent
        for value, node, where in named:
            relative = Path(value)
            if relative.is_absolute() or ".." in relative.parts:
                r.error(node, where, "must be a path inside the templates folder")
                continue
            target = folder / relative
            if target in seen:
                r.error(node, where, f"{value} is listed twice")
                continue
            seen.add(target)
            facts = inspect(target)
            if isinstance(facts, str):
                r.error(node, where, f"{value}: {facts}")
                out.append((target, None))
            else:
                out.append((target, facts))
        return out

    def _signing_order(self, top: dict[str, Node], roles: tuple[TemplateRole, ...]) -> str:
        """As the API decides it for recipients: PARALLEL unless the roles give different
        ``order``s; ``signing_order: sequential`` routes by position when none is given."""
        distinct = bool(self.ordered) and len({role.order for role in roles}) > 1
        node = top.get("signing_order")
        if node is None:
            return "SEQUENTIAL" if distinct else "PARALLEL"
        order = self.read.choice(node, "signing_order", ("parallel", "sequential"))
        if order == "parallel" and self.ordered:
            self.read.error(self.ordered[0], "signing_order", "is parallel: roles take no 'order'")
        return (order or "parallel").upper()

    def _reminders(self, node: Node | None) -> tuple[int, int] | None:
        if node is None:
            return None
        r = self.read
        members = r.mapping(node, "reminders", ("interval_days", "max_count"), ("interval_days",))
        if members is None or "interval_days" not in members:
            return None
        every = r.integer(members["interval_days"], "reminders.interval_days", lo=1, hi=365)
        most = 3
        if "max_count" in members:
            most = r.integer(members["max_count"], "reminders.max_count", lo=0, hi=50) or 0
        return (every, most) if every is not None else None

    def _approval(
        self, node: Node | None, roles: tuple[TemplateRole, ...]
    ) -> tuple[bool, str | None]:
        """``approval: true`` or ``{required, approver_role}``; the role must be an APPROVER."""
        r = self.read
        if node is None:
            return False, None
        if isinstance(node, ScalarNode):
            return bool(r.boolean(node, "approval")), None
        members = r.mapping(node, "approval", ("required", "approver_role"))
        if members is None:
            return False, None
        required = True
        if "required" in members:
            required = bool(r.boolean(members["required"], "approval.required"))
        approver = None
        if "approver_role" in members:
            where, value_node = "approval.approver_role", members["approver_role"]
            wanted = r.text(value_node, where, max_length=100)
            by_name = {role.name.casefold(): role for role in roles}
            role = by_name.get(wanted.casefold()) if wanted else None
            if role is None:
                known = ", ".join(role.name for role in roles) or "none"
                r.error(value_node, where, f"must name one of the roles ({known})")
            elif role.role != "APPROVER":
                r.error(value_node, where, f"{role.name} is a {role.role}, not an APPROVER")
            else:
                approver = role.name
            if not required:
                r.error(value_node, where, "given, but approval.required is false")
        return required, approver

    def _bot(self, node: Node) -> dict[str, object]:
        """The Slack bot's block: only its shape is ours to check (a mapping)."""
        value = self.read.plain(node) if node.tag != "tag:yaml.org,2002:null" else {}
        if not isinstance(value, dict):
            self.read.error(node, "bot", "must be a mapping of keys to values")
            return {}
        return value

    # --- roles and fields ---------------------------------------------------------------------

    def _roles(self, top: dict[str, Node]) -> tuple[tuple[TemplateRole, ...], list[FieldDraft]]:
        r = self.read
        node = top.get("roles")
        items = r.sequence(node, "roles") if node is not None else None
        if items is None:
            return (), []
        if not 1 <= len(items) <= spec.MAX_ROLES:
            r.error(node, "roles", f"list 1 to {spec.MAX_ROLES} roles")
        roles: list[TemplateRole] = []
        drafts: list[FieldDraft] = []
        names: set[str] = set()
        for i, item in enumerate(items):
            where = f"roles[{i}]"
            members = r.mapping(item, where, ROLE_KEYS, required=("name",))
            if members is None:
                continue
            name = r.member_text(members, where, "name", 100) or f"role {i + 1}"
            if "name" in members and name.casefold() in names:
                r.error(members["name"], f"{where}.name", f"{name!r} is used twice")
            names.add(name.casefold())
            kind = "SIGNER"
            if "role" in members:
                kind = r.choice(members["role"], f"{where}.role", spec.ROLES) or kind
            order = i + 1
            if "order" in members:
                self.ordered.append(members["order"])
                order = r.integer(members["order"], f"{where}.order", lo=1, hi=1000) or order
            roles.append(TemplateRole(name, kind, order))
            fields = members.get("fields")
            if fields is None or fields.tag == "tag:yaml.org,2002:null":  # `fields:` left empty
                continue
            items_f = r.sequence(fields, f"{where}.fields") or []
            if items_f and kind in spec.NO_FIELDS_ROLES:
                r.error(fields, f"{where}.fields", f"a {kind} only receives a copy: no fields")
                continue
            for j, field_node in enumerate(items_f):
                draft = read_field(r, field_node, f"{where}.fields[{j}]", len(roles) - 1)
                if draft is not None:
                    drafts.append(draft)
        if len(drafts) > spec.MAX_FIELDS:
            r.error(node, "roles", f"at most {spec.MAX_FIELDS} fields in all")
        return tuple(roles), drafts
