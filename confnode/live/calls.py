"""Media connections ("calls"): the one place a licence is taken and given back.

Every transport (WebRTC, SIP, a gateway leg) starts and ends its media through ``CallLegs``, so
there is exactly one acquire and one release path to get right. A leg's licence and its call record
are written together; if writing fails the licence is handed back at once, so a store hiccup can
never leak a licence. On start-up ``recover`` hands back whatever a crashed process still held.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from confnode.booking.meeting import Meeting
from confnode.licensing import (
    GraceEntered,
    GraceExhausted,
    LicenceEvent,
    LicenceGrant,
    LicenceKind,
    LicenceLedger,
    LicenceRefusedEvent,
    PeakRaised,
)
from confnode.records.call_records import CallLegRecord, MeetingRecord
from confnode.rooms.room import RoomKind
from confnode.store.directory import Directory
from confnode.store.records import RecordStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveLeg:
    leg_id: str
    meeting_id: str
    participant_id: str
    record: CallLegRecord
    licence: LicenceGrant | None
    # How the transport tears its media down when the leg ends by another path (a host, the
    # window closing, node shutdown); None for legs without a media connection of their own.
    close_media: Callable[[], Awaitable[None]] | None = None


class CallLegs:
    def __init__(self, ledger: LicenceLedger, records: RecordStore, directory: Directory,
                 on_licence_event: Callable[[LicenceEvent], None] | None = None) -> None:
        self.ledger = ledger
        self._records = records
        self._directory = directory
        self._regions: dict[str, str] = {}
        self._on_licence_event = on_licence_event
        self._legs: dict[str, ActiveLeg] = {}

    def active(self) -> list[ActiveLeg]:
        return list(self._legs.values())

    def in_meeting(self, meeting_id: str) -> list[ActiveLeg]:
        return [leg for leg in self._legs.values() if leg.meeting_id == meeting_id]

    async def start(self, meeting: Meeting, participant_id: str, *,
                    endpoint_type: str, protocol: str, codec: str | None,
                    licence: LicenceKind | None, now: datetime,
                    close_media: Callable[[], Awaitable[None]] | None = None) -> ActiveLeg:
        """Take a licence (raising LicenceRefused when there is none) and record the leg."""
        leg_id = str(uuid.uuid4())
        region = await self._region(meeting.org_id)
        try:
            grant = self.ledger.acquire(leg_id, licence, now) if licence is not None else None
        finally:
            await self._drain(now)  # a refusal is an event too (metrics, operator log)
        record = CallLegRecord(
            leg_id=leg_id, meeting_id=meeting.id, org_id=meeting.org_id, region=region,
            room_kind=meeting.kind.value, endpoint_type=endpoint_type, protocol=protocol,
            codec=codec, licence_kind=grant.kind.value if grant else None, started_at=now,
            ended_at=None)
        leg = ActiveLeg(leg_id, meeting.id, participant_id, record, grant, close_media)
        try:
            await self._records.open_leg(
                record, grant, _meeting_record(meeting, region, now),
                active_legs=len(self.in_meeting(meeting.id)) + 1)
        except BaseException:
            if grant is not None:
                self.ledger.release(leg_id, now)
            await self._drain(now)
            raise
        self._legs[leg_id] = leg
        await self._drain(now)
        return leg

    async def _region(self, org_id: str) -> str:
        # Records carry the region as it was at the call, for the monthly regional figures.
        if org_id not in self._regions:
            self._regions[org_id] = (await self._directory.organisation(org_id)).region
        return self._regions[org_id]

    async def end(self, leg_id: str, now: datetime) -> bool:
        """Release the licence and close the record. Safe to call twice from racing exit paths."""
        leg = self._legs.pop(leg_id, None)
        if leg is None:
            return False
        self.ledger.release(leg_id, now)
        await self._drain(now)
        try:
            await self._records.close_leg(leg_id, now,
                                          meeting_over=not self.in_meeting(leg.meeting_id))
        finally:
            if leg.close_media is not None:
                try:
                    await leg.close_media()
                except Exception:
                    log.exception("closing the media of call %s failed", leg_id)
        return True

    async def set_codec(self, leg_id: str, codec: str) -> None:
        """The codec is known only once the offer is answered, after the licence was taken."""
        leg = self._legs.get(leg_id)
        if leg is not None:
            await self._records.set_leg_codec(leg_id, codec)

    async def end_participant(self, participant_id: str, now: datetime) -> int:
        legs = [leg for leg in self._legs.values() if leg.participant_id == participant_id]
        for leg in legs:
            await self.end(leg.leg_id, now)
        return len(legs)

    async def end_meeting(self, meeting_id: str, now: datetime) -> int:
        legs = self.in_meeting(meeting_id)
        for leg in legs:
            await self.end(leg.leg_id, now)
        return len(legs)

    async def end_all(self, now: datetime) -> int:
        legs = list(self._legs)
        for leg_id in legs:
            await self.end(leg_id, now)
        return len(legs)

    async def recover(self, now: datetime) -> list[LicenceGrant]:
        """Reconcile the ledger with live calls after a restart: none of the old ones are live."""
        held = await self._records.holds()
        self.ledger.restore(held, now)
        released = self.ledger.reconcile(live_call_ids=list(self._legs), now=now)
        closed = await self._records.close_orphans(now)
        await self._drain(now)
        if released or closed:
            log.warning("Recovered after restart: released %d licence(s), closed %d call leg(s)",
                        len(released), closed)
        return released

    async def tick(self, now: datetime) -> None:
        timer = self.ledger.get_timer()
        if timer is not None and timer <= now:
            self.ledger.handle_timer(now)
        else:
            self.ledger.advance(now)
        await self._drain(now)

    async def _drain(self, now: datetime) -> None:
        while (event := self.ledger.next_event()) is not None:
            if isinstance(event, PeakRaised):
                await self._records.raise_peak(event.day.isoformat(), event.kind, event.peak)
            elif isinstance(event, GraceEntered):
                log.warning("Licence grace in use: %s pool at %d of %d licensed", event.kind,
                            event.in_use, event.capacity)
            elif isinstance(event, GraceExhausted):
                log.error("Licence grace budget for today used up (%s pool)", event.kind)
            elif isinstance(event, LicenceRefusedEvent):
                log.error("Call refused: no %s licence (%s)", event.kind, event.reason)
            if self._on_licence_event is not None:
                self._on_licence_event(event)


def _meeting_record(meeting: Meeting, region: str, now: datetime) -> MeetingRecord:
    return MeetingRecord(
        meeting_id=meeting.id, org_id=meeting.org_id, region=region,
        room_kind=meeting.kind.value, booked=meeting.kind is not RoomKind.PERMANENT,
        instant=meeting.kind is RoomKind.INSTANT, started_at=now, ended_at=None,
        endpoint_count=1, peak_participants=1)
