"""Block Kit builders: shapes Slack accepts, hostile text made harmless, limits respected.

Every surface is checked three ways: slack_sdk's own models parse it back to the same JSON
(an attribute they drop is one Slack does not know) and validate its limits; our walker
checks the limits slack_sdk does not (option text, button text, fallback text); and hostile
strings never reach ``mrkdwn`` unescaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.slack import ids, views
from bot.slack.views import (
    ModalForm,
    RecipientView,
    RequestView,
    TemplateChoice,
    TemplateRole,
    WaitingItem,
)

HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<https://evil.example|click here>",
    "<@U0ADMIN>",
    "<#C0SECRET>",
    "Tom & Jerry > <b>",
    "Bob\n✅ Mallory: signed",
    "&lt;!channel&gt;",
]
RAW_MARKUP = ("<!channel", "<!here", "<https://evil", "<@U0ADMIN", "<#C0SECRET", "<b>")

NDA = TemplateChoice(
    id="tpl_nda",
    name="Mutual NDA",
    roles=(TemplateRole("Discloser"), TemplateRole("Receiver"), TemplateRole("Legal", "APPROVER")),
    subject="NDA to sign",
    message="Please sign.",
    signing_order="SEQUENTIAL",
    remind_days=5,
    expiry_days=14,
    approval_required=True,
    description="Mutual non-disclosure agreement",
)
FREE = TemplateChoice(id="tpl_free", name="Free-form")
WHEN = datetime(2026, 12, 24, 12, 0, tzinfo=UTC)


def request(**overrides: Any) -> RequestView:
    base: dict[str, Any] = dict(
        id="req_01",
        number=12,
        subject="Offer letter",
        requester_id="U0REQ",
        status="PARTIALLY_SIGNED",
        envelope_id="env_01HG0000000000000000000000",
        recipients=(
            RecipientView("Ann", "ann@example.com", "U0ANN", "SIGNED"),
            RecipientView("Bob Out", "bob@example.com", None, "VIEWED"),
            RecipientView("Cy", "cy@example.com", None, "SENT", role="CARBON_COPY"),
        ),
        can_remind=True,
        can_cancel=True,
        expires_at=WHEN,
    )
    base.update(overrides)
    return RequestView(**base)


# --- generic checks -------------------------------------------------------------------------
def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict in ``node`` with its JSON path."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def mrkdwn_texts(surface: dict[str, Any]) -> list[str]:
    return [d["text"] for _, d in walk(surface) if d.get("type") == "mrkdwn"]


def check_limits(surface: dict[str, Any]) -> None:
    """The limits slack_sdk's models do not check, and non-empty texts everywhere."""
    for path, d in walk(surface):
        if d.get("type") in ("plain_text", "mrkdwn"):
            assert d["text"].strip(), f"empty text at {path}"
        if path.endswith(".text") and d.get("type") == "plain_text" and ".options[" in path:
            assert len(d["text"]) <= 75, path
        if d.get("type") == "button":
            assert len(d["text"]["text"]) <= 75
            assert len(d.get("url", "")) <= 3000
        if "value" in d and ".options[" in path:
            assert len(d["value"]) <= 150, path
        if d.get("type") == "input":
            assert len(d["label"]["text"]) <= 2000


def check_ids(surface: dict[str, Any]) -> None:
    block_ids = [b["block_id"] for b in surface["blocks"] if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), block_ids
    for block in surface["blocks"]:
        assert len(block.get("block_id", "")) <= 255
        action_ids = [e["action_id"] for e in block.get("elements", []) if "action_id" in e]
        assert len(action_ids) == len(set(action_ids))


def check_view(view: dict[str, Any]) -> None:
    json.dumps(view)
    model = View(**view)
    model.validate_json()
    assert len(view["blocks"]) <= 100
    roundtrip(view["blocks"])
    check_limits(view)
    check_ids(view)


def check_message(message: dict[str, Any]) -> None:
    json.dumps(message)
    assert message["text"].strip() and len(message["text"]) <= 3000
    assert len(message["blocks"]) <= 50
    roundtrip(message["blocks"])
    check_limits(message)
    check_ids(message)


def roundtrip(blocks: list[dict[str, Any]]) -> None:
    """slack_sdk parses each block back to the same JSON: nothing unknown or misspelt."""
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
        assert strip_emoji(parsed.to_dict()) == strip_emoji(block)


