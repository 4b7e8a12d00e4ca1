"""The media of one SIP call: RTP/RTCP over UDP, SRTP (pylibsrtp), codecs — as a room endpoint.

It offers the room's media the same small surface as a WebRTC endpoint (outbound per kind with
``push``, ``set_forwarder``, ``set_decoding``, keyframe requests both ways), so a SIP leg and a
browser leg meet in the same mixer, or are forwarded to each other when their codecs match.
Parsing and packetizing reuse aiortc's RTP/RTCP and payload code; decoding reuses its decoders.

Keys come from SDES (in the SDP) or from a DTLS-SRTP handshake on the media ports
(:mod:`confnode.transport.rtp.dtls_srtp`): one handshake per socket -- RTP, and RTCP when it is
not multiplexed (RFC 5764 §4.1) -- told apart from RTP/RTCP by the first byte (RFC 7983). Media
of a secured stream is neither sent nor accepted before its keys exist: never in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pylibsrtp
from aiortc.codecs import depayload, get_decoder
from aiortc.codecs.h264 import H264Encoder as _AiortcH264
from aiortc.codecs.vpx import Vp8Encoder as _AiortcVp8
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)
from av.frame import Frame

from confnode.transport.decoders import audio_decoder, decode_audio
from confnode.transport.encoders import VideoTarget
from confnode.transport.h264 import H264SendLimits, packetize_single_nal
from confnode.transport.rtp.dtls_srtp import (
    DtlsRole,
    DtlsSrtpSession,
    DtlsSrtpSettings,
    HandshakeComplete,
)
from confnode.transport.rtp.dtls_transport import DtlsSrtpTransport
from confnode.transport.sip.negotiation import (
    MediaSecurity,
    NegotiatedMedia,
    NegotiatedSession,
)
from confnode.transport.sip.sdp import SessionDescription, parse_fmtp_parameters

log = logging.getLogger(__name__)

FrameSink = Callable[[str, str, Frame], None]
DigitSink = Callable[[str], None]
RTCP_INTERVAL = 2.0
#: At most one keyframe request for loss or a broken picture per this many seconds: a burst of
#: loss is one broken picture, and a keyframe takes a round trip to arrive anyway.
DAMAGE_PLI_INTERVAL = 0.5
_EXTENSIONS = HeaderExtensionsMap()
_NTP_EPOCH = 2208988800


def _unspecified(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False  # a host name


class RtpSocket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Any], None]) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self._on_datagram = on_datagram

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data, addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @classmethod
    async def bind(cls, host: str, on_datagram: Callable[[bytes, Any], None]) -> RtpSocket:
        """A bound socket, usable at once (``connection_made`` only runs on the next loop turn)."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(on_datagram), local_addr=(host, 0))
        protocol.transport = transport
        return protocol


def is_dtls(data: bytes) -> bool:
    """RFC 7983 §7: a first byte in 20..63 is DTLS (RTP/RTCP are 128..191, STUN 0..3)."""
    return 20 <= data[0] <= 63


def _same_address(source: Any, target: tuple[str, int]) -> bool:
    """Whether a datagram comes from the SDP's media port. The address is not compared: a
    multi-homed caller advertises one address and sends from whichever the route picks
    (baresip here: c= the LAN address, datagrams from 127.0.0.1)."""
    try:
        return int(source[1]) == target[1]
    except (TypeError, ValueError, IndexError):
        return False


def srtp_sessions(remote_key: bytes, local_key: bytes,
                  profile: int) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """(inbound, outbound) SRTP sessions, however the keys were agreed (SDES or DTLS)."""
    return (pylibsrtp.Session(pylibsrtp.Policy(
                key=remote_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                srtp_profile=profile)),
            pylibsrtp.Session(pylibsrtp.Policy(
                key=local_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=profile)))


def codec_parameters(media: NegotiatedMedia) -> RTCRtpCodecParameters:
    codec = media.codec
    return RTCRtpCodecParameters(mimeType=f"{media.kind}/{codec.name}", clockRate=codec.clock_rate,
                                 channels=codec.channels if media.kind == "audio" else None,
                                 payloadType=codec.payload_type)


