"""Call records: what happened on the node, with no personal data.

MedCom's monitoring needs consultations, conferences, minutes, instant meetings, app calls and
peak concurrency per practice, region and month — and nothing about who talked. So a record holds
only opaque ids, the organisation and region, and technical kinds: no names, no CPR numbers, no
addresses, no IPs, no free text. Anything that could carry personal data is simply not a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from confnode.errors import InvalidInput

# Plain strings rather than the rooms' enum so records stay importable on their own (an archive
# reader needs no room code); the values match ``RoomKind``.
ROOM_KINDS = frozenset({"scheduled", "instant", "permanent", "waiting_room"})
ENDPOINT_TYPES = frozenset({"webrtc", "sip", "phone", "app", "api"})
# Pexip-style licences: "port" for a call with video, "audio" for audio-only; None for a
# control-only participant (e.g. the API), which takes no licence and no media.
LICENCE_KINDS = frozenset({"port", "audio"})

MAX_ID_LENGTH = 128


def _check_id(name: str, value: str) -> None:
    # Ids end up in CSV files opened in spreadsheets and in logs: keep them single-line.
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise InvalidInput(f"{name} must be 1 to {MAX_ID_LENGTH} printable characters.")


def _check_interval(started_at: datetime, ended_at: datetime | None) -> None:
    for value in (started_at, ended_at):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InvalidInput("Record timestamps must be timezone-aware.")
    if ended_at is not None and ended_at < started_at:
        raise InvalidInput("A record cannot end before it started.")


def _check_room_kind(room_kind: str) -> None:
    if room_kind not in ROOM_KINDS:
        raise InvalidInput("Unknown room kind.", room_kind=room_kind)


@dataclass(frozen=True)
class CallLegRecord:
    """One endpoint's connection to one meeting; a gateway call is two legs."""

    leg_id: str
    meeting_id: str
    org_id: str
    region: str
    room_kind: str
    endpoint_type: str
    protocol: str
    codec: str | None
    licence_kind: str | None
    started_at: datetime
    ended_at: datetime | None

    def __post_init__(self) -> None:
        for name in ("leg_id", "meeting_id", "org_id", "region", "protocol"):
            _check_id(name, getattr(self, name))
        if self.codec is not None:
            _check_id("codec", self.codec)
        _check_room_kind(self.room_kind)
        if self.endpoint_type not in ENDPOINT_TYPES:
            raise InvalidInput("Unknown endpoint type.", endpoint_type=self.endpoint_type)
        if self.licence_kind is not None and self.licence_kind not in LICENCE_KINDS:
            raise InvalidInput("Unknown licence kind.", licence_kind=self.licence_kind)
        _check_interval(self.started_at, self.ended_at)

    @property
    def carries_media(self) -> bool:
        """Whether the leg held a licence, i.e. counts towards concurrent calls."""
        return self.licence_kind is not None

    @property
    def duration(self) -> timedelta | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class MeetingRecord:
    """One meeting from first join to last leave.

    ``endpoint_count`` counts distinct endpoints that joined over the meeting's life (what MedCom
    classifies on); ``peak_participants`` the most that were in it at once.
    """

    meeting_id: str
    org_id: str
    region: str
    room_kind: str
    booked: bool
    instant: bool
    started_at: datetime
    ended_at: datetime | None
    endpoint_count: int
    peak_participants: int

    def __post_init__(self) -> None:
        for name in ("meeting_id", "org_id", "region"):
            _check_id(name, getattr(self, name))
        _check_room_kind(self.room_kind)
        _check_interval(self.started_at, self.ended_at)
        if self.endpoint_count < 0 or self.peak_participants < 0:
            raise InvalidInput("Endpoint and participant counts cannot be negative.")

    @property
    def duration(self) -> timedelta | None:
        return None if self.ended_at is None else self.ended_at - self.started_at
