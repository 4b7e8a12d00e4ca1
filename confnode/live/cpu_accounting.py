"""The node's own CPU per call-second, per call type (sans-IO).

Load generators on the same 2-core machine make host-wide CPU figures useless, so the node
accounts for itself: the caller feeds samples of the node process's CPU-seconds (all threads:
aiortc's codec threads and libav's encoder threads are in the process), a monotonic ``now`` and
how many calls of each type are up, and reads back call-seconds per type and CPU-seconds per
call-second over a sliding window.

Attribution. One process CPU figure has to be spread over call types that cost very different
amounts (a composed 1080p call costs ~30 audio calls). The window's CPU is apportioned in
proportion to each type's *load*: its call-seconds weighted by Pexip's capacity units
(``HD_UNITS``: audio 1/16, SD 0.5, HD 1, Full HD 2). So

    cpu_per_call_second[t] = window_cpu * units[t] / sum_u(units[u] * call_seconds[u])

When one type is all the node carries — a load test of one call shape, the case the figure is
for — this is exactly ``window_cpu / call_seconds[t]``, whatever the units. In a mix the figures
keep Pexip's ratios between types and are scaled so their weighted sum is the measured CPU: an
estimate, never more CPU than the node used. The alternative, attributing the window to a type
only when it dominates, gives no figure at all for a steady mixed load and is thrown off by the
minority's cost (one HD call next to ten audio calls is most of the CPU).

Only time with at least one call up counts: the node's idle CPU (timers, HTTP) between load
runs would otherwise inflate the next figure. The idle CPU *during* calls is in the figure, so
one or two calls overstate the per-call cost; read it under load. Samples are about a second
apart, so an interval is kept whole while any of it lies inside the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from confnode.media.call_types import HD_UNITS, CallType

DEFAULT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class CpuInterval:
    """The time between two samples: CPU used and the calls that were up at its start."""

    start: float
    end: float
    cpu_seconds: float
    calls: Mapping[CallType, int] = field(default_factory=dict)

    @property
    def carried_calls(self) -> bool:
        return any(self.calls.values())

    def call_seconds(self) -> dict[CallType, float]:
        duration = self.end - self.start
        return {kind: count * duration for kind, count in self.calls.items() if count}


class CpuAccounting:
    def __init__(self, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                 units: Mapping[CallType, float] = HD_UNITS) -> None:
        if window_seconds <= 0:
            raise ValueError("The window must be longer than zero seconds.")
        self.window_seconds = window_seconds
        self._units = dict(units)
        self._last: tuple[float, float, dict[CallType, int]] | None = None
        self._window: deque[CpuInterval] = deque()
        self.call_seconds_total: dict[CallType, float] = dict.fromkeys(CallType, 0.0)
        self.cpu_seconds_in_calls_total = 0.0

    def sample(self, cpu_seconds: float, now: float,
               calls: Mapping[CallType, int]) -> CpuInterval | None:
        """Record a sample; returns the interval it closes (None for the first sample).

        ``calls`` counts the calls up *now*; they are charged for the interval that starts here.
        """
        if any(count < 0 for count in calls.values()):
            raise ValueError("Call counts cannot be negative.")
        counts = {kind: count for kind, count in calls.items() if count}
        if self._last is None:
            self._last = (cpu_seconds, now, counts)
            return None
        last_cpu, last_now, last_counts = self._last
        if now <= last_now:
            raise ValueError("Samples must move forward in time.")
        if cpu_seconds < last_cpu:
            raise ValueError("Process CPU time cannot go backwards.")
        interval = CpuInterval(last_now, now, cpu_seconds - last_cpu, last_counts)
        self._last = (cpu_seconds, now, counts)
        if interval.carried_calls:
            self._window.append(interval)
            self.cpu_seconds_in_calls_total += interval.cpu_seconds
            for kind, seconds in interval.call_seconds().items():
                self.call_seconds_total[kind] += seconds
        while self._window and self._window[0].end <= now - self.window_seconds:
            self._window.popleft()
        return interval

    def window_call_seconds(self) -> dict[CallType, float]:
        totals: dict[CallType, float] = {}
        for interval in self._window:
            for kind, seconds in interval.call_seconds().items():
                totals[kind] = totals.get(kind, 0.0) + seconds
        return totals

    def cpu_per_call_second(self) -> dict[CallType, float]:
        """CPU-seconds per call-second of each type seen in the window (see the module doc)."""
        call_seconds = self.window_call_seconds()
        load = sum(self._units[kind] * seconds for kind, seconds in call_seconds.items())
        if load <= 0:
            return {}
        cpu = sum(interval.cpu_seconds for interval in self._window)
        return {kind: cpu * self._units[kind] / load for kind in call_seconds}

    def overall_cpu_per_call_second(self) -> float | None:
        """The window's CPU over all its call-seconds, unweighted (None without calls)."""
        seconds = sum(self.window_call_seconds().values())
        if seconds <= 0:
            return None
        return sum(interval.cpu_seconds for interval in self._window) / seconds
