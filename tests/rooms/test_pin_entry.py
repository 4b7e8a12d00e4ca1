from datetime import UTC, datetime, timedelta

from confnode.rooms.pin_entry import EntryState, GaveUp, PinEntry, Rejected, Submitted

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def type_pin(entry: PinEntry, keys: str) -> object:
    outcome = None
    for key in keys:
        outcome = entry.press(key, T0) or outcome
    return outcome


def test_hash_submits_and_star_starts_over() -> None:
    entry = PinEntry(T0)
    assert type_pin(entry, "12*4711#") == Submitted("4711")
    assert entry.state is EntryState.CHECKING
    assert entry.press("9", T0) is None  # ignored while the node checks
    assert entry.verdict(True) is None and entry.state is EntryState.ACCEPTED


def test_three_wrong_pins_give_up() -> None:
    entry = PinEntry(T0)
    for left in (2, 1):
        assert type_pin(entry, "0000#") == Submitted("0000")
        assert entry.verdict(False) == Rejected(left)
    type_pin(entry, "0000#")
    assert entry.verdict(False) == GaveUp("attempts")
    assert entry.state is EntryState.FAILED and entry.press("1", T0) is None


def test_empty_submission_means_no_pin() -> None:
    assert type_pin(PinEntry(T0), "#") == Submitted("")


def test_silence_times_out() -> None:
    entry = PinEntry(T0, timeout=timedelta(seconds=30))
    assert entry.get_timer() == T0 + timedelta(seconds=30)
    assert entry.handle_timer(T0 + timedelta(seconds=29)) is None
    assert entry.handle_timer(T0 + timedelta(seconds=30)) == GaveUp("timeout")
    assert entry.get_timer() is None
