"""The envelope state machine, table by table.

Recipients are named by role and routing order: ``s1`` is a SIGNER of order 1, ``a2`` an
APPROVER of order 2, ``v0`` a VIEWER of order 1, ``v9`` a VIEWER ordered after everyone,
``cc`` a CARBON_COPY.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from itertools import product

import pytest

from bot.envelopes import lifecycle as lc
from bot.envelopes.lifecycle import (
    EnvelopeState,
    EnvelopeStatus,
    RecipientState,
    RecipientStatus,
    Role,
    SigningOrder,
    Transition,
)
from bot.errors import Conflict, IllegalTransition, NotFound, ValidationFailed

E = EnvelopeStatus
R = RecipientStatus
PENDING, SENT, VIEWED = R.PENDING, R.SENT, R.VIEWED
SIGNED, APPROVED, DECLINED = R.SIGNED, R.APPROVED, R.DECLINED

# Three routing groups, parallel members inside the first, a viewer reached at each stage.
THREE_GROUPS = (
    ("s1", Role.SIGNER, 1),
    ("s2", Role.SIGNER, 1),
    ("v0", Role.VIEWER, 1),
    ("cc", Role.CARBON_COPY, 1),
    ("a2", Role.APPROVER, 2),
    ("v2", Role.VIEWER, 2),
    ("s3", Role.SIGNER, 3),
    ("v9", Role.VIEWER, 9),
)


def envelope(
    status: EnvelopeStatus,
    recipients: tuple[tuple[str, Role, int], ...] = THREE_GROUPS,
    signing_order: SigningOrder = SigningOrder.SEQUENTIAL,
    **statuses: RecipientStatus,
) -> EnvelopeState:
    """An envelope whose recipients are PENDING except those named in ``statuses``."""
    unknown = set(statuses) - {rid for rid, _, _ in recipients}
    assert not unknown, unknown
    return EnvelopeState(
        status=status,
        signing_order=signing_order,
        recipients=tuple(
            RecipientState(rid, role, order, statuses.get(rid, PENDING))
            for rid, role, order in recipients
        ),
    )


def three(
    status: EnvelopeStatus, marks: dict[str, RecipientStatus], **more: RecipientStatus
) -> EnvelopeState:
    """The three-group envelope with ``marks`` applied, then ``more`` over them."""
    return envelope(status, **{**marks, **more})


def statuses_of(state: EnvelopeState) -> dict[str, RecipientStatus]:
    return {r.id: r.status for r in state.recipients}


GROUP_1_SENT = {"s1": SENT, "s2": SENT, "v0": SENT}
GROUP_2_SENT = {"s1": SIGNED, "s2": SIGNED, "v0": VIEWED, "a2": SENT, "v2": SENT}
GROUP_3_SENT = {**GROUP_2_SENT, "a2": APPROVED, "s3": SENT}

PARALLEL_TRIO = (
    ("s1", Role.SIGNER, 1),
    ("a1", Role.APPROVER, 2),
    ("v1", Role.VIEWER, 3),
    ("cc", Role.CARBON_COPY, 4),
    ("s2", Role.SIGNER, 5),
)
APPROVERS_ONLY = (("a1", Role.APPROVER, 1), ("a2", Role.APPROVER, 2))
GAP = (("s1", Role.SIGNER, 1), ("v2", Role.VIEWER, 2), ("s3", Role.SIGNER, 3))
SOLO = (("s1", Role.SIGNER, 1), ("cc", Role.CARBON_COPY, 1))


@dataclass(frozen=True)
class Case:
    id: str
    start: EnvelopeState
    action: Callable[[EnvelopeState], Transition]
    status: EnvelopeStatus
    changes: dict[str, RecipientStatus] = field(default_factory=dict)
    """Recipient statuses expected to differ from ``start``; every other one must not move."""
    events: tuple[str, ...] = ()
    invited: tuple[str, ...] = ()
    seal: bool = False


def act(name: str, rid: str) -> Callable[[EnvelopeState], Transition]:
    return lambda state: getattr(lc, name)(state, rid)


LEGAL = [
    # sending, scheduling, releasing
    Case(
        "send draft invites group 1 and its viewer, not cc",
        envelope(E.DRAFT),
        lc.send,
        E.SENT,
        changes=GROUP_1_SENT,
        events=("envelope.sent",),
        invited=("s1", "s2", "v0"),
    ),
    Case("schedule emits nothing and invites nobody", envelope(E.DRAFT), lc.schedule, E.SCHEDULED),
    Case(
        "release a scheduled envelope is a send",
        envelope(E.SCHEDULED),
        lc.release,
        E.SENT,
        changes=GROUP_1_SENT,
        events=("envelope.sent",),
        invited=("s1", "s2", "v0"),
    ),
    Case(
        "parallel send invites every actor and viewer whatever the orders",
        envelope(E.DRAFT, PARALLEL_TRIO, SigningOrder.PARALLEL),
        lc.send,
        E.SENT,
        changes={"s1": SENT, "a1": SENT, "v1": SENT, "s2": SENT},
        events=("envelope.sent",),
        invited=("s1", "a1", "v1", "s2"),
    ),
    Case(
        "resubmission resets every recipient and invites group 1 again",
        three(E.RETURNED_TO_SENDER, GROUP_2_SENT, a2=VIEWED),
        lc.send,
        E.SENT,
        changes={"s1": SENT, "s2": SENT, "v0": SENT, "a2": PENDING, "v2": PENDING},
        events=("envelope.resubmitted",),
        invited=("s1", "s2", "v0"),
    ),
    # viewing
    Case(
        "first open delivers",
        three(E.SENT, GROUP_1_SENT),
        act("view", "s1"),
        E.DELIVERED,
        changes={"s1": VIEWED},
        events=("recipient.viewed",),
    ),
    Case(
        "a viewer's open delivers too",
        three(E.SENT, GROUP_1_SENT),
        act("view", "v0"),
        E.DELIVERED,
        changes={"v0": VIEWED},
        events=("recipient.viewed",),
    ),
    Case(
        "open on a delivered envelope",
        three(E.DELIVERED, GROUP_1_SENT, s1=VIEWED),
        act("view", "s2"),
        E.DELIVERED,
        changes={"s2": VIEWED},
        events=("recipient.viewed",),
    ),
    Case(
        "open keeps PARTIALLY_SIGNED",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        act("view", "a2"),
        E.PARTIALLY_SIGNED,
        changes={"a2": VIEWED},
        events=("recipient.viewed",),
    ),
    Case(
        "viewing twice records nothing",
        three(E.DELIVERED, GROUP_1_SENT, s1=VIEWED),
        act("view", "s1"),
        E.DELIVERED,
    ),
    Case(
        "viewing after signing records nothing",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        act("view", "s1"),
        E.PARTIALLY_SIGNED,
    ),
    Case(
        "not-your-turn open records nothing", three(E.SENT, GROUP_1_SENT), act("view", "s3"), E.SENT
    ),
    Case(
        "a carbon copy's open records nothing",
        three(E.SENT, GROUP_1_SENT),
        act("view", "cc"),
        E.SENT,
    ),
    # sequential routing over three groups
    Case(
        "first of a parallel group signs: nobody new invited",
        three(E.DELIVERED, GROUP_1_SENT, s1=VIEWED),
        act("sign", "s1"),
        E.PARTIALLY_SIGNED,
        changes={"s1": SIGNED},
        events=("recipient.signed",),
    ),
    Case(
        "signing without opening first",
        three(E.SENT, GROUP_1_SENT),
        act("sign", "s2"),
        E.PARTIALLY_SIGNED,
        changes={"s2": SIGNED},
        events=("recipient.signed",),
    ),
    Case(
        "group 1 done invites group 2 and its viewer",
        three(E.PARTIALLY_SIGNED, GROUP_1_SENT, s1=SIGNED),
        act("sign", "s2"),
        E.PARTIALLY_SIGNED,
        changes={"s2": SIGNED, "a2": SENT, "v2": SENT},
        events=("recipient.signed",),
        invited=("a2", "v2"),
    ),
    Case(
        "group 2 approved invites group 3",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        act("approve", "a2"),
        E.PARTIALLY_SIGNED,
        changes={"a2": APPROVED, "s3": SENT},
        events=("recipient.approved",),
        invited=("s3",),
    ),
    Case(
        "last signer completes and seals; late viewer and cc are not invited",
        three(E.PARTIALLY_SIGNED, GROUP_3_SENT),
        act("sign", "s3"),
        E.COMPLETED,
        changes={"s3": SIGNED},
        events=("recipient.signed",),
        seal=True,
    ),
    Case(
        "a viewer between two groups is invited when the first is done",
        envelope(E.SENT, GAP, s1=SENT),
        act("sign", "s1"),
        E.PARTIALLY_SIGNED,
        changes={"s1": SIGNED, "v2": SENT, "s3": SENT},
        events=("recipient.signed",),
        invited=("v2", "s3"),
    ),
    Case(
        "single signer completes",
        envelope(E.SENT, SOLO, s1=SENT),
        act("sign", "s1"),
        E.COMPLETED,
        changes={"s1": SIGNED},
        events=("recipient.signed",),
        seal=True,
    ),
    # approvers
    Case(
        "an approval alone does not make PARTIALLY_SIGNED",
        envelope(
            E.DELIVERED, PARALLEL_TRIO, SigningOrder.PARALLEL, s1=SENT, a1=VIEWED, v1=SENT, s2=SENT
        ),
        act("approve", "a1"),
        E.DELIVERED,
        changes={"a1": APPROVED},
        events=("recipient.approved",),
    ),
    Case(
        "approval routes the next approver without changing SENT",
        envelope(E.SENT, APPROVERS_ONLY, a1=SENT),
        act("approve", "a1"),
        E.SENT,
        changes={"a1": APPROVED, "a2": SENT},
        events=("recipient.approved",),
        invited=("a2",),
    ),
    Case(
        "the last approval completes an envelope without signers",
        envelope(E.SENT, APPROVERS_ONLY, a1=APPROVED, a2=SENT),
        act("approve", "a2"),
        E.COMPLETED,
        changes={"a2": APPROVED},
        events=("recipient.approved",),
        seal=True,
    ),
    Case(
        "an approver declines",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        act("decline", "a2"),
        E.DECLINED,
        changes={"a2": DECLINED},
        events=("envelope.declined",),
    ),
    Case(
        "an approver returns it; recipients keep their statuses",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT, a2=VIEWED),
        act("return_to_sender", "a2"),
        E.RETURNED_TO_SENDER,
        changes={},
        events=("envelope.returned_to_sender",),
    ),
    # declining, voiding, expiring
    Case(
        "a signer declines",
        three(E.DELIVERED, GROUP_1_SENT, s2=VIEWED),
        act("decline", "s2"),
        E.DECLINED,
        changes={"s2": DECLINED},
        events=("envelope.declined",),
    ),
    Case(
        "void in progress",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        lc.void,
        E.VOIDED,
        events=("envelope.voided",),
    ),
    Case(
        "void a scheduled envelope",
        envelope(E.SCHEDULED),
        lc.void,
        E.VOIDED,
        events=("envelope.voided",),
    ),
    Case(
        "void a returned envelope",
        three(E.RETURNED_TO_SENDER, GROUP_2_SENT),
        lc.void,
        E.VOIDED,
        events=("envelope.voided",),
    ),
    Case(
        "expire in progress",
        three(E.SENT, GROUP_1_SENT),
        lc.expire,
        E.EXPIRED,
        events=("envelope.expired",),
    ),
    Case(
        "expire a returned envelope",
        three(E.RETURNED_TO_SENDER, GROUP_2_SENT),
        lc.expire,
        E.EXPIRED,
        events=("envelope.expired",),
    ),
]


@pytest.mark.parametrize("case", LEGAL, ids=[c.id for c in LEGAL])
def test_legal_transition(case: Case) -> None:
    result = case.action(case.start)
    assert result.state.status is case.status
    assert statuses_of(result.state) == {**statuses_of(case.start), **case.changes}
    assert result.events == case.events
    assert result.invited == case.invited
    assert result.seal is case.seal
    assert result.state.signing_order is case.start.signing_order
    assert [r.id for r in result.state.recipients] == [r.id for r in case.start.recipients]


REFUSED = [
    # (id, start, action, error, exact message or fragment)
    (
        "signer whose group has not come",
        three(E.SENT, GROUP_1_SENT),
        act("sign", "s3"),
        IllegalTransition,
        "It is not recipient s3's turn yet; waiting for s1, s2, a2",
    ),
    (
        "approver whose group has not come",
        three(E.SENT, GROUP_1_SENT),
        act("approve", "a2"),
        IllegalTransition,
        "It is not recipient a2's turn yet; waiting for s1, s2",
    ),
    (
        "decline before one's turn",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        act("decline", "s3"),
        IllegalTransition,
        "It is not recipient s3's turn yet; waiting for a2",
    ),
    (
        "return before one's turn",
        three(E.SENT, GROUP_1_SENT),
        act("return_to_sender", "a2"),
        IllegalTransition,
        "not recipient a2's turn yet",
    ),
    (
        "invited out of routing order (inconsistent row) still waits its turn",
        three(E.SENT, GROUP_1_SENT, s3=SENT),
        act("sign", "s3"),
        IllegalTransition,
        "It is not recipient s3's turn yet; waiting for s1, s2, a2",
    ),
    (
        "sign twice",
        three(E.PARTIALLY_SIGNED, GROUP_1_SENT, s1=SIGNED),
        act("sign", "s1"),
        IllegalTransition,
        "Recipient s1 is already SIGNED",
    ),
    (
        "decline after signing",
        three(E.PARTIALLY_SIGNED, GROUP_1_SENT, s1=SIGNED),
        act("decline", "s1"),
        IllegalTransition,
        "Recipient s1 is already SIGNED",
    ),
    (
        "approve twice",
        envelope(E.SENT, APPROVERS_ONLY, a1=APPROVED, a2=SENT),
        act("approve", "a1"),
        IllegalTransition,
        "Recipient a1 is already APPROVED",
    ),
    (
        "a viewer signs",
        three(E.SENT, GROUP_1_SENT),
        act("sign", "v0"),
        IllegalTransition,
        "Recipient v0 is a VIEWER; only signers sign",
    ),
    (
        "a carbon copy signs",
        three(E.SENT, GROUP_1_SENT),
        act("sign", "cc"),
        IllegalTransition,
        "Recipient cc is a CARBON_COPY; only signers sign",
    ),
    (
        "an approver signs",
        three(E.PARTIALLY_SIGNED, GROUP_2_SENT),
        act("sign", "a2"),
        IllegalTransition,
        "Recipient a2 is an APPROVER; only signers sign",
    ),
    (
        "a signer approves",
        three(E.SENT, GROUP_1_SENT),
        act("approve", "s1"),
        IllegalTransition,
        "Recipient s1 is a SIGNER; only approvers approve",
    ),
    (
        "a viewer declines",
        three(E.SENT, GROUP_1_SENT),
        act("decline", "v0"),
        IllegalTransition,
        "Recipient v0 is a VIEWER; only signers and approvers can decline",
    ),
    (
        "a signer returns",
        three(E.SENT, GROUP_1_SENT),
        act("return_to_sender", "s1"),
        IllegalTransition,
        "Recipient s1 is a SIGNER; only approvers can return an envelope",
    ),
    (
        "send without any actor",
        envelope(E.DRAFT, (("v", Role.VIEWER, 1), ("c", Role.CARBON_COPY, 1))),
        lc.send,
        IllegalTransition,
        "An envelope needs at least one SIGNER or APPROVER",
    ),
    (
        "send without recipients",
        envelope(E.DRAFT, ()),
        lc.send,
        IllegalTransition,
        "An envelope needs at least one SIGNER or APPROVER",
    ),
    (
        "schedule without any actor",
        envelope(E.DRAFT, (("v", Role.VIEWER, 1),)),
        lc.schedule,
        IllegalTransition,
        "An envelope needs at least one SIGNER or APPROVER",
    ),
    (
        "release without any actor",
        envelope(E.SCHEDULED, (("c", Role.CARBON_COPY, 1),)),
        lc.release,
        IllegalTransition,
        "An envelope needs at least one SIGNER or APPROVER",
    ),
    (
        "send twice",
        three(E.SENT, GROUP_1_SENT),
        lc.send,
        IllegalTransition,
        "Envelope is SENT; only a DRAFT or RETURNED_TO_SENDER envelope can be sent",
    ),
    (
        "send a completed one",
        envelope(E.COMPLETED),
        lc.send,
        IllegalTransition,
        "Envelope is COMPLETED; only a DRAFT or RETURNED_TO_SENDER envelope can be sent",
    ),
    ("void a draft", envelope(E.DRAFT), lc.void, IllegalTransition, "delete it instead"),
    (
        "void a voided one",
        envelope(E.VOIDED),
        lc.void,
        IllegalTransition,
        "Envelope is VOIDED; a finished envelope cannot become VOIDED",
    ),
    (
        "expire a draft",
        envelope(E.DRAFT),
        lc.expire,
        IllegalTransition,
        "Envelope is DRAFT; a draft does not expire",
    ),
    (
        "edit a sent one",
        envelope(E.SENT),
        lc.ensure_editable,
        IllegalTransition,
        "Envelope is SENT; only a DRAFT envelope",
    ),
    (
        "delete a sent one",
        envelope(E.PARTIALLY_SIGNED),
        lc.ensure_deletable,
        IllegalTransition,
        "a sent envelope cannot be deleted, void it instead with POST /envelopes/{id}/void",
    ),
    (
        "delete a scheduled one",
        envelope(E.SCHEDULED),
        lc.ensure_deletable,
        IllegalTransition,
        "POST /envelopes/{id}/void",
    ),
    (
        "delete a completed one",
        envelope(E.COMPLETED),
        lc.ensure_deletable,
        IllegalTransition,
        "Envelope is COMPLETED; only a DRAFT can be deleted",
    ),
    (
        "sign on a returned envelope",
        three(E.RETURNED_TO_SENDER, GROUP_1_SENT),
        act("sign", "s1"),
        IllegalTransition,
        "Envelope is RETURNED_TO_SENDER; it is back with the sender for changes",
    ),
    (
        "view a finished one",
        three(E.COMPLETED, GROUP_3_SENT, s3=SIGNED),
        act("view", "v9"),
        IllegalTransition,
        "Envelope is COMPLETED; it is finished",
    ),
    (
        "sign a draft",
        envelope(E.DRAFT),
        act("sign", "s1"),
        IllegalTransition,
        "Envelope is DRAFT; it has not been sent yet",
    ),
    *[
        (
            f"unknown recipient: {name}",
            three(E.SENT, GROUP_1_SENT),
            act(name, "rcp_x"),
            NotFound,
            "Recipient rcp_x is not on this envelope",
        )
        for name in ("view", "sign", "approve", "decline", "return_to_sender", "waiting_for")
    ],
]


@pytest.mark.parametrize(
    ("start", "action", "error", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused(
    start: EnvelopeState,
    action: Callable[[EnvelopeState], object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        action(start)
    assert type(caught.value) is error
    assert message in str(caught.value)


def test_illegal_transition_is_a_conflict() -> None:
    """The HTTP layer answers Conflict with 409, so the refusal must be one."""
    with pytest.raises(Conflict) as caught:
        lc.send(envelope(E.VOIDED))
    assert caught.value.code == "CONFLICT"


# --- every action from every envelope status ----------------------------------------------

MATRIX_RECIPIENTS = (
    ("s1", Role.SIGNER, 1),
    ("s2", Role.SIGNER, 1),
    ("a1", Role.APPROVER, 1),
    ("v1", Role.VIEWER, 1),
)
PROGRESS = {E.SENT, E.DELIVERED, E.PARTIALLY_SIGNED}
BEGUN = PROGRESS | {E.SCHEDULED, E.RETURNED_TO_SENDER}

ACTIONS: dict[str, tuple[Callable[[EnvelopeState], object], set[EnvelopeStatus]]] = {
    "send": (lc.send, {E.DRAFT, E.RETURNED_TO_SENDER}),
    "schedule": (lc.schedule, {E.DRAFT}),
    "release": (lc.release, {E.SCHEDULED}),
    "view": (act("view", "s1"), PROGRESS),
    "sign": (act("sign", "s1"), PROGRESS),
    "approve": (act("approve", "a1"), PROGRESS),
    "decline": (act("decline", "s1"), PROGRESS),
    "return_to_sender": (act("return_to_sender", "a1"), PROGRESS),
    "void": (lc.void, BEGUN),
    "expire": (lc.expire, BEGUN),
    "ensure_editable": (lc.ensure_editable, {E.DRAFT, E.RETURNED_TO_SENDER}),
    "ensure_deletable": (lc.ensure_deletable, {E.DRAFT}),
}


def after(action: str, status: EnvelopeStatus) -> EnvelopeStatus | None:
    """The envelope status a legal ``action`` leads to from ``status`` (None: a check)."""
    return {
        "send": E.SENT,
        "schedule": E.SCHEDULED,
        "release": E.SENT,
        "view": E.DELIVERED if status is E.SENT else status,
        "sign": E.PARTIALLY_SIGNED,
        "approve": status,
        "decline": E.DECLINED,
        "return_to_sender": E.RETURNED_TO_SENDER,
        "void": E.VOIDED,
        "expire": E.EXPIRED,
    }.get(action)


def matrix_state(status: EnvelopeStatus) -> EnvelopeState:
    """Recipients as routing leaves them: invited once sent, PENDING before."""
    invited = status not in {E.DRAFT, E.SCHEDULED}
    marks = {"s1": SENT, "s2": SENT, "a1": SENT, "v1": SENT} if invited else {}
    return envelope(status, MATRIX_RECIPIENTS, **marks)


@pytest.mark.parametrize(("status", "action"), list(product(E, ACTIONS)))
def test_every_action_from_every_status(status: EnvelopeStatus, action: str) -> None:
    run, legal_from = ACTIONS[action]
    start = matrix_state(status)
    if status in legal_from:
        result = run(start)
        expected = after(action, status)
        if expected is None:
            assert result is None
        else:
            assert isinstance(result, Transition)
            assert result.state.status is expected
    else:
        with pytest.raises(IllegalTransition) as caught:
            run(start)
        assert str(caught.value).startswith(f"Envelope is {status}; ")


def test_the_legality_table_matches_the_documented_statuses() -> None:
    """Guards the table above against a typo that would make both sides agree wrongly."""
    assert {s for s in E if lc.is_finished(s)} == {E.COMPLETED, E.DECLINED, E.VOIDED, E.EXPIRED}
    assert set(E) - {E.DRAFT, E.COMPLETED, E.DECLINED, E.VOIDED, E.EXPIRED} == BEGUN


@pytest.mark.parametrize("status", list(E))
def test_is_finished(status: EnvelopeStatus) -> None:
    finished = status in {E.COMPLETED, E.DECLINED, E.VOIDED, E.EXPIRED}
    assert lc.is_finished(status) is finished
    assert status.is_finished is finished


# --- whole journeys -----------------------------------------------------------------------


def test_three_groups_from_draft_to_completion() -> None:
    state = envelope(E.DRAFT)
    steps = [
        (lc.send, E.SENT, ("envelope.sent",), ("s1", "s2", "v0"), ("s1", "s2")),
        (act("view", "v0"), E.DELIVERED, ("recipient.viewed",), (), ("s1", "s2")),
        (act("sign", "s2"), E.PARTIALLY_SIGNED, ("recipient.signed",), (), ("s1",)),
        (act("sign", "s1"), E.PARTIALLY_SIGNED, ("recipient.signed",), ("a2", "v2"), ("a2",)),
        (act("view", "a2"), E.PARTIALLY_SIGNED, ("recipient.viewed",), (), ("a2",)),
        (act("approve", "a2"), E.PARTIALLY_SIGNED, ("recipient.approved",), ("s3",), ("s3",)),
        (act("sign", "s3"), E.COMPLETED, ("recipient.signed",), (), ()),
    ]
    for run, status, events, invited, group in steps:
        result = run(state)
        state = result.state
        assert (state.status, result.events, result.invited) == (status, events, invited)
        assert lc.active_group(state) == group
    assert result.seal is True
    assert statuses_of(state) == {
        "s1": SIGNED,
        "s2": SIGNED,
        "v0": VIEWED,
        "cc": PENDING,
        "a2": APPROVED,
        "v2": SENT,
        "s3": SIGNED,
        "v9": PENDING,
    }
    assert lc.signed_count(state) == 3
    assert lc.missing_signers(state) == ()


def test_return_edit_and_resubmit() -> None:
    state = lc.send(envelope(E.DRAFT)).state
    for run in (act("sign", "s1"), act("sign", "s2"), act("view", "a2")):
        state = run(state).state
    returned = lc.return_to_sender(state, "a2")
    assert returned.state.recipients == state.recipients
    lc.ensure_editable(returned.state)  # the sender may PATCH now
    with pytest.raises(IllegalTransition):
        lc.ensure_deletable(returned.state)
    with pytest.raises(IllegalTransition, match="back with the sender"):
        lc.approve(returned.state, "a2")
    again = lc.send(returned.state)
    assert again.events == ("envelope.resubmitted",)
    assert again.invited == ("s1", "s2", "v0")
    assert lc.signed_count(again.state) == 0
    assert lc.active_group(again.state) == ("s1", "s2")


def test_parallel_signing_completes_only_when_everyone_has_acted() -> None:
    state = lc.send(envelope(E.DRAFT, PARALLEL_TRIO, SigningOrder.PARALLEL)).state
    assert lc.active_group(state) == ("s1", "a1", "s2")
    state = lc.sign(state, "s2").state
    state = lc.approve(state, "a1").state
    assert state.status is E.PARTIALLY_SIGNED
    assert lc.waiting_for(state, "s1") == ()
    final = lc.sign(state, "s1")
    assert (final.state.status, final.seal, final.invited) == (E.COMPLETED, True, ())
    assert statuses_of(final.state)["cc"] is PENDING


# --- queries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "rid", "expected"),
    [
        (three(E.SENT, GROUP_1_SENT), "s3", ("s1", "s2", "a2")),
        (three(E.SENT, GROUP_1_SENT), "a2", ("s1", "s2")),
        (three(E.PARTIALLY_SIGNED, GROUP_1_SENT, s1=SIGNED), "v2", ("s2",)),
        (three(E.PARTIALLY_SIGNED, GROUP_2_SENT), "s3", ("a2",)),
        (three(E.SENT, GROUP_1_SENT), "s1", ()),  # already invited
        (three(E.SENT, GROUP_1_SENT), "cc", ()),  # never invited, waits for nobody
        (envelope(E.DRAFT), "s3", ()),  # not in progress
        (three(E.DECLINED, GROUP_1_SENT, s1=DECLINED), "s3", ()),
    ],
)
def test_waiting_for(state: EnvelopeState, rid: str, expected: tuple[str, ...]) -> None:
    assert lc.waiting_for(state, rid) == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (three(E.SENT, GROUP_1_SENT), ("s1", "s2")),
        (three(E.PARTIALLY_SIGNED, GROUP_1_SENT, s1=SIGNED), ("s2",)),
        (three(E.PARTIALLY_SIGNED, GROUP_3_SENT), ("s3",)),
        (envelope(E.DRAFT), ()),
        (envelope(E.SCHEDULED), ()),
        (three(E.RETURNED_TO_SENDER, GROUP_2_SENT), ()),
        (three(E.EXPIRED, GROUP_2_SENT), ()),
        (three(E.COMPLETED, GROUP_3_SENT, s3=SIGNED), ()),
    ],
)
def test_active_group(state: EnvelopeState, expected: tuple[str, ...]) -> None:
    assert lc.active_group(state) == expected


def test_missing_signers_and_signed_count() -> None:
    state = three(E.EXPIRED, GROUP_2_SENT)
    assert lc.missing_signers(state) == ("a2", "s3")
    assert lc.signed_count(state) == 2
    state = three(E.PARTIALLY_SIGNED, GROUP_3_SENT)
    assert lc.missing_signers(state) == ("s3",)
    assert lc.signed_count(state) == 2  # the approval is not a signature
    assert lc.missing_signers(envelope(E.DRAFT)) == ("s1", "s2", "a2", "s3")
    assert lc.signed_count(envelope(E.DRAFT)) == 0


# --- signing order ------------------------------------------------------------------------

P, S = SigningOrder.PARALLEL, SigningOrder.SEQUENTIAL


@pytest.mark.parametrize(
    ("requested", "orders", "expected"),
    [
        (None, [], P),
        (None, [None, None], P),
        (None, [1, 1, 1], P),
        (None, [2, 2], P),
        (None, [1, None], P),  # only given values count
        (None, [1, 2], S),
        (None, [3, None, 1], S),
        (P, [1, 2, 3], P),  # forced
        (S, [None, None], S),  # forced
        (S, [1, 1], S),
    ],
)
def test_resolve_signing_order(
    requested: SigningOrder | None, orders: list[int | None], expected: SigningOrder
) -> None:
    assert lc.resolve_signing_order(requested, orders) is expected


@pytest.mark.parametrize(
    ("signing_order", "orders", "expected"),
    [
        (P, [None, 2, 3], [1, 1, 1]),
        (P, [], []),
        (S, [None, None, None], [1, 2, 3]),
        (S, [2, 1, 2], [2, 1, 2]),
        (S, [None, 2, None, 1], [3, 2, 4, 1]),  # unnumbered go after the max, in list order
        (S, [5, None], [5, 6]),
        (S, [], []),
    ],
)
def test_routing_orders(
    signing_order: SigningOrder, orders: list[int | None], expected: list[int]
) -> None:
    assert lc.routing_orders(signing_order, orders) == expected


def test_routing_orders_refuses_an_order_below_one() -> None:
    with pytest.raises(ValidationFailed) as caught:
        lc.routing_orders(S, [1, 0])
    assert caught.value.errors[0].field == "recipients.1.order"


def test_states_are_immutable_and_inputs_untouched() -> None:
    start = three(E.SENT, GROUP_1_SENT)
    before = statuses_of(start)
    lc.sign(start, "s1")
    assert statuses_of(start) == before and start.status is E.SENT
    with pytest.raises(FrozenInstanceError):
        start.status = E.VOIDED  # type: ignore[misc]
