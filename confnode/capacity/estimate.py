"""From measured CPU per call-second to maximum concurrent calls (pure).

A node at 100 % CPU drops media, so the estimate keeps ``HEADROOM`` of the cores for what the
synthetic workloads leave out: signalling, ICE/DTLS, RTCP, aiortc's per-packet Python path
(jitter buffer, packetizer) and bursts such as keyframes after a join. 0.8 follows the usual
"plan for 80 % utilisation" rule; the measured per-call costs are the engine's alone, so the
real node's figures (``confnode_cpu_seconds_per_call_second``) are the check on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from confnode.media.call_types import HD_UNITS, CallType

HEADROOM = 0.8


@dataclass(frozen=True)
class CallCapacity:
    call_type: CallType
    cpu_seconds_per_call_second: float
    calls_per_core: float
    max_calls: int
    hd_units: float  # Pexip's relative cost (HD = 1)
    measured_hd_units: float | None  # this host's relative cost (HD = 1), when HD was measured


@dataclass(frozen=True)
class CapacityEstimate:
    cores: int
    headroom: float
    calls: dict[CallType, CallCapacity]

    def to_dict(self) -> dict[str, object]:
        return {"cores": self.cores, "headroom": self.headroom, "call_types": {
            kind.value: {"cpu_seconds_per_call_second": c.cpu_seconds_per_call_second,
                         "calls_per_core": c.calls_per_core, "max_calls": c.max_calls,
                         "hd_units": c.hd_units, "measured_hd_units": c.measured_hd_units}
            for kind, c in self.calls.items()}}


def estimate_capacity(costs: Mapping[CallType, float], cores: int,
                      headroom: float = HEADROOM) -> CapacityEstimate:
    """Maximum concurrent calls of each type alone on ``cores`` cores kept at ``headroom``."""
    if cores < 1:
        raise ValueError("A host has at least one core.")
    if not 0 < headroom <= 1:
        raise ValueError("Headroom is a fraction of the cores, above 0 and at most 1.")
    if any(cost <= 0 or not math.isfinite(cost) for cost in costs.values()):
        raise ValueError("Every measured cost must be a positive number of CPU-seconds.")
    hd = costs.get(CallType.HD)
    calls = {}
    for kind, cost in costs.items():
        per_core = headroom / cost
        calls[kind] = CallCapacity(kind, cost, per_core, math.floor(per_core * cores),
                                   HD_UNITS[kind], cost / hd if hd else None)
    return CapacityEstimate(cores, headroom, calls)
