from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.errors import (
    CapacityRefused,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RoomClosed,
    RoomNotOpenYet,
)
from confnode.rooms.events import (
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    RoomEnded,
    RoomEvent,
    RoomExtended,
    RoomUpdated,
)
from confnode.rooms.participant import (
    EndpointType,
    MediaKind,
    ParticipantState,
    ParticipantView,
    Role,
    WaitingReason,
)
from confnode.rooms.room import Room, RoomKind, RoomSettings, RoomState
from confnode.rooms.window import RoomWindow

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # booked start
END = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)  # booked end; room closes 10:45
CLOSES_AT = datetime(2026, 3, 2, 10, 45, tzinfo=UTC)
TICK = timedelta(microseconds=1)
AV = frozenset({MediaKind.AUDIO, MediaKind.VIDEO})

WAITING = ParticipantState.WAITING
CONNECTED = ParticipantState.CONNECTED
HOST_ABSENT = WaitingReason.HOST_ABSENT
LOCKED = WaitingReason.LOCKED


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def scheduled(settings: RoomSettings | None = None) -> Room:
    return Room("r1", RoomKind.SCHEDULED, "meet.4711", RoomWindow(start=T0, end=END), settings)


def permanent(settings: RoomSettings | None = None) -> Room:
    return Room("p1", RoomKind.PERMANENT, "dr.hansen", None, settings)


def join(
    room: Room,
    pid: str,
    role: Role = Role.GUEST,
    now: datetime = T0,
    endpoint: EndpointType = EndpointType.WEBRTC,
    media: Iterable[MediaKind] = AV,
) -> ParticipantView:
    return room.join(pid, f"name-{pid}", role, endpoint, "webrtc", media, now)


def drain(room: Room) -> list[RoomEvent]:
    events = []
    while (event := room.next_event()) is not None:
        events.append(event)
    return events


def lobby(room: Room) -> dict[str, tuple[ParticipantState, WaitingReason | None]]:
    return {v.participant_id: (v.state, v.waiting_reason) for v in room.participants()}


def updated_ids(events: list[RoomEvent]) -> list[str]:
    return [e.view.participant_id for e in events if isinstance(e, ParticipantUpdated)]


# --------------------------------------------------------------------------- construction


def test_permanent_rooms_have_no_window_and_others_need_one() -> None:
    with pytest.raises(InvalidInput):
        Room("x", RoomKind.PERMANENT, "a", RoomWindow(start=T0, end=END))
    with pytest.raises(InvalidInput):
        Room("x", RoomKind.SCHEDULED, "a", None)


