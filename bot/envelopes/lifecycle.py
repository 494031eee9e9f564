"""The envelope lifecycle: a pure state machine.

Every use case that moves an envelope (send, view, sign, approve, decline, return, void,
expire) asks this module first. It takes an immutable :class:`EnvelopeState` and answers a
:class:`Transition` (the new state, the webhook events to emit, who to invite, whether to seal)
or raises :class:`~bot.errors.IllegalTransition` with a sentence saying why (answered as 409).
It reads no clock, touches no database and sends nothing, so the whole of Certyneo's status
table is tested here without any I/O; the service persists the result and writes the outbox.

Routing. "Actors" (SIGNER, APPROVER) are routed in groups by ``order``, ascending; equal
orders form a parallel group, and a PARALLEL envelope is one group whatever the orders say.
The *active group* is the lowest order whose actors are not all done (SIGNED/APPROVED); only
its actors may act, and the next group is invited only when it is done.

- A VIEWER is invited as soon as routing reaches its order, i.e. once the active group's order
  is at least the viewer's (so at send time when its order is not above the first group's).
  It never blocks anyone. A viewer ordered after the last group is not reached before
  completion and, like a carbon copy, only gets the signed copy (the caller's job).
- A CARBON_COPY is never invited (stays PENDING); it gets the signed copy at completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bot.errors import IllegalTransition, NotFound, ValidationFailed


class EnvelopeStatus(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    PARTIALLY_SIGNED = "PARTIALLY_SIGNED"
    COMPLETED = "COMPLETED"
    DECLINED = "DECLINED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"

    @property
    def is_finished(self) -> bool:
        """Final: nothing moves it again, and its audit trail can be served."""
        return self in _FINISHED


class RecipientStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    VIEWED = "VIEWED"
    SIGNED = "SIGNED"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"


class Role(StrEnum):
    SIGNER = "SIGNER"
    VIEWER = "VIEWER"
    CARBON_COPY = "CARBON_COPY"
    APPROVER = "APPROVER"


class SigningOrder(StrEnum):
    PARALLEL = "PARALLEL"
    SEQUENTIAL = "SEQUENTIAL"


_FINISHED = frozenset(map(EnvelopeStatus, ("COMPLETED", "DECLINED", "VOIDED", "EXPIRED")))
_IN_PROGRESS = frozenset(map(EnvelopeStatus, ("SENT", "DELIVERED", "PARTIALLY_SIGNED")))
"""Sent, not finished, not back with the sender: recipients may act."""
_STOPPABLE = _IN_PROGRESS | {EnvelopeStatus.SCHEDULED, EnvelopeStatus.RETURNED_TO_SENDER}
"""Begun and not finished: what a void or an expiry may end."""
_EDITABLE = frozenset({EnvelopeStatus.DRAFT, EnvelopeStatus.RETURNED_TO_SENDER})
_ACTORS = frozenset({Role.SIGNER, Role.APPROVER})
_DONE = frozenset({RecipientStatus.SIGNED, RecipientStatus.APPROVED})
_INVITED = frozenset({RecipientStatus.SENT, RecipientStatus.VIEWED})
"""A recipient in one of these may still act (sign, approve, decline, return)."""


def is_finished(status: EnvelopeStatus) -> bool:
    """True for COMPLETED, DECLINED, VOIDED and EXPIRED."""
    return status in _FINISHED


@dataclass(frozen=True)
class RecipientState:
    id: str
    role: Role
    order: int
    """Routing position (1-based); equal values form one parallel group."""
    status: RecipientStatus = RecipientStatus.PENDING


@dataclass(frozen=True)
class EnvelopeState:
    status: EnvelopeStatus
    signing_order: SigningOrder
    recipients: tuple[RecipientState, ...]


@dataclass(frozen=True)
class Transition:
    state: EnvelopeState
    """The new state, to be persisted by the caller."""
    events: tuple[str, ...]
    """Webhook event names to emit now, in order, e.g. ``("recipient.signed",)``."""
    invited: tuple[str, ...] = ()
    """Recipient ids newly invited (they moved PENDING -> SENT now): send them their link."""
    seal: bool = False
    """This transition completed the envelope: queue the seal job, which emits
    ``envelope.completed`` once the sealed PDF is stored (hence not in ``events``)."""


def resolve_signing_order(
    requested: SigningOrder | None, orders: Sequence[int | None]
) -> SigningOrder:
    """``requested`` when given, else as Certyneo infers it: PARALLEL unless the recipients
    carry different ``order`` values (only given values count: ``[1, None]`` is PARALLEL)."""
    if requested is not None:
        return requested
    given = {order for order in orders if order is not None}
    return SigningOrder.SEQUENTIAL if len(given) > 1 else SigningOrder.PARALLEL


def routing_orders(signing_order: SigningOrder, orders: Sequence[int | None]) -> list[int]:
    """The effective routing order of each recipient, to store on its row.

    - PARALLEL: everyone is 1 (one group), whatever was given.
    - SEQUENTIAL with no order given: the position in the list, 1, 2, 3...
    - SEQUENTIAL with every order given: as given (equal values form a parallel group).
    - SEQUENTIAL partly ordered: the given ones keep theirs; the others come after the
      highest given order, one after the other in list order (max+1, max+2...), so a sender
      who numbered only some recipients never sees an unnumbered one jump the queue.
    """
    for index, order in enumerate(orders):
        if order is not None and order < 1:
            raise ValidationFailed.field(f"recipients.{index}.order", "must be 1 or more")
    if signing_order is SigningOrder.PARALLEL:
        return [1] * len(orders)
    given = [order for order in orders if order is not None]
    if not given:
        return list(range(1, len(orders) + 1))
    result: list[int] = []
    last = max(given)
    for order in orders:
        if order is None:
            last += 1
        result.append(last if order is None else order)
    return result


def _rank(state: EnvelopeState, recipient: RecipientState) -> int:
    """A PARALLEL envelope is one group whatever orders its rows carry."""
    return 1 if state.signing_order is SigningOrder.PARALLEL else recipient.order


def _actors(state: EnvelopeState) -> list[RecipientState]:
    return [r for r in state.recipients if r.role in _ACTORS]


def _active_order(state: EnvelopeState) -> int | None:
    """The lowest order whose actors are not all done; None once every actor is done."""
    pending = [_rank(state, r) for r in _actors(state) if r.status not in _DONE]
    return min(pending, default=None)


def active_group(state: EnvelopeState) -> tuple[str, ...]:
    """Ids of the actors whose turn it is and who have not acted yet; empty when the envelope
    is not in progress (not sent yet, returned, or finished)."""
    active = _active_order(state)
    if state.status not in _IN_PROGRESS or active is None:
        return ()
    return tuple(
        r.id for r in _actors(state) if _rank(state, r) == active and r.status not in _DONE
    )


def waiting_for(state: EnvelopeState, recipient_id: str) -> tuple[str, ...]:
    """For the "not your turn yet" page: the unfinished actors of earlier groups that a
    PENDING recipient waits for. Empty for one already invited or done, a carbon copy (never
    invited), or an envelope not in progress."""
    recipient = _find(state, recipient_id)
    if (
        state.status not in _IN_PROGRESS
        or recipient.status is not RecipientStatus.PENDING
        or recipient.role is Role.CARBON_COPY
    ):
        return ()
    return _ahead_of(state, recipient)


def _ahead_of(state: EnvelopeState, recipient: RecipientState) -> tuple[str, ...]:
    """The unfinished actors of the groups routed before ``recipient``'s."""
    rank = _rank(state, recipient)
    return tuple(r.id for r in _actors(state) if _rank(state, r) < rank and r.status not in _DONE)


