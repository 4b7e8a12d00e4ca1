"""A SIP call's RTP endpoint with the codecs beyond G.711, against a hand-driven peer on loopback:
G.722 both ways (its 8000 Hz RTP clock), H.264 single NAL unit packets for a packetization-mode 0
answer, and keyframe requests both ways (PLI and FIR)."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiortc.codecs import depayload, get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket

from confnode.transport.encoders import G722Encoder, VideoTarget, video_encoder
from confnode.transport.h264 import RTP_PAYLOAD_MTU, H264SendLimits
from confnode.transport.rtp.endpoint import RtpEndpoint, RtpSocket, codec_parameters
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdp import parse_sdp


def plain_offer(port: int, media: str) -> str:
    return ("v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"{media.format(port=port)}a=rtcp-mux\r\na=sendrecv\r\n")


G722_ONLY = "m=audio {port} RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
H264_MODE_0 = ("m=video {port} RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
               "a=fmtp:97 profile-level-id=42e01e;packetization-mode=0\r\n"
               "a=rtcp-fb:97 nack pli\r\n")
H264_FIR_ONLY = ("m=video {port} RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
                 "a=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\n"
                 "a=rtcp-fb:97 ccm fir\r\n")


@dataclass
class Peer:
    """The far end: one socket (RTCP multiplexed), what arrived, split into RTP and RTCP."""

    socket: RtpSocket
    rtp: list[RtpPacket] = field(default_factory=list)
    rtcp: list[object] = field(default_factory=list)

    def received(self, data: bytes) -> None:
        if 192 <= data[1] <= 223:
            self.rtcp.extend(RtcpPacket.parse(data))
        else:
            self.rtp.append(RtpPacket.parse(data))

    def send(self, data: bytes, port: int) -> None:
        assert self.socket.transport is not None
        self.socket.transport.sendto(data, ("127.0.0.1", port))


@dataclass
class Call:
    peer: Peer
    endpoint: RtpEndpoint
    port: int
    frames: list[Any]


CallFactory = Callable[[str], Awaitable[Call]]


@pytest.fixture
async def call_factory() -> AsyncIterator[CallFactory]:
    made: list[Call] = []

    async def make(media: str) -> Call:
        peer = Peer(await RtpSocket.bind("127.0.0.1", lambda d, a: peer.received(d)))
        assert peer.socket.transport is not None
        # A keyframe of noise is ~200 packets sent in one go: more than a default buffer holds.
        peer.socket.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        frames: list[Any] = []
        endpoint = RtpEndpoint("call", "sip-1", on_frame=lambda p, k, f: frames.append(f))
        sdp = parse_sdp(plain_offer(peer.socket.port, media))
        ports = await endpoint.open("127.0.0.1", sdp)
        endpoint.configure(answer_offer(sdp, local_address="127.0.0.1", ports=ports,
                                        over_tls=False, allow_plain_rtp=True, session_id=1))
        call = Call(peer, endpoint, next(iter(ports.values()))[0], frames)
        made.append(call)
        return call

    yield make
    for call in made:
        await call.endpoint.close()
        assert call.peer.socket.transport is not None
        call.peer.socket.transport.close()


def spectrum_level(samples: np.ndarray, rate: int, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[(freqs > hz - 50) & (freqs < hz + 50)].max() / spectrum.max())


async def test_g722_both_ways_on_an_8000_hz_rtp_clock(call_factory: CallFactory) -> None:
    call = await call_factory(G722_ONLY)
    assert call.endpoint.negotiated_codecs() == {"audio": "G722"}
    t = np.arange(960 * 50) / 48000
    signal = ((np.sin(2 * np.pi * 500 * t) + np.sin(2 * np.pi * 6000 * t)) * 6000).astype(np.int16)
    phone, node = G722Encoder(), G722Encoder()
    ssrc, seq0, ts0 = random.getrandbits(32), random.getrandbits(15), random.getrandbits(31)
    for i in range(50):
        chunk = signal[i * 960:(i + 1) * 960]
        payload = phone.encode(chunk)
        assert payload is not None
        call.peer.send(RtpPacket(payload_type=9, sequence_number=seq0 + i,
                                 timestamp=ts0 + 160 * i, ssrc=ssrc, payload=payload).serialize(),
                       call.port)
        data = node.encode(chunk)
        assert data is not None
        call.endpoint.outbound["audio"].push(data, 0, None)
    for _ in range(50):
        await asyncio.sleep(0.02)
        if len(call.frames) >= 50 and len(call.peer.rtp) >= 50:
            break
    # Inbound: decoded at 16 kHz, the 6 kHz tone intact.
    assert {f.sample_rate for f in call.frames} == {16000}
    decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in call.frames])
    assert spectrum_level(decoded[1600:].astype(float), 16000, 6000) > 0.3
    # Outbound: payload type 9, 160 bytes and 160 clock ticks per 20 ms.
    sent = call.peer.rtp
    assert {p.payload_type for p in sent} == {9} and {len(p.payload) for p in sent} == {160}
    steps = {(b.timestamp - a.timestamp) % (1 << 32) for a, b in itertools.pairwise(sent)}
    assert steps == {160}
    audio = call.endpoint.streams["audio"].media
    assert audio is not None
    back = get_decoder(codec_parameters(audio))
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for p in sent
                          for f in back.decode(JitterFrame(p.payload, p.timestamp))])
    assert spectrum_level(pcm[1600:].astype(float), 16000, 6000) > 0.3


async def test_mode_0_answer_sends_single_nal_units_fitted_to_the_level(
        call_factory: CallFactory) -> None:
    call = await call_factory(H264_MODE_0)
    media = call.endpoint.streams["video"].media
    assert media is not None and media.codec.fmtp == (
        "profile-level-id=42e01e;packetization-mode=0")
    target = call.endpoint.video_target()
    assert target == VideoTarget("h264", H264SendLimits(30, 1620, 40500, 0))
    encoder = video_encoder(target, 1280, 720, 15, 1_200_000)
    rng = np.random.default_rng(7)
    for i in range(3):
        frame = encoder.encode(rng.integers(0, 256, (1080, 1280), dtype=np.uint8))
        assert frame is not None
        call.endpoint.outbound["video"].push(frame.data, i * 6000, "room", keyframe=frame.keyframe)
    await asyncio.sleep(0.3)
    packets = call.peer.rtp
    assert len(packets) > 30
    assert {p.payload[0] & 0x1F for p in packets} <= set(range(1, 24))
    assert max(len(p.serialize()) for p in packets) <= RTP_PAYLOAD_MTU
    decoder = get_decoder(codec_parameters(media))
    pictures = []
    for ts in sorted({p.timestamp for p in packets}):
        unit = [p for p in packets if p.timestamp == ts]
        assert [p.marker for p in unit] == [0] * (len(unit) - 1) + [1]
        codec = call.endpoint.streams["video"].codec
        assert codec is not None
        access_unit = b"".join(depayload(codec, p.payload) for p in unit)
        pictures += decoder.decode(JitterFrame(access_unit, ts))
    assert len(pictures) == 3 and (pictures[0].width, pictures[0].height) == (848, 480)


def psfb(fmt: int, sender: int, media_ssrc: int, fci: bytes = b"") -> bytes:
    return bytes(RtcpPsfbPacket(fmt=fmt, ssrc=sender, media_ssrc=media_ssrc, fci=fci))


async def test_keyframe_requests_from_the_endpoint_reach_the_room(
        call_factory: CallFactory) -> None:
    call = await call_factory(H264_MODE_0)
    requests: list[str] = []
    call.endpoint.on_keyframe_request(lambda: requests.append("keyframe"))
    ours = call.endpoint.streams["video"].ssrc
    call.peer.send(psfb(RTCP_PSFB_PLI, 1234, ours), call.port)
    call.peer.send(psfb(RTCP_PSFB_FIR, 1234, 0, ours.to_bytes(4, "big") + b"\x01\0\0\0"),
                   call.port)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(requests) == 2:
            break
    assert requests == ["keyframe", "keyframe"]
    assert call.endpoint.streams["video"].keyframe_requests_received == 2


async def first_video_packet(call: Call, ssrc: int) -> None:
    # An access unit delimiter is enough: the request is about the new stream, not its content.
    call.peer.send(RtpPacket(payload_type=97, sequence_number=1, timestamp=1, ssrc=ssrc,
                             marker=1, payload=bytes([0x09, 0x10])).serialize(), call.port)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if call.peer.rtcp:
            return


async def test_the_node_asks_for_a_keyframe_when_it_starts_decoding(
        call_factory: CallFactory) -> None:
    call = await call_factory(H264_MODE_0)
    await first_video_packet(call, 0xABCD)  # a new stream, decoded: ask at once
    plis = [p for p in call.peer.rtcp if isinstance(p, RtcpPsfbPacket)]
    assert [(p.fmt, p.media_ssrc) for p in plis] == [(RTCP_PSFB_PLI, 0xABCD)]
    call.endpoint.set_decoding(False)
    call.endpoint.set_decoding(True)  # the room starts mixing: decoding resumes mid-stream
    await asyncio.sleep(0.1)
    plis = [p for p in call.peer.rtcp if isinstance(p, RtcpPsfbPacket)]
    assert len(plis) == 2
    call.endpoint.set_decoding(True)  # already decoding: no request
    await asyncio.sleep(0.1)
    assert len([p for p in call.peer.rtcp if isinstance(p, RtcpPsfbPacket)]) == 2


async def test_an_endpoint_that_negotiated_only_fir_gets_fir(call_factory: CallFactory) -> None:
    call = await call_factory(H264_FIR_ONLY)
    await first_video_packet(call, 0x5151)
    await call.endpoint.request_keyframe()
    await asyncio.sleep(0.1)
    firs = [p for p in call.peer.rtcp if isinstance(p, RtcpPsfbPacket)]
    assert [p.fmt for p in firs] == [RTCP_PSFB_FIR, RTCP_PSFB_FIR]
    # RFC 5104 §4.3.1: media SSRC 0, FCI = target SSRC + a sequence number that counts up.
    assert all(p.media_ssrc == 0 for p in firs)
    assert [(p.fci[:4], p.fci[4]) for p in firs] == [(0x5151.to_bytes(4, "big"), 1),
                                                    (0x5151.to_bytes(4, "big"), 2)]


async def test_the_node_asks_for_a_keyframe_after_loss_once_per_burst(
        call_factory: CallFactory) -> None:
    call = await call_factory(H264_MODE_0)

    def send(seq: int) -> None:
        # One timestamp, no marker: the jitter buffer never completes a frame, so no decode
        # (and no decode error's keyframe request) muddles the count.
        call.peer.send(RtpPacket(payload_type=97, sequence_number=seq % (1 << 16),
                                 timestamp=1000, ssrc=0x77, marker=0,
                                 payload=bytes([0x09, 0x10])).serialize(), call.port)

    async def requests_after(*sequences: int) -> int:
        for seq in sequences:
            send(seq)
        await asyncio.sleep(0.15)
        return len([p for p in call.peer.rtcp if isinstance(p, RtcpPsfbPacket)])

    assert await requests_after(65534, 65535, 0) == 1  # the new stream; a wrap is not loss
    assert await requests_after(0, 1) == 1  # a duplicate is not loss either
    assert await requests_after(4) == 2  # 2 and 3 lost
    assert await requests_after(3, 9) == 2  # a late packet, then loss within the same 0.5 s
    await asyncio.sleep(0.5)
    assert await requests_after(20) == 3  # a new burst