def test_new_room_is_open_empty_and_quiet() -> None:
    room = scheduled()
    assert room.state is RoomState.OPEN
    assert room.participants() == []
    assert (room.locked, room.guests_muted, room.host_present, room.connected_count) == (
        False, False, False, 0,
    )
    assert room.next_event() is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_participants": 0},
        {"host_wait_timeout": timedelta(0)},
        {"guests_only_timeout": timedelta(seconds=-1)},
    ],
)
def test_settings_refuse_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        RoomSettings(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lobby until host


def test_guest_waits_for_host_then_is_admitted_when_host_connects() -> None:
    room = scheduled()
    guest = join(room, "g1", now=at(-10))
    assert (guest.state, guest.waiting_reason) == (WAITING, HOST_ABSENT)
    assert drain(room) == [ParticipantJoined(room_id="r1", at=at(-10), view=guest)]
    assert room.connected_count == 0

    host = join(room, "h1", Role.HOST, now=at(1))
    assert host.state is CONNECTED
    admitted = replace(guest, state=CONNECTED, waiting_reason=None)
    assert drain(room) == [
        ParticipantJoined(room_id="r1", at=at(1), view=host),
        ParticipantUpdated(room_id="r1", at=at(1), view=admitted),
    ]
    assert room.participant("g1") == admitted
    assert room.host_present and room.connected_count == 2


def test_guest_joining_while_host_present_connects_directly() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    assert join(room, "g1").state is CONNECTED


def test_without_guests_wait_for_host_guests_connect_alone() -> None:
    room = scheduled(RoomSettings(guests_wait_for_host=False))
    guest = join(room, "g1")
    assert (guest.state, guest.waiting_reason) == (CONNECTED, None)
    assert not room.host_present


def test_guests_stay_connected_when_the_host_leaves() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    drain(room)
    room.leave("h1", at(5))
    assert lobby(room) == {"g1": (CONNECTED, None)}
    assert drain(room) == [ParticipantLeft(room_id="r1", at=at(5), participant_id="h1",
                                           reason="hangup")]
    # a newcomer now waits for a host again
    assert join(room, "g2", now=at(6)).waiting_reason is HOST_ABSENT


def test_the_whole_roster_is_visible_in_join_order_including_the_lobby() -> None:
    room = scheduled()
    join(room, "g1")
    join(room, "h1", Role.HOST)
    room.lock(None, at(1))
    join(room, "g2", now=at(2))
    join(room, "api", Role.HOST, endpoint=EndpointType.API, media=())
    assert [v.participant_id for v in room.participants()] == ["g1", "h1", "g2", "api"]
    assert room.participant("g2").state is WAITING
    assert room.participant("api").media == frozenset()
    assert room.participant("api").control_only


# --------------------------------------------------------------------------- lock


def test_lock_holds_guests_but_never_hosts() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    drain(room)
    room.lock("h1", at(1))
    assert room.locked
    assert drain(room) == [RoomUpdated(room_id="r1", at=at(1), locked=True, guests_muted=False)]

    guest = join(room, "g1", now=at(2))
    assert (guest.state, guest.waiting_reason) == (WAITING, LOCKED)
    second_host = join(room, "h2", Role.HOST, now=at(3))
    assert second_host.state is CONNECTED
    # a host arriving does not open the lock for those it holds
    assert room.participant("g1").waiting_reason is LOCKED


def test_unlock_admits_everyone_the_lock_held() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    room.lock("h1", at(1))
    join(room, "g1", now=at(2))
    join(room, "g2", now=at(3))
    drain(room)
    room.unlock("h1", at(4))
    events = drain(room)
    assert events[0] == RoomUpdated(room_id="r1", at=at(4), locked=False, guests_muted=False)
    assert updated_ids(events) == ["g1", "g2"]
    assert lobby(room) == {"h1": (CONNECTED, None), "g1": (CONNECTED, None),
                           "g2": (CONNECTED, None)}


def test_unlock_without_a_host_leaves_guests_waiting_for_the_host() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    room.lock("h1", at(1))
    join(room, "g1", now=at(2))
    room.leave("h1", at(3))
    # With nobody to admit them the guest now waits for a host first.
    assert lobby(room) == {"g1": (WAITING, HOST_ABSENT)}
    room.unlock(None, at(4))
    assert lobby(room) == {"g1": (WAITING, HOST_ABSENT)}
    join(room, "h2", Role.HOST, now=at(5))
    assert room.participant("g1").state is CONNECTED


def test_locked_room_without_host_holds_guest_even_after_host_arrives() -> None:
    room = scheduled()
    room.lock(None, at(0))
    assert join(room, "g1", now=at(1)).waiting_reason is HOST_ABSENT
    drain(room)
    join(room, "h1", Role.HOST, now=at(2))
    events = drain(room)
    assert lobby(room)["g1"] == (WAITING, LOCKED)
    assert updated_ids(events) == ["g1"]  # the reason shown to the guest changed


def test_lock_and_unlock_are_idempotent_and_quiet() -> None:
    room = scheduled()
    room.lock(None, at(0))
    drain(room)
    room.lock(None, at(1))
    assert drain(room) == []
    room.unlock(None, at(2))
    room.unlock(None, at(3))
    assert [type(e) for e in drain(room)] == [RoomUpdated]


def test_lock_does_not_send_connected_guests_back_to_the_lobby() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    room.lock("h1", at(1))
    assert room.participant("g1").state is CONNECTED


# --------------------------------------------------------------------------- admit


def test_host_admits_one_locked_guest() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    room.lock("h1", at(1))
    join(room, "g1", now=at(2))
    join(room, "g2", now=at(2))
    drain(room)
    view = room.admit("g2", "h1", at(3))
    assert (view.state, view.waiting_reason) == (CONNECTED, None)
    assert drain(room) == [ParticipantUpdated(room_id="r1", at=at(3), view=view)]
    assert lobby(room)["g1"] == (WAITING, LOCKED)
    assert room.locked


def test_node_admits_a_guest_waiting_for_the_host() -> None:
    room = scheduled()
    join(room, "g1")
    assert room.admit("g1", None, at(1)).state is CONNECTED
    assert not room.host_present


def test_admitting_a_connected_participant_is_a_quiet_no_op() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    drain(room)
    assert room.admit("g1", "h1", at(1)).state is CONNECTED
    assert drain(room) == []


def test_admit_all_admits_both_kinds_of_waiting() -> None:
    room = scheduled()
    room.lock(None, at(0))
    join(room, "g1", now=at(1))  # waits for host
    join(room, "h1", Role.HOST, now=at(2))
    join(room, "g2", now=at(3))  # held by the lock
    drain(room)
    admitted = room.admit_all("h1", at(4))
    assert [v.participant_id for v in admitted] == ["g1", "g2"]
    assert all(v.state is CONNECTED for v in admitted)
    assert updated_ids(drain(room)) == ["g1", "g2"]
    assert room.locked  # admitting is not unlocking
    assert join(room, "g3", now=at(5)).waiting_reason is LOCKED


def test_admit_unknown_participant_is_not_found() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    with pytest.raises(NotFound):
        room.admit("nobody", "h1", at(1))


# --------------------------------------------------------------------------- mute


def test_anyone_may_mute_and_unmute_themselves() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    drain(room)
    muted = room.mute("g1", "g1", at(1))
    assert muted.muted
    assert drain(room) == [ParticipantUpdated(room_id="r1", at=at(1), view=muted)]
    assert not room.unmute("g1", "g1", at(2)).muted


def test_muting_someone_else_takes_a_host() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    join(room, "g2")
    with pytest.raises(PermissionDenied):
        room.mute("g2", "g1", at(1))
    assert not room.participant("g2").muted
    assert room.mute("g2", "h1", at(1)).muted
    with pytest.raises(PermissionDenied):
        room.unmute("g2", "g1", at(2))
    # individually muted by a host, the guest may still unmute themselves
    assert not room.unmute("g2", "g2", at(3)).muted


def test_hold_is_shown_to_the_room_and_resume_clears_it() -> None:
    room = scheduled()
    join(room, "h", Role.HOST)
    join(room, "sip", endpoint=EndpointType.SIP)
    drain(room)
    view = room.set_on_hold("sip", True, at(1))
    assert view.on_hold and view.state is CONNECTED  # still in the room, still counted
    assert updated_ids(drain(room)) == ["sip"]
    assert room.set_on_hold("sip", True, at(2)).on_hold
    assert drain(room) == []  # holding twice changes nothing
    assert [p.on_hold for p in room.participants()] == [False, True]
    room.set_on_hold("sip", False, at(3))
    [event] = drain(room)
    assert isinstance(event, ParticipantUpdated) and not event.view.on_hold
    with pytest.raises(NotFound):
        room.set_on_hold("nobody", True, at(4))


def test_mute_twice_is_quiet() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    room.mute("h1", "h1", at(1))
    drain(room)
    room.mute("h1", "h1", at(2))
    assert drain(room) == []


def test_mute_guests_mutes_present_and_later_guests_but_not_hosts() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    drain(room)
    room.mute_guests("h1", at(1))
    events = drain(room)
    assert events[0] == RoomUpdated(room_id="r1", at=at(1), locked=False, guests_muted=True)
    assert updated_ids(events) == ["g1"]
    assert room.guests_muted
    assert room.participant("g1").muted
    assert not room.participant("h1").muted
    assert join(room, "g2", now=at(2)).muted
    assert not join(room, "h2", Role.HOST, now=at(2)).muted


def test_guest_cannot_lift_mute_guests_but_a_host_can_unmute_one() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    room.mute_guests("h1", at(1))
    with pytest.raises(PermissionDenied):
        room.unmute("g1", "g1", at(2))
    assert room.participant("g1").muted
    assert not room.unmute("g1", "h1", at(3)).muted
    # muting guests again re-mutes the one given the floor
    room.mute_guests("h1", at(4))
    assert room.participant("g1").muted


def test_unmute_guests_unmutes_everyone_and_stops_applying_to_newcomers() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    room.mute_guests("h1", at(1))
    join(room, "g2", now=at(2))
    drain(room)
    room.unmute_guests("h1", at(3))
    events = drain(room)
    assert events[0] == RoomUpdated(room_id="r1", at=at(3), locked=False, guests_muted=False)
    assert updated_ids(events) == ["g1", "g2"]
    assert not any(v.muted for v in room.participants())
    assert not join(room, "g3", now=at(4)).muted


def test_guests_muted_on_join_setting_mutes_guests_who_may_unmute() -> None:
    room = scheduled(RoomSettings(guests_muted_on_join=True))
    join(room, "h1", Role.HOST)
    assert not room.participant("h1").muted
    assert join(room, "g1").muted
    assert not room.guests_muted
    assert not room.unmute("g1", "g1", at(1)).muted


# --------------------------------------------------------------------------- roles


def test_promoting_a_waiting_guest_connects_them_and_the_other_waiters() -> None:
    room = scheduled()
    join(room, "g1")
    join(room, "g2")
    drain(room)
    view = room.set_role("g1", Role.HOST, None, at(1))
    assert (view.role, view.state) == (Role.HOST, CONNECTED)
    assert updated_ids(drain(room)) == ["g1", "g2"]
    assert room.participant("g2").state is CONNECTED


def test_demoted_host_becomes_a_muted_guest_under_mute_guests() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "h2", Role.HOST)
    room.mute_guests("h1", at(1))
    view = room.set_role("h2", Role.GUEST, "h1", at(2))
    assert (view.role, view.muted, view.state) == (Role.GUEST, True, CONNECTED)