def missing_signers(state: EnvelopeState) -> tuple[str, ...]:
    """Actors who have not signed or approved, e.g. for ``envelope.expired``'s payload."""
    return tuple(r.id for r in _actors(state) if r.status not in _DONE)


def signed_count(state: EnvelopeState) -> int:
    """Recipients who signed (approvals are not signatures): Certyneo's ``signedCount``."""
    return sum(1 for r in state.recipients if r.status is RecipientStatus.SIGNED)


def _refuse(state: EnvelopeState, why: str) -> IllegalTransition:
    """Every refusal starts by naming the envelope's status, then says why."""
    return IllegalTransition(f"Envelope is {state.status}; {why}")


def _find(state: EnvelopeState, recipient_id: str) -> RecipientState:
    for recipient in state.recipients:
        if recipient.id == recipient_id:
            return recipient
    raise NotFound(f"Recipient {recipient_id} is not on this envelope")


def _require_in_progress(state: EnvelopeState, done: str) -> None:
    """Recipients act only on a sent envelope that is neither finished nor back with the
    sender; ``done`` names what the action would do, for the refusal's sentence."""
    if state.status in _FINISHED:
        raise _refuse(state, f"it is finished and can no longer be {done}")
    if state.status is EnvelopeStatus.RETURNED_TO_SENDER:
        raise _refuse(state, f"it is back with the sender for changes and cannot be {done}")
    if state.status not in _IN_PROGRESS:
        raise _refuse(state, f"it has not been sent yet and cannot be {done}")


