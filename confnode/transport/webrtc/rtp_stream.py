"""One participant's outgoing RTP stream: frames the node packetizes, and packets relayed as is.

aiortc's ``RTCRtpSender._run_rtp`` keeps its sequence number in a local variable, so nothing else
can send on that SSRC without the receiver seeing two interleaved numberings. ``OutboundRtpStream``
takes the place of that loop (``install``) and is the one writer of the stream: it still sends
what the outbound track yields (a shared mix or composition, packed by aiortc's encoder), and it
also accepts RTP packets relayed from the other participant in a passthrough call, with SSRC,
payload type, sequence number, timestamp and header extensions rewritten for this leg. A relayed
packet never touches a jitter buffer, a depacketizer, a queue or a task switch: that per-packet
Python work was most of a passthrough call's CPU.

Both paths keep what the rest of aiortc's sender relies on: the retransmission history (a NACK
from the browser is answered from it, RTX-wrapped), and the packet/octet counts and last
timestamps its RTCP sender reports carry. PLI/FIR still reach ``_send_keyframe``, which the
endpoint hooks to ask the source for a keyframe.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable, Hashable
from typing import Any

from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket
from aiortc.utils import random16, random32

from confnode.transport.webrtc.continuity import StreamContinuity

log = logging.getLogger(__name__)

NTP_UNIX_OFFSET = 2208988800  # seconds from 1900 (NTP epoch) to 1970
TRACK_SOURCE = "track"
AUDIO_RATE = 48000  # the outbound tracks' audio timeline


def ntp_now() -> int:
    """The 64-bit NTP time (aiortc's ``clock.current_ntp_time`` goes through ``datetime``, which
    was a visible share of the per-packet cost)."""
    return int((time.time() + NTP_UNIX_OFFSET) * (1 << 32))


class OutboundRtpStream:
    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        self.packets_relayed = 0
        self._codec: RTCRtpCodecParameters | None = None
        self._continuity: StreamContinuity | None = None
        self._track_sequence = 0
        self._history: dict[int, RtpPacket] = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
        self._extensions_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._mid: str | None = None
        self.on_first_relayed: Callable[[], None] | None = None

    @classmethod
    def install(cls, sender: RTCRtpSender) -> OutboundRtpStream:
        """Take over the sender's RTP loop; call before negotiation starts the sender."""
        stream = cls(sender)
        sender._run_rtp = stream.run  # type: ignore[method-assign]
        return stream

    @property
    def ready(self) -> bool:
        return self._continuity is not None

    async def relay(self, packet: RtpPacket, source: Hashable) -> None:
        """Send a packet received from another leg (same codec) as part of this stream."""
        continuity = self._continuity
        if continuity is None or not self.sender._enabled:
            return
        assert self._codec is not None
        packet.sequence_number, packet.timestamp = continuity.map(
            source, packet.sequence_number, packet.timestamp, time.monotonic())
        packet.ssrc = self.sender._ssrc
        packet.payload_type = self._codec.payloadType
        extensions = packet.extensions
        extensions.mid = self._mid
        extensions.rtp_stream_id = None
        extensions.repaired_rtp_stream_id = None
        extensions.transmission_offset = None
        extensions.transport_sequence_number = None
        self.packets_relayed += 1
        if self.packets_relayed == 1 and self.on_first_relayed is not None:
            self.on_first_relayed()
        await self._send(packet)

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        """The sender's RTP loop: what the track yields, packed by aiortc's encoder."""
        sender: Any = self.sender
        self._codec = codec
        self._mid = sender._RTCRtpSender__mid
        self._continuity = StreamContinuity(codec.clockRate, random16(), random32())
        sender._RTCRtpSender__rtp_started.set()
        try:
            while True:
                if not sender.track:
                    await asyncio.sleep(0.02)
                    continue
                frame = await sender._next_encoded_frame(codec)
                if frame is not None:
                    await self._send_frame(frame.payloads, frame.timestamp, frame.audio_level)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:  # aiortc's stop() waits for rtp_exited: never leave without it
            log.warning("outbound RTP loop failed: %s", traceback.format_exc())
        if sender.track:
            sender.track.stop()
            sender.replaceTrack(None)
        sender._RTCRtpSender__encoder = None
        sender._RTCRtpSender__rtp_exited.set()

    async def send_audio(self, payload: bytes, pts: int) -> None:
        """Send one encoded audio frame of the track's own timeline (``pts`` at 48 kHz) now,
        instead of through the track's queue and this loop: for the node's own mixes, which
        are encoded on the event loop anyway, the queue and the task switch were pure cost."""
        codec = self._codec
        if codec is None or not self.sender._enabled:
            return
        # What aiortc's ``Encoder.pack`` does: the track's 48 kHz pts on the codec's RTP clock.
        await self._send_frame([payload], pts * codec.clockRate // AUDIO_RATE, None)

    async def _send_frame(self, payloads: list[bytes], timestamp: int,
                          audio_level: int | None) -> None:
        assert self._continuity is not None and self._codec is not None
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            sequence, rtp_timestamp = self._continuity.map(
                TRACK_SOURCE, self._track_sequence, timestamp, time.monotonic())
            self._track_sequence = (self._track_sequence + 1) % (1 << 16)
            packet = RtpPacket(payload_type=self._codec.payloadType,
                               sequence_number=sequence, timestamp=rtp_timestamp,
                               ssrc=self.sender._ssrc, payload=payload,
                               marker=1 if i == last else 0)
            packet.extensions.mid = self._mid
            if audio_level is not None:
                packet.extensions.audio_level = (False, -audio_level)
            await self._send(packet)

    async def _send(self, packet: RtpPacket) -> None:
        sender: Any = self.sender
        ntp = ntp_now()
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        self._history[packet.sequence_number % RTP_HISTORY_SIZE] = packet
        await sender.transport._send_rtp(packet.serialize(self._extensions_map))
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = packet.timestamp
        sender._RTCRtpSender__octet_count += len(packet.payload)
        sender._RTCRtpSender__packet_count += 1