def test_same_role_is_a_quiet_no_op_and_strings_are_accepted() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    drain(room)
    assert room.set_role("h1", "host", None, at(1)).role is Role.HOST  # type: ignore[arg-type]
    assert drain(room) == []
    with pytest.raises(InvalidInput):
        room.set_role("h1", "chair", None, at(1))  # type: ignore[arg-type]


def test_demoting_the_last_host_starts_the_guests_only_timeout() -> None:
    room = permanent()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    assert room.get_timer() is None
    room.set_role("h1", Role.GUEST, "h1", at(2))
    assert room.get_timer() == at(2, 60)


# --------------------------------------------------------------------------- permissions


HostAction = Callable[[Room, str | None], object]

HOST_ACTIONS: dict[str, HostAction] = {
    "lock": lambda room, by: room.lock(by, at(1)),
    "unlock": lambda room, by: room.unlock(by, at(1)),
    "admit": lambda room, by: room.admit("g2", by, at(1)),
    "admit_all": lambda room, by: room.admit_all(by, at(1)),
    "mute_other": lambda room, by: room.mute("h1", by, at(1)),
    "unmute_other": lambda room, by: room.unmute("h1", by, at(1)),
    "mute_guests": lambda room, by: room.mute_guests(by, at(1)),
    "unmute_guests": lambda room, by: room.unmute_guests(by, at(1)),
    "set_role": lambda room, by: room.set_role("g1", Role.HOST, by, at(1)),
    "disconnect": lambda room, by: room.disconnect("h1", by, at(1)),
    "end": lambda room, by: room.end(by, at(1)),
    "extend": lambda room, by: room.extend(at(40), by, at(1)),
}


