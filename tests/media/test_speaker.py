from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.errors import InvalidInput
from confnode.media.mixer import SILENCE_DBOV
from confnode.media.speaker import ActiveSpeaker, SpeakerChanged

TALKING = -20.0
QUIET = SILENCE_DBOV


def drain(detector: ActiveSpeaker) -> list[SpeakerChanged]:
    events = []
    while (event := detector.next_event()) is not None:
        events.append(event)
    return events


def feed(detector: ActiveSpeaker, levels: dict[str, float], ticks: int) -> str | None:
    current = None
    for _ in range(ticks):
        current = detector.update(levels)
    return current


def test_the_first_speaker_takes_the_stage_after_the_hold_time() -> None:
    detector = ActiveSpeaker(hold_ticks=15)
    assert feed(detector, {"gp": TALKING, "patient": QUIET}, 14) is None
    assert detector.update({"gp": TALKING, "patient": QUIET}) == "gp"
    assert drain(detector) == [SpeakerChanged(None, "gp")]


def test_a_cough_does_not_take_the_stage() -> None:
    detector = ActiveSpeaker(hold_ticks=15)
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    drain(detector)
    # The GP pauses; the patient coughs for 100 ms, then silence.
    feed(detector, {"gp": QUIET, "patient": -10.0}, 5)
    assert feed(detector, {"gp": QUIET, "patient": QUIET}, 50) == "gp"
    assert drain(detector) == []


def test_silence_keeps_the_last_speaker() -> None:
    detector = ActiveSpeaker()
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    assert feed(detector, {"gp": QUIET, "patient": QUIET}, 500) == "gp"


def test_a_new_speaker_takes_over_once_clearly_louder_for_the_hold_time() -> None:
    detector = ActiveSpeaker(hold_ticks=15, margin_db=6.0, decay_db_per_tick=1.5)
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    drain(detector)
    # The GP stops, the patient talks at the GP's level. The GP's envelope falls 1.5 dB per
    # tick, so from the 4th tick on the patient is 6 dB above it: 15 such ticks end on the 18th.
    levels = {"gp": QUIET, "patient": TALKING}
    assert feed(detector, levels, 17) == "gp"
    assert detector.update(levels) == "patient"
    assert drain(detector) == [SpeakerChanged("gp", "patient")]
    assert detector.previous == "gp"


def test_double_talk_at_similar_levels_does_not_flip_the_stage() -> None:
    detector = ActiveSpeaker(margin_db=6.0)
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    assert feed(detector, {"gp": TALKING, "patient": TALKING + 5.0}, 200) == "gp"
    assert feed(detector, {"gp": TALKING, "patient": TALKING + 7.0}, 15) == "patient"


def test_short_gaps_in_the_challenger_s_speech_are_forgiven() -> None:
    detector = ActiveSpeaker(hold_ticks=15, max_gap_ticks=5, decay_db_per_tick=50.0)
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    talking, pause = {"gp": QUIET, "patient": TALKING}, {"gp": QUIET, "patient": QUIET}
    feed(detector, talking, 10)
    feed(detector, pause, 5)  # 100 ms between words
    assert feed(detector, talking, 4) == "gp"
    assert detector.update(talking) == "patient"  # 15 talking ticks in all


def test_a_longer_pause_starts_the_count_again() -> None:
    detector = ActiveSpeaker(hold_ticks=15, max_gap_ticks=5, decay_db_per_tick=50.0)
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    talking, pause = {"gp": QUIET, "patient": TALKING}, {"gp": QUIET, "patient": QUIET}
    feed(detector, talking, 14)
    feed(detector, pause, 6)
    assert feed(detector, talking, 14) == "gp"
    assert detector.update(talking) == "patient"


def test_levels_below_the_threshold_never_take_the_stage() -> None:
    detector = ActiveSpeaker(threshold_dbov=-50.0)
    assert feed(detector, {"hiss": -55.0}, 100) is None
    assert drain(detector) == []


def test_the_loudest_challenger_wins() -> None:
    detector = ActiveSpeaker()
    assert feed(detector, {"a": -30.0, "b": -15.0, "c": -25.0}, 15) == "b"


def test_removing_the_speaker_empties_the_stage_and_a_new_one_is_found() -> None:
    detector = ActiveSpeaker()
    feed(detector, {"gp": TALKING, "patient": QUIET}, 15)
    drain(detector)
    detector.remove("gp")
    assert detector.current is None
    assert drain(detector) == [SpeakerChanged("gp", None)]
    assert feed(detector, {"patient": TALKING}, 15) == "patient"


def test_missing_participants_count_as_silent() -> None:
    detector = ActiveSpeaker(decay_db_per_tick=50.0)
    feed(detector, {"gp": TALKING}, 15)
    assert feed(detector, {"patient": TALKING}, 15) == "patient"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(InvalidInput):
        ActiveSpeaker(hold_ticks=0)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                                st.floats(-127.0, 0.0), max_size=4),
                min_size=1, max_size=120),
       st.integers(1, 20))
def test_property_the_stage_changes_at_most_once_per_hold_time(
        ticks: list[dict[str, float]], hold: int) -> None:
    detector = ActiveSpeaker(hold_ticks=hold)
    change_ticks = []
    stage = None
    for index, levels in enumerate(ticks):
        now_on_stage = detector.update(levels)
        if now_on_stage != stage:
            change_ticks.append(index)
            stage = now_on_stage
            assert now_on_stage is not None  # only leaving empties the stage
            assert levels.get(now_on_stage, SILENCE_DBOV) >= detector.threshold_dbov
    assert all(b - a >= hold for a, b in pairwise(change_ticks))
    assert len(drain(detector)) == len(change_ticks)
