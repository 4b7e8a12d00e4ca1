"""Who may enter which room, with what role: links, dial-in aliases, PINs and their limits.

Every way in (a browser via the client API, a SIP call via its alias) comes through ``enter``, so
the PIN rules and brute-force limits exist once. The rules follow Pexip: a host PIN makes a host; a
guest PIN makes a guest; where only a host PIN exists, guests enter without one; with no PINs a
link's own role applies and an alias caller is a host. A missing PIN is not a wrong one (it is not
counted); wrong ones are counted per source and per room, and past the limit even the right PIN is
refused until the lockout expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from confnode.booking.meeting import Meeting
from confnode.booking.service import BookingService
from confnode.errors import PinInvalid, PinRequired
from confnode.live.rooms import LiveRooms
from confnode.rooms import EndpointType, MediaKind, ParticipantView, PinAttempts, Role
from confnode.security.personal_data import ensure_no_cpr

MAX_DISPLAY_NAME = 100


@dataclass(frozen=True)
class Admitted:
    meeting: Meeting
    participant: ParticipantView


class Admission:
    def __init__(self, bookings: BookingService, rooms: LiveRooms) -> None:
        self._bookings = bookings
        self._rooms = rooms
        self._attempts: dict[str, PinAttempts] = {}

    async def locate(self, address: str, now: datetime) -> tuple[Meeting, Role | None]:
        """The meeting behind a link token or a numeric alias, and the role a link implies."""
        if address.isdigit():
            meeting = await self._bookings.meeting_by_alias(address)
            if meeting.window is not None:
                meeting.window.check(now)
            return meeting, None
        resolved = await self._bookings.resolve_link(address, now)
        return resolved.meeting, resolved.role

    def role_for(self, meeting: Meeting, link_role: Role | None, pin: str | None,
                 source: str, now: datetime) -> Role:
        if not meeting.has_pins:
            return link_role or Role.HOST
        attempts = self._attempts.setdefault(meeting.id, PinAttempts())
        attempts.check(source, now)
        if pin is None or pin == "none":
            if meeting.guest_pin_digest is None and link_role is not Role.HOST:
                return Role.GUEST  # host PIN only: guests enter without one
            raise PinRequired("A PIN is required to enter this meeting.",
                              guest_pin_required=meeting.guest_pin_digest is not None)
        role = self._bookings.role_for_pin(meeting, pin)
        if role is None or (link_role is Role.HOST and role is Role.GUEST):
            attempts.record_failure(source, now)
            raise PinInvalid("The PIN is not correct.")
        attempts.record_success(source, now)
        return role

    async def enter(self, address: str, *, display_name: str, pin: str | None, source: str,
                    endpoint_type: EndpointType, protocol: str, media: Iterable[MediaKind],
                    now: datetime) -> Admitted:
        meeting, link_role = await self.locate(address, now)
        role = self.role_for(meeting, link_role, pin, source, now)
        return await self.join(meeting, role, display_name=display_name,
                               endpoint_type=endpoint_type, protocol=protocol, media=media,
                               now=now)

    async def join(self, meeting: Meeting, role: Role, *, display_name: str,
                   endpoint_type: EndpointType, protocol: str, media: Iterable[MediaKind],
                   now: datetime, participant_id: str | None = None) -> Admitted:
        """Enter with a role already established (``locate`` + ``role_for``)."""
        ensure_no_cpr(display_name, "display_name")
        name = display_name.strip()[:MAX_DISPLAY_NAME] or "Guest"
        view = await self._rooms.join(
            meeting, participant_id=participant_id or str(uuid.uuid4()), display_name=name,
            role=role,
            endpoint_type=endpoint_type, protocol=protocol, media=media, now=now)
        return Admitted(meeting, view)

    def forget(self, meeting_id: str) -> None:
        self._attempts.pop(meeting_id, None)