def _room_with_host_guest_and_waiter() -> Room:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    room.lock("h1", at(0))
    join(room, "g2")  # held by the lock
    return room


def _observable(room: Room) -> tuple[object, ...]:
    return (room.participants(), room.locked, room.guests_muted, room.state, room.window,
            room.get_timer())


@pytest.mark.parametrize("action", sorted(HOST_ACTIONS))
def test_guest_cannot_do_host_actions_and_nothing_changes(action: str) -> None:
    room = _room_with_host_guest_and_waiter()
    drain(room)
    before = _observable(room)
    with pytest.raises(PermissionDenied):
        HOST_ACTIONS[action](room, "g1")
    assert _observable(room) == before
    assert drain(room) == []


@pytest.mark.parametrize("action", sorted(HOST_ACTIONS))
def test_unknown_actor_is_not_found(action: str) -> None:
    room = _room_with_host_guest_and_waiter()
    drain(room)
    with pytest.raises(NotFound):
        HOST_ACTIONS[action](room, "stranger")
    assert drain(room) == []


@pytest.mark.parametrize("action", sorted(HOST_ACTIONS))
@pytest.mark.parametrize("by", ["h1", None])
def test_hosts_and_the_node_may_do_host_actions(action: str, by: str | None) -> None:
    room = _room_with_host_guest_and_waiter()
    HOST_ACTIONS[action](room, by)  # must not raise


def test_disconnect_by_host_and_by_oneself() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    join(room, "g2")
    drain(room)
    gone = room.disconnect("g1", "h1", at(1))
    assert gone.state is ParticipantState.LEFT
    assert drain(room) == [ParticipantLeft(room_id="r1", at=at(1), participant_id="g1",
                                           reason="disconnected")]
    room.disconnect("g2", "g2", at(2))
    assert drain(room) == [ParticipantLeft(room_id="r1", at=at(2), participant_id="g2",
                                           reason="hangup")]


# --------------------------------------------------------------------------- joining and leaving


