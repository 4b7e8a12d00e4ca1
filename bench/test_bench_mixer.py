"""One 20 ms audio tick of a mixing room with its Opus encodes, with and without shared encodes.

Run: .venv/bin/pytest bench/test_bench_mixer.py --benchmark-only

``test_bench_media.py`` times the mixer core alone; this adds what the shell does with each tick
(``RoomMedia.audio_tick``): one real Opus encode (``OpusEncoder``, libopus at 32 kbit/s) per
distinct output. With shared encodes (what confnode does) that is one encode of the full mix for
every non-speaker plus one mix-minus per active speaker; without (what a per-participant mixer
such as Janus AudioBridge does) it is one encode per participant. Two participants talk, the rest
send silence, as in a consultation. Inbound Opus decodes are one per participant either way and
are not included.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from confnode.media import FRAME_SAMPLES, SAMPLE_RATE, AudioMixer
from confnode.media.mixer import OutputKey
from confnode.transport.encoders import OpusEncoder

T = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
TALKERS = 2


def frames_for(participants: int) -> dict[str, np.ndarray]:
    return {f"p{i}": (np.round(3000 * np.sin(2 * np.pi * (200 + 50 * i) * T)).astype(np.int16)
                      if i < TALKERS else np.zeros(FRAME_SAMPLES, np.int16))
            for i in range(participants)}


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-participant"])
@pytest.mark.parametrize("participants", [2, 4, 16, 50])
def test_mixer_tick_with_opus_encodes(benchmark: BenchmarkFixture, participants: int,
                                      shared: bool) -> None:
    mixer = AudioMixer()
    frames = frames_for(participants)
    for participant_id in frames:
        mixer.add(participant_id)
    shared_encoders: dict[OutputKey, OpusEncoder] = {}
    own_encoders = {participant_id: OpusEncoder() for participant_id in frames}
    encodes = [0]

    def tick() -> None:
        for participant_id, frame in frames.items():
            mixer.push(participant_id, frame)
        result = mixer.tick()
        if shared:
            for key in set(result.assignment.values()):
                encoder = shared_encoders.get(key)
                if encoder is None:
                    encoder = shared_encoders[key] = OpusEncoder()
                encoder.encode(result.outputs[key])
                encodes[0] += 1
        else:
            for participant_id, encoder in own_encoders.items():
                encoder.encode(result.output_for(participant_id))
                encodes[0] += 1

    benchmark(tick)
    encodes[0] = 0
    tick()
    # Two talkers: each hears the other (mix-minus); everyone else shares the full mix.
    expected = (min(participants, TALKERS) + (participants > TALKERS)) if shared else participants
    assert encodes[0] == expected
    benchmark.extra_info["opus_encodes_per_tick"] = expected
