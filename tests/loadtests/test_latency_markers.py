"""The media load test's latency markers: bursts found at the right sample (alone, mixed with
other senders' bursts, through G.711's band), picture codes read back from a composition tile,
late and lost frames counted."""

from __future__ import annotations

import numpy as np
from latency_markers import (
    FRAME_SAMPLES,
    MARKER_FREQUENCIES,
    AudioMarkerDetector,
    AudioMarkerSchedule,
    MarkerReceiver,
    PlayoutClock,
    Rect,
    RoomMarkers,
    composition_rects,
    draw_code,
    read_code,
    read_codes,
)

from confnode.media.compositor import Compositor


def _signal(slot: int, frames: int, delay: int = 0) -> np.ndarray:
    schedule = AudioMarkerSchedule()
    signal = np.concatenate([schedule.frame(MARKER_FREQUENCIES[slot - 1], i)
                             for i in range(frames)]).astype(np.float64)
    return np.concatenate([np.zeros(delay), signal])[: frames * FRAME_SAMPLES]


def _onsets(detector: AudioMarkerDetector, signal: np.ndarray) -> list[tuple[int, int]]:
    found = []
    for start in range(0, len(signal), FRAME_SAMPLES):
        found += [(slot, start + offset)
                  for slot, offset in detector.feed(signal[start:start + FRAME_SAMPLES])]
    return found


def test_each_burst_is_found_once_at_its_onset() -> None:
    onsets = _onsets(AudioMarkerDetector(MARKER_FREQUENCIES), _signal(2, 60, delay=300))
    assert [slot for slot, _ in onsets] == [1, 1, 1]
    starts = [300, 300 + 20 * FRAME_SAMPLES, 300 + 40 * FRAME_SAMPLES]
    # A fixed bias (half the window and ramp to cross half amplitude), the same for every burst.
    biases = [at - start for (_, at), start in zip(onsets, starts, strict=True)]
    assert max(biases) - min(biases) <= 2 and abs(biases[0]) < 480


def test_senders_mixed_together_are_told_apart() -> None:
    mixed = (_signal(1, 40) + _signal(3, 40, delay=5000) + _signal(4, 40, delay=9000)) / 2
    onsets = _onsets(AudioMarkerDetector(MARKER_FREQUENCIES), mixed)
    assert sorted({slot for slot, _ in onsets}) == [0, 2, 3]
    assert len(onsets) == 6  # two bursts each in 800 ms, no cross-talk detections


def test_markers_survive_g711_band_limiting() -> None:
    from confnode.transport.encoders import G711Encoder

    encoder, decoded = G711Encoder("PCMU"), []
    for frame in _signal(4, 40).astype(np.int16).reshape(-1, FRAME_SAMPLES):
        data = encoder.encode(frame)
        assert data is not None
        pcm = np.frombuffer(data, dtype=np.uint8).astype(np.int32)
        decoded.append(np.repeat(_mulaw_decode(pcm), 6))  # 8 kHz back to 48 kHz, crudely
    onsets = _onsets(AudioMarkerDetector(MARKER_FREQUENCIES), np.concatenate(decoded))
    assert [slot for slot, _ in onsets] == [3, 3]


def _mulaw_decode(codes: np.ndarray) -> np.ndarray:
    codes = ~codes & 0xFF
    sign, exponent, mantissa = codes & 0x80, (codes >> 4) & 0x07, codes & 0x0F
    magnitude = ((mantissa << 3) + 0x84 << exponent) - 0x84
    return np.where(sign, -magnitude, magnitude).astype(np.float64)


def test_picture_code_round_trips_and_rejects_plain_pictures() -> None:
    picture = draw_code(320, 240, 3, 234)
    assert read_code(picture[:240], Rect(0, 0, 320, 240)) == (3, 234)
    assert read_code(np.full((240, 320), 16, np.uint8), Rect(0, 0, 320, 240)) is None
    assert read_code(np.full((240, 320), 235, np.uint8), Rect(0, 0, 320, 240)) is None


def test_codes_are_read_from_the_node_s_own_composition() -> None:
    pictures = {f"p{slot}": draw_code(320, 240, slot, 100 + slot) for slot in (1, 2, 3)}
    composed = Compositor().compose("4:0", list(pictures.items()), 640, 360)
    found = read_codes(composed[:360], composition_rects(640, 360, (320, 240)))
    assert found == {1: 101, 2: 102, 3: 103}


def test_playout_clock_counts_late_and_lost_frames() -> None:
    clock = PlayoutClock(48000, late_after=0.06)
    assert clock.observe(0, 960, 10.000) == (0.0, 0)
    behind, lost = clock.observe(960, 960, 10.100)  # due at 10.020
    assert abs(behind - 0.08) < 1e-9 and lost == 0
    behind, lost = clock.observe(960 * 4, 960, 10.080)  # two frames never came
    assert abs(behind) < 1e-9 and lost == 2
    # A one-second stall: late while it lasts, then the clock re-centres on the new delay.
    assert clock.observe(960 * 5, 960, 11.100)[0] > 0.9
    assert clock.observe(960 * 400, 960, 18.0)[0] < 0.06


def test_receiver_reports_latency_against_the_send_time() -> None:
    markers, reports = RoomMarkers(), []
    markers.audio_sent(1, 5.0)
    receiver = MarkerReceiver(2, markers, lambda *r: reports.append(r))
    signal = _signal(1, 4)
    for index in range(4):
        receiver.audio(signal[index * 960:(index + 1) * 960], index * 960, 48000, 960,
                       5.1 + index * 0.02)
    latencies = [seconds for metric, seconds, _ in reports if metric == "audio latency"]
    assert len(latencies) == 1 and abs(latencies[0] - 0.1) < 0.01  # minus the detector's bias
    assert ("first media", 5.1, False) in reports
