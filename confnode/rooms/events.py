"""What a room tells the world, drained with ``Room.next_event()``.

The shells fan these out: the SSE stream maps them to Pexip's ``participant_create`` /
``participant_update`` / ``participant_delete`` / ``conference_update`` / ``disconnect``, the
media layer connects or detaches streams on state changes, and the call-record writer counts
minutes. Every event carries the room and the ``now`` of the call that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from confnode.rooms.participant import ParticipantView
from confnode.rooms.window import RoomWindow


class LeaveReason(StrEnum):
    """Why a participant left; when a whole room ends they leave with the room's ``EndReason``."""

    HANGUP = "hangup"
    DISCONNECTED = "disconnected"  # removed by a host or the node
    HOST_TIMEOUT = "host_timeout"  # waited for a host longer than ``host_wait_timeout``
    GUESTS_ONLY_TIMEOUT = "guests_only_timeout"  # stayed without a host past the grace


class EndReason(StrEnum):
    ENDED = "ended"  # a host (Pexip DTMF ``##``) or the booking system ended the meeting
    WINDOW_CLOSED = "window_closed"
    NODE_SHUTDOWN = "node_shutdown"
    CANCELLED = "cancelled"  # booking deleted or deprovisioned


@dataclass(frozen=True, kw_only=True)
class RoomEvent:
    room_id: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ParticipantJoined(RoomEvent):
    view: ParticipantView


@dataclass(frozen=True, kw_only=True)
class ParticipantUpdated(RoomEvent):
    """State, mute, hold, role or waiting reason changed; ``view`` is the whole new snapshot."""

    view: ParticipantView


@dataclass(frozen=True, kw_only=True)
class ParticipantLeft(RoomEvent):
    participant_id: str
    reason: str  # a LeaveReason, or the EndReason of the room that ended


@dataclass(frozen=True, kw_only=True)
class RoomUpdated(RoomEvent):
    locked: bool
    guests_muted: bool


@dataclass(frozen=True, kw_only=True)
class RoomExtended(RoomEvent):
    window: RoomWindow


@dataclass(frozen=True, kw_only=True)
class RoomEnded(RoomEvent):
    reason: str
