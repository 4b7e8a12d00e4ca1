"""MedCom-style monthly statistics from call records.

The MedCom evaluation of video in Danish general practice monitored, per practice, per region and
per month: consultations, conferences, the minutes of each, instant meetings, calls made from the
patient app, and peak concurrent calls per day (the figure that sizes the licence pool). This
module derives exactly those from ``MeetingRecord`` and ``CallLegRecord`` with pure functions, so a
report for a past month is reproducible from the records alone.

Conventions (all deliberate, all tested):

- A meeting, and an app call, belongs to the calendar month in ``tz`` in which it *started*.
- Meetings that have not ended are *counted* (they happened) but contribute no minutes, and the
  means divide by the number of *ended* meetings only, so a live call never drags a mean down.
- Minutes are kept exact (whole microseconds) and only rounded — half-up, two decimals — by
  ``to_csv`` and ``to_dict``.
- Concurrency counts media legs (those holding a ``port`` or ``audio`` licence), because that is
  what the licence pool is sized on; control-only legs take no licence and are left out.
- Rows are per (organisation, region); an organisation normally lives in one region, and one that
  moved mid-month simply gets a row in each.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from confnode.errors import InvalidInput
from confnode.records.call_records import CallLegRecord, MeetingRecord

COPENHAGEN = ZoneInfo("Europe/Copenhagen")

CSV_COLUMNS = (
    "org_id",
    "region",
    "month",
    "consultations",
    "consultation_minutes",
    "mean_consultation_minutes",
    "conferences",
    "conference_minutes",
    "mean_conference_minutes",
    "unanswered",
    "instant_meetings",
    "app_calls",
    "peak_concurrent_calls",
)

_MICROSECONDS_PER_MINUTE = 60_000_000
# Cells starting with these are run as formulas by spreadsheet programs (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class MeetingClass(StrEnum):
    CONSULTATION = "consultation"
    CONFERENCE = "conference"
    UNANSWERED = "unanswered"


def classify(meeting: MeetingRecord) -> MeetingClass:
    """Classify a meeting the way the MedCom pilot counted its 517 calls.

    "503 consultations (one booked endpoint to exactly one other) and 14 conferences (more than
    two endpoints, or unbooked)". A meeting where fewer than two endpoints ever joined is a
    no-show: nobody met, so it is neither.
    """
    if meeting.endpoint_count < 2:
        return MeetingClass.UNANSWERED
    if meeting.endpoint_count == 2 and meeting.booked:
        return MeetingClass.CONSULTATION
    return MeetingClass.CONFERENCE


def daily_peak_concurrency(
    legs: Iterable[CallLegRecord],
    tz: tzinfo = COPENHAGEN,
    *,
    until: datetime | None = None,
) -> dict[date, int]:
    """Peak number of simultaneously open media legs per calendar day in ``tz``.

    A leg occupies the half-open interval ``[started_at, ended_at)``: one ending at the very
    instant another starts does not overlap it (a reconnect must not look like two calls). A leg
    crossing midnight counts on both days. A leg still open counts until ``until``; without
    ``until`` its extent is unknown and it is left out rather than guessed. Days on which no media
    leg was open are absent from the result.
    """
    if until is not None:
        until = _utc(until)
    deltas: dict[datetime, int] = defaultdict(int)
    for leg in legs:
        if not leg.carries_media:
            continue
        start = _utc(leg.started_at)
        if leg.ended_at is not None:
            end = _utc(leg.ended_at)
        elif until is not None:
            end = until
        else:
            continue
        if end <= start:
            continue
        deltas[start] += 1
        deltas[end] -= 1

    peaks: dict[date, int] = {}

    def record(day: date, count: int) -> None:
        if count > 0 and count > peaks.get(day, 0):
            peaks[day] = count

    # Netting the deltas per instant applies every end before any start at the same instant,
    # which is what the half-open intervals require.
    count = 0
    previous: datetime | None = None
    for instant in sorted(deltas):
        if previous is not None and count > 0:
            # The legs open since ``previous`` are still open across any midnight before
            # ``instant``; a midnight exactly at ``instant`` is handled by ``instant`` itself.
            day = previous.astimezone(tz).date() + timedelta(days=1)
            while _start_of_day(day, tz) < instant:
                record(day, count)
                day += timedelta(days=1)
        count += deltas[instant]
        record(instant.astimezone(tz).date(), count)
        previous = instant
    return dict(sorted(peaks.items()))


@dataclass(frozen=True)
class OrgMonthStatistics:
    org_id: str
    region: str
    month: str  # "YYYY-MM"
    consultations: int
    consultation_minutes: float  # exact; rounded only on output
    mean_consultation_minutes: float | None  # None when no consultation has ended
    conferences: int
    conference_minutes: float
    mean_conference_minutes: float | None
    unanswered: int
    instant_meetings: int
    app_calls: int
    peak_concurrent_calls: int
    daily_peaks: dict[date, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionMonthStatistics:
    region: str
    month: str
    organisations: int
    active_organisations: int
    consultations: int
    consultation_minutes: float
    mean_consultation_minutes: float | None
    conferences: int
    conference_minutes: float
    mean_conference_minutes: float | None
    unanswered: int
    instant_meetings: int
    app_calls: int
    # Peaks are measured over the region's own legs, not summed from its practices: two
    # practices peaking at different hours do not make a higher regional peak.
    peak_concurrent_calls: int
    daily_peaks: dict[date, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MonthStatistics:
    """A month's report: practice rows, region rollups and the node's totals."""

    month: str
    timezone: str
    organisations: tuple[OrgMonthStatistics, ...]
    regions: tuple[RegionMonthStatistics, ...]
    active_organisations: int  # with at least one consultation or conference
    consultations: int
    consultation_minutes: float
    mean_consultation_minutes: float | None
    conferences: int
    conference_minutes: float
    mean_conference_minutes: float | None
    unanswered: int
    instant_meetings: int
    app_calls: int
    peak_concurrent_calls: int
    daily_peaks: dict[date, int] = field(default_factory=dict)


@dataclass
class _Tally:
    """Mutable accumulator while building a report; durations stay exact as timedeltas."""

    consultations: int = 0
    consultation_time: timedelta = timedelta()
    ended_consultations: int = 0
    conferences: int = 0
    conference_time: timedelta = timedelta()
    ended_conferences: int = 0
    unanswered: int = 0
    instant_meetings: int = 0
    app_calls: int = 0

    def add_meeting(self, meeting: MeetingRecord) -> None:
        kind = classify(meeting)
        duration = meeting.duration
        if kind is MeetingClass.CONSULTATION:
            self.consultations += 1
            if duration is not None:
                self.consultation_time += duration
                self.ended_consultations += 1
        elif kind is MeetingClass.CONFERENCE:
            self.conferences += 1
            if duration is not None:
                self.conference_time += duration
                self.ended_conferences += 1
        else:
            self.unanswered += 1
        if meeting.instant:
            self.instant_meetings += 1

    def merge(self, other: _Tally) -> None:
        self.consultations += other.consultations
        self.consultation_time += other.consultation_time
        self.ended_consultations += other.ended_consultations
        self.conferences += other.conferences
        self.conference_time += other.conference_time
        self.ended_conferences += other.ended_conferences
        self.unanswered += other.unanswered
        self.instant_meetings += other.instant_meetings
        self.app_calls += other.app_calls

    @property
    def active(self) -> bool:
        return self.consultations + self.conferences > 0

    def figures(self) -> dict[str, Any]:
        return {
            "consultations": self.consultations,
            "consultation_minutes": _minutes(self.consultation_time),
            "mean_consultation_minutes": _mean_minutes(
                self.consultation_time, self.ended_consultations
            ),
            "conferences": self.conferences,
            "conference_minutes": _minutes(self.conference_time),
            "mean_conference_minutes": _mean_minutes(self.conference_time, self.ended_conferences),
            "unanswered": self.unanswered,
            "instant_meetings": self.instant_meetings,
            "app_calls": self.app_calls,
        }


def monthly_statistics(
    meetings: Iterable[MeetingRecord],
    legs: Iterable[CallLegRecord],
    year: int,
    month: int,
    tz: tzinfo = COPENHAGEN,
    until: datetime | None = None,
) -> MonthStatistics:
    """Build the month's report; ``until`` (normally "now") bounds legs that are still open."""
    if not 1 <= month <= 12 or not 1 <= year <= 9998:
        raise InvalidInput("No such month.", year=year, month=month)
    month_start = _start_of_day(date(year, month, 1), tz)
    next_month = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    month_end = _start_of_day(next_month, tz)
    label = f"{year:04d}-{month:02d}"

    def in_month(instant: datetime) -> bool:
        return month_start <= _utc(instant) < month_end

    def month_days(peaks: dict[date, int]) -> dict[date, int]:
        return {day: n for day, n in peaks.items() if day.year == year and day.month == month}

    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    for meeting in meetings:
        if in_month(meeting.started_at):
            tallies[(meeting.org_id, meeting.region)].add_meeting(meeting)

    # Only legs that can touch the month matter for its peaks.
    media_legs: dict[tuple[str, str], list[CallLegRecord]] = defaultdict(list)
    for leg in legs:
        if leg.endpoint_type == "app" and in_month(leg.started_at):
            tallies[(leg.org_id, leg.region)].app_calls += 1
        if leg.carries_media and _utc(leg.started_at) < month_end:
            if leg.ended_at is None or _utc(leg.ended_at) > month_start:
                media_legs[(leg.org_id, leg.region)].append(leg)

    org_peaks = {
        key: month_days(daily_peak_concurrency(group, tz, until=until))
        for key, group in media_legs.items()
    }
    for key, peaks in org_peaks.items():
        if peaks:
            # A practice whose only activity this month is a call carried over from the last.
            tallies.setdefault(key, _Tally())

    org_rows = tuple(
        OrgMonthStatistics(
            org_id=org_id,
            region=region,
            month=label,
            **tallies[(org_id, region)].figures(),
            peak_concurrent_calls=max(org_peaks.get((org_id, region), {}).values(), default=0),
            daily_peaks=org_peaks.get((org_id, region), {}),
        )
        for region, org_id in sorted((region, org_id) for org_id, region in tallies)
    )

    region_rows = []
    for region in sorted({region for _, region in tallies}):
        keys = [key for key in tallies if key[1] == region]
        total = _Tally()
        for key in keys:
            total.merge(tallies[key])
        region_legs = [leg for key in keys for leg in media_legs.get(key, [])]
        peaks = month_days(daily_peak_concurrency(region_legs, tz, until=until))
        region_rows.append(
            RegionMonthStatistics(
                region=region,
                month=label,
                organisations=len({org_id for org_id, _ in keys}),
                active_organisations=len({key[0] for key in keys if tallies[key].active}),
                **total.figures(),
                peak_concurrent_calls=max(peaks.values(), default=0),
                daily_peaks=peaks,
            )
        )

    node_total = _Tally()
    for tally in tallies.values():
        node_total.merge(tally)
    node_peaks = month_days(
        daily_peak_concurrency(
            (leg for group in media_legs.values() for leg in group), tz, until=until
        )
    )
    return MonthStatistics(
        month=label,
        timezone=str(tz),
        organisations=org_rows,
        regions=tuple(region_rows),
        active_organisations=len({org_id for (org_id, _), t in tallies.items() if t.active}),
        **node_total.figures(),
        peak_concurrent_calls=max(node_peaks.values(), default=0),
        daily_peaks=node_peaks,
    )