def _turn(
    state: EnvelopeState, recipient_id: str, roles: frozenset[Role], only: str, done: str
) -> None:
    """Refuse unless the envelope is in progress, the recipient holds one of ``roles``
    (``only`` says who may) and it is their turn: invited, in the active group, not done."""
    recipient = _find(state, recipient_id)
    _require_in_progress(state, done)
    if recipient.role not in roles:
        article = "an" if recipient.role is Role.APPROVER else "a"
        raise IllegalTransition(f"Recipient {recipient.id} is {article} {recipient.role}; {only}")
    if recipient.status in _DONE or recipient.status is RecipientStatus.DECLINED:
        raise IllegalTransition(
            f"Recipient {recipient.id} is already {recipient.status}; one can act only once"
        )
    if recipient.status in _INVITED and _rank(state, recipient) == _active_order(state):
        return
    waiting = _ahead_of(state, recipient)
    detail = f"; waiting for {', '.join(waiting)}" if waiting else ""
    raise IllegalTransition(f"It is not recipient {recipient.id}'s turn yet{detail}")


def _with_status(state: EnvelopeState, recipient_id: str, status: RecipientStatus) -> EnvelopeState:
    recipients = tuple(
        replace(r, status=status) if r.id == recipient_id else r for r in state.recipients
    )
    return replace(state, recipients=recipients)


def _invite(state: EnvelopeState) -> tuple[EnvelopeState, tuple[str, ...]]:
    """Move to SENT every PENDING recipient routing has reached (see the module docstring)."""
    active = _active_order(state)
    if active is None:
        return state, ()
    recipients: list[RecipientState] = []
    invited: list[str] = []
    for r in state.recipients:
        rank = _rank(state, r)
        reached = (r.role in _ACTORS and rank == active) or (
            r.role is Role.VIEWER and rank <= active
        )
        if r.status is RecipientStatus.PENDING and reached:
            r = replace(r, status=RecipientStatus.SENT)
            invited.append(r.id)
        recipients.append(r)
    return replace(state, recipients=tuple(recipients)), tuple(invited)


def _require_actor(state: EnvelopeState) -> None:
    if not _actors(state):
        raise IllegalTransition("An envelope needs at least one SIGNER or APPROVER")


def _start(state: EnvelopeState, event: str) -> Transition:
    """SENT with routing restarted: every recipient PENDING, then the first group invited.
    A returned envelope's document may have changed, so earlier signatures no longer hold."""
    _require_actor(state)
    fresh = replace(
        state,
        status=EnvelopeStatus.SENT,
        recipients=tuple(replace(r, status=RecipientStatus.PENDING) for r in state.recipients),
    )
    new, invited = _invite(fresh)
    return Transition(new, (event,), invited)


def _complete_or_route(state: EnvelopeState, event: str) -> Transition:
    """After an actor's signature or approval: complete, or invite whoever is reached next."""
    if _active_order(state) is None:
        return Transition(replace(state, status=EnvelopeStatus.COMPLETED), (event,), seal=True)
    if signed_count(state) > 0:
        state = replace(state, status=EnvelopeStatus.PARTIALLY_SIGNED)
    new, invited = _invite(state)
    return Transition(new, (event,), invited)


def send(state: EnvelopeState) -> Transition:
    """DRAFT -> SENT (``envelope.sent``); RETURNED_TO_SENDER -> SENT (``envelope.resubmitted``),
    inviting the first routing group and the viewers it reaches."""
    if state.status is EnvelopeStatus.DRAFT:
        return _start(state, "envelope.sent")
    if state.status is EnvelopeStatus.RETURNED_TO_SENDER:
        return _start(state, "envelope.resubmitted")
    raise _refuse(state, "only a DRAFT or RETURNED_TO_SENDER envelope can be sent")


def schedule(state: EnvelopeState) -> Transition:
    """DRAFT -> SCHEDULED (``sendAt`` in the future). Nothing is emitted, nobody invited: to
    the outside world it is not sent yet; :func:`release` does both when ``sendAt`` comes."""
    if state.status is not EnvelopeStatus.DRAFT:
        raise _refuse(state, "only a DRAFT envelope can be scheduled")
    _require_actor(state)
    return Transition(replace(state, status=EnvelopeStatus.SCHEDULED), ())