def strip_emoji(node: Any) -> Any:
    """slack_sdk drops ``emoji: true`` from some plain_text it re-serialises."""
    if isinstance(node, dict):
        return {k: strip_emoji(v) for k, v in node.items() if k != "emoji"}
    if isinstance(node, list):
        return [strip_emoji(v) for v in node]
    return node


def blocks_by_id(surface: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in surface["blocks"] if "block_id" in b}


def action_ids(surface: dict[str, Any]) -> list[str]:
    out = []
    for block in surface["blocks"]:
        out += [e["action_id"] for e in block.get("elements", []) if "action_id" in e]
        if "accessory" in block:
            out.append(block["accessory"]["action_id"])
    return out


# --- text primitives ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "limit", "expected"),
    [
        ("a<b>&c", 100, "a&lt;b&gt;&amp;c"),
        ("<!channel>", 100, "&lt;!channel&gt;"),
        ("&&&&", 11, "&amp;&amp;…"),  # cut between entities, never inside one
        ("two\nlines", 100, "two lines"),
        ("  spaced   out ", 100, "spaced out"),
        ("x" * 20, 10, "x" * 9 + "…"),
    ],
)
def test_safe_escapes_then_fits(raw: str, limit: int, expected: str) -> None:
    assert views.safe(raw, limit) == expected
    assert len(views.safe(raw, limit)) <= limit


def test_slack_date_reads_naive_times_as_utc() -> None:
    expected = "<!date^1798113600^{date_short}|2026-12-24>"
    assert views.slack_date(WHEN) == views.slack_date(WHEN.replace(tzinfo=None)) == expected
    assert views.slack_date(None) == ""


def test_quote_prefixes_every_line_and_fits() -> None:
    text = views.quote("first\n✅ forged line\n<!channel>", 200)
    assert text.splitlines() == [">first", ">✅ forged line", ">&lt;!channel&gt;"]
    assert len(views.quote("word\n" * 2000, 500)) <= 500


@pytest.mark.parametrize(
    ("user_id", "name", "email", "expected"),
    [
        ("U0ANN", "Ann", None, "<@U0ANN>"),
        ("W0ENT", None, None, "<@W0ENT>"),
        ("U0ANN> <!channel", "Ann", None, "Ann"),
        (None, "Bob <b>", "bob@example.com", "Bob &lt;b&gt; (bob@example.com)"),
        (None, None, "bob@example.com", "bob@example.com"),
        (None, None, None, "someone"),
    ],
)
def test_user_ref_only_mentions_real_ids(user_id, name, email, expected) -> None:
    assert views.user_ref(user_id, name, email) == expected


# --- sign modal -----------------------------------------------------------------------------
MODAL_CASES = {
    "no templates": ModalForm(channel_id="C0CHAN"),
    "upload selected": ModalForm(templates=(NDA, FREE), channel_id="C0CHAN"),
    "template with roles": ModalForm(templates=(NDA, FREE), template_id="tpl_nda"),
    "template without roles": ModalForm(templates=(NDA, FREE), template_id="tpl_free"),
    "unknown template": ModalForm(templates=(NDA,), template_id="tpl_gone", notice="No <!here>"),
}


@pytest.mark.parametrize("form", MODAL_CASES.values(), ids=MODAL_CASES.keys())
def test_sign_modal_is_a_valid_view(form: ModalForm) -> None:
    view = views.sign_modal(form)
    check_view(view)
    assert view["type"] == "modal" and view["callback_id"] == ids.SIGN_CALLBACK
    for block in view["blocks"]:
        if block["type"] == "input":
            assert block["element"]["action_id"] == ids.base_of(block["block_id"])


@pytest.mark.parametrize(
    ("form", "present", "absent"),
    [
        (MODAL_CASES["no templates"], {"file", "subject", "members", "outside"}, {"template"}),
        (MODAL_CASES["upload selected"], {"template", "file", "members", "outside"}, set()),
        (
            MODAL_CASES["template with roles"],
            {"template", "subject.tpl_nda", "role_user.tpl_nda.0", "role_email.tpl_nda.2"},
            {"file", "members", "outside", "subject"},
        ),
        (
            MODAL_CASES["template without roles"],
            {"members", "outside", "subject.tpl_free"},
            {"file"},
        ),
    ],
)
def test_sign_modal_blocks(form: ModalForm, present: set[str], absent: set[str]) -> None:
    found = set(blocks_by_id(views.sign_modal(form)))
    assert present <= found
    assert not absent & found
    assert {"channel", "approver"} <= found