def test_leave_returns_the_final_snapshot_and_forgets_the_participant() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST, now=at(-2))
    final = room.leave("h1", at(12), reason="transport_lost")
    assert (final.state, final.joined_at) == (ParticipantState.LEFT, at(-2))
    assert drain(room)[-1] == ParticipantLeft(room_id="r1", at=at(12), participant_id="h1",
                                              reason="transport_lost")
    assert room.participants() == []
    with pytest.raises(NotFound):
        room.participant("h1")
    with pytest.raises(NotFound):
        room.leave("h1", at(13))


def test_join_refuses_duplicates_and_malformed_input_without_side_effects() -> None:
    room = scheduled()
    join(room, "g1")
    drain(room)
    with pytest.raises(Conflict):
        join(room, "g1")
    with pytest.raises(InvalidInput):
        join(room, "api", endpoint=EndpointType.API, media=[MediaKind.AUDIO])
    with pytest.raises(InvalidInput):
        room.join("g9", "x", "chair", "webrtc", "webrtc", [], T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        room.join("", "x", Role.GUEST, EndpointType.SIP, "sip/tls", [], T0)
    with pytest.raises(InvalidInput):
        room.join("g9", "x", Role.GUEST, EndpointType.SIP, "sip/tls", ["smell"], T0)  # type: ignore[list-item]
    assert [v.participant_id for v in room.participants()] == ["g1"]
    assert drain(room) == []


def test_join_accepts_string_values_from_the_api_edge() -> None:
    room = scheduled(RoomSettings(guests_wait_for_host=False))
    view = room.join("p", "Phone", "guest", "phone", "pstn", ["audio"], T0)  # type: ignore[arg-type]
    assert (view.role, view.endpoint_type, view.media) == (
        Role.GUEST, EndpointType.PHONE, frozenset({MediaKind.AUDIO}),
    )


def test_join_refuses_naive_time() -> None:
    with pytest.raises(InvalidInput):
        join(scheduled(), "g1", now=datetime(2026, 3, 2, 10, 0))


# --------------------------------------------------------------------------- capacity


def test_max_participants_refusal_leaves_the_room_unchanged() -> None:
    room = scheduled(RoomSettings(max_participants=2))
    join(room, "h1", Role.HOST)
    room.lock("h1", at(0))
    join(room, "g1")  # waiting guests take a seat too
    drain(room)
    before = _observable(room)
    with pytest.raises(CapacityRefused) as caught:
        join(room, "g2", now=at(1))
    assert caught.value.message == "The meeting room is full: it allows at most 2 participants."
    assert caught.value.details == {"max_participants": 2}
    assert _observable(room) == before
    assert drain(room) == []
    with pytest.raises(CapacityRefused):
        join(room, "h2", Role.HOST, now=at(1))  # hosts are not exempt


def test_control_only_participants_take_no_seat_and_leaving_frees_one() -> None:
    room = scheduled(RoomSettings(max_participants=2))
    join(room, "h1", Role.HOST)
    join(room, "g1")
    join(room, "ps", Role.HOST, endpoint=EndpointType.API, media=())
    room.leave("g1", at(1))
    assert join(room, "g2", now=at(2)).state is CONNECTED
    with pytest.raises(CapacityRefused):
        join(room, "g3", now=at(3))


# --------------------------------------------------------------------------- window


def test_join_before_the_window_opens_is_refused_with_the_opening_time() -> None:
    room = scheduled()
    with pytest.raises(RoomNotOpenYet) as caught:
        join(room, "g1", now=at(-15) - TICK)
    assert caught.value.opens_at == at(-15)
    assert room.participants() == []
    assert join(room, "g1", now=at(-15)).state is WAITING


def test_join_at_closing_time_is_refused_even_before_the_timer_runs() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST, now=CLOSES_AT - TICK)
    with pytest.raises(RoomClosed):
        join(room, "g1", now=CLOSES_AT)
    assert room.state is RoomState.OPEN  # only handle_timer closes it


def test_permanent_room_is_always_open() -> None:
    room = permanent()
    assert join(room, "h1", Role.HOST, now=datetime(1999, 12, 31, tzinfo=UTC)).state is CONNECTED
    assert join(room, "h2", Role.HOST, now=datetime(2099, 1, 1, tzinfo=UTC)).state is CONNECTED


# --------------------------------------------------------------------------- end and close


