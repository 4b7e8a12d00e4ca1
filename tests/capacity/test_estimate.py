"""From measured CPU per call-second to maximum calls, with literals."""

from __future__ import annotations

import pytest

from confnode.capacity.estimate import estimate_capacity
from confnode.media.call_types import CallType


def test_calls_per_core_keep_the_headroom_and_round_down() -> None:
    estimate = estimate_capacity({CallType.HD: 0.1, CallType.AUDIO: 0.004}, cores=2,
                                 headroom=0.8)
    hd, audio = estimate.calls[CallType.HD], estimate.calls[CallType.AUDIO]
    assert hd.calls_per_core == pytest.approx(8.0) and hd.max_calls == 16
    assert audio.calls_per_core == pytest.approx(200.0) and audio.max_calls == 400
    assert audio.measured_hd_units == pytest.approx(0.04) and audio.hd_units == 1 / 16
    assert estimate_capacity({CallType.SD: 0.3}, cores=1, headroom=0.8).calls[
        CallType.SD].max_calls == 2  # 2.67 calls fit: two can be promised


def test_without_an_hd_measurement_there_is_no_relative_cost() -> None:
    estimate = estimate_capacity({CallType.SD: 0.05}, cores=4)
    assert estimate.calls[CallType.SD].measured_hd_units is None
    assert estimate.to_dict()["call_types"]["sd"]["max_calls"] == 64  # type: ignore[index]


@pytest.mark.parametrize(("costs", "cores", "headroom"), [
    ({CallType.HD: 0.0}, 2, 0.8), ({CallType.HD: -1.0}, 2, 0.8),
    ({CallType.HD: float("nan")}, 2, 0.8), ({CallType.HD: 0.1}, 0, 0.8),
    ({CallType.HD: 0.1}, 2, 0.0), ({CallType.HD: 0.1}, 2, 1.5)])
def test_impossible_inputs_are_refused(costs: dict[CallType, float], cores: int,
                                       headroom: float) -> None:
    with pytest.raises(ValueError):
        estimate_capacity(costs, cores, headroom)
