"""Entering a room by link or alias: roles from links and PINs, lobby, brute-force limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import ManualClock

from confnode.booking.service import Booking, BookingRequest
from confnode.errors import PinInvalid, PinLockedOut, PinRequired, RoomClosed, RoomNotOpenYet
from confnode.node import Node
from confnode.rooms import EndpointType, MediaKind, ParticipantState, Role, RoomKind

MEDIA = [MediaKind.AUDIO, MediaKind.VIDEO]


async def booking(node: Node, **kwargs: object) -> Booking:
    principal = await node.directory.user_by_email("admin@localhost")
    request = BookingRequest(subject="Konsultation", kind=RoomKind.INSTANT,
                             **kwargs)  # type: ignore[arg-type]
    return await node.bookings.book(principal, request, node.now())


def token(link: str) -> str:
    return link.rsplit("/", 1)[1]


async def enter(node: Node, address: str, pin: str | None = None, source: str = "10.0.0.1",
                name: str = "Patient"):
    return await node.admission.enter(address, display_name=name, pin=pin, source=source,
                                      endpoint_type=EndpointType.WEBRTC, protocol="webrtc",
                                      media=MEDIA, now=node.now())


async def test_links_without_pins_give_their_roles_and_the_lobby_holds_guests(node: Node) -> None:
    b = await booking(node)
    patient = await enter(node, token(b.guest_link))
    assert patient.participant.role is Role.GUEST
    assert patient.participant.state is ParticipantState.WAITING
    doctor = await enter(node, token(b.host_link), name="Læge")
    assert doctor.participant.role is Role.HOST
    live = node.rooms.get(b.meeting.id)
    assert live is not None
    states = {p.display_name: p.state for p in live.room.participants()}
    assert states == {"Patient": ParticipantState.CONNECTED, "Læge": ParticipantState.CONNECTED}


async def test_pins_decide_roles(node: Node) -> None:
    b = await booking(node, host_pin="1111", guest_pin="2222")
    with pytest.raises(PinRequired):
        await enter(node, token(b.guest_link))
    assert (await enter(node, token(b.guest_link), "2222")).participant.role is Role.GUEST
    assert (await enter(node, token(b.guest_link), "1111")).participant.role is Role.HOST
    with pytest.raises(PinInvalid):
        await enter(node, token(b.host_link), "2222")  # a host link needs the host PIN
    assert (await enter(node, b.meeting.alias, "1111")).participant.role is Role.HOST
    assert (await enter(node, b.meeting.alias, "2222")).participant.role is Role.GUEST


async def test_host_pin_only_lets_guests_in_without_one(node: Node) -> None:
    b = await booking(node, host_pin="123456")
    assert (await enter(node, b.meeting.alias, "none")).participant.role is Role.GUEST
    assert (await enter(node, b.meeting.alias, "123456")).participant.role is Role.HOST
    with pytest.raises(PinRequired):
        await enter(node, token(b.host_link))


async def test_twenty_wrong_pins_lock_the_room_even_for_the_right_pin(
        node: Node, clock: ManualClock) -> None:
    b = await booking(node, host_pin="1111", guest_pin="2222", end_time=node.now()
                      + timedelta(hours=2))
    address = token(b.guest_link)
    for attempt in range(20):
        source = f"10.0.{attempt // 5}.{attempt}"  # spread over sources: 4 each, under 5
        with pytest.raises(PinInvalid):
            await enter(node, address, "9999", source=source)
    with pytest.raises(PinLockedOut):
        await enter(node, address, "2222", source="192.0.2.7")  # the 21st, right PIN
    clock.advance(minutes=10, seconds=1)
    assert (await enter(node, address, "2222", source="192.0.2.7")).participant.role is \
        Role.GUEST


async def test_five_wrong_pins_from_one_source_lock_that_source(node: Node) -> None:
    b = await booking(node, guest_pin="2222")
    for _ in range(5):
        with pytest.raises(PinInvalid):
            await enter(node, token(b.guest_link), "0000", source="198.51.100.1")
    with pytest.raises(PinLockedOut):
        await enter(node, token(b.guest_link), "2222", source="198.51.100.1")
    assert (await enter(node, token(b.guest_link), "2222",
                        source="198.51.100.2")).participant.role is Role.GUEST


async def test_window_and_ended_meetings(node: Node, clock: ManualClock) -> None:
    principal = await node.directory.user_by_email("admin@localhost")
    start = node.now() + timedelta(hours=1)
    planned = await node.bookings.book(principal, BookingRequest(
        subject="Senere", start_time=start, end_time=start + timedelta(minutes=15)), node.now())
    with pytest.raises(RoomNotOpenYet):
        await enter(node, planned.meeting.alias)
    with pytest.raises(RoomNotOpenYet):
        await enter(node, token(planned.guest_link))
    clock.set(start + timedelta(minutes=31))
    with pytest.raises(RoomClosed):
        await enter(node, planned.meeting.alias)


async def test_permanent_room_is_reachable_by_alias_any_time(node: Node,
                                                             clock: ManualClock) -> None:
    principal = await node.directory.user_by_email("admin@localhost")
    vmr = await node.bookings.book(principal, BookingRequest(
        subject="Dr. Hansens rum", kind=RoomKind.PERMANENT, host_pin="4321"), node.now())
    assert vmr.meeting.window is None
    clock.advance(days=200)
    assert (await enter(node, vmr.meeting.alias, "4321")).participant.role is Role.HOST
    assert (await enter(node, vmr.meeting.alias, "none")).participant.role is Role.GUEST