def test_template_prefills_the_modal() -> None:
    view = views.sign_modal(MODAL_CASES["template with roles"])
    blocks = blocks_by_id(view)
    assert blocks["template"]["dispatch_action"] is True
    assert blocks["template"]["element"]["initial_option"]["value"] == "tpl_nda"
    assert blocks["subject.tpl_nda"]["element"]["initial_value"] == "NDA to sign"
    assert blocks["message.tpl_nda"]["element"]["initial_value"] == "Please sign."
    assert blocks["order.tpl_nda"]["element"]["initial_option"]["value"] == ids.SEQUENTIAL
    remind = blocks["remind.tpl_nda"]["element"]
    assert remind["initial_option"]["value"] == "5"  # not a stock choice: added
    assert [o["value"] for o in remind["options"]] == ["0", "1", "2", "3", "5", "7"]
    assert blocks["expiry.tpl_nda"]["element"]["initial_option"]["value"] == "14"
    assert blocks["approval.tpl_nda"]["element"]["initial_options"][0]["value"] == "approval"
    labels = [b["label"]["text"] for b in view["blocks"] if b["block_id"].startswith("role_user")]
    assert labels == ["Discloser", "Receiver", "Legal (approves)"]
    assert ids.ModalMetadata.decode(view["private_metadata"]).template_id == "tpl_nda"


def test_upload_form_defaults() -> None:
    view = views.sign_modal(ModalForm(templates=(NDA,), channel_id="C0CHAN", approver_id="U0BOSS"))
    blocks = blocks_by_id(view)
    assert blocks["template"]["element"]["initial_option"]["value"] == ids.UPLOAD_VALUE
    assert blocks["file"]["element"] == {
        "type": "file_input",
        "filetypes": ["pdf"],
        "max_files": 1,
        "action_id": "file",
    }
    assert blocks["file"]["optional"] is False
    assert blocks["members"]["element"]["type"] == "multi_users_select"
    assert blocks["outside"]["element"]["multiline"] is True
    channel = blocks["channel"]["element"]
    assert channel["default_to_current_conversation"] is True
    assert channel["initial_conversation"] == "C0CHAN"
    assert blocks["approver"]["element"]["initial_user"] == "U0BOSS"
    assert "initial_options" not in blocks["approval"]["element"]
    expiry = blocks["expiry"]["element"]
    assert [o["value"] for o in expiry["options"]] == ["7", "14", "30", "60"]
    assert [o["value"] for o in blocks["remind"]["element"]["options"]] == ["0", "1", "2", "3", "7"]


def test_crafted_channel_id_is_not_used() -> None:
    view = views.sign_modal(ModalForm(channel_id="C1> <!here"))
    assert "initial_conversation" not in blocks_by_id(view)["channel"]["element"]


def test_many_templates_and_odd_ids_fit_a_select() -> None:
    many = tuple(TemplateChoice(f"tpl_{i}", f"Template {i} " + "x" * 100) for i in range(150))
    long_id = TemplateChoice("tpl_" + "y" * 200, "Too long an id")
    view = views.sign_modal(ModalForm(templates=(long_id, *many)))
    check_view(view)
    options = blocks_by_id(view)["template"]["element"]["options"]
    assert len(options) == 100 and options[-1]["value"] == ids.UPLOAD_VALUE
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    assert options[0]["text"]["text"].endswith("…")
    assert "Too long an id" not in json.dumps(options)


def test_many_roles_fit_in_a_modal() -> None:
    roles = tuple(TemplateRole(f"Role {i}") for i in range(60))
    big = TemplateChoice("tpl_big", "Big", roles=roles)
    view = views.sign_modal(ModalForm(templates=(big,), template_id="tpl_big", notice="n"))
    check_view(view)
    assert sum(b["block_id"].startswith("role_user") for b in view["blocks"]) == 40
    assert "20 more roles" in json.dumps(view)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_template_and_notice_text(hostile: str) -> None:
    tpl = TemplateChoice(
        "tpl_x", hostile, roles=(TemplateRole(hostile),), subject=hostile, description=hostile
    )
    view = views.sign_modal(ModalForm(templates=(tpl,), template_id="tpl_x", notice=hostile))
    check_view(view)
    for text in mrkdwn_texts(view):
        assert not any(raw in text for raw in RAW_MARKUP), text


