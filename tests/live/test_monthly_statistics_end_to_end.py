"""A scripted month of calls through the node reproduces hand-computed MedCom figures.

Everything goes through the real path: bookings, rooms, call legs with licences, records in
SQLite, then the statistics from the API and from ``confnode stats``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import ManualClock

from confnode.booking.principal import StaffRole
from confnode.booking.service import BookingRequest
from confnode.licensing import LicenceKind
from confnode.node import Node
from confnode.rooms import EndpointType, MediaKind, Role, RoomKind
from confnode.store.records import month_statistics


def utc(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class Scripted:
    org: str
    kind: RoomKind
    start: datetime
    legs: list[tuple[int, int]]  # (join, leave) in minutes from start


# November 2026 is UTC+1 in Copenhagen. Hand-computed expectations beside each meeting.
MONTH = [
    # Klinik A (Hovedstaden)
    Scripted("klinik-a", RoomKind.SCHEDULED, utc(3, 9), [(0, 14), (1, 13)]),  # consult 14 min
    Scripted("klinik-a", RoomKind.SCHEDULED, utc(3, 10), [(0, 8), (1, 8), (2, 7)]),  # conf 8
    Scripted("klinik-a", RoomKind.INSTANT, utc(4, 11), [(0, 10), (0, 9)]),  # consult 10, instant
    Scripted("klinik-a", RoomKind.PERMANENT, utc(5, 12), [(0, 6), (1, 6)]),  # unbooked: conf 6
    Scripted("klinik-a", RoomKind.SCHEDULED, utc(6, 13), [(0, 5)]),  # no-show: unanswered
    # Klinik B (Midtjylland)
    Scripted("klinik-b", RoomKind.SCHEDULED, utc(3, 9, 5), [(0, 20), (2, 19)]),  # consult 20
    # 31 Oct 23:30 UTC is 1 Nov 00:30 in Copenhagen: November.
    Scripted("klinik-b", RoomKind.SCHEDULED, utc(31, 23, 30, month=10), [(0, 15), (0, 15)]),
    # 31 Oct 22:30 UTC is 31 Oct 23:30 in Copenhagen: October, not counted.
    Scripted("klinik-b", RoomKind.SCHEDULED, utc(31, 22, 30, month=10), [(0, 10), (0, 10)]),
]


@pytest.fixture
def clock() -> ManualClock:
    """The node starts before the month it records (its ledger's time only moves forward)."""
    return ManualClock(utc(20, 0, month=10))


async def run_month(node: Node, clock: ManualClock) -> None:
    now = clock.now
    for org, region in (("klinik-a", "Hovedstaden"), ("klinik-b", "Midtjylland")):
        await node.directory.create_organisation(org, org, region, now)
        await node.directory.create_user(org, f"doctor@{org}.dk", StaffRole.USER, now)
    timeline: list[tuple[datetime, int, str, int, Scripted]] = []
    for index, s in enumerate(MONTH):
        for leg, (join, leave) in enumerate(s.legs):
            timeline.append((s.start + timedelta(minutes=join), 1, "join", leg, s))
            timeline.append((s.start + timedelta(minutes=leave), 0, "leave", leg, s))
        timeline.append((s.start - timedelta(minutes=1), -1, "book", index, s))
    timeline.sort(key=lambda e: (e[0], e[1]))
    meetings = {}
    for at, _order, what, n, s in timeline:
        clock.set(at)
        if what == "book":
            doctor = await node.directory.user_by_email(f"doctor@{s.org}.dk")
            request = BookingRequest(subject="Konsultation", kind=s.kind)
            if s.kind is RoomKind.SCHEDULED:
                request = BookingRequest(subject="Konsultation", kind=s.kind, start_time=s.start,
                                         end_time=s.start + timedelta(minutes=30))
            meetings[id(s)] = (await node.bookings.book(doctor, request, at)).meeting
            continue
        meeting = meetings[id(s)]
        pid = f"{meeting.id}-{n}"
        if what == "join":
            await node.rooms.join(meeting, participant_id=pid, display_name=f"p{n}",
                                  role=Role.HOST if n == 0 else Role.GUEST,
                                  endpoint_type=EndpointType.WEBRTC, protocol="webrtc",
                                  media=[MediaKind.AUDIO, MediaKind.VIDEO], now=at)
            await node.calls.start(meeting, pid, endpoint_type="webrtc", protocol="webrtc",
                                   codec="VP8", licence=LicenceKind.PORT, now=at)
        else:
            await node.rooms.leave(meeting.id, pid, at)
    clock.set(utc(30, 12))


EXPECTED_A = {"consultations": 2, "consultation_minutes": 24.0,
              "mean_consultation_minutes": 12.0, "conferences": 2, "conference_minutes": 14.0,
              "mean_conference_minutes": 7.0, "unanswered": 1, "instant_meetings": 1}
EXPECTED_B = {"consultations": 2, "consultation_minutes": 35.0,
              "mean_consultation_minutes": 17.5, "conferences": 0, "conference_minutes": 0.0,
              "mean_conference_minutes": None, "unanswered": 0, "instant_meetings": 0}


async def test_scripted_month(node: Node, clock: ManualClock, client: httpx.AsyncClient) -> None:
    await run_month(node, clock)
    stats = await month_statistics(node.records, 2026, 11, node.settings.tz, clock.now)
    rows = {row.org_id: row for row in stats.organisations}
    assert set(rows) == {"klinik-a", "klinik-b"}
    for org, expected in (("klinik-a", EXPECTED_A), ("klinik-b", EXPECTED_B)):
        for name, value in expected.items():
            assert getattr(rows[org], name) == value, (org, name)
    assert stats.active_organisations == 2
    # 3 Nov: at 09:05 UTC klinik A's two legs and klinik B's first leg overlap, and at 09:07 B's
    # second joins: 4 at once. 10:00-10:08 klinik A's conference has 3.
    day3 = datetime(2026, 11, 3).date()
    assert stats.daily_peaks[day3] == 4
    assert rows["klinik-a"].daily_peaks[day3] == 3
    assert rows["klinik-b"].daily_peaks[day3] == 2
    assert stats.peak_concurrent_calls == 4
    assert {r.region for r in stats.regions} == {"Hovedstaden", "Midtjylland"}
    # The licence ledger's own daily peak agrees.
    assert ("2026-11-03", "port", 4) in await node.records.peaks()

    # The API gives an organisation its own row only, as JSON and CSV.
    doctor = await node.directory.user_by_email("doctor@klinik-a.dk")
    token = (await node.directory.issue_token(doctor.user_id, "t", clock.now)).token
    headers = {"Authorization": f"Bearer {token}"}
    body = (await client.get("/api/v1/statistics", params={"month": "2026-11"},
                             headers=headers)).json()
    assert [o["org_id"] for o in body["organisations"]] == ["klinik-a"]
    assert body["organisations"][0]["consultation_minutes"] == 24.0
    csv = await client.get("/api/v1/statistics", params={"month": "2026-11", "format": "csv"},
                           headers=headers)
    assert csv.headers["content-type"].startswith("text/csv")
    assert "klinik-a" in csv.text and "klinik-b" not in csv.text
    bad = await client.get("/api/v1/statistics", params={"month": "2026-13"}, headers=headers)
    assert bad.status_code == 422

    # The operator's CLI reads the same store across every organisation.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "confnode.cli", "stats", "--month", "2026-11",
         "--data-dir", str(node.settings.data_dir)], capture_output=True, text=True,
        timeout=60, check=True)
    cli_stats = json.loads(result.stdout)
    assert cli_stats["totals"]["consultations"] == 4
    assert cli_stats["totals"]["conferences"] == 2
    assert cli_stats["totals"]["peak_concurrent_calls"] == 4
