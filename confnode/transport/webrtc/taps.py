"""Taps on aiortc's receive path: forward encoded frames, and decode only when the room mixes.

aiortc always decodes what it receives (``MediaRelay`` only copies decoded frames). A 1:1 call
with a common codec (97 % of consultations) needs no decoding at all: the node forwards encoded
frames to the other side. ``DecodeGate`` takes the place of a receiver's decoder queue. Every
complete encoded frame the jitter buffer releases passes through ``put`` (on the event loop
thread), where it goes to the forwarder and, only while the room mixes, to aiortc's decoder
thread. The counters are what metrics and tests use to prove a passthrough call decodes nothing.

Between two WebRTC legs on one codec the gate does better than forwarding frames: with a ``relay``
set (and nothing to decode) each RTP packet goes straight from the receive handler to the other
leg's ``OutboundRtpStream`` — no jitter buffer, depacketizing, re-packetizing, queue or task
switch. The receiver still does what the sending browser depends on: receiver-report statistics,
REMB bandwidth estimates, NACKs for packets lost upstream (the RTX answers are unwrapped and relayed
under their original numbers) and the list of active sources keyframe requests are sent to.

Audio that is mixed skips aiortc's jitter buffer and decoder thread too: with ``on_decoded``
set, each packet (one whole audio frame) is decoded as it arrives, on the event loop
(``confnode.transport.decoders``), and the decoded frame goes straight on. Video keeps aiortc's
path and its decoder thread, where a picture's decode cannot stall the loop.
"""

from __future__ import annotations

import datetime
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from confnode.transport.decoders import audio_decoder, decode_audio
from confnode.transport.webrtc.continuity import HALF_SEQ, SEQ_MOD
from confnode.transport.webrtc.rtp_stream import OutboundRtpStream

log = logging.getLogger(__name__)

