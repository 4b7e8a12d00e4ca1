"""Rooms: the sans-IO meeting room model (lobby, lock, roles, window) and PIN attempt counting."""

from confnode.rooms.events import (
    EndReason,
    LeaveReason,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    RoomEnded,
    RoomEvent,
    RoomExtended,
    RoomUpdated,
)
from confnode.rooms.participant import (
    EndpointType,
    MediaKind,
    ParticipantState,
    ParticipantView,
    Role,
    WaitingReason,
)
from confnode.rooms.pin_attempts import PinAttempts
from confnode.rooms.pins import validate_pin
from confnode.rooms.room import Room, RoomKind, RoomSettings, RoomState
from confnode.rooms.window import RoomWindow, WindowState

__all__ = [
    "EndReason",
    "EndpointType",
    "LeaveReason",
    "MediaKind",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantState",
    "ParticipantUpdated",
    "ParticipantView",
    "PinAttempts",
    "Role",
    "Room",
    "RoomEnded",
    "RoomEvent",
    "RoomExtended",
    "RoomKind",
    "RoomSettings",
    "RoomState",
    "RoomUpdated",
    "RoomWindow",
    "WaitingReason",
    "WindowState",
    "validate_pin",
]
