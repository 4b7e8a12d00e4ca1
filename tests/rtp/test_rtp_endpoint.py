"""A SIP call's RTP endpoint against a hand-driven SRTP peer on loopback: keys from the real
SDES answer, G.711 both ways, RFC 4733 digits, nothing accepted without the right key."""

from __future__ import annotations

import asyncio
import base64
import random

import numpy as np
import pylibsrtp
from aiortc.rtp import RtpPacket

from confnode.transport.encoders import G711Encoder
from confnode.transport.rtp.endpoint import RtpEndpoint, RtpSocket
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdes import SdesSuite, generate_key
from confnode.transport.sip.sdp import parse_sdp

PEER_KEY = generate_key(SdesSuite.AES_CM_128_HMAC_SHA1_80)


def offer(port: int) -> str:
    key = base64.b64encode(PEER_KEY).decode()
    return ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp-mux\r\n"
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=sendrecv\r\n")


def pcmu_tone(hz: float, frames: int) -> list[bytes]:
    encoder = G711Encoder("PCMU")
    t = np.arange(960 * frames) / 48000
    signal = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    return [encoder.encode(signal[i * 960:(i + 1) * 960]) or b"" for i in range(frames)]


async def test_srtp_g711_and_dtmf_both_ways() -> None:
    received: list[bytes] = []
    peer = await RtpSocket.bind("127.0.0.1", lambda data, addr: received.append(data))
    frames: list[np.ndarray] = []
    digits: list[str] = []
    endpoint = RtpEndpoint("call", "sip-1", on_frame=lambda p, k, f: frames.append(
        f.to_ndarray().reshape(-1)), on_digit=digits.append)
    sdp = parse_sdp(offer(peer.port))
    ports = await endpoint.open("127.0.0.1", sdp)
    session = answer_offer(sdp, local_address="127.0.0.1", ports=ports, over_tls=True,
                           session_id=1)
    endpoint.configure(session)
    media = session.media[0]
    assert media.srtp is not None and media.srtp.suite is SdesSuite.AES_CM_128_HMAC_SHA1_80
    assert media.srtp.remote_key == PEER_KEY
    out = pylibsrtp.Session(pylibsrtp.Policy(key=PEER_KEY, srtp_profile=media.srtp.srtp_profile,
                                             ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    back = pylibsrtp.Session(pylibsrtp.Policy(key=media.srtp.local_key,
                                              srtp_profile=media.srtp.srtp_profile,
                                              ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    target = ("127.0.0.1", ports[0][0])
    assert peer.transport is not None
    try:
        ssrc, ts = random.getrandbits(32), 1000
        for seq, payload in enumerate(pcmu_tone(440, 50)):
            packet = RtpPacket(payload_type=0, sequence_number=seq, timestamp=ts + 160 * seq,
                               ssrc=ssrc, payload=payload)
            peer.transport.sendto(out.protect(packet.serialize()), target)
        # A forged packet (no valid auth tag) and a digit "5" (RFC 4733 end packet, x3).
        peer.transport.sendto(RtpPacket(payload_type=0, sequence_number=999, ssrc=ssrc,
                                        payload=b"\xff" * 160).serialize(), target)
        for seq in (60, 61, 62):
            event = RtpPacket(payload_type=101, sequence_number=seq, timestamp=50_000,
                              ssrc=ssrc, payload=bytes([5, 0x80 | 10, 0x03, 0x20]))
            peer.transport.sendto(out.protect(event.serialize()), target)
        # The room sends PCMU to the phone.
        for payload in pcmu_tone(660, 25):
            endpoint.outbound["audio"].push(payload, 0, None)
        await asyncio.sleep(0.5)
        assert digits == ["5"]
        samples = np.concatenate(frames).astype(np.float64)
        assert len(samples) == 50 * 160  # 8 kHz decoded, the forged packet dropped
        spectrum = np.abs(np.fft.rfft(samples))
        assert abs(np.argmax(spectrum) * 8000 / len(samples) - 440) < 10
        decoded = [RtpPacket.parse(back.unprotect(d)) for d in received
                   if d[1] & 0x7F == 0]
        audio = [p for p in decoded if p.payload_type == 0]
        assert len(audio) == 25 and all(len(p.payload) == 160 for p in audio)
        assert [p.timestamp - audio[0].timestamp for p in audio[:3]] == [0, 160, 320]
    finally:
        await endpoint.close()
        peer.transport.close()