def to_csv(stats: MonthStatistics) -> str:
    """One row per practice, RFC 4180 (CRLF line ends), minutes with two decimals.

    Daily peaks stay out: a variable number of day columns breaks spreadsheet imports; the
    month's peak is there as ``peak_concurrent_calls``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in stats.organisations:
        writer.writerow(
            [
                _csv_text(row.org_id),
                _csv_text(row.region),
                row.month,
                row.consultations,
                _csv_minutes(row.consultation_minutes),
                _csv_minutes(row.mean_consultation_minutes),
                row.conferences,
                _csv_minutes(row.conference_minutes),
                _csv_minutes(row.mean_conference_minutes),
                row.unanswered,
                row.instant_meetings,
                row.app_calls,
                row.peak_concurrent_calls,
            ]
        )
    return buffer.getvalue()


def to_dict(stats: MonthStatistics) -> dict[str, Any]:
    """JSON-ready: dates as ISO strings, minutes rounded to two decimals, ``None`` for no mean."""

    def figures(
        row: OrgMonthStatistics | RegionMonthStatistics | MonthStatistics,
    ) -> dict[str, Any]:
        return {
            "consultations": row.consultations,
            "consultation_minutes": _round_minutes(row.consultation_minutes),
            "mean_consultation_minutes": _round_minutes(row.mean_consultation_minutes),
            "conferences": row.conferences,
            "conference_minutes": _round_minutes(row.conference_minutes),
            "mean_conference_minutes": _round_minutes(row.mean_conference_minutes),
            "unanswered": row.unanswered,
            "instant_meetings": row.instant_meetings,
            "app_calls": row.app_calls,
            "peak_concurrent_calls": row.peak_concurrent_calls,
            "daily_peaks": {day.isoformat(): n for day, n in row.daily_peaks.items()},
        }

    return {
        "month": stats.month,
        "timezone": stats.timezone,
        "totals": {"active_organisations": stats.active_organisations, **figures(stats)},
        "regions": [
            {
                "region": row.region,
                "month": row.month,
                "organisations": row.organisations,
                "active_organisations": row.active_organisations,
                **figures(row),
            }
            for row in stats.regions
        ],
        "organisations": [
            {"org_id": row.org_id, "region": row.region, "month": row.month, **figures(row)}
            for row in stats.organisations
        ],
    }


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidInput("Timestamps must be timezone-aware.")
    return instant.astimezone(UTC)


def _start_of_day(day: date, tz: tzinfo) -> datetime:
    # Compared in UTC: aware datetimes sharing one tzinfo compare by wall clock, which is wrong
    # around a DST fold.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _microseconds(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def _minutes(span: timedelta) -> float:
    return float(Fraction(_microseconds(span), _MICROSECONDS_PER_MINUTE))


def _mean_minutes(span: timedelta, count: int) -> float | None:
    if count == 0:
        return None
    return float(Fraction(_microseconds(span), _MICROSECONDS_PER_MINUTE * count))


def _round_minutes(minutes: float | None) -> float | None:
    return None if minutes is None else float(_quantize(minutes))


def _quantize(minutes: float) -> Decimal:
    # Via the float's shortest repr, so 14.125 rounds to 14.13 as a reader of the report expects,
    # not to whatever the binary fraction happens to be.
    return Decimal(repr(minutes)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _csv_minutes(minutes: float | None) -> str:
    return "" if minutes is None else f"{_quantize(minutes):.2f}"


def _csv_text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value
