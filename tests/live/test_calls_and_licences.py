"""Licences through the node: taken per media connection, released on every exit path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ManualClock

from confnode.api.errors import error_response
from confnode.booking.meeting import Meeting
from confnode.booking.service import BookingRequest
from confnode.config import Settings
from confnode.errors import LicenceRefused
from confnode.licensing import LicenceKind
from confnode.node import Node
from confnode.rooms import EndpointType, MediaKind, Role, RoomKind

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
VIDEO = [MediaKind.AUDIO, MediaKind.VIDEO]


async def instant_meeting(node: Node, minutes: int = 30) -> Meeting:
    principal = await node.directory.user_by_email("admin@localhost")
    booking = await node.bookings.book(principal, BookingRequest(
        subject="Straks", kind=RoomKind.INSTANT,
        end_time=node.now() + timedelta(minutes=minutes)), node.now())
    return booking.meeting


async def join_with_media(node: Node, meeting: Meeting, pid: str, role: Role = Role.GUEST,
                          licence: LicenceKind = LicenceKind.PORT) -> str:
    await node.rooms.join(meeting, participant_id=pid, display_name=pid, role=role,
                          endpoint_type=EndpointType.WEBRTC, protocol="webrtc", media=VIDEO,
                          now=node.now())
    leg = await node.calls.start(meeting, pid, endpoint_type="webrtc",
                                 protocol="webrtc", codec="VP8", licence=licence, now=node.now())
    return leg.leg_id


@pytest.fixture
async def small_node(settings_factory: Callable[..., Settings], clock: ManualClock):
    settings = settings_factory(licences={"port": 4, "audio": 0, "grace_fraction": 0.25,
                                          "grace_hours_per_day": 1})
    async with Node(settings, clock=clock) as node:
        yield node


async def test_grace_lets_call_n_plus_one_in_and_refuses_cleanly_after(small_node: Node) -> None:
    node = small_node
    meeting = await instant_meeting(node)
    await join_with_media(node, meeting, "host", Role.HOST)
    for i in range(3):
        await join_with_media(node, meeting, f"g{i}")
    assert node.calls.ledger.in_use(LicenceKind.PORT) == 4
    await join_with_media(node, meeting, "g-grace")  # 5th: capacity 4 + ceil(25 %) = 1 grace
    report = await node.licence_report()
    assert report["pools"]["port"]["in_grace"] is True
    before = {leg.leg_id for leg in node.calls.active()}
    with pytest.raises(LicenceRefused) as refused:
        await join_with_media(node, meeting, "g-refused")
    response = error_response(refused.value)
    assert response.status_code == 503
    assert b"licence_refused" in response.body and b"No port licence" in response.body
    # Nothing else disturbed: same calls, same count.
    assert {leg.leg_id for leg in node.calls.active()} == before
    assert node.calls.ledger.in_use(LicenceKind.PORT) == 5
    metrics = (node.metrics.licence_refusals.labels(kind="port")._value.get())
    assert metrics == 1


async def test_licences_come_back_on_every_exit_path(node: Node, clock: ManualClock) -> None:
    meeting = await instant_meeting(node, minutes=10)
    await join_with_media(node, meeting, "host", Role.HOST)
    await join_with_media(node, meeting, "hangup")
    await join_with_media(node, meeting, "kicked")
    await join_with_media(node, meeting, "audio", licence=LicenceKind.AUDIO)
    ledger = node.calls.ledger
    assert ledger.in_use(LicenceKind.PORT) == 3 and ledger.in_use(LicenceKind.AUDIO) == 1

    await node.rooms.leave(meeting.id, "hangup", node.now())  # hang-up
    assert ledger.in_use(LicenceKind.PORT) == 2
    live = node.rooms.act(meeting.id)
    live.room.disconnect("kicked", "host", node.now())  # a host disconnects someone
    await node.rooms.settle(live, node.now())
    assert ledger.in_use(LicenceKind.PORT) == 1

    clock.advance(minutes=25)  # past end + 15 min: the window closes the room
    await node.tick()
    assert ledger.in_use(LicenceKind.PORT) == 0 and ledger.in_use(LicenceKind.AUDIO) == 0
    assert node.calls.active() == []
    assert await node.records.holds() == []


async def test_node_stop_releases_and_restart_reconciles(
        settings_factory: Callable[..., Settings], clock: ManualClock) -> None:
    settings = settings_factory()
    node = Node(settings, clock=clock)
    await node.start()
    meeting = await instant_meeting(node)
    await join_with_media(node, meeting, "a", Role.HOST)
    await join_with_media(node, meeting, "b")
    await node.stop()
    assert node.calls.ledger.in_use(LicenceKind.PORT) == 0

    # A crash: holds are written but the process dies without releasing them.
    crashed = Node(settings, clock=clock)
    await crashed.start()
    meeting = await instant_meeting(crashed)
    await join_with_media(crashed, meeting, "c", Role.HOST)
    assert len(await crashed.records.holds()) == 1
    await crashed.engine.dispose()  # no stop(): nothing released

    clock.advance(minutes=1)
    restarted = Node(settings, clock=clock)
    await restarted.start()
    try:
        assert await restarted.records.holds() == []
        assert restarted.calls.ledger.in_use(LicenceKind.PORT) == 0
        meetings, legs = await restarted.records.records_between(
            START - timedelta(hours=1), START + timedelta(days=1))
        assert all(leg.ended_at is not None for leg in legs) and len(legs) == 3
        assert all(m.ended_at is not None for m in meetings)
    finally:
        await restarted.stop()


async def test_daily_peak_is_recorded(node: Node) -> None:
    meeting = await instant_meeting(node)
    legs = [await join_with_media(node, meeting, f"p{i}") for i in range(3)]
    for leg in legs:
        await node.calls.end(leg, node.now())
    await join_with_media(node, meeting, "later")
    peaks = await node.records.peaks()
    assert ("2026-11-23", "port", 3) in peaks
    report = await node.licence_report()
    assert {"month": "2026-11", "kind": "port", "peak": 3} in report["monthly_peaks"]


async def test_control_only_participants_take_no_licence(node: Node) -> None:
    meeting = await instant_meeting(node)
    await node.rooms.join(meeting, participant_id="practice-system", display_name="PMS",
                          role=Role.HOST, endpoint_type=EndpointType.API, protocol="api",
                          media=[], now=node.now())
    assert node.calls.ledger.in_use(LicenceKind.PORT) == 0
    assert node.calls.ledger.in_use(LicenceKind.AUDIO) == 0
