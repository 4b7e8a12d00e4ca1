from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.errors import InvalidInput, PinLockedOut
from confnode.rooms.pin_attempts import PinAttempts

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def fail(attempts: PinAttempts, source: str, now: datetime, times: int = 1) -> None:
    for _ in range(times):
        attempts.check(source, now)
        attempts.record_failure(source, now)


def test_fresh_counter_allows_entry() -> None:
    attempts = PinAttempts()
    attempts.check("198.51.100.7", T0)
    assert not attempts.locked_out(T0)


def test_source_is_refused_after_five_failures() -> None:
    attempts = PinAttempts()
    fail(attempts, "a", T0, times=4)
    attempts.check("a", T0)  # four failures: one try left
    attempts.record_failure("a", T0)
    with pytest.raises(PinLockedOut) as caught:
        attempts.check("a", T0)
    assert caught.value.details == {"retry_at": "2026-03-02T10:10:00+00:00"}
    attempts.check("b", T0)  # other sources are unaffected
    assert not attempts.locked_out(T0)


def test_source_lockout_lifts_when_its_oldest_failure_ages_out() -> None:
    attempts = PinAttempts()
    fail(attempts, "a", at(0))
    fail(attempts, "a", at(3), times=4)
    with pytest.raises(PinLockedOut):
        attempts.check("a", at(10) - TICK)
    attempts.check("a", at(10))  # the 10:00 failure expired at 10:10 exactly
    attempts.record_failure("a", at(10))
    with pytest.raises(PinLockedOut):
        attempts.check("a", at(10))


def test_success_clears_only_that_source() -> None:
    attempts = PinAttempts()
    fail(attempts, "a", T0, times=4)
    fail(attempts, "b", T0, times=4)
    attempts.record_success("a", at(1))
    fail(attempts, "a", at(1), times=4)  # a has a fresh budget again
    attempts.record_failure("b", at(1))
    with pytest.raises(PinLockedOut):
        attempts.check("b", at(1))


def test_room_locks_out_after_twenty_failures_from_many_sources() -> None:
    attempts = PinAttempts()
    for n in range(19):
        fail(attempts, f"10.0.0.{n}", at(0, n))
    assert not attempts.locked_out(at(0, 19))
    attempts.check("10.0.0.99", at(0, 19))
    attempts.record_failure("10.0.0.99", at(0, 19))
    assert attempts.locked_out(at(0, 19))
    # Even a source that never failed — the right PIN included — is refused now.
    with pytest.raises(PinLockedOut) as caught:
        attempts.check("203.0.113.1", at(1))
    assert caught.value.details == {"retry_at": "2026-03-02T10:10:00+00:00"}


def test_room_lockout_slides_off_one_failure_at_a_time() -> None:
    attempts = PinAttempts()
    for n in range(20):
        attempts.record_failure(f"s{n}", at(0, n))  # 10:00:00 .. 10:00:19
    assert attempts.locked_out(at(10) - TICK)
    assert not attempts.locked_out(at(10))  # oldest expired: 19 left in the window
    attempts.check("new", at(10))
    attempts.record_failure("new", at(10))
    assert attempts.locked_out(at(10))  # back at 20
    assert attempts.locked_out(at(10, 1) - TICK)
    assert not attempts.locked_out(at(10, 1))


def test_success_does_not_clear_the_room_wide_count() -> None:
    attempts = PinAttempts()
    for n in range(19):
        attempts.record_failure(f"s{n}", at(0))
    attempts.record_success("s0", at(1))
    attempts.record_failure("attacker", at(1))
    assert attempts.locked_out(at(1))


def test_custom_limits() -> None:
    attempts = PinAttempts(per_source_limit=3, room_limit=4, room_window=timedelta(minutes=1))
    fail(attempts, "a", T0, times=3)
    with pytest.raises(PinLockedOut):
        attempts.check("a", T0)
    fail(attempts, "b", T0)
    assert attempts.locked_out(T0)
    assert not attempts.locked_out(at(1))
    attempts.check("a", at(1))


@pytest.mark.parametrize(
    "kwargs",
    [{"per_source_limit": 0}, {"room_limit": 0}, {"room_window": timedelta(0)}],
)
def test_nonsense_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        PinAttempts(**kwargs)  # type: ignore[arg-type]


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidInput):
        PinAttempts().check("a", datetime(2026, 3, 2, 10, 0))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 5)),  # (seconds since last, source)
        max_size=120,
    )
)
def test_no_window_ever_admits_more_guesses_than_the_limits(
    steps: list[tuple[int, int]],
) -> None:
    """However guesses are spread over sources and time, a caller that checks before every
    guess gets at most 20 wrong guesses into any 10-minute window, and at most 5 per source."""
    attempts = PinAttempts()
    now = T0
    accepted: list[tuple[datetime, int]] = []
    for gap, source in steps:
        now += timedelta(seconds=gap)
        try:
            attempts.check(f"s{source}", now)
        except PinLockedOut:
            continue
        attempts.record_failure(f"s{source}", now)
        accepted.append((now, source))
        window = [(t, s) for t, s in accepted if t > now - timedelta(minutes=10)]
        assert len(window) <= 20
        assert sum(s == source for _, s in window) <= 5