@dataclass
class Stream:
    """One negotiated m-line: sockets, keys, sequence state, counters."""

    kind: str
    rtp: RtpSocket
    rtcp: RtpSocket | None
    media: NegotiatedMedia | None = None
    codec: RTCRtpCodecParameters | None = None
    srtp_in: pylibsrtp.Session | None = None
    srtp_out: pylibsrtp.Session | None = None
    # SRTCP: the SRTP sessions, except with DTLS-SRTP on a separate RTCP port (its own keys).
    srtcp_in: pylibsrtp.Session | None = None
    srtcp_out: pylibsrtp.Session | None = None
    secure: bool = False  # SRTP negotiated: nothing goes or is taken in clear, keys or not
    dtls: dict[str, DtlsSrtpTransport] = field(default_factory=dict)  # by component
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    remote_ssrc: int | None = None
    sequence: int = field(default_factory=lambda: random.getrandbits(16))
    timestamp: int = field(default_factory=lambda: random.getrandbits(32))
    packets_sent: int = 0
    octets_sent: int = 0
    packets_received: int = 0
    jitter: JitterBuffer | None = None
    decoder: Any = None
    gate_decode: bool = True
    forward: Callable[..., None] | None = None
    frames_decoded: int = 0
    frames_forwarded: int = 0
    fir_sequence: int = 0
    highest_sequence: int | None = None
    last_damage_request: float = float("-inf")
    keyframe_requests_sent: int = 0
    keyframe_requests_received: int = 0
    # One decode at a time per stream, in order: a codec context is not thread-safe, and two
    # executor threads decoding into it at once deadlocked libavcodec.
    decode_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def track_loss(self, sequence: int, new_source: bool) -> bool:
        """True when ``sequence`` skips ahead of the highest seen: packets were lost."""
        previous = self.highest_sequence
        if previous is None or new_source:
            self.highest_sequence = sequence
            return False
        gap = (sequence - previous - 1) % (1 << 16)  # 0: the next packet in order
        if gap >= 1 << 15:
            return False  # behind the highest: late or duplicated, not lost
        self.highest_sequence = sequence
        return gap != 0

    def damage_request_due(self) -> bool:
        """Whether loss or a broken picture may ask for a keyframe now
        (:data:`DAMAGE_PLI_INTERVAL`); a new stream, a decoder that starts, or the room asking
        always may."""
        now = time.monotonic()
        if now - self.last_damage_request < DAMAGE_PLI_INTERVAL:
            return False
        self.last_damage_request = now
        return True

    @property
    def remote_rtp(self) -> tuple[str, int] | None:
        if self.media is None or self.media.remote_rtp is None:
            return None
        return self.media.remote_rtp.address, self.media.remote_rtp.port

    @property
    def remote_rtcp(self) -> tuple[str, int] | None:
        if self.media is None:
            return None
        if self.media.rtcp_mux or self.media.remote_rtcp is None:
            return self.remote_rtp
        return self.media.remote_rtcp.address, self.media.remote_rtcp.port


