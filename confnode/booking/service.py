"""Booking: turning one request into a ready room with its links, in one call.

MedCom's evaluation found booking took 2-3 minutes in many steps ("booking is hell"). Here a single
request returns everything the doctor needs: host link, short guest link, SIP address, PINs, window.
Link tokens and PINs are returned exactly once and stored only as digests, so a stolen database
opens no room; a doctor who lost a link asks for new ones (``rotate_links``), which also revokes the
old ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from confnode.booking.meeting import GuestMicrophone, Meeting, MeetingStatus
from confnode.booking.principal import Principal
from confnode.booking.template import SchedulingTemplate
from confnode.errors import Conflict, InvalidInput, NotFound, RoomClosed, RoomNotOpenYet
from confnode.rooms.participant import Role
from confnode.rooms.room import RoomKind
from confnode.security.capability import (
    PinHasher,
    digests_equal,
    new_numeric_alias,
    new_pin,
    new_token,
    token_digest,
)
from confnode.security.personal_data import ensure_no_cpr
from confnode.store.directory import Directory
from confnode.store.meetings import AliasTaken, MeetingFilter, MeetingStore

_T = TypeVar("_T")

LINK_PATH = "/j/"
_ALIAS_ATTEMPTS = 8


@dataclass(frozen=True)
class BookingPolicy:
    """Node-wide defaults, used where the organisation has no template."""

    open_before: timedelta
    close_after: timedelta
    instant_duration: timedelta
    max_duration: timedelta
    guests_wait_for_host: bool
    public_url: str
    sip_domain: str


@dataclass(frozen=True)
class BookingRequest:
    subject: str
    kind: RoomKind = RoomKind.SCHEDULED
    start_time: datetime | None = None
    end_time: datetime | None = None
    description: str | None = None
    organizer_email: str | None = None
    template_id: str | None = None
    host_pin: str | None = None
    guest_pin: str | None = None
    host_pin_required: bool | None = None
    guest_pin_required: bool | None = None
    max_participants: int | None = None
    guest_microphone: GuestMicrophone | None = None
    guests_wait_for_host: bool | None = None
    external_id: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Booking:
    """A meeting with its secrets in clear: only ever the answer to the call that made them."""

    meeting: Meeting
    host_link: str
    guest_link: str
    host_pin: str | None
    guest_pin: str | None
    sip_uri: str


@dataclass(frozen=True)
class ResolvedLink:
    meeting: Meeting
    role: Role


class BookingService:
    def __init__(self, meetings: MeetingStore, directory: Directory, policy: BookingPolicy,
                 pins: PinHasher) -> None:
        self._meetings = meetings
        self._directory = directory
        self._policy = policy
        self._pins = pins

    @property
    def policy(self) -> BookingPolicy:
        return self._policy

    def link_for(self, token: str) -> str:
        return f"{self._policy.public_url}{LINK_PATH}{token}"

    def sip_uri(self, alias: str) -> str:
        return f"sip:{alias}@{self._policy.sip_domain}"

    async def book(self, principal: Principal, request: BookingRequest, now: datetime) -> Booking:
        for field_name in ("subject", "description", "external_id"):
            value = getattr(request, field_name)
            if value is not None:
                ensure_no_cpr(value, field_name)
        for label in request.labels:
            ensure_no_cpr(label, "labels")
        organizer = principal
        if request.organizer_email is not None:
            try:
                organizer = await self._directory.user_by_email(request.organizer_email)
            except NotFound:
                raise InvalidInput("organizer_email is not a user of this organisation.") from None
            if organizer.org_id != principal.org_id:
                raise InvalidInput("organizer_email is not a user of this organisation.")
            principal.ensure_can_book_for(organizer.user_id)
        template = await self._meetings.template(principal.org_id, request.template_id)
        start, end, open_before, close_after = self._window(request, template, now)
        host_pin, guest_pin = self._pins_for(request, template)
        base = Meeting(
            id=str(uuid.uuid4()), org_id=principal.org_id, organizer_id=organizer.user_id,
            created_by_id=principal.user_id, kind=request.kind, subject=request.subject,
            alias="", start_time=start, end_time=end, open_before=open_before,
            close_after=close_after,
            guest_microphone=request.guest_microphone
            or (template.guest_microphone if template else GuestMicrophone.ON),
            guests_wait_for_host=_first_set(
                request.guests_wait_for_host,
                template.guests_wait_for_host if template else None,
                self._policy.guests_wait_for_host),
            created_at=now, description=request.description, external_id=request.external_id,
            labels=request.labels, template_id=template.id if template else None,
            max_participants=request.max_participants
            or (template.max_participants if template else None),
            host_pin_digest=self._pins.digest(host_pin) if host_pin else None,
            guest_pin_digest=self._pins.digest(guest_pin) if guest_pin else None,
        )
        return await self._store_new(base, host_pin, guest_pin)

    async def _store_new(self, base: Meeting, host_pin: str | None,
                         guest_pin: str | None) -> Booking:
        tokens = {Role.HOST: new_token(), Role.GUEST: new_token()}
        digests = {role: token_digest(token) for role, token in tokens.items()}
        for _ in range(_ALIAS_ATTEMPTS):
            meeting = replace(base, alias=new_numeric_alias())
            try:
                await self._meetings.insert(meeting, digests)
            except AliasTaken:
                continue
            return Booking(meeting, self.link_for(tokens[Role.HOST]),
                           self.link_for(tokens[Role.GUEST]), host_pin, guest_pin,
                           self.sip_uri(meeting.alias))
        raise Conflict("Could not allocate a room alias; try again.")

    def _window(self, request: BookingRequest, template: SchedulingTemplate | None,
                now: datetime) -> tuple[datetime | None, datetime | None, timedelta, timedelta]:
        open_before = template.open_before if template else self._policy.open_before
        close_after = template.close_after if template else self._policy.close_after
        if request.kind is RoomKind.PERMANENT:
            if request.start_time or request.end_time:
                raise InvalidInput("A permanent room has no start or end time.")
            return None, None, timedelta(0), timedelta(0)
        if request.kind in (RoomKind.INSTANT, RoomKind.WAITING_ROOM):
            if request.start_time is not None:
                raise InvalidInput("An instant meeting starts now; leave start_time out.")
            start = now
            end = request.end_time or now + self._policy.instant_duration
            open_before = timedelta(0)
        else:
            if request.start_time is None or request.end_time is None:
                raise InvalidInput("A planned meeting needs start_time and end_time.")
            start, end = request.start_time, request.end_time
        self._check_times(start, end, now)
        return start, end, open_before, close_after

    def _check_times(self, start: datetime, end: datetime, now: datetime) -> None:
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput("Times need a UTC offset, e.g. 2026-11-22T10:00:00+01:00.")
        if end <= start:
            raise InvalidInput("end_time must be after start_time.")
        if end - start > self._policy.max_duration:
            hours = self._policy.max_duration.total_seconds() / 3600
            raise InvalidInput(f"A meeting may last at most {hours:g} hours.")
        if end <= now:
            raise InvalidInput("end_time is in the past.")

    def _pins_for(self, request: BookingRequest,
                  template: SchedulingTemplate | None) -> tuple[str | None, str | None]:
        length = template.pin_length if template else 6
        host_required = _first_set(request.host_pin_required,
                                   template.host_pin_required if template else None, False)
        guest_required = _first_set(request.guest_pin_required,
                                    template.guest_pin_required if template else None, False)
        host_pin = request.host_pin or (new_pin(length) if host_required else None)
        guest_pin = request.guest_pin or (new_pin(length) if guest_required else None)
        if guest_pin and not host_pin:
            # Pexip semantics: with only a guest PIN everybody entering it would be a guest and
            # nobody could ever host; a guest PIN implies a host PIN.
            host_pin = new_pin(length)
        if host_pin and guest_pin and host_pin == guest_pin:
            raise InvalidInput("host_pin and guest_pin must differ.")
        return host_pin, guest_pin

    # Reading

    async def get(self, principal: Principal, meeting_id: str) -> Meeting:
        meeting = await self._meetings.get(meeting_id)
        principal.ensure_can_see(meeting.org_id, (meeting.organizer_id, meeting.created_by_id),
                                 "meeting")
        return meeting

    async def list(self, principal: Principal, f: MeetingFilter) -> list[Meeting]:
        if f.org_id != principal.org_id:
            raise NotFound("No such organisation.")
        if not principal.is_planner:
            f = replace(f, organizer_id=principal.user_id)
        return await self._meetings.list(f)

    # Changing

    async def update(self, principal: Principal, meeting_id: str, now: datetime, *,
                     live: bool, end_time: datetime | None = None, subject: str | None = None,
                     description: str | None = None) -> Meeting:
        meeting = await self.get(principal, meeting_id)
        status = meeting.status_at(now, live=live)
        values: dict[str, object] = {}
        if subject is not None or description is not None:
            if status is not MeetingStatus.SCHEDULED:
                raise Conflict("Subject and description can only change before the room opens.")
            if subject is not None:
                values["subject"] = ensure_no_cpr(subject, "subject")
            if description is not None:
                values["description"] = ensure_no_cpr(description, "description")
        if end_time is not None:
            values["end_time"] = self.extended_end(meeting, end_time, now, live=live)
        if not values:
            raise InvalidInput("Nothing to change.")
        return await self._meetings.update(meeting.id, **values)

    def extended_end(self, meeting: Meeting, end_time: datetime, now: datetime, *,
                     live: bool) -> datetime:
        """Validate a new end time: only later, only while the meeting can still happen."""
        status = meeting.status_at(now, live=live)
        if meeting.kind is RoomKind.PERMANENT:
            raise Conflict("A permanent room has no end time.")
        if status in (MeetingStatus.ENDED, MeetingStatus.CANCELLED):
            raise Conflict(f"The meeting is {status.value}.")
        assert meeting.start_time is not None and meeting.end_time is not None
        if end_time <= meeting.end_time:
            raise InvalidInput("The end time can only be extended (moved later).")
        self._check_times(meeting.start_time, end_time, now)
        return end_time

    async def extend(self, meeting: Meeting, end_time: datetime, now: datetime, *,
                     live: bool) -> Meeting:
        """A host extends from inside the room (authorised by the room, not by an API token)."""
        end = self.extended_end(meeting, end_time, now, live=live)
        return await self._meetings.update(meeting.id, end_time=end)

    async def cancel(self, principal: Principal, meeting_id: str, now: datetime, *,
                     live: bool) -> Meeting:
        meeting = await self.get(principal, meeting_id)
        status = meeting.status_at(now, live=live)
        if status is not MeetingStatus.SCHEDULED and not (
            status is MeetingStatus.OPEN and meeting.start_time and now < meeting.start_time
        ):
            raise Conflict(f"Only a meeting that has not started can be cancelled (it is "
                           f"{status.value}).")
        return await self._meetings.update(meeting.id, status=MeetingStatus.CANCELLED.value,
                                           cancelled_at=now)

    async def mark_ended(self, meeting_id: str, now: datetime, *, early: bool) -> Meeting:
        values: dict[str, object] = {"status": MeetingStatus.ENDED.value}
        if early:
            values["ended_at"] = now
        return await self._meetings.update(meeting_id, **values)

    async def rotate_links(self, principal: Principal, meeting_id: str,
                           now: datetime) -> Booking:
        meeting = await self.get(principal, meeting_id)
        if meeting.status_at(now) in (MeetingStatus.ENDED, MeetingStatus.CANCELLED):
            raise Conflict("The meeting is over; its links cannot be renewed.")
        tokens = {Role.HOST: new_token(), Role.GUEST: new_token()}
        await self._meetings.replace_links(
            meeting.id, {role: token_digest(t) for role, t in tokens.items()}, now)
        return Booking(meeting, self.link_for(tokens[Role.HOST]),
                       self.link_for(tokens[Role.GUEST]), None, None, self.sip_uri(meeting.alias))

    # Joining

    async def resolve_link(self, token: str, now: datetime) -> ResolvedLink:
        """The meeting and role a link token opens right now, or why it does not."""
        digest = token_digest(token)
        record = await self._meetings.link(digest)
        if record is None:
            raise NotFound("This link does not open any meeting.")
        meeting = record.meeting
        if record.revoked or meeting.stored_status is MeetingStatus.CANCELLED:
            raise RoomClosed("This meeting link is no longer valid.")
        status = meeting.status_at(now)
        if status is MeetingStatus.ENDED:
            raise RoomClosed("This meeting has ended.")
        if status is MeetingStatus.SCHEDULED:
            assert meeting.opens_at is not None
            raise RoomNotOpenYet(meeting.opens_at)
        return ResolvedLink(meeting, record.role)

    async def meeting_by_alias(self, alias: str) -> Meeting:
        """The meeting a dial-in alias reaches (window checks are the room's)."""
        meeting = await self._meetings.by_alias(alias)
        if meeting.stored_status in (MeetingStatus.CANCELLED, MeetingStatus.ENDED):
            raise RoomClosed("This meeting has ended.")
        return meeting

    def role_for_pin(self, meeting: Meeting, pin: str | None) -> Role | None:
        """Which role a PIN grants in this meeting (None: wrong PIN). Constant-time compares."""
        if pin is None:
            return None
        digest = self._pins.digest(pin)
        host = meeting.host_pin_digest is not None and digests_equal(digest,
                                                                     meeting.host_pin_digest)
        guest = meeting.guest_pin_digest is not None and digests_equal(digest,
                                                                       meeting.guest_pin_digest)
        if host:
            return Role.HOST
        if guest:
            return Role.GUEST
        return None


def _first_set(*values: _T | None) -> _T:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value set")
