"""The asyncio shell around ``CpuAccounting``: once a second, the process's CPU time and the
calls that are up, each classified by what the node does for it right now.

``time.process_time`` is the CPU of every thread of this process (aiortc's codec threads and
libav's encoder threads included), and of nothing else: a load generator on the same machine
does not count. Two nodes embedded in one process would share it; ``confnode serve`` runs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from confnode.licensing import LicenceKind
from confnode.live.calls import CallLegs
from confnode.live.cpu_accounting import CpuAccounting, CpuInterval
from confnode.live.webrtc_calls import WebRtcCalls
from confnode.media.call_types import CallType, classify_call
from confnode.media.routing import RouteMode

log = logging.getLogger(__name__)

SAMPLE_PERIOD_SECONDS = 1.0


class CpuSampler:
    def __init__(self, calls: CallLegs, webrtc: WebRtcCalls, *, composed_height: int,
                 on_interval: Callable[[CpuInterval], None] | None = None,
                 accounting: CpuAccounting | None = None,
                 period: float = SAMPLE_PERIOD_SECONDS,
                 cpu_clock: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._calls = calls
        self._webrtc = webrtc
        self._height = composed_height
        self._on_interval = on_interval
        self.accounting = accounting or CpuAccounting()
        self._period = period
        self._cpu_clock = cpu_clock
        self._clock = clock
        self._last_now: float | None = None
        self._task: asyncio.Task[None] | None = None

    def active_calls(self) -> dict[CallType, int]:
        counts: dict[CallType, int] = {}
        for leg in self._calls.active():
            media = self._webrtc.media.get(leg.meeting_id)
            member = media.members.get(leg.participant_id) if media is not None else None
            passthrough = mixed = False
            if media is not None and member is not None and member.connected:
                passthrough = (media.route is RouteMode.PASSTHROUGH
                               and leg.participant_id in media.router.participant_ids)
                mixed = not passthrough and sum(m.connected for m in media.members.values()) > 1
            kind = classify_call(
                sip=leg.record.endpoint_type == "sip",
                video=leg.licence is not None and leg.licence.requested is LicenceKind.PORT,
                passthrough=passthrough, mixed=mixed, height=self._height)
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def sample(self) -> None:
        """Take a sample now (the loop does every period; /metrics does before it answers)."""
        now = self._clock()
        if self._last_now is not None and now <= self._last_now:
            return  # two reads within the clock's resolution: nothing has happened
        self._last_now = now
        interval = self.accounting.sample(self._cpu_clock(), now, self.active_calls())
        if interval is not None and interval.carried_calls and self._on_interval is not None:
            self._on_interval(interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="confnode-cpu-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:
                log.exception("CPU sample failed; retrying")
            await asyncio.sleep(self._period)
