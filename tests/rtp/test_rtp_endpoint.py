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
from confnode.transport.sip.negotiation import answer_offer, renegotiate
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


async def test_reinvite_moves_holds_and_switches_codec_on_the_same_sockets_and_keys() -> None:
    """``configure`` again with a re-INVITE's session: RFC 3264 §8 changes, one call."""
    old_peer_got: list[bytes] = []
    new_peer_got: list[bytes] = []
    old_peer = await RtpSocket.bind("127.0.0.1", lambda data, addr: old_peer_got.append(data))
    new_peer = await RtpSocket.bind("127.0.0.1", lambda data, addr: new_peer_got.append(data))
    frames: list[np.ndarray] = []
    endpoint = RtpEndpoint("call", "sip-1", on_frame=lambda p, k, f: frames.append(
        f.to_ndarray().reshape(-1)))
    first_offer = parse_sdp(offer(old_peer.port))
    ports = await endpoint.open("127.0.0.1", first_offer)
    first = answer_offer(first_offer, local_address="127.0.0.1", ports=ports, over_tls=True,
                         session_id=1)
    endpoint.configure(first)
    stream = endpoint.streams["audio"]
    srtp_out, outbound = stream.srtp_out, endpoint.outbound["audio"]
    assert first.media[0].srtp is not None
    out = pylibsrtp.Session(pylibsrtp.Policy(key=PEER_KEY,
                                             srtp_profile=first.media[0].srtp.srtp_profile,
                                             ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    target = ("127.0.0.1", ports[0][0])
    assert old_peer.transport is not None and new_peer.transport is not None
    try:
        # Moved to a new port, on hold (sendonly), same key: nothing is sent anywhere.
        held_offer = parse_sdp(offer(new_peer.port).replace("a=sendrecv", "a=sendonly"))
        assert await endpoint.open("127.0.0.1", held_offer) == ports  # no new sockets
        held = renegotiate(first, held_offer, over_tls=True, ports=ports)
        endpoint.configure(held)
        for payload in pcmu_tone(660, 10):
            endpoint.outbound["audio"].push(payload, 0, None)
        # Resumed with PCMA only: same SRTP context and outbound track, new codec, new address.
        pcma_offer = parse_sdp(offer(new_peer.port).replace("RTP/SAVP 0 101", "RTP/SAVP 8 101")
                               .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"))
        resumed = renegotiate(held, pcma_offer, over_tls=True, ports=ports)
        endpoint.configure(resumed)
        assert endpoint.negotiated_codecs() == {"audio": "PCMA"}
        assert stream.srtp_out is srtp_out and endpoint.outbound["audio"] is outbound
        encoder = G711Encoder("PCMA")
        t = np.arange(960 * 25) / 48000
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        ssrc = random.getrandbits(32)
        for seq in range(25):
            payload = encoder.encode(tone[seq * 960:(seq + 1) * 960]) or b""
            # A late PCMU packet (old payload type) is dropped, the PCMA ones decoded.
            for pt in ((0, 8) if seq == 3 else (8,)):
                packet = RtpPacket(payload_type=pt, sequence_number=seq * 2 + (pt == 0),
                                   timestamp=160 * seq, ssrc=ssrc, payload=payload)
                new_peer.transport.sendto(out.protect(packet.serialize()), target)
        for payload in pcmu_tone(660, 5):
            endpoint.outbound["audio"].push(payload, 0, None)
        await asyncio.sleep(0.5)
        assert old_peer_got == []
        assert len([d for d in new_peer_got if d[1] & 0x7F == 8]) == 5  # only after resume
        samples = np.concatenate(frames).astype(np.float64)
        assert len(samples) == 25 * 160
        spectrum = np.abs(np.fft.rfft(samples))
        assert abs(np.argmax(spectrum) * 8000 / len(samples) - 440) < 10
    finally:
        await endpoint.close()
        old_peer.transport.close()
        new_peer.transport.close()
