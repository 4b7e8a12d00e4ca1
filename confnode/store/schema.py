"""Tables of the node's store (SQLAlchemy Core).

Nothing here holds personal data about patients: no names, no CPR numbers, no addresses. Secrets
(API tokens, link tokens, PINs) are kept only as digests; the clear values exist once, in the
response that created them. Staff e-mail addresses identify who booked (as VDX does).

Times are stored as timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)



class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


organisations = Table(
    "organisations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("region", String(64), nullable=False),
    # Where "call me when ready" notifications go (the practice system or patient app backend).
    Column("webhook_url", String(500)),
    # Digest of the clinic's patient-queue link token (the link patients use to take a number).
    Column("queue_digest", String(64), unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False, index=True),
    Column("label", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)

templates = Table(
    "templates",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("open_before_minutes", Integer, nullable=False),
    Column("close_after_minutes", Integer, nullable=False),
    Column("host_pin_required", Boolean, nullable=False),
    Column("guest_pin_required", Boolean, nullable=False),
    Column("pin_length", Integer, nullable=False),
    Column("max_participants", Integer),
    Column("guest_microphone", String(16), nullable=False),
    Column("guests_wait_for_host", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

meetings = Table(
    "meetings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("organizer_id", String(36), ForeignKey("users.id"), nullable=False, index=True),
    Column("created_by_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("template_id", String(36), ForeignKey("templates.id")),
    Column("kind", String(16), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("description", String(500)),
    Column("external_id", String(100)),
    Column("labels", JSON, nullable=False, default=list),
    # Never reused: the alias is unique over the whole history, not only over live rooms.
    Column("alias", String(16), nullable=False, unique=True),
    Column("start_time", UtcDateTime()),
    Column("end_time", UtcDateTime()),
    Column("open_before_s", Integer, nullable=False),
    Column("close_after_s", Integer, nullable=False),
    Column("host_pin_digest", String(64)),
    Column("guest_pin_digest", String(64)),
    Column("max_participants", Integer),
    Column("guest_microphone", String(16), nullable=False),
    Column("guests_wait_for_host", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("cancelled_at", UtcDateTime()),
    Column("ended_at", UtcDateTime()),
    # When the room closes (end + close_after, or the early end): kept so the once-a-second
    # "which meetings just ended" query is an index probe, not a scan of every booking.
    Column("closes_at", UtcDateTime()),
    Index("ix_meetings_window", "start_time", "end_time"),
    Index("ix_meetings_closing", "status", "closes_at"),
)

# Capability links. Only the SHA-256 of each token is kept. Rows outlive the room as tombstones so a
# late click gets "410 Gone" rather than "404"; they grant nothing once the meeting has ended.
links = Table(
    "links",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("meeting_id", String(36), ForeignKey("meetings.id"), nullable=False, index=True),
    Column("role", String(8), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)

meeting_records = Table(
    "meeting_records",
    metadata,
    Column("meeting_id", String(36), primary_key=True),
    Column("org_id", String(64), nullable=False, index=True),
    Column("region", String(64), nullable=False),
    Column("room_kind", String(16), nullable=False),
    Column("booked", Boolean, nullable=False),
    Column("instant", Boolean, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False, index=True),
    Column("ended_at", UtcDateTime()),
    Column("endpoint_count", Integer, nullable=False),
    Column("peak_participants", Integer, nullable=False),
)

call_legs = Table(
    "call_legs",
    metadata,
    Column("leg_id", String(36), primary_key=True),
    Column("meeting_id", String(36), nullable=False, index=True),
    Column("org_id", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("room_kind", String(16), nullable=False),
    Column("endpoint_type", String(16), nullable=False),
    Column("protocol", String(32), nullable=False),
    Column("codec", String(32)),
    Column("licence_kind", String(8)),
    Column("started_at", UtcDateTime(), nullable=False, index=True),
    Column("ended_at", UtcDateTime()),
)

# Licences held right now, so a restarted node can reconcile: whatever was held by a process that
# died is released (and its call leg closed) instead of leaking.
licence_holds = Table(
    "licence_holds",
    metadata,
    Column("call_id", String(36), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("requested", String(8), nullable=False),
    Column("in_grace", Boolean, nullable=False),
    Column("acquired_at", UtcDateTime(), nullable=False),
)

licence_peaks = Table(
    "licence_peaks",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("peak", Integer, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)
