"""Outbound tracks: what aiortc's sender pulls for one participant.

A track yields ``av.Packet``s that are already encoded — either forwarded from the other endpoint
(passthrough) or a shared encode of a mix or composition that several participants receive — so
aiortc's sender only packetizes (``Encoder.pack``) and never encodes per participant. Each track
keeps its own monotonic timestamps, so switching its source (passthrough ⇄ mixing) is a clean
continuation for the receiving browser rather than a jump.

The room's audio mix skips even that: ``send_now`` hands the encoded frame straight to the
participant's ``OutboundRtpStream`` on the track's timeline, from the mixer's tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from confnode.transport.webrtc.rtp_stream import OutboundRtpStream

AUDIO_TIME_BASE = Fraction(1, 48000)
VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_STEP = 960  # 20 ms at 48 kHz
VIDEO_STEP_ON_SWITCH = 3000  # 1/30 s: a plausible gap when the source changes
QUEUE_FRAMES = {"audio": 10, "video": 6}

# (kind, path, seconds from ingress to egress): node-added latency.
EgressObserver = Callable[[str, str, float], None]


class OutboundTrack(MediaStreamTrack):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[tuple[av.Packet, float | None, str] | None] = asyncio.Queue(
            QUEUE_FRAMES[kind])
        self._time_base = AUDIO_TIME_BASE if kind == "audio" else VIDEO_TIME_BASE
        self._next_pts = 0
        self._source: object = None
        self._last_source_pts: int | None = None
        self.packets_sent = 0
        self.packets_dropped = 0
        self.on_egress: EgressObserver | None = None
        self.on_first_packet: Callable[[], None] | None = None
        # The outgoing RTP stream this track feeds; audio mixes are sent through it directly.
        self.stream: OutboundRtpStream | None = None

    def push(self, data: bytes, source_pts: int, source: object, *, keyframe: bool = False,
             ingress: float | None = None, path: str = "mixed") -> None:
        """Queue one encoded frame; called on the event loop by a forwarder or the media engine.

        A full queue means the sender is behind: the oldest frame is dropped (late audio is
        useless, and for video the next keyframe request repairs the picture).
        """
        if self.readyState != "live":
            return
        pts = self._pts_for(source_pts, source)
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        packet.is_keyframe = keyframe
        if self._queue.full():
            self._queue.get_nowait()
            self.packets_dropped += 1
        self._queue.put_nowait((packet, ingress, path))

    async def send_now(self, data: bytes, *, ingress: float | None = None,
                       path: str = "mixed") -> None:
        """Send one encoded 20 ms audio frame at once through ``stream``, on this track's
        timeline: no queue, no wake-up of the sender loop, no re-pack by aiortc's encoder.
        What ``push`` queued before (a forwarded frame) is older and is dropped."""
        assert self.kind == "audio" and self.stream is not None
        if self.readyState != "live":
            return
        while not self._queue.empty():
            self._queue.get_nowait()
            self.packets_dropped += 1
        pts = self._pts_for(0, None)
        try:
            await self.stream.send_audio(data, pts)
        except ConnectionError:
            return  # the transport is closing; the sender loop ends the track
        self._sent(ingress, path)

    def _pts_for(self, source_pts: int, source: object) -> int:
        if self.kind == "audio":
            pts = self._next_pts
            self._next_pts += AUDIO_STEP
            return pts
        if source is not self._source or self._last_source_pts is None:
            step = VIDEO_STEP_ON_SWITCH if self._source is not None else 0
            self._source = source
        else:
            step = max(1, source_pts - self._last_source_pts)
        self._last_source_pts = source_pts
        self._next_pts += step
        return self._next_pts

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            raise MediaStreamError
        packet, ingress, path = item
        self._sent(ingress, path)
        return packet

    def _sent(self, ingress: float | None, path: str) -> None:
        self.packets_sent += 1
        if self.packets_sent == 1 and self.on_first_packet is not None:
            self.on_first_packet()
        if ingress is not None and self.on_egress is not None:
            self.on_egress(self.kind, path, time.monotonic() - ingress)

    def stop(self) -> None:
        super().stop()
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(None)
