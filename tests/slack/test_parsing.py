"""Reading what people type: /sign arguments, "Name <email>" lines, submitted modals.

Submissions are built the way Slack builds them: from the view our builders produced, with
the answers filled in by ``state_values`` (which starts from the view's initial values), so
a renamed block on one side fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.slack import ids, views
from bot.slack.parsing import (
    Command,
    RequestRef,
    Slot,
    parse_command,
    parse_outside,
    parse_person,
    parse_reject,
    parse_submission,
    read_state,
)
from tests.support.slack_requests import state_values

PDF = {
    "id": "F0PDF",
    "name": "contract.pdf",
    "mimetype": "application/pdf",
    "size": 1234,
    "url_private": "https://files.slack.com/files-pri/T-F0PDF/contract.pdf",
    "url_private_download": "https://files.slack.com/files-pri/T-F0PDF/download/contract.pdf",
}
NDA = views.TemplateChoice(
    "tpl_nda",
    "Mutual NDA",
    roles=(views.TemplateRole("Discloser"), views.TemplateRole("Receiver")),
    subject="NDA",
    remind_days=2,
    expiry_days=14,
)


# --- "Name <email>" -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "person"),
    [
        ("Jane Doe <jane@example.com>", ("Jane Doe", "jane@example.com")),
        ("jane@example.com", ("jane@example.com", "jane@example.com")),
        ("<jane@example.com>", ("jane@example.com", "jane@example.com")),
        ('"Doe, Jane" <jane@x.fr>', ("Doe, Jane", "jane@x.fr")),
        ('"Jane \\"JD\\" Doe" <jane@x.fr>', ('Jane "JD" Doe', "jane@x.fr")),
        ("  Jane Doe   <jane@EXAMPLE.com>  ", ("Jane Doe", "jane@example.com")),
        ("Jane Doe jane@example.com", ("Jane Doe", "jane@example.com")),
        ("Zoë Ünal <zoe@exämple.de>", ("Zoë Ünal", "zoe@exämple.de")),
    ],
)
def test_parse_person_accepts(line: str, person: tuple[str, str]) -> None:
    assert parse_person(line) == (person, None)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("bob@", "'bob@' is not an email address"),
        ("Bob <bob@>", "'bob@' is not an email address"),
        ("Bob Smith", "'Bob Smith' is not an email address"),
        ("Bob <bob@example.com", "'Bob <bob@example.com' is not of the form Name <email>"),
        ("Bob <a@b.co> <c@d.co>", "is not of the form Name <email>"),
        ("Bob <>", "is not of the form Name <email>"),
        ("Bob\x00 <bob@example.com>", "contains control characters"),
        ("N" * 201 + " <n@example.com>", "too long"),
    ],
)
def test_parse_person_refuses(line: str, error: str) -> None:
    person, why = parse_person(line)
    assert person is None
    assert why is not None and error in why


@pytest.mark.parametrize(
    ("text", "people", "errors"),
    [
        ("", [], []),
        (None, [], []),
        ("\n  \n", [], []),
        (
            'Jane Doe <jane@example.com>\nbob@\n\n"Doe, Jane" <jd@x.fr>',
            [("Jane Doe", "jane@example.com"), ("Doe, Jane", "jd@x.fr")],
            ["line 2: 'bob@' is not an email address"],
        ),
        (
            "a@example.com\nA <A@example.com>",
            [("a@example.com", "a@example.com")],
            ["line 2: A@example.com is listed twice"],
        ),
        (
            "x\ny@example.com\nz",
            [("y@example.com", "y@example.com")],
            ["line 1: 'x' is not an email address", "line 3: 'z' is not an email address"],
        ),
    ],
)
def test_parse_outside(text: str | None, people: list, errors: list[str]) -> None:
    assert parse_outside(text) == (people, errors)


def test_parse_outside_caps_at_100() -> None:
    people, errors = parse_outside("\n".join(f"p{i}@example.com" for i in range(101)))
    assert len(people) == 101 and errors == ["101 people: 100 at most"]


# --- /sign arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Command("open")),
        ("   ", Command("open")),
        (None, Command("open")),
        ("nda", Command("open", template="nda")),
        ("tpl_nda", Command("open", template="tpl_nda")),
        ("Mutual  NDA", Command("open", template="Mutual NDA")),
        ("offer-letter", Command("open", template="offer-letter")),
        ("help", Command("help")),
        ("HELP me", Command("help")),
        ("list", Command("list")),
        ("List", Command("list")),
        ("status 12", Command("status", ref=RequestRef(number=12))),
        ("status #12", Command("status", ref=RequestRef(number=12))),
        ("#12", Command("status", ref=RequestRef(number=12))),
        ("12", Command("status", ref=RequestRef(number=12))),
        ("status env_01HG2ZK9T3", Command("status", ref=RequestRef(envelope_id="env_01HG2ZK9T3"))),
        ("remind #7", Command("remind", ref=RequestRef(number=7))),
        ("cancel 12", Command("cancel", ref=RequestRef(number=12))),
        (
            "cancel #12 wrong   file, sorry",
            Command("cancel", ref=RequestRef(number=12), reason="wrong file, sorry"),
        ),
    ],
)
def test_parse_command(text: str | None, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("status", "Which request?"),
        ("remind", "Which request?"),
        ("cancel", "Which request?"),
        ("status abc", "'abc' is not a request"),
        ("status #0", "'#0' is not a request"),
        ("status env_", "'env_' is not a request"),
        ("remind 12 13", "takes one request"),
        ("list all", "takes nothing"),
        ("cancel 12 " + "x" * 1001, "too long"),
        ("<!channel>", "I don't know '<!channel>'"),
        ("--force", "I don't know"),
    ],
)
def test_parse_command_errors(text: str, error: str) -> None:
    command = parse_command(text)
    assert command.action == "help"
    assert command.error is not None and error in command.error


def test_request_ref_str() -> None:
    assert str(RequestRef(number=12)) == "#12"
    assert str(RequestRef(envelope_id="env_1")) == "env_1"


# --- the submitted sign modal ---------------------------------------------------------------
def submit(form: views.ModalForm, answers: dict[str, Any], requester: str = "U0REQ"):
    view = views.sign_modal(form)
    return parse_submission(state_values(view, answers), view["private_metadata"], requester)


UPLOAD_FORM = views.ModalForm(templates=(NDA,), channel_id="C0CHAN", response_url="https://r")


def test_upload_submission() -> None:
    answers = {
        "file": [PDF],
        "subject": "Contract",
        "message": "  Please sign  ",
        "members": ["U0ANN", "U0BOB", "U0ANN"],
        "outside": "Jane Doe <jane@example.com>\n\nbob@out.example",
        "order": ids.SEQUENTIAL,
        "remind": "7",
        "expiry": "60",
        "approval": [ids.APPROVAL_VALUE],
        "approver": "U0BOSS",
    }
    sub, errors = submit(UPLOAD_FORM, answers)
    assert errors == {}
    assert sub is not None
    assert sub.template_id is None
    assert sub.file == views_file()
    assert (sub.subject, sub.message) == ("Contract", "Please sign")
    assert sub.members == ("U0ANN", "U0BOB")
    assert sub.outside == (("Jane Doe", "jane@example.com"), ("bob@out.example", "bob@out.example"))
    assert sub.slots == ()
    assert sub.sequential is True
    assert (sub.channel_id, sub.remind_days, sub.expiry_days) == ("C0CHAN", 7, 60)
    assert (sub.approval, sub.approver_id) == (True, "U0BOSS")
    assert sub.metadata.response_url == "https://r"


def views_file():
    from bot.slack.parsing import SlackFile

    return SlackFile("F0PDF", "contract.pdf", "application/pdf", 1234, PDF["url_private_download"])


def test_defaults_come_through_untouched() -> None:
    """Unanswered inputs carry the view's initial values, as Slack sends them."""
    sub, errors = submit(UPLOAD_FORM, {"file": [PDF], "subject": "X", "members": ["U0ANN"]})
    assert errors == {} and sub is not None
    assert (sub.sequential, sub.remind_days, sub.expiry_days) == (False, 3, 30)
    assert (sub.approval, sub.approver_id, sub.channel_id) == (False, None, "C0CHAN")