class OutboundRtp:
    """What the room pushes for this call: packetized, protected, sent (the ``push`` surface of
    a WebRTC outbound track)."""

    def __init__(self, endpoint: RtpEndpoint, stream: Stream) -> None:
        self._endpoint = endpoint
        self._stream = stream
        self._source: object = None
        self._last_source_pts: int | None = None
        self._picture_id = 0
        self.packets_sent = 0

    def push(self, data: bytes, source_pts: int, source: object, *, keyframe: bool = False,
             ingress: float | None = None, path: str = "mixed") -> None:
        stream = self._stream
        if stream.media is None or stream.codec is None or stream.remote_rtp is None:
            return
        if not stream.media.direction.sends:
            return  # on hold (RFC 3264 §8.4): the peer wants nothing from us
        if stream.kind == "audio":
            # 20 ms of the RTP clock: 960 for Opus, 160 for G.711 -- and 160 for G.722 too,
            # whose 320 samples per 20 ms run on an 8000 Hz RTP clock (RFC 3551 §4.5.2).
            stream.timestamp = (stream.timestamp + stream.codec.clockRate // 50) % (1 << 32)
            payloads = [data]
        else:
            if source is not self._source or self._last_source_pts is None:
                step = 3000 if self._source is not None else 0
                self._source = source
            else:
                step = max(1, source_pts - self._last_source_pts)
            self._last_source_pts = source_pts
            stream.timestamp = (stream.timestamp + step) % (1 << 32)
            payloads = self._video_payloads(data)
        for index, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=stream.codec.payloadType,
                               sequence_number=stream.sequence, timestamp=stream.timestamp,
                               ssrc=stream.ssrc, payload=payload,
                               marker=1 if index == len(payloads) - 1 and stream.kind == "video"
                               else 0)
            stream.sequence = (stream.sequence + 1) % (1 << 16)
            self._endpoint.send_rtp(stream, packet.serialize())
        self.packets_sent += 1
        if ingress is not None and self._endpoint.on_egress is not None:
            self._endpoint.on_egress(stream.kind, path, time.monotonic() - ingress)

    def _video_payloads(self, data: bytes) -> list[bytes]:
        assert self._stream.codec is not None
        if self._stream.codec.name.upper() == "H264":
            nal_units = list(_AiortcH264._split_bitstream(data))
            media = self._stream.media
            h264 = media.codec.h264 if media is not None else None
            if h264 is not None and h264.packetization_mode == 0:
                return packetize_single_nal(nal_units)
            return _AiortcH264._packetize(nal_units)  # mode 1: STAP-A and FU-A as needed
        self._picture_id = (self._picture_id + 1) % (1 << 15)
        return _AiortcVp8._packetize(data, self._picture_id)

    def stop(self) -> None:
        self._stream.media = None


