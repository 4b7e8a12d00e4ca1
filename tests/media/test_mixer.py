from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.errors import Conflict, InvalidInput, NotFound
from confnode.media.mixer import (
    FRAME_SAMPLES,
    FULL_MIX,
    SAMPLE_RATE,
    SILENCE,
    SILENCE_DBOV,
    AudioMixer,
    OutputKey,
    OutputKind,
)

T = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
BIN_HZ = SAMPLE_RATE / FRAME_SAMPLES  # 50 Hz: tones on multiples of it fill exactly one FFT bin
# Rounding tones to int16 spreads a little noise over every bin (tens, for a few talkers); a tone
# that is really there peaks at amplitude * 480, i.e. at least 96 000 for the quietest used here.
LEAK_LIMIT = 150.0


def tone(hz: float, amplitude: float = 3000.0) -> np.ndarray:
    return np.round(amplitude * np.sin(2 * np.pi * hz * T)).astype(np.int16)


def magnitude_at(samples: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(spectrum[round(hz / BIN_HZ)])


def expected_peak(amplitude: float) -> float:
    return amplitude * FRAME_SAMPLES / 2  # an on-bin sine's rfft magnitude


def mixer_with(*ids: str, **kwargs: object) -> AudioMixer:
    mixer = AudioMixer(**kwargs)  # type: ignore[arg-type]
    for participant_id in ids:
        mixer.add(participant_id)
    return mixer


# --- mix-minus by content ------------------------------------------------------------------------

def test_each_speaker_hears_the_others_but_not_themselves() -> None:
    mixer = mixer_with("gp", "patient", "nurse")
    tones = {"gp": 300.0, "patient": 500.0, "nurse": 700.0}
    for participant_id, hz in tones.items():
        mixer.push(participant_id, tone(hz))
    result = mixer.tick()

    assert result.speakers == {"gp", "patient", "nurse"}
    for listener, own_hz in tones.items():
        heard = result.output_for(listener)
        assert magnitude_at(heard, own_hz) < LEAK_LIMIT
        for other, other_hz in tones.items():
            if other != listener:
                assert magnitude_at(heard, other_hz) == pytest.approx(expected_peak(3000), rel=1e-3)


def test_a_single_talker_reaches_the_others_bit_exact() -> None:
    mixer = mixer_with("gp", "patient")
    voice = tone(440.0, 12000)
    mixer.push("gp", voice)
    result = mixer.tick()

    np.testing.assert_array_equal(result.output_for("patient"), voice)
    np.testing.assert_array_equal(result.output_for("gp"), np.zeros(FRAME_SAMPLES, np.int16))


def test_non_speakers_share_the_full_mix_and_only_speakers_get_their_own() -> None:
    mixer = mixer_with("gp", "patient", "relative", "interpreter")
    mixer.add("late", in_lobby=True)
    mixer.set_muted("interpreter", True)
    mixer.push("gp", tone(300.0))
    mixer.push("patient", tone(500.0))
    mixer.push("relative", np.zeros(FRAME_SAMPLES, np.int16))  # present but silent
    mixer.push("interpreter", tone(900.0))  # muted: dropped
    mixer.push("late", tone(1100.0))  # lobby: dropped
    result = mixer.tick()

    assert result.assignment == {
        "gp": OutputKey(OutputKind.MIX_MINUS, "gp"),
        "patient": OutputKey(OutputKind.MIX_MINUS, "patient"),
        "relative": FULL_MIX,
        "interpreter": FULL_MIX,
        "late": SILENCE,
    }
    assert set(result.outputs) == {FULL_MIX, SILENCE, OutputKey.mix_minus("gp"),
                                   OutputKey.mix_minus("patient")}
    assert result.output_for("relative") is result.output_for("interpreter")
    full = result.outputs[FULL_MIX]
    assert magnitude_at(full, 300.0) == pytest.approx(expected_peak(3000), rel=1e-3)
    assert magnitude_at(full, 500.0) == pytest.approx(expected_peak(3000), rel=1e-3)
    assert magnitude_at(full, 900.0) < LEAK_LIMIT  # the muted interpreter is not heard
    assert magnitude_at(full, 1100.0) < LEAK_LIMIT  # nor is the lobby
    assert not result.outputs[SILENCE].any()


def test_outputs_are_read_only_because_they_are_shared() -> None:
    mixer = mixer_with("a", "b", "c")
    mixer.push("a", tone(300.0))
    result = mixer.tick()
    with pytest.raises(ValueError, match="read-only"):
        result.outputs[FULL_MIX][0] = 1


def test_only_keys_somebody_hears_are_produced() -> None:
    mixer = mixer_with("a", "b")
    mixer.push("a", tone(300.0))
    mixer.push("b", tone(500.0))
    result = mixer.tick()
    # Both talk: nobody needs the full mix, and nobody is in the lobby.
    assert set(result.outputs) == {OutputKey.mix_minus("a"), OutputKey.mix_minus("b")}


# --- lobby and mute ------------------------------------------------------------------------------

def test_lobby_participants_hear_silence_and_are_not_heard() -> None:
    mixer = mixer_with("gp")
    mixer.add("patient", in_lobby=True)
    mixer.push("gp", tone(300.0))
    mixer.push("patient", tone(500.0))
    result = mixer.tick()
    assert not result.output_for("patient").any()
    assert not result.output_for("gp").any()

    mixer.set_in_lobby("patient", False)  # admitted
    mixer.push("gp", tone(300.0))
    mixer.push("patient", tone(500.0))
    result = mixer.tick()
    assert magnitude_at(result.output_for("patient"), 300.0) > 1e5
    assert magnitude_at(result.output_for("gp"), 500.0) > 1e5


def test_muted_participants_still_hear_everyone() -> None:
    mixer = mixer_with("gp", "patient")
    mixer.set_muted("patient", True)
    mixer.push("gp", tone(300.0))
    mixer.push("patient", tone(500.0))
    result = mixer.tick()
    assert magnitude_at(result.output_for("patient"), 300.0) > 1e5
    assert magnitude_at(result.output_for("gp"), 500.0) < LEAK_LIMIT
    assert result.levels["patient"] == SILENCE_DBOV


def test_muting_discards_queued_audio_so_nothing_stale_bursts_out_on_unmute() -> None:
    mixer = mixer_with("gp", "patient")
    mixer.push("patient", tone(500.0))
    mixer.set_muted("patient", True)
    mixer.set_muted("patient", False)
    assert not mixer.tick().output_for("gp").any()


# --- levels and gate -----------------------------------------------------------------------------

def test_levels_are_dbov() -> None:
    mixer = mixer_with("full", "quiet", "absent")
    mixer.push("full", tone(1000.0, 32767))
    mixer.push("quiet", tone(1000.0, 32767 / 100))
    levels = mixer.tick().levels
    assert levels["full"] == pytest.approx(-3.01, abs=0.01)  # a full-scale sine (RFC 6464)
    assert levels["quiet"] == pytest.approx(-43.01, abs=0.05)
    assert levels["absent"] == SILENCE_DBOV


def test_background_noise_below_the_threshold_is_gated_out_of_the_mix() -> None:
    mixer = mixer_with("gp", "patient")
    hiss = tone(2000.0, 30)  # about -64 dBov
    mixer.push("patient", hiss)
    result = mixer.tick()
    assert result.speakers == frozenset()
    assert not result.output_for("gp").any()
    assert result.assignment["patient"] == FULL_MIX


def test_hangover_keeps_a_speaker_mixed_through_a_short_pause() -> None:
    mixer = mixer_with("gp", "patient", hangover_ticks=3)
    mixer.push("gp", tone(300.0))
    assert mixer.tick().speakers == {"gp"}
    quiet = tone(300.0, 30)
    for _ in range(3):  # below the threshold, but within the hangover: still mixed
        mixer.push("gp", quiet)
        result = mixer.tick()
        assert result.speakers == {"gp"}
        np.testing.assert_array_equal(result.output_for("patient"), quiet)
    mixer.push("gp", quiet)
    result = mixer.tick()
    assert result.speakers == frozenset()
    assert result.assignment["gp"] == FULL_MIX
    assert not result.output_for("patient").any()


def test_max_speakers_keeps_only_the_loudest() -> None:
    mixer = mixer_with("a", "b", "c", "listener", max_speakers=2)
    mixer.push("a", tone(300.0, 1000))
    mixer.push("b", tone(500.0, 8000))
    mixer.push("c", tone(700.0, 4000))
    result = mixer.tick()
    assert result.speakers == {"b", "c"}
    heard = result.output_for("listener")
    assert magnitude_at(heard, 300.0) < LEAK_LIMIT
    assert magnitude_at(heard, 500.0) > 1e6


# --- jitter queue --------------------------------------------------------------------------------

def test_two_frames_in_one_tick_are_played_over_two_ticks() -> None:
    mixer = mixer_with("gp", "patient")
    first, second = tone(300.0), tone(500.0)
    mixer.push("gp", first)
    mixer.push("gp", second)
    np.testing.assert_array_equal(mixer.tick().output_for("patient"), first)
    np.testing.assert_array_equal(mixer.tick().output_for("patient"), second)
    assert not mixer.tick().output_for("patient").any()  # underrun: silence


def test_a_burst_beyond_the_queue_drops_the_oldest_frames() -> None:
    mixer = mixer_with("gp", "patient", max_queued_frames=3)
    frames = [tone(hz) for hz in (300.0, 400.0, 500.0, 600.0, 700.0)]
    for frame in frames:
        mixer.push("gp", frame)
    played = [mixer.tick().output_for("patient") for _ in range(4)]
    for heard, frame in zip(played, frames[2:], strict=False):
        np.testing.assert_array_equal(heard, frame)
    assert not played[3].any()


def test_pyav_packed_mono_shape_is_accepted() -> None:
    mixer = mixer_with("gp", "patient")
    mixer.push("gp", tone(300.0).reshape(1, FRAME_SAMPLES))
    np.testing.assert_array_equal(mixer.tick().output_for("patient"), tone(300.0))


def test_the_caller_may_reuse_its_buffer_after_push() -> None:
    mixer = mixer_with("gp", "patient")
    buffer = tone(300.0)
    mixer.push("gp", buffer)
    buffer[:] = 0
    np.testing.assert_array_equal(mixer.tick().output_for("patient"), tone(300.0))


# --- clipping ------------------------------------------------------------------------------------

def test_loud_talkers_are_soft_clipped_not_wrapped() -> None:
    mixer = mixer_with("a", "b", "c", "listener")
    for participant_id in ("a", "b", "c"):
        mixer.push(participant_id, tone(200.0, 30000))  # in phase: 90000 peak before clipping
    heard = mixer.tick().output_for("listener").astype(np.int32)
    reference = tone(200.0, 30000).astype(np.int32)
    assert heard.max() <= 32767
    assert heard.min() >= -32767
    assert heard.max() > 31000  # compressed towards full scale, not attenuated overall
    # No wrap-around: every sample keeps the sign of the true sum.
    assert np.all(np.sign(heard) == np.sign(reference))
    # Monotonic: a louder input sample never comes out quieter.
    order = np.argsort(reference)
    assert np.all(np.diff(heard[order]) >= 0)


def test_the_knee_is_transparent_below_three_quarters_of_full_scale() -> None:
    mixer = mixer_with("a", "b", "listener")
    mixer.push("a", tone(200.0, 12000))
    mixer.push("b", tone(200.0, 12000))  # 24000 peak: just under the 24575 knee
    np.testing.assert_array_equal(mixer.tick().output_for("listener"),
                                  tone(200.0, 12000).astype(np.int32) * 2)


# --- errors --------------------------------------------------------------------------------------

def test_errors_are_typed() -> None:
    mixer = mixer_with("gp")
    with pytest.raises(Conflict):
        mixer.add("gp")
    with pytest.raises(NotFound):
        mixer.push("ghost", tone(300.0))
    with pytest.raises(NotFound):
        mixer.remove("ghost")
    with pytest.raises(InvalidInput):
        mixer.push("gp", np.zeros(480, np.int16))
    with pytest.raises(InvalidInput):
        mixer.push("gp", np.zeros(FRAME_SAMPLES, np.float32))
    with pytest.raises(NotFound):
        mixer.tick().output_for("ghost")


def test_removed_participants_are_neither_heard_nor_assigned() -> None:
    mixer = mixer_with("gp", "patient", "relative")
    mixer.push("relative", tone(700.0))
    mixer.remove("relative")
    result = mixer.tick()
    assert set(result.assignment) == {"gp", "patient"}
    assert not result.output_for("gp").any()


# --- properties ----------------------------------------------------------------------------------

PEOPLE = [f"p{i}" for i in range(8)]


@st.composite
def rooms(draw: st.DrawFn) -> dict[str, tuple[int, int, str]]:
    """participant -> (FFT bin, amplitude, state) with distinct bins, sums below the knee."""
    count = draw(st.integers(2, 8))
    bins = draw(st.lists(st.integers(2, 400), min_size=count, max_size=count, unique=True))
    room = {}
    for participant_id, bin_index in zip(PEOPLE, bins, strict=False):
        amplitude = draw(st.integers(200, 3000))
        state = draw(st.sampled_from(["open", "open", "muted", "lobby", "absent"]))
        room[participant_id] = (bin_index, amplitude, state)
    return room


def run_tick(room: dict[str, tuple[int, int, str]], overrides: dict[str, np.ndarray] | None = None,
             ) -> tuple[AudioMixer, object]:
    mixer = AudioMixer()
    for participant_id, (bin_index, amplitude, state) in room.items():
        mixer.add(participant_id, muted=state == "muted", in_lobby=state == "lobby")
        if state != "absent":
            samples = (overrides or {}).get(participant_id)
            mixer.push(participant_id,
                       tone(bin_index * BIN_HZ, amplitude) if samples is None else samples)
    return mixer, mixer.tick()


@settings(max_examples=60, deadline=None)
@given(rooms())
def test_property_nobody_hears_themselves_and_only_open_microphones_are_heard(
        room: dict[str, tuple[int, int, str]]) -> None:
    _, result = run_tick(room)
    for listener, (_, _, listener_state) in room.items():
        heard = result.output_for(listener)  # type: ignore[attr-defined]
        assert heard.dtype == np.int16
        if listener_state == "lobby":
            assert not heard.any()
            continue
        for talker, (bin_index, amplitude, state) in room.items():
            magnitude = magnitude_at(heard, bin_index * BIN_HZ)
            if talker == listener or state != "open":
                assert magnitude < LEAK_LIMIT, (listener, talker)
            else:
                assert magnitude == pytest.approx(expected_peak(amplitude), rel=0.01)


@settings(max_examples=40, deadline=None)
@given(rooms(), st.integers(0, 2**32 - 1))
def test_property_own_output_never_depends_on_own_signal_even_when_clipping(
        room: dict[str, tuple[int, int, str]], seed: int) -> None:
    """A listener's output is a function of the others alone, whatever the listener sends."""
    rng = np.random.default_rng(seed)
    listener = next(iter(room))
    loud = {p: rng.integers(-32768, 32768, FRAME_SAMPLES).astype(np.int16) for p in room}
    _, baseline = run_tick(room, loud)
    loud[listener] = rng.integers(-32768, 32768, FRAME_SAMPLES).astype(np.int16)
    _, changed = run_tick(room, loud)
    np.testing.assert_array_equal(baseline.output_for(listener),  # type: ignore[attr-defined]
                                  changed.output_for(listener))  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(rooms(), st.integers(0, 2**32 - 1))
def test_property_muted_and_lobby_signals_change_nobody_s_output(
        room: dict[str, tuple[int, int, str]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    noisy = {p: rng.integers(-32768, 32768, FRAME_SAMPLES).astype(np.int16)
             for p, (_, _, state) in room.items() if state in ("muted", "lobby")}
    silent = {p: np.zeros(FRAME_SAMPLES, np.int16) for p in noisy}
    _, with_noise = run_tick(room, noisy)
    _, with_silence = run_tick(room, silent)
    for participant_id in room:
        np.testing.assert_array_equal(
            with_noise.output_for(participant_id),  # type: ignore[attr-defined]
            with_silence.output_for(participant_id))  # type: ignore[attr-defined]


def test_a_speaker_whose_frame_is_late_keeps_their_own_stream() -> None:
    """Switching a talker between the shared full mix and their own mix-minus when one frame
    arrives late would splice two encoders' streams: a click. Within the hangover they keep
    their own output, which for that tick is the full mix (without them, as always)."""
    mixer = mixer_with("a", "b", "c")
    mixer.push("a", tone(500))
    mixer.push("b", tone(800))
    first = mixer.tick()
    assert first.assignment["a"] == OutputKey.mix_minus("a")
    mixer.push("b", tone(800))  # a's frame is late this tick
    late = mixer.tick()
    assert late.assignment["a"] == OutputKey.mix_minus("a")
    np.testing.assert_array_equal(late.output_for("a"), late.outputs[FULL_MIX])
    assert magnitude_at(late.output_for("a"), 500) < 1.0
    assert late.assignment["c"] == FULL_MIX
