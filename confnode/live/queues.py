"""Clinic waiting rooms at run time: queue links, patients' tickets, starting consultations.

Patients reach a clinic's queue through a capability link the clinic publishes (``/q/<token>``);
taking a place returns a ticket token that only that patient holds, used to watch the position and,
once called, to receive the join link. Neither token is kept in clear: the queue core only ever sees
the ticket's digest. Queues live in memory — a patient's place in line is not a booking; after a
restart patients take a new number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from confnode.booking.principal import Principal
from confnode.booking.service import Booking, BookingRequest, BookingService
from confnode.errors import Conflict, NotFound
from confnode.rooms import RoomKind
from confnode.rooms.waiting_room import (
    CloseMode,
    PatientCalled,
    PositionChanged,
    QueueEvent,
    QueueTicket,
    TicketRemoved,
    WaitingRoomQueue,
)
from confnode.security.capability import new_token, token_digest
from confnode.store.directory import Directory

log = logging.getLogger(__name__)

QUEUE_PATH = "/q/"
Notifier = Callable[[str, dict[str, Any]], Awaitable[None]]


class TicketState(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    REMOVED = "removed"


@dataclass
class Ticket:
    digest: str
    org_id: str
    number: int
    state: TicketState = TicketState.WAITING
    position: int | None = None
    join_link: str | None = None
    watchers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)

    def status(self) -> dict[str, Any]:
        return {"number": self.number, "state": self.state.value, "position": self.position,
                "join_link": self.join_link}


@dataclass(frozen=True)
class StartedConsultation:
    ticket_number: int
    booking: Booking


class ClinicQueues:
    def __init__(self, directory: Directory, bookings: BookingService, notify: Notifier,
                 public_url: str) -> None:
        self._directory = directory
        self._bookings = bookings
        self._notify = notify
        self._public_url = public_url
        self._queues: dict[str, WaitingRoomQueue] = {}
        self._tickets: dict[str, Ticket] = {}
        self._queue_links: dict[str, str] = {}  # digest -> org id (cache of the store)

    def queue(self, org_id: str) -> WaitingRoomQueue:
        if org_id not in self._queues:
            self._queues[org_id] = WaitingRoomQueue(org_id)
        return self._queues[org_id]

    async def new_queue_link(self, org_id: str) -> str:
        """Issue the clinic's patient link, revoking the previous one."""
        token = new_token()
        await self._directory.set_queue_digest(org_id, token_digest(token))
        self._queue_links = {d: o for d, o in self._queue_links.items() if o != org_id}
        return f"{self._public_url}{QUEUE_PATH}{token}"

    async def org_for_link(self, token: str) -> str:
        digest = token_digest(token)
        org_id = self._queue_links.get(digest) or await self._directory.org_for_queue(digest)
        if org_id is None:
            raise NotFound("This link does not lead to a waiting room.")
        self._queue_links[digest] = org_id
        return org_id

    def open(self, org_id: str, now: datetime) -> None:
        self.queue(org_id).open(now)
        self._drain(org_id)

    def close(self, org_id: str, mode: CloseMode, now: datetime) -> None:
        self.queue(org_id).close(mode, now)
        self._drain(org_id)

    def take_place(self, org_id: str, now: datetime, *,
                   call_when_ready: bool) -> tuple[str, Ticket]:
        token = new_token()
        digest = token_digest(token)
        ticket = self.queue(org_id).take_place(digest, now, call_when_ready=call_when_ready)
        state = Ticket(digest, org_id, ticket.number,
                       position=self.queue(org_id).position(digest))
        self._tickets[digest] = state
        self._drain(org_id)
        return token, state

    def ticket(self, token: str) -> Ticket:
        state = self._tickets.get(token_digest(token))
        if state is None:
            raise NotFound("No such ticket.")
        return state

    def leave(self, token: str, now: datetime) -> None:
        state = self.ticket(token)
        if state.state is TicketState.WAITING:
            self.queue(state.org_id).leave(state.digest, now)
            self._drain(state.org_id)

    def set_call_when_ready(self, token: str, now: datetime, call_when_ready: bool) -> Ticket:
        state = self.ticket(token)
        self.queue(state.org_id).set_call_when_ready(state.digest, now,
                                                    call_when_ready=call_when_ready)
        return state

    def waiting(self, org_id: str) -> list[QueueTicket]:
        return self.queue(org_id).tickets()

    async def start(self, principal: Principal, now: datetime,
                    number: int | None = None) -> StartedConsultation:
        """Call the next (or the chosen) patient into a new instant room made just for them."""
        queue = self.queue(principal.org_id)
        waiting = queue.tickets()
        if number is None:
            if not waiting:
                raise Conflict("Nobody is waiting.")
            chosen = waiting[0]
        else:
            chosen = next((t for t in waiting if t.number == number), None)
            if chosen is None:
                raise NotFound("No patient with that number is waiting.")
        # Book first: if that fails the patient keeps their place in the queue.
        booking = await self._bookings.book(
            principal, BookingRequest(subject=f"Waiting room consultation {chosen.number}",
                                      kind=RoomKind.WAITING_ROOM), now)
        self._tickets[chosen.ticket_id].join_link = booking.guest_link
        ticket = queue.start(chosen.ticket_id, now)
        self._drain(principal.org_id)
        if ticket.call_when_ready:
            await self._notify(principal.org_id, {
                "event": "patient_called", "ticket_number": ticket.number,
                "join_link": booking.guest_link})
        return StartedConsultation(ticket.number, booking)

    def watch(self, token: str) -> asyncio.Queue[dict[str, Any]]:
        state = self.ticket(token)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(64)
        state.watchers.add(queue)
        queue.put_nowait(state.status())
        return queue

    def unwatch(self, token: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        state = self._tickets.get(token_digest(token))
        if state is not None:
            state.watchers.discard(queue)

    def _drain(self, org_id: str) -> None:
        queue = self.queue(org_id)
        while (event := queue.next_event()) is not None:
            self._apply(event)

    def _apply(self, event: QueueEvent) -> None:
        if isinstance(event, PositionChanged):
            state = self._tickets.get(event.ticket_id)
            if state is not None:
                state.position = event.position
                self._publish(state)
        elif isinstance(event, PatientCalled):
            state = self._tickets.get(event.ticket.ticket_id)
            if state is not None:
                state.state, state.position = TicketState.CALLED, None
                self._publish(state)
        elif isinstance(event, TicketRemoved):
            state = self._tickets.get(event.ticket_id)
            if state is not None and state.state is TicketState.WAITING:
                state.state, state.position = TicketState.REMOVED, None
                self._publish(state)

    def _publish(self, state: Ticket) -> None:
        for watcher in list(state.watchers):
            try:
                watcher.put_nowait(state.status())
            except asyncio.QueueFull:
                state.watchers.discard(watcher)