def test_host_ends_the_meeting_for_everyone() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    join(room, "g2")
    room.lock("h1", at(1))
    join(room, "g3", now=at(1))
    drain(room)
    room.end("h1", at(20))
    assert drain(room) == [
        ParticipantLeft(room_id="r1", at=at(20), participant_id=pid, reason="ended")
        for pid in ("h1", "g1", "g2", "g3")
    ] + [RoomEnded(room_id="r1", at=at(20), reason="ended")]
    assert room.state is RoomState.ENDED
    assert room.participants() == []
    assert room.get_timer() is None
    with pytest.raises(RoomClosed):
        join(room, "h1", Role.HOST, now=at(21))
    with pytest.raises(RoomClosed):
        room.lock(None, at(21))
    with pytest.raises(RoomClosed):
        room.extend(at(60), None, at(21))


def test_end_and_close_are_idempotent() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    room.end(None, at(1))
    drain(room)
    room.end(None, at(2))
    room.close(at(3), "node_shutdown")
    assert drain(room) == []


def test_close_for_node_shutdown_uses_the_given_reason() -> None:
    room = permanent()
    join(room, "h1", Role.HOST)
    drain(room)
    room.close(at(5), "node_shutdown")
    assert drain(room) == [
        ParticipantLeft(room_id="p1", at=at(5), participant_id="h1", reason="node_shutdown"),
        RoomEnded(room_id="p1", at=at(5), reason="node_shutdown"),
    ]
    with pytest.raises(RoomClosed):
        join(room, "h1", Role.HOST, now=at(6))


# --------------------------------------------------------------------------- extend


def test_host_extends_the_window_and_the_timer_follows() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    drain(room)
    assert room.get_timer() == CLOSES_AT
    window = room.extend(at(50), "h1", at(25))
    assert window == RoomWindow(start=T0, end=at(50))
    assert room.window == window
    assert drain(room) == [RoomExtended(room_id="r1", at=at(25), window=window)]
    assert room.get_timer() == at(65)
    room.handle_timer(CLOSES_AT)
    assert room.state is RoomState.OPEN


def test_extend_must_move_the_end_later() -> None:
    room = scheduled()
    with pytest.raises(InvalidInput):
        room.extend(END, None, at(10))
    with pytest.raises(InvalidInput):
        room.extend(at(20), None, at(10))
    assert room.window == RoomWindow(start=T0, end=END)
    assert drain(room) == []


def test_extend_is_refused_for_permanent_rooms_and_after_the_window() -> None:
    with pytest.raises(Conflict):
        permanent().extend(at(60), None, at(0))
    room = scheduled()
    with pytest.raises(RoomClosed):
        room.extend(at(90), None, CLOSES_AT)  # window passed, timer not yet handled
    room.extend(at(90), None, CLOSES_AT - TICK)  # last moment still counts


@pytest.mark.parametrize("kind", [RoomKind.INSTANT, RoomKind.WAITING_ROOM])
def test_instant_rooms_can_be_extended(kind: RoomKind) -> None:
    now = datetime(2026, 3, 2, 13, 7, tzinfo=UTC)
    room = Room("i1", kind, "x", RoomWindow.instant(now, now + timedelta(minutes=15)))
    with pytest.raises(RoomNotOpenYet):
        join(room, "h1", Role.HOST, now=now - TICK)
    join(room, "h1", Role.HOST, now=now)
    assert room.extend(now + timedelta(minutes=30), "h1", now + timedelta(minutes=14)).end == (
        now + timedelta(minutes=30)
    )


# --------------------------------------------------------------------------- timers


def test_window_timer_closes_the_room_at_closes_at_exactly() -> None:
    room = scheduled()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    drain(room)
    assert room.get_timer() == CLOSES_AT
    room.handle_timer(CLOSES_AT - TICK)
    assert room.state is RoomState.OPEN
    assert drain(room) == []
    room.handle_timer(CLOSES_AT)
    assert drain(room) == [
        ParticipantLeft(room_id="r1", at=CLOSES_AT, participant_id="h1", reason="window_closed"),
        ParticipantLeft(room_id="r1", at=CLOSES_AT, participant_id="g1", reason="window_closed"),
        RoomEnded(room_id="r1", at=CLOSES_AT, reason="window_closed"),
    ]
    assert room.state is RoomState.ENDED
    assert room.get_timer() is None


def test_empty_permanent_room_has_no_timer() -> None:
    assert permanent().get_timer() is None