def test_long_inputs_are_cut_to_slack_limits() -> None:
    tpl = TemplateChoice(
        "tpl_x",
        "N" * 500,
        roles=(TemplateRole("R" * 3000),),
        subject="S" * 1000,
        message="M" * 5000,
        description="D" * 3000,
    )
    view = views.sign_modal(ModalForm(templates=(tpl,), template_id="tpl_x"))
    check_view(view)
    blocks = blocks_by_id(view)
    assert len(blocks["subject.tpl_x"]["element"]["initial_value"]) == 255
    assert len(blocks["message.tpl_x"]["element"]["initial_value"]) == 3000
    assert len(blocks["template"]["hint"]["text"]) == 2000


@pytest.mark.parametrize(
    ("url_length", "kept"), [(0, True), (2900, True), (2960, False), (5000, False)]
)
def test_private_metadata_stays_within_3000(url_length: int, kept: bool) -> None:
    """The response_url is dropped, never cut, when it would not fit."""
    url = "https://hooks.slack.com/commands/" + "a" * url_length
    form = ModalForm(
        templates=(NDA,),
        template_id="tpl_nda",
        channel_id="C0CHAN",
        response_url=url,
        team_id="T0TEST",
    )
    view = views.sign_modal(form)
    assert len(view["private_metadata"]) <= 3000
    meta = ids.ModalMetadata.decode(view["private_metadata"])
    assert (meta.channel_id, meta.template_id, meta.team_id) == ("C0CHAN", "tpl_nda", "T0TEST")
    assert meta.response_url == (url if kept else None)


@pytest.mark.parametrize("text", [None, "", "not json", "[1]", '{"c": 5}'])
def test_metadata_decode_is_tolerant(text: str | None) -> None:
    assert ids.ModalMetadata.decode(text) == ids.ModalMetadata()


def test_reject_modal() -> None:
    view = views.reject_modal("req_01")
    check_view(view)
    assert view["callback_id"] == ids.REJECT_CALLBACK
    reason = blocks_by_id(view)[ids.REJECT_REASON]
    assert reason["optional"] is False and reason["element"]["multiline"] is True
    assert json.loads(view["private_metadata"]) == {"request": "req_01"}


# --- status message -------------------------------------------------------------------------
def test_status_message_in_progress() -> None:
    message = views.status_message(request())
    check_message(message)
    blocks = blocks_by_id(message)
    assert blocks["subject"] == {
        "type": "header",
        "block_id": "subject",
        "text": {"type": "plain_text", "text": "Offer letter", "emoji": True},
    }
    context = blocks["requested"]["elements"][0]["text"]
    assert context == "Requested by <@U0REQ> · #12 · envelope env_01HG0000000000000000000000"
    lines = blocks["recipients.0"]["text"]["text"].splitlines()
    assert lines == [
        "✅ <@U0ANN>: signed",
        "👀 Bob Out (bob@example.com): viewed",
        "📨 Cy (cy@example.com) (copy): sent",
    ]
    assert blocks["status"]["text"]["text"].startswith("📨 Out for signature: 1 of 2 signed")
    assert "<!date^1798113600^{date_short}|2026-12-24>" in blocks["status"]["text"]["text"]
    buttons = blocks["request_actions"]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("remind_request", "req_01"),
        ("cancel_request", "req_01"),
    ]
    assert buttons[1]["style"] == "danger" and "confirm" in buttons[1]
    assert "<@" not in message["text"]  # the fallback feeds notifications: no pings


