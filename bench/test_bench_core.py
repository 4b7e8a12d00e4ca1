"""Speed of the sans-IO cores on the hot paths of a busy node (pytest-benchmark).

Run: .venv/bin/pytest bench --benchmark-only --benchmark-autosave
Compare runs: .venv/bin/pytest-benchmark compare --group-by=name
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pytest_benchmark.fixture import BenchmarkFixture

from confnode.licensing import GracePolicy, LicenceKind, LicenceLedger
from confnode.rooms import EndpointType, MediaKind, Role, Room, RoomKind, RoomWindow
from confnode.security.capability import PinHasher, new_token, token_digest
from confnode.security.personal_data import ensure_no_cpr_in

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_ledger_acquire_release_at_250_calls(benchmark: BenchmarkFixture) -> None:
    """One call joining and leaving a node that already holds 249 port licences."""
    ledger = LicenceLedger({LicenceKind.PORT: 250, LicenceKind.AUDIO: 50}, GracePolicy())
    for i in range(249):
        ledger.acquire(f"held-{i}", LicenceKind.PORT, NOW)
    tick = [NOW]

    def cycle() -> None:
        tick[0] += timedelta(milliseconds=1)
        ledger.acquire("bench", LicenceKind.PORT, tick[0])
        ledger.release("bench", tick[0])
        while ledger.next_event() is not None:
            pass

    benchmark(cycle)
    assert ledger.in_use(LicenceKind.PORT) == 249


def test_room_join_leave_with_50_present(benchmark: BenchmarkFixture) -> None:
    window = RoomWindow(NOW, NOW + timedelta(hours=1))
    room = Room("r", RoomKind.SCHEDULED, "1234567890", window)
    room.join("host", "Læge", Role.HOST, EndpointType.WEBRTC, "webrtc", [MediaKind.AUDIO], NOW)
    for i in range(49):
        room.join(f"g{i}", f"g{i}", Role.GUEST, EndpointType.WEBRTC, "webrtc",
                  [MediaKind.AUDIO, MediaKind.VIDEO], NOW)

    def cycle() -> None:
        room.join("x", "x", Role.GUEST, EndpointType.SIP, "sip", [MediaKind.AUDIO], NOW)
        room.leave("x", NOW)
        while room.next_event() is not None:
            pass

    benchmark(cycle)
    assert room.connected_count == 50


def test_capability_token_issue_and_digest(benchmark: BenchmarkFixture) -> None:
    benchmark(lambda: token_digest(new_token()))


def test_pin_digest(benchmark: BenchmarkFixture) -> None:
    hasher = PinHasher(b"k" * 32)
    benchmark(hasher.digest, "482913")


def test_cpr_guard_on_a_booking_body(benchmark: BenchmarkFixture) -> None:
    body = {"subject": "Videokonsultation med opfølgning", "description": "x" * 400,
            "start_time": "2026-11-23T10:00:00+01:00", "end_time": "2026-11-23T10:15:00+01:00",
            "labels": ["almen praksis", "opfølgning"], "external_id": "PMS-20261123-0042"}
    benchmark(ensure_no_cpr_in, body)