def test_host_wait_timeout_sends_away_the_longest_waiting_guest_first() -> None:
    room = permanent()
    join(room, "g1", now=at(0))
    join(room, "g2", now=at(1))
    drain(room)
    assert room.get_timer() == at(15)  # 900 s after g1 started waiting
    room.handle_timer(at(15) - TICK)
    assert drain(room) == []
    room.handle_timer(at(15))
    assert drain(room) == [
        ParticipantLeft(room_id="p1", at=at(15), participant_id="g1", reason="host_timeout")
    ]
    assert room.get_timer() == at(16)
    assert lobby(room) == {"g2": (WAITING, HOST_ABSENT)}


def test_host_arriving_cancels_the_host_wait_timeout() -> None:
    room = permanent()
    join(room, "g1", now=at(0))
    join(room, "h1", Role.HOST, now=at(14))
    assert room.get_timer() is None
    room.handle_timer(at(30))
    assert lobby(room) == {"g1": (CONNECTED, None), "h1": (CONNECTED, None)}


def test_guests_held_by_the_lock_with_a_host_present_have_no_timeout() -> None:
    room = permanent()
    join(room, "h1", Role.HOST)
    room.lock("h1", at(0))
    join(room, "g1", now=at(1))
    assert room.get_timer() is None


def test_host_wait_counts_from_when_the_guest_started_waiting_for_a_host() -> None:
    room = permanent()
    join(room, "h1", Role.HOST)
    room.lock("h1", at(0))
    join(room, "g1", now=at(0))  # held by the lock, no timeout
    room.leave("h1", at(10))
    assert lobby(room) == {"g1": (WAITING, HOST_ABSENT)}
    assert room.get_timer() == at(25)


def test_guests_only_timeout_after_the_last_host_leaves() -> None:
    room = permanent()
    join(room, "h1", Role.HOST)
    join(room, "h2", Role.HOST)
    join(room, "g1")
    join(room, "g2")
    room.leave("h1", at(5))
    assert room.get_timer() is None  # h2 is still here
    room.leave("h2", at(6))
    assert room.get_timer() == at(7)
    join(room, "g3", now=at(6, 30))  # a newcomer waits for a host; its own clock runs
    drain(room)
    room.handle_timer(at(7) - TICK)
    assert drain(room) == []
    room.handle_timer(at(7))
    assert drain(room) == [
        ParticipantLeft(room_id="p1", at=at(7), participant_id="g1",
                        reason="guests_only_timeout"),
        ParticipantLeft(room_id="p1", at=at(7), participant_id="g2",
                        reason="guests_only_timeout"),
    ]
    assert lobby(room) == {"g3": (WAITING, HOST_ABSENT)}
    assert room.get_timer() == at(21, 30)


def test_host_returning_cancels_the_guests_only_timeout() -> None:
    room = permanent()
    join(room, "h1", Role.HOST)
    join(room, "g1")
    room.leave("h1", at(5))
    join(room, "h2", Role.HOST, now=at(5, 30))
    assert room.get_timer() is None
    room.handle_timer(at(10))
    assert room.participant("g1").state is CONNECTED


def test_guests_only_deadline_does_not_linger_for_later_guests() -> None:
    room = permanent(RoomSettings(guests_wait_for_host=False))
    join(room, "h1", Role.HOST)
    join(room, "g1")
    room.leave("h1", at(1))
    room.leave("g1", at(1, 30))
    assert room.get_timer() is None
    join(room, "g2", now=at(30))
    room.handle_timer(at(30))
    assert room.participant("g2").state is CONNECTED


def test_guests_never_joined_by_a_host_have_no_guests_only_timeout() -> None:
    room = permanent(RoomSettings(guests_wait_for_host=False))
    join(room, "g1")
    assert room.get_timer() is None


def test_timeouts_can_be_disabled() -> None:
    room = permanent(RoomSettings(host_wait_timeout=None, guests_only_timeout=None))
    join(room, "g1")
    join(room, "h1", Role.HOST)
    join(room, "g2")
    room.leave("h1", at(1))
    join(room, "g3", now=at(2))
    assert room.get_timer() is None
    room.handle_timer(at(600))
    assert [v.participant_id for v in room.participants()] == ["g1", "g2", "g3"]


def test_get_timer_is_the_earliest_deadline() -> None:
    room = scheduled()
    join(room, "g1", now=at(40))  # host wait would end 10:55, after the window closes
    assert room.get_timer() == CLOSES_AT
    room = scheduled()
    join(room, "g1", now=at(-15))  # host wait ends 10:00
    assert room.get_timer() == at(0)


