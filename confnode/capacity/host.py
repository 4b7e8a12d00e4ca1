"""Measure this host: each call type's workload for a share of the time budget, then estimate.

The budget is spread by cost (the video workloads' steps are long and noisier), and a --quick
run is the same measurement, shorter, with a shorter looped camera stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from confnode.capacity.estimate import HEADROOM, CapacityEstimate, estimate_capacity
from confnode.capacity.workloads import (
    ROOM,
    AudioRoom,
    Measurement,
    PassthroughCall,
    VideoRoom,
    Workload,
    measure,
)
from confnode.config import MediaSettings
from confnode.media.call_types import CallType

DEFAULT_SECONDS = 20.0
QUICK_SECONDS = 2.5

# Pexip's picture sizes: SD is 448p (768x448), HD 720p, Full HD 1080p.
RESOLUTIONS: dict[CallType, tuple[int, int]] = {
    CallType.SD: (768, 448), CallType.HD: (1280, 720), CallType.FULL_HD: (1920, 1080)}
SHARES: dict[CallType, float] = {
    CallType.PASSTHROUGH: 0.1, CallType.AUDIO: 0.15, CallType.SD: 0.2, CallType.HD: 0.25,
    CallType.FULL_HD: 0.3}

Progress = Callable[[float, str], None]  # (seconds done of the budget, what runs now)


@dataclass(frozen=True)
class HostCapacity:
    estimate: CapacityEstimate
    fps: int
    measured_seconds: float

    def to_dict(self) -> dict[str, object]:
        return {**self.estimate.to_dict(), "fps": self.fps, "codec": "vp8",
                "room_size": ROOM, "measured_seconds": round(self.measured_seconds, 2)}


def host_cores() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the machine's)."""
    return len(os.sched_getaffinity(0))


def measure_host(settings: MediaSettings, *, seconds: float = DEFAULT_SECONDS,
                 progress: Progress | None = None, cores: int | None = None,
                 headroom: float = HEADROOM) -> HostCapacity:
    if seconds <= 0:
        raise ValueError("The measuring time must be positive.")
    frames = settings.fps if seconds >= DEFAULT_SECONDS / 2 else max(3, settings.fps // 4)
    done = 0.0
    costs: dict[CallType, float] = {}
    for kind, share in SHARES.items():
        budget = seconds * share
        workload: Workload
        calls = 1
        if kind is CallType.PASSTHROUGH:
            workload = PassthroughCall(settings)
        elif kind is CallType.AUDIO:
            workload, calls = AudioRoom(settings), ROOM
        else:
            width, height = RESOLUTIONS[kind]
            workload, calls = VideoRoom(settings, width, height, frames), ROOM
        offset = done

        def report(elapsed: float, offset: float = offset, label: str = kind.value) -> None:
            if progress is not None:
                progress(offset + elapsed, label)

        result: Measurement = measure(workload, calls, budget, report)
        # A video call carries audio too: its cost is its picture's plus an audio call's.
        costs[kind] = result.per_call_second + (costs[CallType.AUDIO]
                                                if kind in RESOLUTIONS else 0.0)
        done += budget
    return HostCapacity(estimate_capacity(costs, cores or host_cores(), headroom),
                        settings.fps, done)
