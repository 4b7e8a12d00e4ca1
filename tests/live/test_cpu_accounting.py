"""The node's CPU per call-second, from literal samples (no clocks, no processes)."""

from __future__ import annotations

import pytest

from confnode.live.cpu_accounting import CpuAccounting
from confnode.media.call_types import CallType

AUDIO, HD, SD = CallType.AUDIO, CallType.HD, CallType.SD


def test_one_call_type_gets_exactly_cpu_over_call_seconds() -> None:
    account = CpuAccounting(window_seconds=60)
    assert account.sample(10.0, 100.0, {HD: 4}) is None
    interval = account.sample(12.0, 101.0, {HD: 4})
    assert interval is not None and interval.cpu_seconds == 2.0
    account.sample(14.0, 102.0, {HD: 4})
    assert account.cpu_per_call_second() == {HD: pytest.approx(0.5)}  # 4 CPU-s / 8 call-s
    assert account.overall_cpu_per_call_second() == pytest.approx(0.5)
    assert account.call_seconds_total[HD] == 8.0
    assert account.cpu_seconds_in_calls_total == 4.0


def test_mixed_types_are_apportioned_by_pexip_units() -> None:
    account = CpuAccounting()
    account.sample(0.0, 0.0, {HD: 1, AUDIO: 16, SD: 2})
    account.sample(3.0, 1.0, {})
    # Load in HD units: 1*1 + 16/16 + 2*0.5 = 3 HD-unit-seconds for 3 CPU-s: 1 CPU-s per unit.
    figures = account.cpu_per_call_second()
    assert figures == {HD: pytest.approx(1.0), AUDIO: pytest.approx(1 / 16),
                       SD: pytest.approx(0.5)}
    # The apportioned CPU adds up to what the node used, never more.
    seconds = account.window_call_seconds()
    assert sum(figures[k] * seconds[k] for k in figures) == pytest.approx(3.0)
    assert account.overall_cpu_per_call_second() == pytest.approx(3.0 / 19)


def test_idle_time_between_calls_does_not_count() -> None:
    account = CpuAccounting()
    account.sample(0.0, 0.0, {})
    account.sample(5.0, 10.0, {AUDIO: 2})  # 10 s idle using 5 CPU-s: not charged
    account.sample(5.2, 11.0, {})
    assert account.cpu_per_call_second() == {AUDIO: pytest.approx(0.1)}
    assert account.cpu_seconds_in_calls_total == pytest.approx(0.2)
    assert account.call_seconds_total[AUDIO] == 2.0


def test_the_window_slides_and_old_calls_drop_out() -> None:
    account = CpuAccounting(window_seconds=10)
    account.sample(0.0, 0.0, {HD: 1})
    account.sample(1.0, 1.0, {AUDIO: 10})
    account.sample(1.5, 6.0, {AUDIO: 10})
    assert set(account.cpu_per_call_second()) == {HD, AUDIO}
    account.sample(2.0, 11.5, {AUDIO: 10})  # the HD second (0..1) is out of the window
    assert set(account.cpu_per_call_second()) == {AUDIO}
    assert account.cpu_per_call_second()[AUDIO] == pytest.approx(1.0 / 105)
    assert account.call_seconds_total[HD] == 1.0  # totals keep everything
    account.sample(2.0, 30.0, {})
    account.sample(2.0, 50.0, {})
    assert account.cpu_per_call_second() == {}
    assert account.overall_cpu_per_call_second() is None


@pytest.mark.parametrize(("cpu", "now", "calls", "message"), [
    (11.0, 100.0, {HD: 1}, "forward in time"),
    (9.0, 101.0, {HD: 1}, "backwards"),
    (11.0, 101.0, {HD: -1}, "negative"),
])
def test_bad_samples_are_refused_and_change_nothing(cpu: float, now: float,
                                                    calls: dict[CallType, int],
                                                    message: str) -> None:
    account = CpuAccounting()
    account.sample(10.0, 100.0, {HD: 1})
    with pytest.raises(ValueError, match=message):
        account.sample(cpu, now, calls)
    account.sample(11.0, 102.0, {})
    assert account.cpu_per_call_second() == {HD: pytest.approx(0.5)}


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CpuAccounting(window_seconds=0)
