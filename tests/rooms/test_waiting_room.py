from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confnode.errors import Conflict, InvalidInput, NotFound, QueueClosed
from confnode.rooms.waiting_room import (
    CloseMode,
    PatientCalled,
    PositionChanged,
    QueueClosedEvent,
    QueueEvent,
    QueueFull,
    QueueOpened,
    QueueState,
    QueueTicket,
    RemovalReason,
    TicketRemoved,
    TicketTaken,
    WaitingRoomQueue,
)

CLINIC = "clinic-0042"
T0 = datetime(2026, 3, 2, 7, 55, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def drain(queue: WaitingRoomQueue) -> list[QueueEvent]:
    events = []
    while (event := queue.next_event()) is not None:
        events.append(event)
    return events


def open_queue_with(*ticket_ids: str, call_when_ready: frozenset[str] = frozenset()):
    queue = WaitingRoomQueue(CLINIC)
    queue.open(at(0))
    for minute, ticket_id in enumerate(ticket_ids, start=1):
        queue.take_place(ticket_id, at(minute), call_when_ready=ticket_id in call_when_ready)
    drain(queue)
    return queue


def ids(queue: WaitingRoomQueue) -> list[str]:
    return [ticket.ticket_id for ticket in queue.tickets()]


# --- opening and closing ----------------------------------------------------------------------


def test_a_new_queue_is_closed_and_refuses_patients() -> None:
    queue = WaitingRoomQueue(CLINIC)
    assert queue.state is QueueState.CLOSED
    with pytest.raises(QueueClosed):
        queue.take_place("t-a", at(0))
    assert queue.tickets() == []
    assert queue.next_event() is None


def test_open_emits_once_and_take_place_numbers_from_one() -> None:
    queue = WaitingRoomQueue(CLINIC)
    queue.open(at(0))
    queue.open(at(1))  # double click: no second event
    first = queue.take_place("t-a", at(2))
    second = queue.take_place("t-b", at(3), call_when_ready=True)

    assert first == QueueTicket("t-a", 1, at(2), False)
    assert second == QueueTicket("t-b", 2, at(3), True)
    assert drain(queue) == [
        QueueOpened(clinic_id=CLINIC, at=at(0)),
        TicketTaken(clinic_id=CLINIC, at=at(2), ticket=first, position=1),
        TicketTaken(clinic_id=CLINIC, at=at(3), ticket=second, position=2),
    ]
    assert queue.position("t-a") == 1
    assert queue.position("t-b") == 2
    assert len(queue) == 2


def test_close_keep_refuses_newcomers_but_keeps_the_queue_workable() -> None:
    queue = open_queue_with("t-a", "t-b")
    queue.close(CloseMode.KEEP, at(10))
    assert drain(queue) == [QueueClosedEvent(clinic_id=CLINIC, at=at(10), mode=CloseMode.KEEP)]
    assert queue.state is QueueState.CLOSED

    with pytest.raises(QueueClosed):
        queue.take_place("t-c", at(11))
    assert ids(queue) == ["t-a", "t-b"]

    called = queue.start_next(at(12))
    assert called.ticket_id == "t-a"
    assert ids(queue) == ["t-b"]
    assert queue.position("t-b") == 1

    queue.close(CloseMode.KEEP, at(13))  # already closed: nothing happens
    assert [type(e) for e in drain(queue)] == [PatientCalled, TicketRemoved, PositionChanged]


def test_close_flush_removes_everyone_in_order_then_reports_the_close() -> None:
    queue = open_queue_with("t-a", "t-b", "t-c")
    queue.close(CloseMode.FLUSH, at(10))
    assert drain(queue) == [
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-a", reason=RemovalReason.FLUSHED),
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-b", reason=RemovalReason.FLUSHED),
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-c", reason=RemovalReason.FLUSHED),
        QueueClosedEvent(clinic_id=CLINIC, at=at(10), mode=CloseMode.FLUSH),
    ]
    assert queue.tickets() == []
    with pytest.raises(NotFound):
        queue.position("t-a")
    with pytest.raises(Conflict, match="queue is empty"):
        queue.start_next(at(11))


def test_flush_after_keep_sends_the_rest_home() -> None:
    queue = open_queue_with("t-a", "t-b")
    queue.close(CloseMode.KEEP, at(10))
    drain(queue)
    queue.close(CloseMode.FLUSH, at(30))
    assert drain(queue) == [
        TicketRemoved(clinic_id=CLINIC, at=at(30), ticket_id="t-a", reason=RemovalReason.FLUSHED),
        TicketRemoved(clinic_id=CLINIC, at=at(30), ticket_id="t-b", reason=RemovalReason.FLUSHED),
        QueueClosedEvent(clinic_id=CLINIC, at=at(30), mode=CloseMode.FLUSH),
    ]


def test_reopening_keeps_waiting_patients_ahead_and_numbers_keep_rising() -> None:
    queue = open_queue_with("t-a", "t-b")
    queue.close(CloseMode.KEEP, at(10))
    queue.open(at(20))
    ticket = queue.take_place("t-c", at(21))
    assert ticket.number == 3
    assert ids(queue) == ["t-a", "t-b", "t-c"]

    queue.close(CloseMode.FLUSH, at(30))
    queue.open(at(40))
    assert queue.take_place("t-d", at(41)).number == 4  # monotonic, even after a flush


# --- positions and exactly which tickets move ---------------------------------------------------


def test_leaving_moves_up_exactly_those_behind() -> None:
    queue = open_queue_with("t-a", "t-b", "t-c", "t-d")
    queue.leave("t-b", at(10))
    assert drain(queue) == [
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-b", reason=RemovalReason.LEFT),
        PositionChanged(clinic_id=CLINIC, at=at(10), ticket_id="t-c", position=2),
        PositionChanged(clinic_id=CLINIC, at=at(10), ticket_id="t-d", position=3),
    ]
    assert [queue.position(t) for t in ("t-a", "t-c", "t-d")] == [1, 2, 3]


def test_the_last_in_line_leaving_moves_nobody() -> None:
    queue = open_queue_with("t-a", "t-b")
    queue.leave("t-b", at(10))
    assert drain(queue) == [
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-b", reason=RemovalReason.LEFT),
    ]


def test_start_next_calls_the_head_and_moves_everyone_up() -> None:
    queue = open_queue_with("t-a", "t-b", "t-c", call_when_ready=frozenset({"t-a"}))
    called = queue.start_next(at(10))
    assert called == QueueTicket("t-a", 1, at(1), True)
    assert drain(queue) == [
        PatientCalled(clinic_id=CLINIC, at=at(10), ticket=called, call_when_ready=True),
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-a", reason=RemovalReason.STARTED),
        PositionChanged(clinic_id=CLINIC, at=at(10), ticket_id="t-b", position=1),
        PositionChanged(clinic_id=CLINIC, at=at(10), ticket_id="t-c", position=2),
    ]


def test_start_a_chosen_patient_moves_only_those_behind_them() -> None:
    queue = open_queue_with("t-a", "t-b", "t-c", "t-d")
    called = queue.start("t-c", at(10))
    assert called.number == 3
    assert drain(queue) == [
        PatientCalled(clinic_id=CLINIC, at=at(10), ticket=called, call_when_ready=False),
        TicketRemoved(clinic_id=CLINIC, at=at(10), ticket_id="t-c", reason=RemovalReason.STARTED),
        PositionChanged(clinic_id=CLINIC, at=at(10), ticket_id="t-d", position=3),
    ]
    assert ids(queue) == ["t-a", "t-b", "t-d"]


def test_call_when_ready_can_be_chosen_while_waiting() -> None:
    queue = open_queue_with("t-a")
    updated = queue.set_call_when_ready("t-a", at(5))
    assert updated == QueueTicket("t-a", 1, at(1), True)
    assert queue.next_event() is None
    queue.start_next(at(10))
    called = queue.next_event()
    assert isinstance(called, PatientCalled)
    assert called.call_when_ready is True
    with pytest.raises(NotFound):
        queue.set_call_when_ready("t-a", at(11))


def test_event_times_are_normalised_to_utc() -> None:
    queue = WaitingRoomQueue(CLINIC)
    copenhagen_winter = timezone(timedelta(hours=1))
    queue.open(datetime(2026, 3, 2, 8, 55, tzinfo=copenhagen_winter))
    event = queue.next_event()
    assert event == QueueOpened(clinic_id=CLINIC, at=T0)
    assert event.at.tzinfo is UTC


# --- errors -----------------------------------------------------------------------------------


def test_duplicate_ticket_is_refused_without_side_effects() -> None:
    queue = open_queue_with("t-a")
    with pytest.raises(Conflict) as caught:
        queue.take_place("t-a", at(5))
    assert caught.value.code == "conflict"
    assert queue.next_event() is None
    assert queue.take_place("t-b", at(6)).number == 2  # the refused attempt used no number


def test_a_full_queue_refuses_with_queue_full() -> None:
    queue = WaitingRoomQueue(CLINIC, state=QueueState.OPEN, max_length=2)
    queue.take_place("t-a", at(1))
    queue.take_place("t-b", at(2))
    with pytest.raises(QueueFull) as caught:
        queue.take_place("t-c", at(3))
    assert caught.value.code == "queue_full"
    assert isinstance(caught.value, Conflict)
    queue.leave("t-a", at(4))
    assert queue.take_place("t-c", at(5)).number == 3


def test_unknown_tickets_are_not_found() -> None:
    queue = open_queue_with("t-a")
    with pytest.raises(NotFound):
        queue.leave("t-x", at(5))
    with pytest.raises(NotFound):
        queue.start("t-x", at(5))
    with pytest.raises(NotFound):
        queue.position("t-x")
    assert queue.next_event() is None


def test_an_empty_queue_cannot_start_next() -> None:
    queue = WaitingRoomQueue(CLINIC, state=QueueState.OPEN)
    with pytest.raises(Conflict, match="queue is empty"):
        queue.start_next(at(0))


@pytest.mark.parametrize("bad", ["", "x" * 129])
def test_ticket_ids_must_be_short_and_non_empty(bad: str) -> None:
    queue = WaitingRoomQueue(CLINIC, state=QueueState.OPEN)
    with pytest.raises(InvalidInput):
        queue.take_place(bad, at(0))


def test_naive_times_and_bad_settings_are_invalid() -> None:
    queue = WaitingRoomQueue(CLINIC)
    with pytest.raises(InvalidInput):
        queue.open(datetime(2026, 3, 2, 8, 0))  # naive on purpose
    with pytest.raises(InvalidInput):
        WaitingRoomQueue(CLINIC, max_length=0)
    with pytest.raises(InvalidInput):
        WaitingRoomQueue("")


# --- invariant: the queue behaves like a list, and events describe every move -----------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 7)),
        st.tuples(st.just("leave"), st.integers(0, 7)),
        st.tuples(st.just("start"), st.integers(0, 7)),
        st.tuples(st.just("start_next"), st.just(0)),
        st.tuples(st.just("close_keep"), st.just(0)),
        st.tuples(st.just("close_flush"), st.just(0)),
        st.tuples(st.just("open"), st.just(0)),
    ),
    max_size=40,
)


