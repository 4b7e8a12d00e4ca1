"""Speed of the media cores per 20 ms mixer tick and per composed video frame (pytest-benchmark).

Run: .venv/bin/pytest bench/test_bench_media.py --benchmark-only

Budgets, for a 2-core node: a mixer tick must leave room for many rooms in 20 ms; a composed
frame must be small next to its VP8 encode (~9 ms at 720p, REFERENCES.md §5).
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from confnode.media import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioMixer,
    Compositor,
    ViewSpec,
    available_layouts,
    capacity,
    stage_order,
)

T = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720)}


def voice(i: int) -> np.ndarray:
    return np.round(3000 * np.sin(2 * np.pi * (200 + 50 * i) * T)).astype(np.int16)


@pytest.mark.parametrize("participants", [2, 4, 16, 50])
def test_mixer_tick_two_speakers(benchmark: BenchmarkFixture, participants: int) -> None:
    """The usual case: everyone connected, two talking (push of every frame included)."""
    mixer = AudioMixer()
    frames = {f"p{i}": voice(i) if i < 2 else np.zeros(FRAME_SAMPLES, np.int16)
              for i in range(participants)}
    for participant_id in frames:
        mixer.add(participant_id)

    def tick() -> None:
        for participant_id, frame in frames.items():
            mixer.push(participant_id, frame)
        mixer.tick()

    benchmark(tick)
    for participant_id, frame in frames.items():
        mixer.push(participant_id, frame)
    assert len(mixer.tick().outputs) == (2 if participants == 2 else 3)


@pytest.mark.parametrize("participants", [2, 4, 16, 50])
def test_mixer_tick_everyone_talking(benchmark: BenchmarkFixture, participants: int) -> None:
    """The worst case: every microphone open and loud, so one mix-minus each and clipping."""
    mixer = AudioMixer()
    rng = np.random.default_rng(7)
    frames = {f"p{i}": (rng.standard_normal(FRAME_SAMPLES) * 6000).astype(np.int16)
              for i in range(participants)}
    for participant_id in frames:
        mixer.add(participant_id)

    def tick() -> None:
        for participant_id, frame in frames.items():
            mixer.push(participant_id, frame)
        mixer.tick()

    benchmark(tick)


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@pytest.mark.parametrize("name", [str(name) for name in available_layouts()])
def test_compose_layout_full(benchmark: BenchmarkFixture, name: str, resolution: str) -> None:
    """Every tile filled from a 720p camera picture (the worst realistic source)."""
    width, height = RESOLUTIONS[resolution]
    rng = np.random.default_rng(1)
    entries = [(f"p{i}", rng.integers(0, 256, (1080, 1280), dtype=np.uint8))
               for i in range(capacity(name))]
    compositor = Compositor()
    out = benchmark(compositor.compose, name, entries, width, height)
    assert out.shape == (height * 3 // 2, width)


def test_compose_views_sixteen_viewers_one_plus_seven(benchmark: BenchmarkFixture) -> None:
    """16 people in 1+7 at 720p: 8 on screen see distinct pictures, the other 8 share one."""
    joined = [f"p{i:02}" for i in range(16)]
    rng = np.random.default_rng(2)
    frames = {p: rng.integers(0, 256, (1080, 1280), dtype=np.uint8) for p in joined}
    views = {viewer: ViewSpec("1:7", 1280, 720,
                              stage_order(viewer, joined, "1:7", speaker="p03"))
             for viewer in joined}
    compositor = Compositor()
    composed = benchmark(compositor.compose_views, views, frames)
    assert len(composed.frames) == 9
    assert len(composed.assignment) == 16
