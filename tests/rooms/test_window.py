from datetime import UTC, datetime, timedelta

import pytest

from confnode.errors import InvalidInput, RoomClosed, RoomNotOpenYet
from confnode.rooms.window import RoomWindow, WindowState, require_aware

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
END = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def booked() -> RoomWindow:
    return RoomWindow(start=START, end=END)


def test_default_window_is_fifteen_minutes_either_side() -> None:
    window = booked()
    assert window.opens_at == datetime(2026, 3, 2, 9, 45, tzinfo=UTC)
    assert window.closes_at == datetime(2026, 3, 2, 10, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 3, 2, 9, 45, tzinfo=UTC) - TICK, WindowState.BEFORE),
        (datetime(2026, 3, 2, 9, 45, tzinfo=UTC), WindowState.OPEN),
        (datetime(2026, 3, 2, 10, 45, tzinfo=UTC) - TICK, WindowState.OPEN),
        (datetime(2026, 3, 2, 10, 45, tzinfo=UTC), WindowState.AFTER),
    ],
)
def test_state_at_both_edges(now: datetime, expected: WindowState) -> None:
    assert booked().state(now) is expected


def test_check_just_before_opening_names_the_opening_time() -> None:
    with pytest.raises(RoomNotOpenYet) as caught:
        booked().check(datetime(2026, 3, 2, 9, 45, tzinfo=UTC) - TICK)
    assert caught.value.opens_at == datetime(2026, 3, 2, 9, 45, tzinfo=UTC)
    assert caught.value.details == {"opens_at": "2026-03-02T09:45:00+00:00"}


def test_check_passes_at_opening_and_just_before_closing() -> None:
    booked().check(datetime(2026, 3, 2, 9, 45, tzinfo=UTC))
    booked().check(datetime(2026, 3, 2, 10, 45, tzinfo=UTC) - TICK)


def test_check_refuses_at_closing_exactly_and_after() -> None:
    with pytest.raises(RoomClosed):
        booked().check(datetime(2026, 3, 2, 10, 45, tzinfo=UTC))
    with pytest.raises(RoomClosed):
        booked().check(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))


def test_edges_hold_in_danish_local_time_too() -> None:
    # 10:45 UTC is 11:45 in Copenhagen (CET, UTC+1 in March before the DST switch).
    from zoneinfo import ZoneInfo

    cph = ZoneInfo("Europe/Copenhagen")
    assert booked().state(datetime(2026, 3, 2, 11, 44, 59, tzinfo=cph)) is WindowState.OPEN
    assert booked().state(datetime(2026, 3, 2, 11, 45, tzinfo=cph)) is WindowState.AFTER


def test_custom_margins() -> None:
    window = RoomWindow(
        start=START, end=END, open_before=timedelta(minutes=5), close_after=timedelta(0)
    )
    assert window.opens_at == datetime(2026, 3, 2, 9, 55, tzinfo=UTC)
    assert window.state(END - TICK) is WindowState.OPEN
    assert window.state(END) is WindowState.AFTER


def test_instant_window_opens_now_and_not_before() -> None:
    now = datetime(2026, 3, 2, 13, 7, 12, tzinfo=UTC)
    window = RoomWindow.instant(now, now + timedelta(minutes=20))
    assert window.opens_at == now
    assert window.open_before == timedelta(0)
    assert window.closes_at == datetime(2026, 3, 2, 13, 42, 12, tzinfo=UTC)
    assert window.state(now - TICK) is WindowState.BEFORE
    assert window.state(now) is WindowState.OPEN


def test_extended_to_moves_the_end_and_keeps_margins() -> None:
    later = datetime(2026, 3, 2, 10, 50, tzinfo=UTC)
    extended = booked().extended_to(later)
    assert extended == RoomWindow(start=START, end=later)
    assert extended.closes_at == datetime(2026, 3, 2, 11, 5, tzinfo=UTC)
    assert booked().end == END  # frozen: the original is untouched


@pytest.mark.parametrize(
    "new_end", [END, END - TICK, datetime(2026, 3, 2, 10, 0, tzinfo=UTC)]
)
def test_extended_to_refuses_the_same_or_an_earlier_end(new_end: datetime) -> None:
    with pytest.raises(InvalidInput):
        booked().extended_to(new_end)


def test_extended_to_just_later_is_accepted() -> None:
    assert booked().extended_to(END + TICK).end == END + TICK


def test_window_must_end_after_it_starts() -> None:
    with pytest.raises(InvalidInput):
        RoomWindow(start=START, end=START)
    with pytest.raises(InvalidInput):
        RoomWindow(start=END, end=START)


def test_negative_margins_are_refused() -> None:
    with pytest.raises(InvalidInput):
        RoomWindow(start=START, end=END, open_before=timedelta(minutes=-1))
    with pytest.raises(InvalidInput):
        RoomWindow(start=START, end=END, close_after=timedelta(seconds=-1))


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 2, 10, 0)
    with pytest.raises(InvalidInput):
        RoomWindow(start=naive, end=naive + timedelta(minutes=30))
    with pytest.raises(InvalidInput):
        booked().state(naive)
    with pytest.raises(InvalidInput):
        booked().extended_to(naive + timedelta(hours=1))
    with pytest.raises(InvalidInput):
        require_aware(naive)
    assert require_aware(START) is START
