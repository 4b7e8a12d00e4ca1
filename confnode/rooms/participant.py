"""One participant of a room, independent of how it reached the node.

A participant is described by what the room needs to decide about it — role, endpoint type,
protocol, media — never by its transport. WebRTC, SIP, a phone leg or a practice system's control
connection all enter the room the same way, the way aiortc's codecs plug into one sender
interface. The room owns a mutable ``Participant`` record per participant and hands out frozen
``ParticipantView`` snapshots, so nothing outside the room can change its state behind its back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    # Pexip calls the host "chair"; a host is never held in the lobby and may moderate.
    HOST = "host"
    GUEST = "guest"


class EndpointType(StrEnum):
    WEBRTC = "webrtc"
    SIP = "sip"
    PHONE = "phone"
    APP = "app"
    # Control-only (e.g. a practice system steering the meeting): no media, takes no licence and
    # no seat in ``max_participants``.
    API = "api"


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    PRESENTATION = "presentation"


class ParticipantState(StrEnum):
    WAITING = "waiting"  # in the lobby: sees the roster, exchanges no media with the meeting
    CONNECTED = "connected"
    LEFT = "left"


class WaitingReason(StrEnum):
    """Why a guest is in the lobby; shown to the guest ("waiting for the doctor" vs "locked")."""

    HOST_ABSENT = "host_absent"
    LOCKED = "locked"


@dataclass(frozen=True)
class ParticipantView:
    """A participant as everyone in the room may see it (the roster is public to all)."""

    participant_id: str
    display_name: str
    role: Role
    endpoint_type: EndpointType
    protocol: str  # e.g. "webrtc", "sip/tls", "pstn"; informational, for records and roster icons
    media: frozenset[MediaKind]
    state: ParticipantState
    muted: bool
    waiting_reason: WaitingReason | None
    joined_at: datetime
    # The endpoint put the call on hold (SIP re-INVITE, RFC 3264 §8.4): still in the room and
    # still holding its licence, but neither heard nor sent anything until it resumes.
    on_hold: bool = False

    @property
    def control_only(self) -> bool:
        return self.endpoint_type is EndpointType.API


@dataclass
class Participant:
    """The room's own mutable record of one participant; only ``Room`` changes it."""

    participant_id: str
    display_name: str
    role: Role
    endpoint_type: EndpointType
    protocol: str
    media: frozenset[MediaKind]
    joined_at: datetime
    state: ParticipantState = ParticipantState.CONNECTED
    muted: bool = False
    waiting_reason: WaitingReason | None = None
    # When the current waiting_reason began: the host-wait timeout counts from here, so a guest
    # who first waited on the lock and then lost the host gets the full timeout for the host.
    waiting_since: datetime | None = None
    on_hold: bool = False

    @property
    def control_only(self) -> bool:
        return self.endpoint_type is EndpointType.API

    def view(self) -> ParticipantView:
        return ParticipantView(
            participant_id=self.participant_id,
            display_name=self.display_name,
            role=self.role,
            endpoint_type=self.endpoint_type,
            protocol=self.protocol,
            media=self.media,
            state=self.state,
            muted=self.muted,
            waiting_reason=self.waiting_reason,
            joined_at=self.joined_at,
            on_hold=self.on_hold,
        )