@pytest.mark.parametrize(
    ("status", "can_remind", "can_cancel", "expected"),
    [
        ("SENT", True, True, ["remind_request", "cancel_request"]),
        ("SENT", False, True, ["cancel_request"]),
        ("SENT", True, False, ["remind_request"]),
        ("SENT", False, False, []),
        ("AWAITING_APPROVAL", True, True, ["cancel_request"]),
        ("COMPLETED", True, True, []),
        ("DECLINED", True, True, []),
        ("VOIDED", True, True, []),
        ("EXPIRED", True, True, []),
        ("REJECTED", True, True, []),
        ("FAILED", True, True, []),
    ],
)
def test_buttons_only_when_allowed(status, can_remind, can_cancel, expected) -> None:
    req = request(status=status, can_remind=can_remind, can_cancel=can_cancel)
    message = views.status_message(req)
    check_message(message)
    assert action_ids(message) == expected
    assert ("request_actions" in blocks_by_id(message)) == bool(expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"status": "COMPLETED"}, "✅ Completed: everyone signed"),
        ({"status": "EXPIRED"}, "⌛ Expired with 1 of 2 signed"),
        ({"status": "CREATING"}, "⏳ Preparing the envelope…"),
        (
            {"status": "AWAITING_APPROVAL", "approver_id": "U0BOSS"},
            "⏳ Waiting for approval from <@U0BOSS>",
        ),
        (
            {"status": "VOIDED", "actor_id": "U0REQ", "reason": "wrong file"},
            "🚫 Cancelled by <@U0REQ>\n>wrong file",
        ),
        ({"status": "VOIDED"}, "🚫 Cancelled"),
        (
            {"status": "REJECTED", "approver_id": "U0BOSS", "reason": "salary <!channel>"},
            "❌ Not approved by <@U0BOSS>\n>salary &lt;!channel&gt;",
        ),
        (
            {"status": "FAILED", "reason": "provider said no"},
            "⚠️ Could not be sent\n>provider said no",
        ),
        (
            {"status": "RETURNED_TO_SENDER", "reason": "fix page 2"},
            "↩️ Returned to the sender for changes\n>fix page 2",
        ),
        (
            {
                "status": "DECLINED",
                "recipients": (
                    RecipientView("Ann", user_id="U0ANN", status="SIGNED"),
                    RecipientView(
                        "Bob", "bob@example.com", status="DECLINED", reason="Not <b>me</b>"
                    ),
                ),
            },
            "❌ Declined by Bob (bob@example.com)\n>Not &lt;b&gt;me&lt;/b&gt;",
        ),
        ({"status": "DECLINED", "recipients": (), "reason": "no"}, "❌ Declined\n>no"),
    ],
)
def test_status_lines(overrides: dict[str, Any], expected: str) -> None:
    req = request(**overrides)
    message = views.status_message(req)
    check_message(message)
    assert blocks_by_id(message)["status"]["text"]["text"] == expected


@pytest.mark.parametrize("hostile", HOSTILE)
def test_status_message_escapes_everything_user_provided(hostile: str) -> None:
    req = request(
        subject=hostile,
        status="DECLINED",
        reason=hostile,
        recipients=(
            RecipientView(hostile, hostile, None, "DECLINED", reason=hostile),
            RecipientView(hostile, "x@example.com", f"U1{hostile}", "SIGNED"),
        ),
    )
    message = views.status_message(req)
    check_message(message)
    for text in [*mrkdwn_texts(message), message["text"]]:
        assert not any(raw in text for raw in RAW_MARKUP), text
    # plain_text is shown literally by Slack: the header keeps the subject as typed
    assert blocks_by_id(message)["subject"]["text"]["text"] == hostile.strip()
    recipients = blocks_by_id(message)["recipients.0"]["text"]["text"]
    assert len(recipients.splitlines()) == 2  # a newline in a name cannot forge a status line


def test_long_subject_and_many_recipients_fit() -> None:
    people = tuple(RecipientView("N" * 300, f"p{i}@example.com", None, "SENT") for i in range(400))
    message = views.status_message(
        request(subject="S" * 1000, recipients=people, reason="R" * 5000)
    )
    check_message(message)
    header = blocks_by_id(message)["subject"]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    assert "more" in json.dumps(message)


