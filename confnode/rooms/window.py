"""When a booked room may be used.

VDX practice: the link opens the room 15 minutes before the booked start and keeps it open 15
minutes after the booked end; the doctor may extend the end while the meeting runs. An instant
meeting ("straks-møde") is the same window starting now with nothing before it.

The window is the half-open interval ``[opens_at, closes_at)``: at ``opens_at`` exactly the room is
open, at ``closes_at`` exactly it is closed. Half-open intervals make back-to-back windows never
overlap and make "is it open?" a single comparison on each side.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from confnode.errors import InvalidInput, RoomClosed, RoomNotOpenYet

DEFAULT_OPEN_BEFORE = timedelta(minutes=15)  # VDX template `vmrAvailableBefore`
DEFAULT_CLOSE_AFTER = timedelta(minutes=15)


def require_aware(value: datetime, name: str = "now") -> datetime:
    """Refuse naive datetimes at the door.

    Comparing naive and aware datetimes raises ``TypeError`` deep inside a comparison, and a naive
    local time silently shifts a Danish window by one or two hours; both are caller bugs best
    reported where they enter.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime.")
    return value


class WindowState(StrEnum):
    BEFORE = "before"
    OPEN = "open"
    AFTER = "after"


@dataclass(frozen=True)
class RoomWindow:
    start: datetime
    end: datetime
    open_before: timedelta = DEFAULT_OPEN_BEFORE
    close_after: timedelta = DEFAULT_CLOSE_AFTER

    def __post_init__(self) -> None:
        require_aware(self.start, "start")
        require_aware(self.end, "end")
        if self.end <= self.start:
            raise InvalidInput("A meeting must end after it starts.")
        if self.open_before < timedelta(0) or self.close_after < timedelta(0):
            raise InvalidInput("open_before and close_after must not be negative.")

    @classmethod
    def instant(
        cls, now: datetime, end: datetime, close_after: timedelta = DEFAULT_CLOSE_AFTER
    ) -> RoomWindow:
        """An instant meeting: usable from this moment, nothing to open early for."""
        return cls(start=now, end=end, open_before=timedelta(0), close_after=close_after)

    @property
    def opens_at(self) -> datetime:
        return self.start - self.open_before

    @property
    def closes_at(self) -> datetime:
        return self.end + self.close_after

    def state(self, now: datetime) -> WindowState:
        require_aware(now)
        if now < self.opens_at:
            return WindowState.BEFORE
        if now < self.closes_at:
            return WindowState.OPEN
        return WindowState.AFTER

    def check(self, now: datetime) -> None:
        """Raise unless the room may be entered at ``now``."""
        state = self.state(now)
        if state is WindowState.BEFORE:
            raise RoomNotOpenYet(self.opens_at)
        if state is WindowState.AFTER:
            raise RoomClosed("The meeting room has closed.", closed_at=self.closes_at.isoformat())

    def extended_to(self, new_end: datetime) -> RoomWindow:
        """The same window with a later booked end (VDX: PATCH of a live meeting moves endTime).

        Shortening is refused: participants were promised the booked time, and a shorter end could
        put ``closes_at`` in the past and throw everyone out mid-sentence.
        """
        require_aware(new_end, "new_end")
        if new_end <= self.end:
            raise InvalidInput(
                "A meeting can only be extended to a later end time.",
                end=self.end.isoformat(),
            )
        return replace(self, end=new_end)