class RtpEndpoint:
    """A SIP call's media endpoint. Open it (binding ports), answer with its ports, then
    ``configure`` it with the negotiated session."""

    def __init__(self, call_id: str, participant_id: str, *, on_frame: FrameSink,
                 on_digit: DigitSink | None = None,
                 dtls: DtlsSrtpSettings | None = None) -> None:
        self.call_id = call_id
        self.participant_id = participant_id
        self.streams: dict[str, Stream] = {}
        self.outbound: dict[str, OutboundRtp] = {}
        self.on_egress: Callable[[str, str, float], None] | None = None
        self.on_first_media: Callable[[str], None] | None = None
        # A DTLS-SRTP handshake failed (reason): the call cannot carry media and must end.
        self.on_security_failure: Callable[[str], None] | None = None
        self._dtls_settings = dtls
        self._on_frame = on_frame
        self._on_digit = on_digit
        self._keyframe_callbacks: list[Callable[[], None]] = []
        self._rtcp_task: asyncio.Task[None] | None = None
        self._dtmf_last: tuple[int, int] | None = None  # (timestamp, event) already reported
        self._decode_tasks: set[asyncio.Task[Any]] = set()
        self._first_received = False
        self.closed = False

    async def open(self, host: str, offer: SessionDescription) -> dict[int, tuple[int, int]]:
        """Bind sockets for the first audio and first video m-line of the offer (RTCP on its own
        socket unless the offer multiplexes it); returns the ports by m-line index, as the SDP
        answerer wants them. Called again with a re-offer, it keeps the sockets it has and binds
        only for a media kind it has none for yet (video added in a re-INVITE)."""
        ports: dict[int, tuple[int, int]] = {}
        for index, media in enumerate(offer.media):
            kind = media.media
            if kind not in ("audio", "video") or media.port == 0 or any(
                    offer.media[i].media == kind for i in ports):
                continue
            stream = self.streams.get(kind)
            if stream is None:
                rtp = await RtpSocket.bind(host, lambda d, a, k=kind: self._rtp_in(k, d, a))
                rtcp: RtpSocket | None = None
                if not media.rtcp_mux:
                    rtcp = await RtpSocket.bind(
                        host, lambda d, a, k=kind: self._rtcp_port_in(k, d, a))
                stream = self.streams[kind] = Stream(kind, rtp, rtcp)
            ports[index] = (stream.rtp.port, stream.rtcp.port if stream.rtcp else stream.rtp.port)
        return ports

    def configure(self, session: NegotiatedSession) -> None:
        """Apply a negotiated session: the first answer, or a re-INVITE's (RFC 3264 §8).

        A stream keeps its sockets, SSRC and sequence numbers across re-offers. A new codec gets
        a fresh decoder (and jitter buffer) from the next packet on; packets still arriving in
        the old payload type are dropped. SRTP contexts are rebuilt only when the keys changed,
        so replay windows and rollover counters survive a re-INVITE that keeps them. A line the
        re-offer rejected stops sending and receiving; the remote address and the direction
        (hold) are read from the session on every packet.
        """
        negotiated = {m.kind.value: m for m in session.media if m.codec is not None}
        for kind, stream in self.streams.items():
            media = negotiated.get(kind)
            if media is None:
                stream.media, stream.codec, stream.decoder = None, None, None
                self.outbound.pop(kind, None)
                continue
            previous = stream.media
            stream.media = media
            codec = codec_parameters(media)
            if codec != stream.codec:
                stream.codec = codec
                stream.decoder = None
                if kind == "video":
                    stream.jitter = JitterBuffer(capacity=128, is_video=True)
            stream.secure = media.security is not MediaSecurity.PLAIN
            if media.dtls is not None:
                self._start_dtls(stream, media)
            elif previous is None or previous.srtp != media.srtp:
                self._key(stream, media)
            if kind not in self.outbound:
                self.outbound[kind] = OutboundRtp(self, stream)
        if self._rtcp_task is None:
            self._rtcp_task = asyncio.ensure_future(self._rtcp_loop())

    @staticmethod
    def _key(stream: Stream, media: NegotiatedMedia) -> None:
        """SDES keys: one SRTP session each way, serving RTP and RTCP alike."""
        if media.srtp is None:
            stream.srtp_in = stream.srtp_out = stream.srtcp_in = stream.srtcp_out = None
            return
        stream.srtp_in, stream.srtp_out = srtp_sessions(
            media.srtp.remote_key, media.srtp.local_key, media.srtp.srtp_profile)
        stream.srtcp_in, stream.srtcp_out = stream.srtp_in, stream.srtp_out

    @property
    def kinds(self) -> set[str]:
        return {k for k, s in self.streams.items() if s.media is not None}

    def negotiated_codecs(self) -> dict[str, str]:
        return {k: s.codec.name for k, s in self.streams.items() if s.codec is not None}

    # The room media's endpoint surface

    def set_forwarder(self, kind: str, forward: Callable[..., None] | None) -> None:
        if kind in self.streams:
            self.streams[kind].forward = forward

    def video_target(self) -> VideoTarget | None:
        """What the room must encode for this call: for H.264, fitted to the negotiated level
        (and ``max-fs``/``max-mbps``) and packetization mode."""
        stream = self.streams.get("video")
        if stream is None or stream.media is None or stream.codec is None:
            return None
        codec = stream.media.codec
        if codec.h264 is None:
            return VideoTarget(codec.name.lower())
        limits = H264SendLimits.negotiated(codec.h264.send_level, codec.h264.packetization_mode,
                                           parse_fmtp_parameters(codec.remote_fmtp))
        return VideoTarget("h264", None if limits.takes_default_stream else limits)

    def set_decoding(self, decode: bool) -> None:
        for stream in self.streams.values():
            starting = decode and not stream.gate_decode
            stream.gate_decode = decode
            if starting and stream.kind == "video":
                # A decoder that starts mid-stream sees no picture until the next keyframe.
                self._spawn(self.request_keyframe())

    def on_keyframe_request(self, callback: Callable[[], None]) -> None:
        self._keyframe_callbacks.append(callback)

    async def request_keyframe(self) -> None:
        """PLI (RFC 4585 §6.3.1), or FIR (RFC 5104 §4.3.1) to an endpoint that negotiated only
        ``ccm fir`` -- older room systems honour nothing else."""
        stream = self.streams.get("video")
        if stream is None or stream.remote_ssrc is None:
            return
        feedback = stream.media.codec.feedback if stream.media is not None else ()
        if "ccm fir" in feedback and "nack pli" not in feedback:
            stream.fir_sequence = (stream.fir_sequence + 1) % 256
            # FCI: the target SSRC, the command sequence number, 3 reserved bytes; the
            # header's media SSRC is unused and 0.
            fci = stream.remote_ssrc.to_bytes(4, "big") + bytes([stream.fir_sequence, 0, 0, 0])
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=stream.ssrc, media_ssrc=0, fci=fci)
        else:
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=stream.ssrc,
                                    media_ssrc=stream.remote_ssrc)
        stream.keyframe_requests_sent += 1
        self._send_rtcp(stream, [packet])

    def frames_decoded(self) -> int:
        return sum(s.frames_decoded for s in self.streams.values())

    def frames_forwarded(self) -> int:
        return sum(s.frames_forwarded for s in self.streams.values())

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._rtcp_task is not None:
            self._rtcp_task.cancel()
        for task in list(self._decode_tasks):
            task.cancel()
        for stream in self.streams.values():
            for transport in stream.dtls.values():
                transport.close()  # close_notify, while the sockets are still open
            for sock in (stream.rtp, stream.rtcp):
                if sock is not None and sock.transport is not None:
                    sock.transport.close()

    # Wire

    def send_rtp(self, stream: Stream, packet: bytes) -> None:
        if self.closed or stream.rtp.transport is None or stream.remote_rtp is None:
            return
        if stream.secure and stream.srtp_out is None:
            return  # DTLS-SRTP not keyed yet
        data = stream.srtp_out.protect(packet) if stream.srtp_out else packet
        stream.rtp.transport.sendto(data, stream.remote_rtp)
        stream.packets_sent += 1
        stream.octets_sent += len(packet) - 12
        if self.on_first_media is not None and stream.packets_sent == 1:
            self.on_first_media("sent")

    def _send_rtcp(self, stream: Stream, packets: list[Any]) -> None:
        target = stream.remote_rtcp
        sock = stream.rtcp if stream.rtcp is not None else stream.rtp
        if self.closed or target is None or sock.transport is None or _unspecified(target[0]):
            return  # RFC 2543 hold (c=0.0.0.0): the kernel would send it to this very host
        if stream.secure and stream.srtcp_out is None:
            return
        data = b"".join(bytes(p) for p in packets)  # aiortc RTCP packets serialize by bytes()
        if stream.srtcp_out is not None:
            data = stream.srtcp_out.protect_rtcp(data)
        sock.transport.sendto(data, target)

    def _rtp_in(self, kind: str, data: bytes, addr: Any) -> None:
        stream = self.streams.get(kind)
        if stream is None or stream.media is None or stream.codec is None or not data:
            return
        if is_dtls(data):
            self._dtls_in(stream, "rtp", data, addr)
            return
        if len(data) < 12:
            return
        if 192 <= data[1] <= 223:  # RTCP multiplexed on the RTP port (RFC 5761)
            self._rtcp_in(kind, data)
            return
        if stream.secure and stream.srtp_in is None:
            return  # before the DTLS handshake: nothing to check it with
        try:
            plain = stream.srtp_in.unprotect(data) if stream.srtp_in else data
            packet = RtpPacket.parse(plain, _EXTENSIONS)
        except (pylibsrtp.Error, ValueError):
            return  # forged, replayed or garbled: dropped, never fatal
        new_source = stream.remote_ssrc != packet.ssrc
        stream.remote_ssrc = packet.ssrc
        stream.packets_received += 1
        if kind == "video":
            lost = stream.track_loss(packet.sequence_number, new_source)
            if stream.gate_decode and (new_source or (lost and stream.damage_request_due())):
                # The first packets of a stream (or a new SSRC) rarely start with a keyframe;
                # after a lost packet the picture is broken until the next one.
                self._spawn(self.request_keyframe())
        if not self._first_received and self.on_first_media is not None:
            self._first_received = True
            self.on_first_media("received")
        media = stream.media
        if not media.direction.receives:
            return  # we answered sendonly/inactive: nothing from the peer is expected
        if media.telephone_event_pt is not None and packet.payload_type == media.telephone_event_pt:
            self._telephone_event(packet)
            return
        if packet.payload_type != stream.codec.payloadType:
            return
        if kind == "audio":
            self._deliver(stream, JitterFrame(packet.payload, packet.timestamp))
            return
        assert stream.jitter is not None
        try:
            packet._data = depayload(stream.codec, packet.payload)  # type: ignore[attr-defined]
        except ValueError:
            return
        pli, frame = stream.jitter.add(packet)
        if pli:
            self._spawn(self.request_keyframe())
        if frame is not None:
            self._deliver(stream, frame)

    def _deliver(self, stream: Stream, frame: JitterFrame) -> None:
        assert stream.codec is not None
        if stream.forward is not None:
            stream.frames_forwarded += 1
            stream.forward(stream.codec, frame)
        if not stream.gate_decode:
            return
        if stream.decoder is None:
            stream.decoder = (audio_decoder(stream.codec) if stream.kind == "audio"
                              else get_decoder(stream.codec))
        stream.frames_decoded += 1
        if stream.kind == "audio":
            for decoded in decode_audio(stream.decoder, frame, stream.codec.name):
                self._on_frame(self.participant_id, "audio", decoded)
            return
        self._spawn(self._decode_video(stream, stream.decoder, frame))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._decode_tasks.add(task)
        task.add_done_callback(self._decode_tasks.discard)

    async def _decode_video(self, stream: Stream, decoder: Any, frame: JitterFrame) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with stream.decode_lock:
                if self.closed:
                    return
                frames = await loop.run_in_executor(None, decoder.decode, frame)
        except Exception:  # a broken picture: ask for a keyframe, keep the call
            if stream.damage_request_due():
                await self.request_keyframe()
            return
        for decoded in frames:
            self._on_frame(self.participant_id, "video", decoded)

    def _telephone_event(self, packet: RtpPacket) -> None:
        """RFC 4733: report each event once, at its end packet (sent three times)."""
        payload = packet.payload
        if len(payload) < 4 or not payload[1] & 0x80:
            return
        key = (packet.timestamp, payload[0])
        if key == self._dtmf_last:
            return
        self._dtmf_last = key
        digit = "0123456789*#ABCD"[payload[0]] if payload[0] < 16 else None
        if digit is not None and self._on_digit is not None:
            self._on_digit(digit)

    def _rtcp_in(self, kind: str, data: bytes) -> None:
        stream = self.streams.get(kind)
        if stream is None or (stream.secure and stream.srtcp_in is None):
            return
        try:
            plain = stream.srtcp_in.unprotect_rtcp(data) if stream.srtcp_in else data
            packets = RtcpPacket.parse(plain)
        except (pylibsrtp.Error, ValueError):
            return
        for packet in packets:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                stream.keyframe_requests_received += 1
                for callback in self._keyframe_callbacks:
                    callback()

    # DTLS-SRTP

    def _start_dtls(self, stream: Stream, media: NegotiatedMedia) -> None:
        assert media.dtls is not None
        if stream.dtls:
            return  # a re-INVITE keeps the association and its keys (RFC 5763 §6.7.1)
        if self._dtls_settings is None:
            self._dtls_failed(stream, "rtp", "DTLS-SRTP answered without a node identity")
            return
        if media.dtls.local_setup == "holdconn":
            return  # no connection yet (RFC 4145); media stays unkeyed, so none flows
        role = DtlsRole.for_setup(media.dtls.local_setup)
        for component in ("rtp",) if stream.rtcp is None else ("rtp", "rtcp"):
            session = DtlsSrtpSession(role, self._dtls_settings, media.dtls.remote_fingerprints)
            stream.dtls[component] = DtlsSrtpTransport(
                session, lambda d, s=stream, c=component: self._send_dtls(s, c, d),
                on_complete=lambda e, s=stream, c=component: self._dtls_keyed(s, c, e),
                on_failure=lambda r, s=stream, c=component: self._dtls_failed(s, c, r))
        for transport in stream.dtls.values():
            transport.start()

    def _dtls_in(self, stream: Stream, component: str, data: bytes, addr: Any) -> None:
        transport = stream.dtls.get(component)
        target = stream.remote_rtp if component == "rtp" else stream.remote_rtcp
        # Only the port the SDP names may drive the handshake: a stray ClientHello from
        # elsewhere would otherwise derail the real one and end the call.
        if transport is not None and target is not None and _same_address(addr, target):
            transport.datagram_received(data)

    def _send_dtls(self, stream: Stream, component: str, data: bytes) -> None:
        sock, target = ((stream.rtp, stream.remote_rtp) if component == "rtp"
                        else (stream.rtcp, stream.remote_rtcp))
        if not self.closed and sock is not None and sock.transport is not None and target:
            sock.transport.sendto(data, target)

    def _dtls_keyed(self, stream: Stream, component: str, done: HandshakeComplete) -> None:
        keying = done.keying
        inbound, outbound = srtp_sessions(keying.remote_key, keying.local_key,
                                          keying.libsrtp_profile)
        if component == "rtp":
            stream.srtp_in, stream.srtp_out = inbound, outbound
        if component == "rtcp" or stream.rtcp is None:
            stream.srtcp_in, stream.srtcp_out = inbound, outbound
        # Auditors and the acceptance tests look for the profile; the keys are never logged.
        log.info("SIP call %s: %s %s keyed by DTLS-SRTP, SRTP profile %s (%s %s, node is the "
                 "DTLS %s)", self.call_id, stream.kind, component, keying.profile,
                 done.version, done.cipher, stream.dtls[component].session.role.value)

    def _dtls_failed(self, stream: Stream, component: str, reason: str) -> None:
        log.info("SIP call %s: %s %s DTLS-SRTP failed: %s", self.call_id, stream.kind,
                 component, reason)
        if self.on_security_failure is not None and not self.closed:
            self.on_security_failure(reason)

    def _rtcp_port_in(self, kind: str, data: bytes, addr: Any) -> None:
        stream = self.streams.get(kind)
        if stream is not None and data and is_dtls(data):
            self._dtls_in(stream, "rtcp", data, addr)
        else:
            self._rtcp_in(kind, data)

    async def _rtcp_loop(self) -> None:
        """Sender and receiver reports: some endpoints hang up on a peer that sends none."""
        with contextlib.suppress(asyncio.CancelledError):
            while not self.closed:
                await asyncio.sleep(RTCP_INTERVAL)
                for stream in self.streams.values():
                    if stream.media is None:
                        continue
                    now = time.time() + _NTP_EPOCH
                    ntp = (int(now) << 32) | int((now % 1) * (1 << 32))
                    reports = []
                    if stream.remote_ssrc is not None:
                        reports.append(RtcpReceiverInfo(
                            ssrc=stream.remote_ssrc, fraction_lost=0, packets_lost=0,
                            highest_sequence=0, jitter=0, lsr=0, dlsr=0))
                    if stream.packets_sent:
                        packet: Any = RtcpSrPacket(ssrc=stream.ssrc, sender_info=RtcpSenderInfo(
                            ntp_timestamp=ntp, rtp_timestamp=stream.timestamp,
                            packet_count=stream.packets_sent, octet_count=stream.octets_sent),
                            reports=reports)
                    else:
                        packet = RtcpRrPacket(ssrc=stream.ssrc, reports=reports)
                    self._send_rtcp(stream, [packet])