# --- approval DM, App Home, signer DM, small answers ---------------------------------------
def test_approval_dm_pending_and_decided() -> None:
    pending = views.approval_dm(request(status="AWAITING_APPROVAL", message="Hi <!channel>"))
    check_message(pending)
    assert action_ids(pending) == ["approve_request", "reject_request"]
    values = [e["value"] for e in blocks_by_id(pending)["approval_actions"]["elements"]]
    assert values == ["req_01", "req_01"]
    assert blocks_by_id(pending)["message"]["text"]["text"] == ">Hi &lt;!channel&gt;"
    rejected = views.approval_dm(request(status="REJECTED", reason="too <b>"))
    check_message(rejected)
    assert action_ids(rejected) == []
    assert "too &lt;b&gt;" in blocks_by_id(rejected)["outcome"]["elements"][0]["text"]
    approved = views.approval_dm(request(status="SENT"))
    assert action_ids(approved) == [] and "Out for signature" in json.dumps(approved)


def test_home_view() -> None:
    waiting = [
        WaitingItem(
            "Sign <!here>",
            "https://sign.example/sign/tok1",
            requester_id="U0REQ",
            status="VIEWED",
            expires_at=WHEN,
        ),
        WaitingItem("External", "https://sign.example/sign/tok2", requester_name="Acme <b>"),
        WaitingItem("Bad link", "javascript:alert(1)"),
    ]
    home = views.home_view(
        [request(), request(id="req_02", number=13, status="COMPLETED")], waiting
    )
    check_view(home)
    assert home["type"] == "home"
    blocks = blocks_by_id(home)
    assert blocks["waiting"]["text"]["text"] == "Waiting for my signature"
    assert blocks["sent"]["text"]["text"] == "Sent by me"
    button = blocks["waiting.0"]["accessory"]
    assert (button["url"], button["text"]["text"]) == (
        "https://sign.example/sign/tok1",
        "Review and sign",
    )
    assert "from <@U0REQ> · viewed · expires" in blocks["waiting.0"]["text"]["text"]
    assert "from Acme &lt;b&gt;" in blocks["waiting.1"]["text"]["text"]
    assert "accessory" not in blocks["waiting.2"]
    assert "✅ Completed" in blocks["sent.1"]["text"]["text"]
    for text in mrkdwn_texts(home):
        assert not any(raw in text for raw in RAW_MARKUP)


def test_home_view_empty_and_crowded() -> None:
    empty = views.home_view([], [])
    check_view(empty)
    assert {"waiting.none", "sent.none"} <= set(blocks_by_id(empty))
    many = [WaitingItem(f"Doc {i}", f"https://s.example/sign/{i}") for i in range(60)]
    crowded = views.home_view([request(id=f"r{i}", number=i) for i in range(60)], many)
    check_view(crowded)
    assert {"waiting.more", "sent.more"} <= set(blocks_by_id(crowded))


def test_signer_dm() -> None:
    dm = views.signer_dm(
        subject="NDA <!channel>",
        sign_url="https://s.example/sign/t",
        requester_id="U0REQ",
        message="Thanks",
        expires_at=WHEN,
    )
    check_message(dm)
    invite = blocks_by_id(dm)["invite"]
    assert invite["accessory"]["url"] == "https://s.example/sign/t"
    assert invite["accessory"]["style"] == "primary"
    assert invite["text"]["text"].startswith("<@U0REQ> asks you to sign *NDA &lt;!channel&gt;*.")
    reminder = views.signer_dm(subject="NDA", sign_url="https://s.example/sign/t", reminder=True)
    assert reminder["text"].startswith("Reminder:")


@pytest.mark.parametrize("url", ["", "javascript:alert(1)", "https://x/" + "a" * 3000])
def test_signer_dm_refuses_a_broken_link(url: str) -> None:
    with pytest.raises(ValueError, match="sign_url"):
        views.signer_dm(subject="NDA", sign_url=url)


def test_help_list_and_errors() -> None:
    help_text = views.help_text()
    for word in ("/sign list", "/sign status", "/sign remind", "/sign cancel", "/sign help"):
        assert word in help_text
    error = views.ephemeral_error("Unknown template '<!channel>'")
    check_message(error)
    assert error["response_type"] == "ephemeral"
    assert "&lt;!channel&gt;" in error["blocks"][0]["text"]["text"]
    assert "<!channel>" not in error["text"]
    listed = views.list_message([request(id=f"r{i}", number=i) for i in range(25)])
    check_message(listed)
    assert listed["response_type"] == "ephemeral" and "more" in json.dumps(listed)
    assert "no signature requests" in views.list_message([])["text"]