@given(operations)
def test_positions_and_events_track_a_plain_list(ops: list[tuple[str, int]]) -> None:
    queue = WaitingRoomQueue(CLINIC, state=QueueState.OPEN)
    model: list[str] = []
    is_open = True
    numbers_seen: list[int] = []
    for minute, (op, n) in enumerate(ops):
        now = at(minute)
        ticket_id = f"t-{n}"
        before = {t: i + 1 for i, t in enumerate(model)}
        try:
            if op == "take":
                ticket = queue.take_place(ticket_id, now)
                assert is_open and ticket_id not in model
                model.append(ticket_id)
                numbers_seen.append(ticket.number)
            elif op == "leave":
                queue.leave(ticket_id, now)
                model.remove(ticket_id)
            elif op == "start":
                queue.start(ticket_id, now)
                model.remove(ticket_id)
            elif op == "start_next":
                assert queue.start_next(now).ticket_id == model.pop(0)
            elif op == "close_keep":
                queue.close(CloseMode.KEEP, now)
                is_open = False
            elif op == "close_flush":
                queue.close(CloseMode.FLUSH, now)
                model.clear()
                is_open = False
            else:
                queue.open(now)
                is_open = True
        except QueueClosed:
            assert op == "take" and not is_open
        except Conflict:
            assert (op == "take" and ticket_id in model) or (op == "start_next" and not model)
        except NotFound:
            assert op in {"leave", "start"} and ticket_id not in model

        assert ids(queue) == model
        assert [queue.position(t) for t in model] == list(range(1, len(model) + 1))
        after = {t: i + 1 for i, t in enumerate(model)}
        moved = {t: p for t, p in after.items() if before.get(t, p) != p}
        reported = {e.ticket_id: e.position for e in drain(queue) if isinstance(e, PositionChanged)}
        assert reported == moved
    assert numbers_seen == sorted(set(numbers_seen))
