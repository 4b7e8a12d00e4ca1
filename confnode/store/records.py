"""Call records, licence holds and daily licence peaks.

Holds and legs are written in the same transaction as each other, so after a crash the store never
shows a licence without its call leg or the other way round; restart reconciliation relies on it.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row

from confnode.licensing import LicenceGrant, LicenceKind
from confnode.records.call_records import CallLegRecord, MeetingRecord
from confnode.records.statistics import MonthStatistics, monthly_statistics
from confnode.store.database import Database
from confnode.store.schema import call_legs, licence_holds, licence_peaks, meeting_records


def _leg(row: Row[Any]) -> CallLegRecord:
    return CallLegRecord(
        leg_id=row.leg_id, meeting_id=row.meeting_id, org_id=row.org_id, region=row.region,
        room_kind=row.room_kind, endpoint_type=row.endpoint_type, protocol=row.protocol,
        codec=row.codec, licence_kind=row.licence_kind, started_at=row.started_at,
        ended_at=row.ended_at)


def _meeting_record(row: Row[Any]) -> MeetingRecord:
    return MeetingRecord(
        meeting_id=row.meeting_id, org_id=row.org_id, region=row.region,
        room_kind=row.room_kind, booked=row.booked, instant=row.instant,
        started_at=row.started_at, ended_at=row.ended_at, endpoint_count=row.endpoint_count,
        peak_participants=row.peak_participants)


class RecordStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def open_leg(self, leg: CallLegRecord, grant: LicenceGrant | None,
                       meeting: MeetingRecord, active_legs: int) -> None:
        """Record a new leg, its licence hold and the meeting's first start / endpoint count."""
        async with self._db.begin() as conn:
            await conn.execute(call_legs.insert().values(**_leg_values(leg)))
            if grant is not None:
                await conn.execute(licence_holds.insert().values(
                    call_id=grant.call_id, kind=grant.kind.value,
                    requested=grant.requested.value, in_grace=grant.in_grace,
                    acquired_at=grant.acquired_at))
            existing = (await conn.execute(meeting_records.select().where(
                meeting_records.c.meeting_id == meeting.meeting_id))).one_or_none()
            if existing is None:
                await conn.execute(meeting_records.insert().values(
                    meeting_id=meeting.meeting_id, org_id=meeting.org_id, region=meeting.region,
                    room_kind=meeting.room_kind, booked=meeting.booked, instant=meeting.instant,
                    started_at=meeting.started_at, ended_at=None, endpoint_count=1,
                    peak_participants=active_legs))
            else:
                await conn.execute(meeting_records.update().where(
                    meeting_records.c.meeting_id == meeting.meeting_id).values(
                    ended_at=None, endpoint_count=existing.endpoint_count + 1,
                    peak_participants=max(existing.peak_participants, active_legs)))

    async def close_leg(self, leg_id: str, now: datetime, *, meeting_over: bool) -> None:
        """End a leg and release its hold; close the meeting record when nobody is left."""
        async with self._db.begin() as conn:
            meeting_id = await conn.scalar(select(call_legs.c.meeting_id)
                                           .where(call_legs.c.leg_id == leg_id))
            await conn.execute(update(call_legs).where(
                call_legs.c.leg_id == leg_id, call_legs.c.ended_at.is_(None)).values(ended_at=now))
            await conn.execute(delete(licence_holds).where(licence_holds.c.call_id == leg_id))
            if meeting_over and meeting_id is not None:
                await conn.execute(update(meeting_records).where(
                    meeting_records.c.meeting_id == meeting_id).values(ended_at=now))

    async def set_leg_codec(self, leg_id: str, codec: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(update(call_legs).where(call_legs.c.leg_id == leg_id)
                               .values(codec=codec[:32]))

    async def holds(self) -> list[LicenceGrant]:
        async with self._db.connect() as conn:
            rows = (await conn.execute(licence_holds.select())).all()
        return [LicenceGrant(call_id=r.call_id, kind=LicenceKind(r.kind),
                             requested=LicenceKind(r.requested), in_grace=r.in_grace,
                             acquired_at=r.acquired_at) for r in rows]

    async def close_orphans(self, now: datetime) -> int:
        """After a restart: no call of the old process is live, so every open leg ends now."""
        async with self._db.begin() as conn:
            open_meetings = select(call_legs.c.meeting_id).where(call_legs.c.ended_at.is_(None))
            await conn.execute(update(meeting_records).where(
                meeting_records.c.meeting_id.in_(open_meetings),
                meeting_records.c.ended_at.is_(None)).values(ended_at=now))
            result = await conn.execute(update(call_legs).where(
                call_legs.c.ended_at.is_(None)).values(ended_at=now))
            await conn.execute(delete(licence_holds))
        return result.rowcount

    async def raise_peak(self, day: str, kind: LicenceKind, peak: int) -> None:
        insert = pg_insert if self._db.dialect.name == "postgresql" else sqlite_insert
        statement = insert(licence_peaks).values(day=day, kind=kind.value, peak=peak)
        statement = statement.on_conflict_do_update(
            index_elements=[licence_peaks.c.day, licence_peaks.c.kind],
            set_={"peak": func.max(licence_peaks.c.peak, statement.excluded.peak)}
            if self._db.dialect.name == "sqlite"
            else {"peak": func.greatest(licence_peaks.c.peak, statement.excluded.peak)})
        async with self._db.begin() as conn:
            await conn.execute(statement)

    async def peaks(self, since_day: str | None = None) -> list[tuple[str, str, int]]:
        query = select(licence_peaks.c.day, licence_peaks.c.kind, licence_peaks.c.peak)
        if since_day is not None:
            query = query.where(licence_peaks.c.day >= since_day)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query.order_by(licence_peaks.c.day,
                                                      licence_peaks.c.kind))).all()
        return [(r.day, r.kind, r.peak) for r in rows]

    async def records_between(self, start: datetime, end: datetime,
                              ) -> tuple[list[MeetingRecord], list[CallLegRecord]]:
        """Meetings that started in [start, end) and every leg that overlaps it (for peaks)."""
        async with self._db.connect() as conn:
            meeting_rows = (await conn.execute(meeting_records.select().where(
                meeting_records.c.started_at >= start,
                meeting_records.c.started_at < end))).all()
            leg_rows = (await conn.execute(call_legs.select().where(
                call_legs.c.started_at < end,
                (call_legs.c.ended_at.is_(None)) | (call_legs.c.ended_at > start)))).all()
        return [_meeting_record(r) for r in meeting_rows], [_leg(r) for r in leg_rows]

    async def purge_before(self, cutoff: datetime) -> int:
        """Retention: drop records of meetings that started before ``cutoff``."""
        async with self._db.begin() as conn:
            await conn.execute(delete(call_legs).where(call_legs.c.ended_at.is_not(None),
                                                       call_legs.c.started_at < cutoff))
            result = await conn.execute(delete(meeting_records).where(
                meeting_records.c.started_at < cutoff, meeting_records.c.ended_at.is_not(None)))
        return result.rowcount


def _leg_values(leg: CallLegRecord) -> dict[str, Any]:
    return dict(leg_id=leg.leg_id, meeting_id=leg.meeting_id, org_id=leg.org_id,
                region=leg.region, room_kind=leg.room_kind, endpoint_type=leg.endpoint_type,
                protocol=leg.protocol, codec=leg.codec, licence_kind=leg.licence_kind,
                started_at=leg.started_at, ended_at=leg.ended_at)


async def month_statistics(store: RecordStore, year: int, month: int, tz: tzinfo,
                           until: datetime) -> MonthStatistics:
    """The MedCom monthly figures for every organisation, from the stored records."""
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    meetings, legs = await store.records_between(start.astimezone(UTC), end.astimezone(UTC))
    return monthly_statistics(meetings, legs, year, month, tz=tz, until=until)
