"""``/api/v1/meetings`` and ``/api/v1/permanent-rooms``: book, list, read, extend, cancel."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BeforeValidator

from confnode.api.auth import CurrentPrincipal, node_of
from confnode.api.schemas import (
    BookingOut,
    LinksOut,
    MeetingCreate,
    MeetingOut,
    MeetingUpdate,
    PermanentRoomCreate,
)
from confnode.booking.meeting import Meeting, MeetingStatus
from confnode.booking.service import BookingRequest
from confnode.rooms import EndReason, RoomKind
from confnode.store.meetings import MeetingFilter

router = APIRouter(prefix="/api/v1", tags=["meetings"])


def _iso_only(value: object) -> object:
    """Only ISO 8601 dates: pydantic would otherwise read ``0.5`` as a Unix time."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("use an ISO 8601 date-time, e.g. 2026-11-23T10:00:00+01:00")
    return value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
MeetingTypeName = Literal["planned", "instant", "permanent", "waiting_room"]


def _out(request: Request, meeting: Meeting) -> MeetingOut:
    node = node_of(request)
    status = meeting.status_at(node.now(), live=node.rooms.is_live(meeting.id))
    return MeetingOut.of(meeting, status, node.bookings.sip_uri(meeting.alias))


@router.post("/meetings", status_code=201, response_model=BookingOut,
             summary="Book a planned or instant meeting in one call")
async def book_meeting(body: MeetingCreate, request: Request,
                       principal: CurrentPrincipal) -> BookingOut:
    node = node_of(request)
    kind = RoomKind.SCHEDULED if body.meeting_type == "planned" else RoomKind.INSTANT
    booking = await node.bookings.book(principal, BookingRequest(
        subject=body.subject, kind=kind, start_time=body.start_time, end_time=body.end_time,
        description=body.description, organizer_email=body.organizer_email,
        template_id=body.template_id, host_pin=body.host_pin, guest_pin=body.guest_pin,
        host_pin_required=body.host_pin_required, guest_pin_required=body.guest_pin_required,
        max_participants=body.max_participants, guest_microphone=body.guest_microphone,
        guests_wait_for_host=body.guests_wait_for_host, external_id=body.external_id,
        labels=tuple(body.labels)), node.now())
    node.metrics.bookings.labels(kind=kind.value).inc()
    return BookingOut.of_booking(booking, booking.meeting.status_at(node.now()))


@router.post("/permanent-rooms", status_code=201, response_model=BookingOut,
             summary="Create a permanent room (VMR) with a numeric dial-in alias")
async def create_permanent_room(body: PermanentRoomCreate, request: Request,
                                principal: CurrentPrincipal) -> BookingOut:
    node = node_of(request)
    booking = await node.bookings.book(principal, BookingRequest(
        subject=body.subject, kind=RoomKind.PERMANENT, description=body.description,
        organizer_email=body.organizer_email, host_pin=body.host_pin, guest_pin=body.guest_pin,
        host_pin_required=body.host_pin_required, guest_pin_required=body.guest_pin_required,
        max_participants=body.max_participants,
        guests_wait_for_host=body.guests_wait_for_host), node.now())
    node.metrics.bookings.labels(kind=RoomKind.PERMANENT.value).inc()
    return BookingOut.of_booking(booking, booking.meeting.status_at(node.now()))


@router.get("/meetings", response_model=list[MeetingOut], summary="List meetings")
async def list_meetings(
    request: Request,
    principal: CurrentPrincipal,
    starts_from: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    starts_before: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    meeting_type: Annotated[list[MeetingTypeName] | None, Query()] = None,
    status: Annotated[list[MeetingStatus] | None, Query()] = None,
    external_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    # Bounded: SQLite (and PostgreSQL) OFFSET is a 64-bit integer; larger values were a 500.
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[MeetingOut]:
    node = node_of(request)
    kinds = [RoomKind.SCHEDULED if t == "planned" else RoomKind(t) for t in meeting_type or ()]
    meetings = await node.bookings.list(principal, MeetingFilter(
        org_id=principal.org_id, starts_from=starts_from, starts_before=starts_before,
        kinds=kinds, external_id=external_id, limit=limit, offset=offset))
    out = [_out(request, m) for m in meetings]
    if status:
        out = [m for m in out if m.status in status]
    return out


@router.get("/meetings/{meeting_id}", response_model=MeetingOut)
async def get_meeting(meeting_id: str, request: Request,
                      principal: CurrentPrincipal) -> MeetingOut:
    return _out(request, await node_of(request).bookings.get(principal, meeting_id))


@router.patch("/meetings/{meeting_id}", response_model=MeetingOut,
              summary="Extend the end time (also while live) or change the subject before start")
async def update_meeting(meeting_id: str, body: MeetingUpdate, request: Request,
                         principal: CurrentPrincipal) -> MeetingOut:
    node = node_of(request)
    now = node.now()
    meeting = await node.bookings.update(
        principal, meeting_id, now, live=node.rooms.is_live(meeting_id),
        end_time=body.end_time, subject=body.subject, description=body.description)
    await node.rooms.booking_changed(meeting, now)
    return _out(request, meeting)


@router.delete("/meetings/{meeting_id}", response_model=MeetingOut,
               summary="Cancel a meeting that has not started; its links stop working")
async def cancel_meeting(meeting_id: str, request: Request,
                         principal: CurrentPrincipal) -> MeetingOut:
    node = node_of(request)
    now = node.now()
    meeting = await node.bookings.cancel(principal, meeting_id, now,
                                         live=node.rooms.is_live(meeting_id))
    await node.rooms.close(meeting.id, now, EndReason.CANCELLED)
    return _out(request, meeting)


@router.post("/meetings/{meeting_id}/end", response_model=MeetingOut,
             summary="End a meeting now: everyone is disconnected and the links close")
async def end_meeting(meeting_id: str, request: Request,
                      principal: CurrentPrincipal) -> MeetingOut:
    node = node_of(request)
    now = node.now()
    meeting = await node.bookings.get(principal, meeting_id)
    if node.rooms.get(meeting.id) is not None:
        await node.rooms.close(meeting.id, now, EndReason.ENDED)
    else:
        await node.bookings.mark_ended(meeting.id, now, early=True)
    return _out(request, await node.bookings.get(principal, meeting_id))


@router.post("/meetings/{meeting_id}/links", response_model=LinksOut,
             summary="Issue new host and guest links, revoking the old ones")
async def rotate_links(meeting_id: str, request: Request,
                       principal: CurrentPrincipal) -> LinksOut:
    node = node_of(request)
    booking = await node.bookings.rotate_links(principal, meeting_id, node.now())
    return LinksOut(host_link=booking.host_link, guest_link=booking.guest_link)


@router.get("/meetings/{meeting_id}/participants", summary="Who is in the room now")
async def meeting_participants(meeting_id: str, request: Request,
                               principal: CurrentPrincipal) -> list[dict[str, object]]:
    node = node_of(request)
    meeting = await node.bookings.get(principal, meeting_id)
    live = node.rooms.get(meeting.id)
    if live is None:
        return []
    # Display names are shown to the booker as in the room itself; they are never stored.
    return [{"participant_id": p.participant_id, "display_name": p.display_name,
             "role": p.role.value, "state": p.state.value, "endpoint_type": p.endpoint_type.value,
             "muted": p.muted, "on_hold": p.on_hold} for p in live.room.participants()]