@pytest.mark.parametrize(
    ("answers", "errors"),
    [
        ({"subject": "X", "members": ["U0ANN"]}, {"file": "Attach a PDF"}),
        (
            {
                "file": [{**PDF, "name": "a.docx", "mimetype": "application/msword"}],
                "subject": "X",
                "members": ["U0ANN"],
            },
            {"file": "Only PDF"},
        ),
        ({"file": [PDF], "subject": "   ", "members": ["U0ANN"]}, {"subject": "subject"}),
        ({"file": [PDF], "subject": "X"}, {"members": "at least one recipient"}),
        (
            {"file": [PDF], "subject": "X", "outside": "a@b.co\nnope\nx@\ny@\nz@"},
            {"outside": "line 2: 'nope' is not an email address; line 3"},
        ),
        (
            {"file": [PDF], "subject": "X", "members": ["U0ANN"], "approval": ["approval"]},
            {"approver": "Choose who approves"},
        ),
        (
            {"file": [PDF], "subject": "X", "members": ["U0ANN"], "approver": "U0REQ"},
            {"approver": "other than yourself"},
        ),
        (
            {"file": [PDF], "subject": "X", "members": ["U0ANN"], "channel": None},
            {"channel": "Choose where"},
        ),
    ],
)
def test_upload_submission_errors(answers: dict[str, Any], errors: dict[str, str]) -> None:
    sub, found = submit(UPLOAD_FORM, answers)
    assert sub is None
    assert set(found) == set(errors)
    for block, fragment in errors.items():
        assert fragment in found[block]
        assert len(found[block]) < 500


