"""The rooms that exist right now, and the glue between them, bookings and calls.

A room takes no resources until someone joins inside its window (as a Pexip VMR); it is created
from its booking on first use and dropped the moment it ends. Room events are the single source of
truth for exits: whatever removes a participant (hang-up, a host, a timeout, the window closing,
node shutdown), the ``ParticipantLeft`` event it produces ends that participant's calls, which gives
their licences back. Subscribers (the client API's event streams) get the same events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from confnode.booking.meeting import GuestMicrophone, Meeting
from confnode.booking.service import BookingService
from confnode.errors import RoomClosed
from confnode.live.calls import CallLegs
from confnode.rooms import (
    EndpointType,
    EndReason,
    MediaKind,
    ParticipantLeft,
    ParticipantView,
    Role,
    Room,
    RoomEnded,
    RoomEvent,
    RoomSettings,
    RoomState,
)

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_LIMIT = 256
RoomListener = Callable[[str, RoomEvent], None]


@dataclass
class LiveRoom:
    meeting: Meeting
    room: Room
    subscribers: set[asyncio.Queue[RoomEvent]] = field(default_factory=set)


class LiveRooms:
    def __init__(self, bookings: BookingService, calls: CallLegs) -> None:
        self._bookings = bookings
        self._calls = calls
        self._live: dict[str, LiveRoom] = {}
        self._listeners: list[RoomListener] = []

    def add_listener(self, listener: RoomListener) -> None:
        """In-process components (the media of the room) that follow every room event."""
        self._listeners.append(listener)

    def get(self, meeting_id: str) -> LiveRoom | None:
        return self._live.get(meeting_id)

    def all(self) -> list[LiveRoom]:
        return list(self._live.values())

    def is_live(self, meeting_id: str) -> bool:
        live = self._live.get(meeting_id)
        return live is not None and live.room.connected_count > 0

    def open(self, meeting: Meeting, now: datetime) -> LiveRoom:
        """The meeting's room, created on first use; refuses outside the window."""
        live = self._live.get(meeting.id)
        if live is not None:
            return live
        if meeting.status_at(now).value in ("ended", "cancelled"):
            raise RoomClosed("This meeting has ended.")
        settings = RoomSettings(
            guests_wait_for_host=meeting.guests_wait_for_host,
            max_participants=meeting.max_participants,
            guests_muted_on_join=meeting.guest_microphone is not GuestMicrophone.ON,
        )
        room = Room(meeting.id, meeting.kind, meeting.alias, meeting.window, settings)
        if meeting.window is not None:
            meeting.window.check(now)
        if meeting.guest_microphone is GuestMicrophone.OFF:
            room.mute_guests(None, now)
            room.next_event()  # the room was just made: nobody to tell
        live = LiveRoom(meeting, room)
        self._live[meeting.id] = live
        return live

    async def join(self, meeting: Meeting, *, participant_id: str, display_name: str, role: Role,
                   endpoint_type: EndpointType, protocol: str, media: Iterable[MediaKind],
                   now: datetime) -> ParticipantView:
        live = self.open(meeting, now)
        try:
            return live.room.join(participant_id, display_name, role, endpoint_type, protocol,
                                  media, now)
        finally:
            await self._drain(live, now)

    async def leave(self, meeting_id: str, participant_id: str, now: datetime,
                    reason: str = "hangup") -> None:
        live = self._live.get(meeting_id)
        if live is None:
            return
        if any(p.participant_id == participant_id for p in live.room.participants()):
            live.room.leave(participant_id, now, reason)
        await self._drain(live, now)

    def act(self, meeting_id: str) -> LiveRoom:
        """The live room for a host action; the caller acts on ``.room`` then calls ``settle``."""
        live = self._live.get(meeting_id)
        if live is None:
            raise RoomClosed("The meeting room is not active.")
        return live

    async def settle(self, live: LiveRoom, now: datetime) -> None:
        """Apply the consequences of whatever was just done to ``live.room``."""
        await self._drain(live, now)

    async def booking_changed(self, meeting: Meeting, now: datetime) -> None:
        """Carry a new end time (extension through the booking API) into the live room."""
        live = self._live.get(meeting.id)
        if live is None:
            return
        live.meeting = meeting
        window = live.room.window
        if meeting.end_time is not None and window is not None and meeting.end_time > window.end:
            live.room.extend(meeting.end_time, None, now)
        await self._drain(live, now)

    async def close(self, meeting_id: str, now: datetime, reason: EndReason) -> None:
        live = self._live.get(meeting_id)
        if live is not None and live.room.state is RoomState.OPEN:
            live.room.close(now, reason.value)
            await self._drain(live, now)

    async def close_all(self, now: datetime, reason: EndReason) -> None:
        for meeting_id in list(self._live):
            await self.close(meeting_id, now, reason)

    async def tick(self, now: datetime) -> None:
        for live in list(self._live.values()):
            timer = live.room.get_timer()
            if timer is not None and timer <= now:
                live.room.handle_timer(now)
                await self._drain(live, now)

    def subscribe(self, meeting_id: str) -> asyncio.Queue[RoomEvent]:
        live = self._live[meeting_id]
        queue: asyncio.Queue[RoomEvent] = asyncio.Queue(SUBSCRIBER_QUEUE_LIMIT)
        live.subscribers.add(queue)
        return queue

    def unsubscribe(self, meeting_id: str, queue: asyncio.Queue[RoomEvent]) -> None:
        live = self._live.get(meeting_id)
        if live is not None:
            live.subscribers.discard(queue)

    async def _drain(self, live: LiveRoom, now: datetime) -> None:
        while (event := live.room.next_event()) is not None:
            for listener in self._listeners:
                listener(live.meeting.id, event)
            if isinstance(event, ParticipantLeft):
                await self._calls.end_participant(event.participant_id, now)
            elif isinstance(event, RoomEnded):
                await self._calls.end_meeting(live.meeting.id, now)
                self._live.pop(live.meeting.id, None)
                await self._record_end(live.meeting, event.reason, now)
            for queue in list(live.subscribers):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    # A stalled event stream must not stall the room: drop it, the client
                    # reconnects and gets a fresh roster (Pexip's participant_sync).
                    live.subscribers.discard(queue)

    async def _record_end(self, meeting: Meeting, reason: str, now: datetime) -> None:
        if reason == EndReason.NODE_SHUTDOWN.value:
            return  # the booking is still valid: the room reopens when the node is back
        early = reason != EndReason.WINDOW_CLOSED.value
        if meeting.window is None:
            return  # a permanent room ends its session, not its existence
        await self._bookings.mark_ended(meeting.id, now, early=early)
        log.info("Meeting %s ended (%s)", meeting.id, reason)
