"""SRTP protect and unprotect per SDES suite, as a SIP call's streams are keyed (pytest-benchmark).

Run: .venv/bin/pytest bench/test_bench_srtp.py --benchmark-only

The keys come out of the node's own negotiation (``answer_offer`` on an offer carrying one
``a=crypto`` line of the suite, over TLS) and are turned into pylibsrtp sessions the way
``RtpEndpoint`` does it (inbound: the offerer's key, ``SSRC_ANY_INBOUND``; outbound: ours,
``SSRC_ANY_OUTBOUND``). Two packet sizes: a 20 ms PCMU packet (172 bytes of RTP) and a full
video packet (1,200 bytes). Every round sends the next sequence number, so libsrtp's replay
protection sees a real stream.
"""

from __future__ import annotations

import struct

import pylibsrtp
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from confnode.transport.sip.negotiation import SrtpKeys, answer_offer
from confnode.transport.sip.sdes import CryptoAttribute, SdesSuite
from confnode.transport.sip.sdp import parse_sdp

PAYLOADS = {"audio-172B": 160, "video-1200B": 1188}
ROUNDS = 2000  # unprotect cannot repeat a packet, so each round gets a fresh one (pedantic)


def negotiated_keys(suite: SdesSuite) -> SrtpKeys:
    crypto = CryptoAttribute.generate(1, suite).serialize()
    offer = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n"
        "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:{crypto}\r\na=sendrecv\r\n")
    session = answer_offer(offer, local_address="192.0.2.10", ports={0: (41000, 41001)},
                           over_tls=True, session_id=1)
    assert session.audio is not None and session.audio.srtp is not None
    keys = session.audio.srtp
    assert keys.suite is suite
    return keys


class RtpStream:
    """Consecutive RTP packets of one SSRC (sequence number and timestamp advancing)."""

    def __init__(self, payload_size: int) -> None:
        self.payload = bytes(range(256)) * (payload_size // 256) + bytes(payload_size % 256)
        self.sequence = 0

    def next_packet(self) -> bytes:
        self.sequence += 1
        header = struct.pack("!BBHII", 0x80, 0, self.sequence & 0xFFFF, self.sequence * 160,
                             0x1234ABCD)
        return header + self.payload


def sessions(keys: SrtpKeys) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """(sender, receiver) keyed with the same master key, as both ends of one direction."""
    sender = pylibsrtp.Session(pylibsrtp.Policy(
        key=keys.local_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=keys.srtp_profile))
    receiver = pylibsrtp.Session(pylibsrtp.Policy(
        key=keys.local_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=keys.srtp_profile))
    return sender, receiver


@pytest.mark.parametrize("packet", list(PAYLOADS))
@pytest.mark.parametrize("suite", list(SdesSuite), ids=[s.value for s in SdesSuite])
def test_srtp_protect(benchmark: BenchmarkFixture, suite: SdesSuite, packet: str) -> None:
    sender, receiver = sessions(negotiated_keys(suite))
    stream = RtpStream(PAYLOADS[packet])
    protected = benchmark.pedantic(
        sender.protect, setup=lambda: ((stream.next_packet(),), {}), rounds=ROUNDS)
    assert receiver.unprotect(protected)[12:] == stream.payload


@pytest.mark.parametrize("packet", list(PAYLOADS))
@pytest.mark.parametrize("suite", list(SdesSuite), ids=[s.value for s in SdesSuite])
def test_srtp_unprotect(benchmark: BenchmarkFixture, suite: SdesSuite, packet: str) -> None:
    sender, receiver = sessions(negotiated_keys(suite))
    stream = RtpStream(PAYLOADS[packet])
    plain = benchmark.pedantic(
        receiver.unprotect, setup=lambda: ((sender.protect(stream.next_packet()),), {}),
        rounds=ROUNDS)
    assert plain[12:] == stream.payload