def test_more_than_three_outside_errors_are_counted() -> None:
    _, errors = submit(UPLOAD_FORM, {"file": [PDF], "subject": "X", "outside": "a\nb\nc\nd\ne"})
    assert errors["outside"].endswith("(and 2 more)")


TEMPLATE_FORM = views.ModalForm(templates=(NDA,), template_id="tpl_nda", channel_id="C0CHAN")


def test_template_submission_fills_roles_in_order() -> None:
    answers = {
        "role_user.tpl_nda.0": "U0ANN",
        "role_email.tpl_nda.1": '"Doe, Jane" <jane@x.fr>',
    }
    sub, errors = submit(TEMPLATE_FORM, answers)
    assert errors == {} and sub is not None
    assert sub.template_id == "tpl_nda" and sub.file is None
    assert sub.subject == "NDA"  # prefilled from the template, untouched
    assert (sub.remind_days, sub.expiry_days) == (2, 14)
    assert sub.slots == (Slot(0, user_id="U0ANN"), Slot(1, name="Doe, Jane", email="jane@x.fr"))
    assert sub.members == () and sub.outside == ()


@pytest.mark.parametrize(
    ("answers", "errors"),
    [
        ({"role_user.tpl_nda.0": "U0ANN"}, {"role_user.tpl_nda.1": "Choose someone"}),
        (
            {
                "role_user.tpl_nda.0": "U0ANN",
                "role_user.tpl_nda.1": "U0BOB",
                "role_email.tpl_nda.1": "b@example.com",
            },
            {"role_email.tpl_nda.1": "not both"},
        ),
        (
            {"role_user.tpl_nda.0": "U0ANN", "role_email.tpl_nda.1": "b@"},
            {"role_email.tpl_nda.1": "'b@' is not an email address"},
        ),
        (
            {"role_user.tpl_nda.0": "U0ANN", "role_user.tpl_nda.1": "U0BOB", "template": "upload"},
            {"template": "still changing", "file": "Attach a PDF"},
        ),
    ],
)
def test_template_submission_errors(answers: dict[str, Any], errors: dict[str, str]) -> None:
    sub, found = submit(TEMPLATE_FORM, answers)
    assert sub is None
    assert set(found) == set(errors)
    for block, fragment in errors.items():
        assert fragment in found[block]


def test_submission_without_template_select_or_state() -> None:
    """No templates at all (the select is absent), and an empty state."""
    sub, errors = submit(views.ModalForm(), {"file": [PDF], "subject": "X", "members": ["U1"]})
    assert errors == {} and sub is not None and sub.template_id is None
    assert sub.channel_id == "C0CHAN"  # Slack preselects where /sign was typed
    assert parse_submission(None, None)[0] is None


def test_read_state_normalises_every_element() -> None:
    values = {
        "a": {"a": {"type": "plain_text_input", "value": "text"}},
        "b": {"b": {"type": "static_select", "selected_option": {"value": "v"}}},
        "c": {"c": {"type": "static_select", "selected_option": None}},
        "d": {"d": {"type": "checkboxes", "selected_options": [{"value": "x"}]}},
        "e": {"e": {"type": "multi_users_select", "selected_users": ["U1"]}},
        "f": {"f": {"type": "users_select", "selected_user": "U2"}},
        "g": {"g": {"type": "conversations_select", "selected_conversation": "C1"}},
        "h": {"h": {"type": "file_input", "files": [PDF]}},
        "i": {"i": {"type": "radio_buttons", "selected_option": {"value": "r"}}},
    }
    assert read_state(values) == {
        "a": "text",
        "b": "v",
        "c": None,
        "d": ["x"],
        "e": ["U1"],
        "f": "U2",
        "g": "C1",
        "h": [PDF],
        "i": "r",
    }


def test_reject_submission() -> None:
    view = views.reject_modal("req_01")
    request_id, reason, errors = parse_reject(
        state_values(view, {ids.REJECT_REASON: "  Salary is wrong  "}), view["private_metadata"]
    )
    assert (request_id, reason, errors) == ("req_01", "Salary is wrong", {})
    _, _, errors = parse_reject(state_values(view, {}), view["private_metadata"])
    assert list(errors) == [ids.REJECT_REASON]
    assert parse_reject({}, "garbage")[0] is None