def test_late_handle_timer_applies_deadlines_in_order() -> None:
    room = scheduled()
    join(room, "g1", now=at(29))  # host wait runs out at 10:44, window closes 10:45
    drain(room)
    room.handle_timer(at(50))
    assert drain(room) == [
        ParticipantLeft(room_id="r1", at=at(50), participant_id="g1", reason="host_timeout"),
        RoomEnded(room_id="r1", at=at(50), reason="window_closed"),
    ]


# --------------------------------------------------------------------------- invariant

# Operations in the property: ("join", pid, is_host), ("leave", idx), ("lock", by_idx),
# ("unlock", by_idx), ("admit", target_idx, by_idx), ("admit_all", by_idx). Indexes pick among
# the participants present (None = the node acts), so sequences stay meaningful as people leave.

_index = st.integers(min_value=0, max_value=7)
_by = st.one_of(st.none(), _index)
_operation = st.one_of(
    st.tuples(st.just("join"), st.booleans()),
    st.tuples(st.just("leave"), _index),
    st.tuples(st.just("lock"), _by),
    st.tuples(st.just("unlock"), _by),
    st.tuples(st.just("admit"), _index, _by),
    st.tuples(st.just("admit_all"), _by),
)


@settings(max_examples=300, deadline=None)
@given(
    guests_wait_for_host=st.booleans(),
    operations=st.lists(_operation, max_size=40),
)
def test_guest_is_connected_only_through_an_open_door_or_an_admit(
    guests_wait_for_host: bool, operations: list[tuple[object, ...]]
) -> None:
    """Invariant, checked after every operation:

    1. A guest becomes CONNECTED (joins connected, or WAITING -> CONNECTED) only if the operation
       was an explicit admit of that guest or admit_all, or right after the operation the room
       is unlocked and (a host is connected or guests_wait_for_host is False).
    2. A connected guest never goes back to WAITING; a host is never WAITING.
    3. Every WAITING guest shows the reason that holds it: host_absent if guests wait for a host
       and none is connected, else locked — and one of the two always holds.
    4. Replaying the events gives exactly ``participants()``; refused calls emit nothing.
    """
    room = permanent(RoomSettings(guests_wait_for_host=guests_wait_for_host,
                                  host_wait_timeout=None, guests_only_timeout=None))
    replayed: dict[str, ParticipantView] = {}
    ever_connected: set[str] = set()
    serial = 0
    now = T0

    def pick(index: object) -> str | None:
        present = [v.participant_id for v in room.participants()]
        if index is None or not present:
            return None
        assert isinstance(index, int)
        return present[index % len(present)]

    for op in operations:
        now += timedelta(seconds=1)
        before = {v.participant_id: v for v in room.participants()}
        admitted_explicitly: set[str] = set()
        refused = False
        try:
            match op:
                case ("join", is_host):
                    serial += 1
                    join(room, f"p{serial}", Role.HOST if is_host else Role.GUEST, now=now)
                case ("leave", idx):
                    pid = pick(idx)
                    if pid is not None:
                        room.leave(pid, now)
                case ("lock", by):
                    room.lock(pick(by), now)
                case ("unlock", by):
                    room.unlock(pick(by), now)
                case ("admit", idx, by):
                    target = pick(idx)
                    if target is not None:
                        room.admit(target, pick(by), now)
                        admitted_explicitly = {target}
                case ("admit_all", by):
                    room.admit_all(pick(by), now)
                    admitted_explicitly = set(before)
        except PermissionDenied:
            refused = True

        events = drain(room)
        if refused:
            assert events == []
            assert {v.participant_id: v for v in room.participants()} == before
        for event in events:
            match event:
                case ParticipantJoined(view=view) | ParticipantUpdated(view=view):
                    replayed[view.participant_id] = view
                case ParticipantLeft(participant_id=pid):
                    del replayed[pid]
        assert list(replayed.values()) == room.participants()

        door_open = not room.locked and (room.host_present or not guests_wait_for_host)
        for view in room.participants():
            pid = view.participant_id
            if view.role is Role.HOST:
                assert view.state is CONNECTED
                continue
            if view.state is CONNECTED:
                if pid not in ever_connected:
                    assert door_open or pid in admitted_explicitly, (op, view)
                ever_connected.add(pid)
            else:
                assert view.state is WAITING
                assert pid not in ever_connected, "a connected guest went back to the lobby"
                if guests_wait_for_host and not room.host_present:
                    assert view.waiting_reason is HOST_ABSENT
                else:
                    assert room.locked and view.waiting_reason is LOCKED
