"""``confnode capacity`` as text: the estimates first, then how they were reached."""

from __future__ import annotations

from fractions import Fraction

from confnode.capacity.host import RESOLUTIONS, HostCapacity
from confnode.media.call_types import CallType

NAMES = {CallType.AUDIO: "audio-only", CallType.SD: "SD 448p", CallType.HD: "HD 720p",
         CallType.FULL_HD: "Full-HD 1080p", CallType.PASSTHROUGH: "passthrough 1:1"}


def render_text(capacity: HostCapacity) -> str:
    estimate = capacity.estimate
    lines = [f"Estimated capacity of this host: {estimate.cores} cores, "
             f"{estimate.headroom:.0%} of them for media "
             f"(composing VP8 at {capacity.fps} fps; measured {capacity.measured_seconds:.1f} s)",
             "",
             f"{'call type':<16}{'max calls':>10}{'per core':>10}{'CPU-s/call-s':>14}"
             f"{'HD units':>10}{'Pexip':>8}"]
    for kind, calls in estimate.calls.items():
        measured = (f"{calls.measured_hd_units:.3f}" if calls.measured_hd_units is not None
                    else "-")
        pexip = str(Fraction(calls.hd_units).limit_denominator(16))
        if kind is CallType.PASSTHROUGH:
            pexip = "-"  # Pexip's direct media does not load its media engine
        lines.append(f"{NAMES[kind]:<16}{calls.max_calls:>10}{calls.calls_per_core:>10.1f}"
                     f"{calls.cpu_seconds_per_call_second:>14.4f}{measured:>10}{pexip:>8}")
    sizes = ", ".join(f"{NAMES[k]} {w}x{h}" for k, (w, h) in RESOLUTIONS.items())
    lines += ["",
              "HD units: this host's cost of a call relative to an HD call; Pexip counts "
              "Full-HD 2, SD 1/2, audio 1/16.",
              f"Composed calls: a 4-party room, one decode, one composed picture and one encode "
              f"per call ({sizes}), plus the call's audio. Audio-only: 4 decodes, mix-minus, "
              f"two encodes per 20 ms (one speaker at a time). Passthrough: SRTP unprotect, RTP "
              f"rewrite, SRTP protect for every packet of a 720p call.",
              "These cover the media work only, not aiortc's per-packet Python path (jitter "
              "buffer, re-packetisation, asyncio), which dominates audio-only and passthrough "
              "calls today: under real load compare confnode_cpu_seconds_per_call_second on "
              "/metrics."]
    return "\n".join(lines) + "\n"