Forwarder = Callable[[RTCRtpCodecParameters, JitterFrame], None]
DecodedSink = Callable[[av.AudioFrame], None]
# (kind, seconds from the packet's arrival in the receive handler to its send)
RelayObserver = Callable[[str, float], None]
# Relaying adds microseconds; observing a Prometheus histogram for every relayed frame cost ~5 %
# of a passthrough call's CPU. Every tenth frame (from the first) is a fair sample.
RELAY_LATENCY_SAMPLE_EVERY = 10
ACTIVE_SOURCE_REFRESH = 1.0  # aiortc lists a source as active for 10 s after its last packet

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
        self.relay: OutboundRtpStream | None = None
        self.on_relayed: RelayObserver | None = None
        self.on_decoded: DecodedSink | None = None
        self._decoder: Any = None
        self._decoder_codec: str | None = None

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
            if self.on_decoded is None:
                super().put(item, block, timeout)
            else:
                self._decode_inline(codec, frame)

    def _decode_inline(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        if codec.name != self._decoder_codec:
            self._decoder, self._decoder_codec = audio_decoder(codec), codec.name
        assert self.on_decoded is not None
        for output in decode_audio(self._decoder, frame, codec.name):
            self.on_decoded(output)


def install_gate(receiver: RTCRtpReceiver) -> DecodeGate:
    """Swap in a gate before the receiver starts (its decoder thread reads the queue it finds)."""
    current = getattr(receiver, _DECODER_QUEUE_ATTRIBUTE)
    if isinstance(current, DecodeGate):
        return current
    if not current.empty():
        raise RuntimeError("receiver already has queued frames; install the gate before it starts")
    gate = DecodeGate()
    setattr(receiver, _DECODER_QUEUE_ATTRIBUTE, gate)
    PacketRelayTap(receiver, gate)
    return gate


class PacketRelayTap:
    """Wraps one receiver's RTP handler: relays packets while its gate has a relay and nothing
    is decoded, decodes audio itself while its gate decodes inline, and leaves every other
    packet to aiortc's own handler.

    aiortc keeps the receiver's state in name-mangled attributes; they are read here once.
    """

    def __init__(self, receiver: RTCRtpReceiver, gate: DecodeGate) -> None:
        r: Any = receiver
        self.receiver = receiver
        self.gate = gate
        self.kind: str = r._RTCRtpReceiver__kind
        self._original = receiver._handle_rtp_packet
        self._codecs: dict[int, RTCRtpCodecParameters] = r._RTCRtpReceiver__codecs
        self._rtx_ssrc: dict[int, int] = r._RTCRtpReceiver__rtx_ssrc
        self._active_ssrc: dict[int, datetime.datetime] = r._RTCRtpReceiver__active_ssrc
        self._remote_streams: dict[int, StreamStatistics] = r._RTCRtpReceiver__remote_streams
        self._nack_generator = r._RTCRtpReceiver__nack_generator
        self._bitrate_estimator = r._RTCRtpReceiver__remote_bitrate_estimator
        self._jitter_buffer: JitterBuffer = r._RTCRtpReceiver__jitter_buffer
        # Packets went around aiortc's handler (relayed or decoded here) since it last ran.
        self._bypassed = False
        self._newest_sequence: dict[int, int] = {}
        self._rtx_types: dict[int, bool] = {}
        self._source_seen: dict[int, float] = {}
        receiver._handle_rtp_packet = self.handle  # type: ignore[method-assign]

    async def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        gate = self.gate
        stream = gate.relay
        if gate.decode and gate.on_decoded is not None:
            await self._decode_packet(packet, arrival_time_ms)
        elif stream is not None and not gate.decode and stream.ready:
            await self._relay_packet(packet, arrival_time_ms, stream)
        else:
            if self._bypassed:
                self._bypassed = False
                self._clear_jitter_buffer()
            await self._original(packet, arrival_time_ms=arrival_time_ms)

    async def _relay_packet(self, packet: RtpPacket, arrival_time_ms: int,
                            stream: OutboundRtpStream) -> None:
        gate = self.gate
        arrived = time.monotonic()
        media = await self._receive(packet, arrival_time_ms, arrived)
        if media is None:
            return
        packet = media
        frame_done = self.kind == "audio" or packet.marker
        if frame_done and gate.on_first_frame is not None and not gate.frames_forwarded:
            gate.on_first_frame()
        try:
            await stream.relay(packet, (id(self), packet.ssrc))
        except ConnectionError:
            # The other leg is gone. Raised here it would end this leg's own DTLS transport.
            return
        if frame_done:
            gate.frames_forwarded += 1
            if gate.on_relayed is not None and \
                    gate.frames_forwarded % RELAY_LATENCY_SAMPLE_EVERY == 1:
                gate.on_relayed(self.kind, time.monotonic() - arrived)

    async def _decode_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """Audio for the mix: each packet is one whole frame, decoded as it arrives. aiortc's
        jitter buffer would hold every frame until the next packet (20 ms more delay) and its
        only other work for audio is dropping late packets, which ``_is_late`` does."""
        media = await self._receive(packet, arrival_time_ms, time.monotonic())
        if media is None or not media.payload or self._is_late(media):
            return
        codec = self._codecs.get(media.payload_type)
        if codec is not None:
            self.gate.put((codec, JitterFrame(media.payload, media.timestamp)))

    async def _receive(self, packet: RtpPacket, arrival_time_ms: int,
                       arrived: float) -> RtpPacket | None:
        """What aiortc's receiver does with every packet that the sender relies on: bandwidth
        estimate, active sources, receiver-report statistics, RTX unwrapping and NACKs. The
        media packet (unwrapped from RTX), or None when there is nothing to pass on."""
        self._bypassed = True
        receiver: Any = self.receiver
        if not receiver._enabled:
            return None
        if self._bitrate_estimator is not None and packet.extensions.abs_send_time is not None:
            await self._estimate_bitrate(packet, arrival_time_ms)
        self._mark_active(packet.ssrc, arrived)
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return None
        statistics = self._remote_streams.get(packet.ssrc)
        if statistics is None:
            statistics = self._remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        statistics.add(packet)
        if self._is_rtx(packet.payload_type, codec):
            original = self._unwrap(packet, codec)
            if original is None:
                return None  # padding-only probe, or a source we never heard of
            packet = original
        if self._nack_generator is not None and self._nack_generator.add(packet):
            await receiver._send_rtcp_nack(packet.ssrc, sorted(self._nack_generator.missing))
        return packet

    def _is_late(self, packet: RtpPacket) -> bool:
        """Behind the newest packet of its source (reordered or retransmitted): its moment in
        the mix has passed."""
        newest = self._newest_sequence.get(packet.ssrc)
        if newest is not None and not 0 < (packet.sequence_number - newest) % SEQ_MOD < HALF_SEQ:
            return True
        self._newest_sequence[packet.ssrc] = packet.sequence_number
        return False

    def _clear_jitter_buffer(self) -> None:
        # Packets from before the bypass began would sit in front of the new ones; for video
        # (512 slots) the buffer would hand the decoder stale, broken frames for seconds, each
        # failure a PLI and a keyframe encode at the source.
        buffer = self._jitter_buffer
        buffer._origin = None
        buffer._packets = [None] * buffer.capacity

    def _is_rtx(self, payload_type: int, codec: RTCRtpCodecParameters) -> bool:
        # ``is_rtx`` parses the MIME type on every call; the answer per payload type never changes.
        known = self._rtx_types.get(payload_type)
        if known is None:
            known = self._rtx_types[payload_type] = is_rtx(codec)
        return known

    def _unwrap(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> RtpPacket | None:
        original_ssrc = self._rtx_ssrc.get(packet.ssrc)
        apt = codec.parameters.get("apt")
        if (original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int)
                or apt not in self._codecs):
            return None
        return unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)

    def _mark_active(self, ssrc: int, now: float) -> None:
        # ``getSynchronizationSources`` (who a keyframe request goes to) needs a recent datetime
        # per source; building one per packet was a measurable cost, once a second is plenty.
        if now - self._source_seen.get(ssrc, -ACTIVE_SOURCE_REFRESH) >= ACTIVE_SOURCE_REFRESH:
            self._source_seen[ssrc] = now
            self._active_ssrc[ssrc] = datetime.datetime.now(datetime.UTC)

    async def _estimate_bitrate(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        receiver: Any = self.receiver
        remb = self._bitrate_estimator.add(
            abs_send_time=packet.extensions.abs_send_time, arrival_time_ms=arrival_time_ms,
            payload_size=len(packet.payload) + packet.padding_size, ssrc=packet.ssrc)
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
        if rtcp_ssrc is not None and remb is not None:
            await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc,
                                                     media_ssrc=0, fci=pack_remb_fci(*remb)))


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to every source the receiver heard from lately (RFC 4585 §6.3.1), through
    aiortc's own PLI path (the one it uses when its decoder fails)."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await receiver._send_rtcp_pli(source.source)
    return bool(sources)
