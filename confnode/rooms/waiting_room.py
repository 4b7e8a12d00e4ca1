"""The clinic's virtual waiting room: one numbered queue of patients per clinic.

Modelled on PLO's "Min Læge" waiting room: a patient with a booked time takes a number, watches
their position (or asks to be called when the doctor is ready), and the clinic starts the
consultation with the next patient or a chosen one. The queue only decides *who is next*; creating
the instant room and sending the join link or webhook is the node's job when it drains
``PatientCalled``.

The queue holds no personal data: a ticket is an opaque, caller-chosen random ``ticket_id`` plus
the number shown on screen. Sans-IO: every mutating call takes ``now`` and queues events that the
shell drains with ``next_event()``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from confnode.errors import Conflict, InvalidInput, NotFound, QueueClosed

# Ticket ids are random tokens minted by the caller; the cap only stops a caller from parking
# arbitrary payloads in node memory.
MAX_TICKET_ID_LENGTH = 128


class QueueState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class CloseMode(StrEnum):
    """The two ways a clinic can close its queue in Min Læge."""

    KEEP = "keep"  # no new patients; those already waiting stay and are worked through
    FLUSH = "flush"  # no new patients and everyone waiting is sent away


class RemovalReason(StrEnum):
    LEFT = "left"
    FLUSHED = "flushed"
    STARTED = "started"


class QueueFull(Conflict):
    """The clinic capped its queue length and the cap is reached.

    A ``Conflict`` rather than ``CapacityRefused``: the node has capacity, it is the clinic's own
    rule that refuses, and the patient should try again later rather than another node.
    """

    code = "queue_full"


@dataclass(frozen=True)
class QueueTicket:
    ticket_id: str
    number: int  # the number displayed to the patient and the clinic; never reused in a queue
    taken_at: datetime
    call_when_ready: bool


@dataclass(frozen=True, kw_only=True)
class QueueEvent:
    clinic_id: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class QueueOpened(QueueEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class QueueClosedEvent(QueueEvent):
    """The queue was closed; with ``FLUSH`` the ``TicketRemoved`` events precede this one."""

    mode: CloseMode


@dataclass(frozen=True, kw_only=True)
class TicketTaken(QueueEvent):
    ticket: QueueTicket
    position: int


@dataclass(frozen=True, kw_only=True)
class PositionChanged(QueueEvent):
    ticket_id: str
    position: int


@dataclass(frozen=True, kw_only=True)
class TicketRemoved(QueueEvent):
    ticket_id: str
    reason: RemovalReason


@dataclass(frozen=True, kw_only=True)
class PatientCalled(QueueEvent):
    """The clinic is ready for this patient: the node creates the instant room and notifies them.

    ``call_when_ready`` tells the node which channel to use: a webhook for patients who asked to
    be called, the open queue view otherwise.
    """

    ticket: QueueTicket
    call_when_ready: bool


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("Timestamps must be timezone-aware.")
    return now.astimezone(UTC)


class WaitingRoomQueue:
    """One clinic's queue.

    Event order is part of the contract so a shell can forward events as they come:
    removals first (``PatientCalled`` before its ``TicketRemoved`` when a consultation starts),
    then ``PositionChanged`` for exactly the tickets that moved, in queue order.
    """

    def __init__(
        self,
        clinic_id: str,
        *,
        state: QueueState = QueueState.CLOSED,
        max_length: int | None = None,
    ) -> None:
        if not clinic_id:
            raise InvalidInput("A clinic id is required.")
        if max_length is not None and max_length < 1:
            raise InvalidInput("max_length must be at least 1 or None.", max_length=max_length)
        self._clinic_id = clinic_id
        self._state = QueueState(state)
        self._max_length = max_length
        # dicts keep insertion order, which is the queue order: nobody can jump ahead.
        self._tickets: dict[str, QueueTicket] = {}
        self._last_number = 0
        self._events: deque[QueueEvent] = deque()

    @property
    def clinic_id(self) -> str:
        return self._clinic_id

    @property
    def state(self) -> QueueState:
        return self._state

    @property
    def max_length(self) -> int | None:
        return self._max_length

    def __len__(self) -> int:
        return len(self._tickets)

    # --- the clinic's controls -------------------------------------------------------------

    def open(self, now: datetime) -> None:
        """Let patients take a number. Opening an open queue is a no-op (a double click)."""
        at = _utc(now)
        if self._state is QueueState.OPEN:
            return
        self._state = QueueState.OPEN
        self._events.append(QueueOpened(clinic_id=self._clinic_id, at=at))

    def close(self, mode: CloseMode, now: datetime) -> None:
        """Stop new patients; with ``FLUSH`` also send everyone waiting away.

        Closing a closed queue with ``KEEP`` changes nothing and emits nothing. ``FLUSH`` on a
        queue already closed with ``KEEP`` is allowed (the clinic gives up on the rest of the
        day) and emits the removals and a second ``QueueClosedEvent``.
        """
        at = _utc(now)
        mode = CloseMode(mode)
        was_open = self._state is QueueState.OPEN
        self._state = QueueState.CLOSED
        if mode is CloseMode.FLUSH:
            for ticket_id in self._tickets:
                self._events.append(
                    TicketRemoved(
                        clinic_id=self._clinic_id,
                        at=at,
                        ticket_id=ticket_id,
                        reason=RemovalReason.FLUSHED,
                    )
                )
            self._tickets.clear()
        elif not was_open:
            return
        self._events.append(QueueClosedEvent(clinic_id=self._clinic_id, at=at, mode=mode))

    def start_next(self, now: datetime) -> QueueTicket:
        """Call the patient at the head of the queue.

        Works on a queue closed with ``KEEP``: closing only stops newcomers, the clinic still
        works through those already waiting.
        """
        at = _utc(now)
        if not self._tickets:
            raise Conflict("queue is empty")
        return self._call(next(iter(self._tickets)), at)

    def start(self, ticket_id: str, now: datetime) -> QueueTicket:
        """Call a chosen patient, e.g. the one whose booked time it is, not the earliest arrival."""
        at = _utc(now)
        if ticket_id not in self._tickets:
            raise NotFound("No such ticket in this queue.")
        return self._call(ticket_id, at)

    # --- the patient's side ----------------------------------------------------------------

    def take_place(
        self, ticket_id: str, now: datetime, *, call_when_ready: bool = False
    ) -> QueueTicket:
        at = _utc(now)
        if not ticket_id or len(ticket_id) > MAX_TICKET_ID_LENGTH:
            raise InvalidInput(
                f"A ticket id must be 1 to {MAX_TICKET_ID_LENGTH} characters.",
            )
        if self._state is not QueueState.OPEN:
            raise QueueClosed("The clinic's waiting room is closed.")
        if ticket_id in self._tickets:
            raise Conflict("This ticket is already in the queue.")
        if self._max_length is not None and len(self._tickets) >= self._max_length:
            raise QueueFull("The clinic's waiting room is full.", max_length=self._max_length)
        self._last_number += 1
        ticket = QueueTicket(
            ticket_id=ticket_id,
            number=self._last_number,
            taken_at=at,
            call_when_ready=call_when_ready,
        )
        self._tickets[ticket_id] = ticket
        self._events.append(
            TicketTaken(
                clinic_id=self._clinic_id, at=at, ticket=ticket, position=len(self._tickets)
            )
        )
        return ticket

    def set_call_when_ready(
        self, ticket_id: str, now: datetime, *, call_when_ready: bool = True
    ) -> QueueTicket:
        """A waiting patient switches between watching the queue and being called back.

        Emits no event: the position is unchanged, and the choice only matters in
        ``PatientCalled``, which carries the ticket as it is then.
        """
        _utc(now)
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            raise NotFound("No such ticket in this queue.")
        updated = replace(ticket, call_when_ready=call_when_ready)
        self._tickets[ticket_id] = updated
        return updated

    def leave(self, ticket_id: str, now: datetime) -> None:
        at = _utc(now)
        if ticket_id not in self._tickets:
            raise NotFound("No such ticket in this queue.")
        self._remove(ticket_id, RemovalReason.LEFT, at)

    # --- reading ---------------------------------------------------------------------------

    def position(self, ticket_id: str) -> int:
        """1-based place in the queue."""
        for index, queued in enumerate(self._tickets, start=1):
            if queued == ticket_id:
                return index
        raise NotFound("No such ticket in this queue.")

    def tickets(self) -> list[QueueTicket]:
        return list(self._tickets.values())

    def next_event(self) -> QueueEvent | None:
        return self._events.popleft() if self._events else None

    # --- internals -------------------------------------------------------------------------

    def _call(self, ticket_id: str, at: datetime) -> QueueTicket:
        ticket = self._tickets[ticket_id]
        self._events.append(
            PatientCalled(
                clinic_id=self._clinic_id,
                at=at,
                ticket=ticket,
                call_when_ready=ticket.call_when_ready,
            )
        )
        self._remove(ticket_id, RemovalReason.STARTED, at)
        return ticket

    def _remove(self, ticket_id: str, reason: RemovalReason, at: datetime) -> None:
        order = list(self._tickets)
        removed_index = order.index(ticket_id)
        del self._tickets[ticket_id]
        self._events.append(
            TicketRemoved(clinic_id=self._clinic_id, at=at, ticket_id=ticket_id, reason=reason)
        )
        # Only those behind the removed ticket move up, each by one place.
        for new_position, moved in enumerate(order[removed_index + 1 :], start=removed_index + 1):
            self._events.append(
                PositionChanged(
                    clinic_id=self._clinic_id, at=at, ticket_id=moved, position=new_position
                )
            )
