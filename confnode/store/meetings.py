"""Meetings, their capability links and scheduling templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from confnode.booking.meeting import GuestMicrophone, Meeting, MeetingStatus
from confnode.booking.template import SchedulingTemplate
from confnode.errors import Conflict, NotFound
from confnode.rooms.participant import Role
from confnode.rooms.room import RoomKind
from confnode.store.database import Database
from confnode.store.schema import links, meetings, templates


class AliasTaken(Conflict):
    """The randomly drawn alias exists already (the caller draws another)."""


@dataclass(frozen=True)
class LinkRecord:
    meeting: Meeting
    role: Role
    revoked: bool


@dataclass(frozen=True)
class MeetingFilter:
    org_id: str
    organizer_id: str | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None
    kinds: Sequence[RoomKind] = ()
    external_id: str | None = None
    limit: int = 100
    offset: int = 0


def _meeting(row: Row[Any]) -> Meeting:
    return Meeting(
        id=row.id, org_id=row.org_id, organizer_id=row.organizer_id,
        created_by_id=row.created_by_id, kind=RoomKind(row.kind), subject=row.subject,
        alias=row.alias, start_time=row.start_time, end_time=row.end_time,
        open_before=timedelta(seconds=row.open_before_s),
        close_after=timedelta(seconds=row.close_after_s),
        guest_microphone=GuestMicrophone(row.guest_microphone),
        guests_wait_for_host=row.guests_wait_for_host, created_at=row.created_at,
        stored_status=MeetingStatus(row.status), description=row.description,
        external_id=row.external_id, labels=tuple(row.labels or ()), template_id=row.template_id,
        max_participants=row.max_participants, host_pin_digest=row.host_pin_digest,
        guest_pin_digest=row.guest_pin_digest, cancelled_at=row.cancelled_at,
        ended_at=row.ended_at,
    )


def _meeting_values(m: Meeting) -> dict[str, Any]:
    return dict(
        id=m.id, org_id=m.org_id, organizer_id=m.organizer_id, created_by_id=m.created_by_id,
        template_id=m.template_id, kind=m.kind.value, subject=m.subject,
        description=m.description, external_id=m.external_id, labels=list(m.labels),
        alias=m.alias, start_time=m.start_time, end_time=m.end_time,
        open_before_s=int(m.open_before.total_seconds()),
        close_after_s=int(m.close_after.total_seconds()),
        host_pin_digest=m.host_pin_digest, guest_pin_digest=m.guest_pin_digest,
        max_participants=m.max_participants, guest_microphone=m.guest_microphone.value,
        guests_wait_for_host=m.guests_wait_for_host, status=m.stored_status.value,
        created_at=m.created_at, cancelled_at=m.cancelled_at, ended_at=m.ended_at,
        closes_at=m.closes_at,
    )


def _template(row: Row[Any]) -> SchedulingTemplate:
    return SchedulingTemplate(
        id=row.id, org_id=row.org_id, name=row.name,
        open_before=timedelta(minutes=row.open_before_minutes),
        close_after=timedelta(minutes=row.close_after_minutes),
        host_pin_required=row.host_pin_required, guest_pin_required=row.guest_pin_required,
        pin_length=row.pin_length, max_participants=row.max_participants,
        guest_microphone=GuestMicrophone(row.guest_microphone),
        guests_wait_for_host=row.guests_wait_for_host, is_default=row.is_default,
        created_at=row.created_at,
    )


class MeetingStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(self, meeting: Meeting, link_digests: dict[Role, str]) -> None:
        """Store the meeting and its links atomically: either the booking exists with working
        links or nothing was written."""
        try:
            async with self._db.begin() as conn:
                await conn.execute(meetings.insert().values(**_meeting_values(meeting)))
                for role, digest in link_digests.items():
                    await conn.execute(links.insert().values(
                        digest=digest, meeting_id=meeting.id, role=role.value,
                        created_at=meeting.created_at))
        except IntegrityError as exc:
            if "alias" in str(exc.orig):
                raise AliasTaken("alias collision") from exc
            raise

    async def get(self, meeting_id: str) -> Meeting:
        async with self._db.connect() as conn:
            row = (await conn.execute(
                meetings.select().where(meetings.c.id == meeting_id))).one_or_none()
        if row is None:
            raise NotFound("No such meeting.")
        return _meeting(row)

    async def by_alias(self, alias: str) -> Meeting:
        async with self._db.connect() as conn:
            row = (await conn.execute(
                meetings.select().where(meetings.c.alias == alias))).one_or_none()
        if row is None:
            raise NotFound("No such meeting.")
        return _meeting(row)

    async def list(self, f: MeetingFilter) -> list[Meeting]:
        conditions = [meetings.c.org_id == f.org_id]
        if f.organizer_id is not None:
            conditions.append(meetings.c.organizer_id == f.organizer_id)
        if f.starts_from is not None:
            conditions.append(meetings.c.start_time >= f.starts_from)
        if f.starts_before is not None:
            conditions.append(meetings.c.start_time < f.starts_before)
        if f.kinds:
            conditions.append(meetings.c.kind.in_([k.value for k in f.kinds]))
        if f.external_id is not None:
            conditions.append(meetings.c.external_id == f.external_id)
        query = (meetings.select().where(and_(*conditions))
                 .order_by(meetings.c.start_time, meetings.c.created_at)
                 .limit(f.limit).offset(f.offset))
        async with self._db.connect() as conn:
            return [_meeting(r) for r in (await conn.execute(query)).all()]

    async def update(self, meeting_id: str, **values: Any) -> Meeting:
        async with self._db.begin() as conn:
            result = await conn.execute(
                meetings.update().where(meetings.c.id == meeting_id).values(**values))
            if result.rowcount != 1:
                raise NotFound("No such meeting.")
            row = (await conn.execute(meetings.select().where(meetings.c.id == meeting_id))).one()
            meeting = _meeting(row)
            if row.closes_at != meeting.closes_at:  # an extension or an early end moved it
                await conn.execute(meetings.update().where(meetings.c.id == meeting_id)
                                   .values(closes_at=meeting.closes_at))
        return meeting

    async def due_to_end(self, now: datetime) -> list[Meeting]:
        """Meetings whose window has passed but which are not yet marked ended."""
        async with self._db.connect() as conn:
            rows = (await conn.execute(meetings.select().where(
                meetings.c.status == MeetingStatus.SCHEDULED.value,
                meetings.c.closes_at <= now))).all()
        return [_meeting(row) for row in rows]

    async def link(self, digest: str) -> LinkRecord | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(
                select(links.c.role, links.c.revoked_at, meetings)
                .join(meetings, meetings.c.id == links.c.meeting_id)
                .where(links.c.digest == digest))).one_or_none()
        if row is None:
            return None
        return LinkRecord(_meeting(row), Role(row.role), row.revoked_at is not None)

    async def replace_links(self, meeting_id: str, link_digests: dict[Role, str],
                            now: datetime) -> None:
        """Revoke the current links and store new ones (a leaked link is made useless)."""
        async with self._db.begin() as conn:
            await conn.execute(links.update().where(
                links.c.meeting_id == meeting_id, links.c.revoked_at.is_(None))
                .values(revoked_at=now))
            for role, digest in link_digests.items():
                await conn.execute(links.insert().values(
                    digest=digest, meeting_id=meeting_id, role=role.value, created_at=now))

    # Templates

    async def insert_template(self, t: SchedulingTemplate) -> None:
        async with self._db.begin() as conn:
            if t.is_default:
                await conn.execute(templates.update().where(templates.c.org_id == t.org_id)
                                   .values(is_default=False))
            await conn.execute(templates.insert().values(
                id=t.id, org_id=t.org_id, name=t.name, is_default=t.is_default,
                open_before_minutes=int(t.open_before.total_seconds() // 60),
                close_after_minutes=int(t.close_after.total_seconds() // 60),
                host_pin_required=t.host_pin_required, guest_pin_required=t.guest_pin_required,
                pin_length=t.pin_length, max_participants=t.max_participants,
                guest_microphone=t.guest_microphone.value,
                guests_wait_for_host=t.guests_wait_for_host, created_at=t.created_at))

    async def template(self, org_id: str, template_id: str | None) -> SchedulingTemplate | None:
        """The named template, or the organisation's default when ``template_id`` is None."""
        condition = (templates.c.id == template_id if template_id is not None
                     else templates.c.is_default.is_(True))
        async with self._db.connect() as conn:
            row = (await conn.execute(templates.select().where(
                templates.c.org_id == org_id, condition))).one_or_none()
        if row is None and template_id is not None:
            raise NotFound("No such template.")
        return None if row is None else _template(row)

    async def list_templates(self, org_id: str) -> list[SchedulingTemplate]:
        async with self._db.connect() as conn:
            rows = (await conn.execute(templates.select().where(templates.c.org_id == org_id)
                                       .order_by(templates.c.name))).all()
        return [_template(r) for r in rows]