def release(state: EnvelopeState) -> Transition:
    """SCHEDULED -> SENT when ``sendAt`` has come, exactly like :func:`send` from a DRAFT."""
    if state.status is not EnvelopeStatus.SCHEDULED:
        raise _refuse(state, "only a SCHEDULED envelope can be released")
    return _start(state, "envelope.sent")


def view(state: EnvelopeState, recipient_id: str) -> Transition:
    """An invited recipient opened it: SENT -> VIEWED, and the envelope SENT -> DELIVERED.
    Opening again, or before one's turn (PENDING), is a no-op without events, so reloading
    the signing page records nothing."""
    recipient = _find(state, recipient_id)
    _require_in_progress(state, "viewed")
    if recipient.status is not RecipientStatus.SENT:
        return Transition(state, ())
    new = _with_status(state, recipient_id, RecipientStatus.VIEWED)
    if new.status is EnvelopeStatus.SENT:
        new = replace(new, status=EnvelopeStatus.DELIVERED)
    return Transition(new, ("recipient.viewed",))


def sign(state: EnvelopeState, recipient_id: str) -> Transition:
    """A signer of the active group signs: PARTIALLY_SIGNED, or COMPLETED (``seal``) when it
    was the last actor; a group finished invites the next one."""
    _turn(state, recipient_id, frozenset({Role.SIGNER}), "only signers sign", "signed")
    new = _with_status(state, recipient_id, RecipientStatus.SIGNED)
    return _complete_or_route(new, "recipient.signed")


def approve(state: EnvelopeState, recipient_id: str) -> Transition:
    """An approver of the active group approves. Approvals alone never make PARTIALLY_SIGNED:
    the envelope's status moves only when this completes it."""
    _turn(state, recipient_id, frozenset({Role.APPROVER}), "only approvers approve", "approved")
    new = _with_status(state, recipient_id, RecipientStatus.APPROVED)
    return _complete_or_route(new, "recipient.approved")


def decline(state: EnvelopeState, recipient_id: str) -> Transition:
    """A signer or approver of the active group declines: the whole envelope is DECLINED."""
    _turn(state, recipient_id, _ACTORS, "only signers and approvers can decline", "declined")
    new = _with_status(state, recipient_id, RecipientStatus.DECLINED)
    return Transition(replace(new, status=EnvelopeStatus.DECLINED), ("envelope.declined",))


def return_to_sender(state: EnvelopeState, recipient_id: str) -> Transition:
    """An approver of the active group asks for changes: RETURNED_TO_SENDER. Recipient
    statuses stay (who did what); :func:`send` resets them when the sender resubmits."""
    only = "only approvers can return an envelope"
    _turn(state, recipient_id, frozenset({Role.APPROVER}), only, "returned to the sender")
    return Transition(
        replace(state, status=EnvelopeStatus.RETURNED_TO_SENDER),
        ("envelope.returned_to_sender",),
    )


def _stop(state: EnvelopeState, status: EnvelopeStatus, event: str, draft: str) -> Transition:
    """End an envelope that has begun and is not finished (void, expiry)."""
    if state.status is EnvelopeStatus.DRAFT:
        raise _refuse(state, draft)
    if state.status not in _STOPPABLE:
        raise _refuse(state, f"a finished envelope cannot become {status}")
    return Transition(replace(state, status=status), (event,))


def void(state: EnvelopeState) -> Transition:
    """The sender cancels an envelope that has begun and is not finished: VOIDED."""
    draft = "a draft cannot be voided, delete it instead (DELETE /envelopes/{id})"
    return _stop(state, EnvelopeStatus.VOIDED, "envelope.voided", draft)


def expire(state: EnvelopeState) -> Transition:
    """``expiresAt`` has passed on an envelope that has begun and is not finished: EXPIRED."""
    return _stop(state, EnvelopeStatus.EXPIRED, "envelope.expired", "a draft does not expire")


def ensure_editable(state: EnvelopeState) -> None:
    """PATCH is allowed on a DRAFT, and on a returned envelope the sender is fixing."""
    if state.status not in _EDITABLE:
        raise _refuse(state, "only a DRAFT envelope (or one RETURNED_TO_SENDER) can be changed")


def ensure_deletable(state: EnvelopeState) -> None:
    """Only a DRAFT can be deleted; anything sent is evidence and is voided instead."""
    if state.status is EnvelopeStatus.DRAFT:
        return
    if state.status in _FINISHED:
        raise _refuse(state, "only a DRAFT can be deleted; a finished envelope is kept")
    raise _refuse(
        state,
        "only a DRAFT can be deleted; a sent envelope cannot be deleted, "
        "void it instead with POST /envelopes/{id}/void",
    )
