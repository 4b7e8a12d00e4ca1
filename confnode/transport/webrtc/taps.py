"""Taps on aiortc's receive path: forward encoded frames, and decode only when the room mixes.

aiortc always decodes what it receives (``MediaRelay`` only copies decoded frames). A 1:1 call
with a common codec (97 % of consultations) needs no decoding at all: the node forwards encoded
frames to the other side. ``DecodeGate`` takes the place of a receiver's decoder queue. Every
complete encoded frame the jitter buffer releases passes through ``put`` (on the event loop
thread), where it goes to the forwarder and, only while the room mixes, to aiortc's decoder
thread. The counters are what metrics and tests use to prove a passthrough call decodes nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver

Forwarder = Callable[[RTCRtpCodecParameters, JitterFrame], None]

# aiortc keeps the queue in a name-mangled private attribute; this is the one place we touch it.
_DECODER_QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"


class DecodeGate(queue.Queue[Any]):
    def __init__(self) -> None:
        super().__init__()
        self.decode = True
        self.forward: Forwarder | None = None
        self.frames_decoded = 0
        self.frames_forwarded = 0
        self.last_codec: RTCRtpCodecParameters | None = None
        self.on_first_frame: Callable[[], None] | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # aiortc's stop sentinel for the decoder thread
            super().put(item, block, timeout)
            return
        codec, frame = item
        self.last_codec = codec
        if self.on_first_frame is not None and not (self.frames_forwarded or self.frames_decoded):
            self.on_first_frame()
        if self.forward is not None:
            self.frames_forwarded += 1
            self.forward(codec, frame)
        if self.decode:
            self.frames_decoded += 1
            super().put(item, block, timeout)


def install_gate(receiver: RTCRtpReceiver) -> DecodeGate:
    """Swap in a gate before the receiver starts (its decoder thread reads the queue it finds)."""
    current = getattr(receiver, _DECODER_QUEUE_ATTRIBUTE)
    if isinstance(current, DecodeGate):
        return current
    if not current.empty():
        raise RuntimeError("receiver already has queued frames; install the gate before it starts")
    gate = DecodeGate()
    setattr(receiver, _DECODER_QUEUE_ATTRIBUTE, gate)
    return gate


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to every source the receiver heard from lately (RFC 4585 §6.3.1), through
    aiortc's own PLI path (the one it uses when its decoder fails)."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await receiver._send_rtcp_pli(source.source)
    return bool(sources)
