"""A booked meeting and its status lifecycle.

A meeting is the booking; its room exists only while the window is open and someone is in it. The
status a client sees is derived, not stored, from the booking, the clock and whether the room is
live, so it can never drift: only ``cancelled`` and ``ended`` (a host ended it early) are
facts that must be written down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from confnode.rooms.room import RoomKind
from confnode.rooms.window import RoomWindow, WindowState


class MeetingStatus(StrEnum):
    SCHEDULED = "scheduled"  # booked, link not usable yet
    OPEN = "open"  # inside the window, nobody connected
    LIVE = "live"  # at least one participant connected
    ENDED = "ended"  # window passed or a host ended it
    CANCELLED = "cancelled"  # cancelled before start


class GuestMicrophone(StrEnum):
    ON = "on"
    MUTED = "muted"  # guests join muted and may unmute themselves
    OFF = "off"  # guests join muted and stay muted until a host unmutes (mute guests)


@dataclass(frozen=True)
class Meeting:
    id: str
    org_id: str
    organizer_id: str
    created_by_id: str
    kind: RoomKind
    subject: str
    alias: str
    start_time: datetime | None
    end_time: datetime | None
    open_before: timedelta
    close_after: timedelta
    guest_microphone: GuestMicrophone
    guests_wait_for_host: bool
    created_at: datetime
    stored_status: MeetingStatus = MeetingStatus.SCHEDULED
    description: str | None = None
    external_id: str | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)
    template_id: str | None = None
    max_participants: int | None = None
    host_pin_digest: str | None = None
    guest_pin_digest: str | None = None
    cancelled_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def window(self) -> RoomWindow | None:
        """The booked window (None for a permanent room); the room enforces it."""
        if self.start_time is None or self.end_time is None:
            return None
        return RoomWindow(self.start_time, self.end_time, self.open_before, self.close_after)

    @property
    def opens_at(self) -> datetime | None:
        window = self.window
        return None if window is None else window.opens_at

    @property
    def closes_at(self) -> datetime | None:
        if self.ended_at is not None:
            return self.ended_at
        window = self.window
        return None if window is None else window.closes_at

    @property
    def has_pins(self) -> bool:
        return self.host_pin_digest is not None or self.guest_pin_digest is not None

    def status_at(self, now: datetime, *, live: bool = False) -> MeetingStatus:
        if self.stored_status in (MeetingStatus.CANCELLED, MeetingStatus.ENDED):
            return self.stored_status
        window = self.window
        if window is not None:
            state = window.state(now)
            if state is WindowState.BEFORE:
                return MeetingStatus.SCHEDULED
            if state is WindowState.AFTER:
                return MeetingStatus.ENDED
        return MeetingStatus.LIVE if live else MeetingStatus.OPEN
