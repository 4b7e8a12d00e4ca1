"""SDP offer/answer for a SIP call, through the node's negotiation (pytest-benchmark).

Run: .venv/bin/pytest bench/test_bench_sdp.py --benchmark-only

What an INVITE's body costs before any media flows: parse the offer, answer it
(``answer_offer``: codec choice, H.264 profile, SDES suite choice and a fresh SRTP key per
stream) and serialize the answer. The offer is the audio + video SDES offer of the SIP
benchmarks (``test_bench_sip.SDP``: Opus/PCMU/PCMA + telephone-event, VP8/H.264, one
AES_CM_128_HMAC_SHA1_80 line per stream).
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture
from test_bench_sip import SDP

from confnode.transport.sip.negotiation import MediaSecurity, NegotiatedSession, answer_offer
from confnode.transport.sip.sdp import parse_sdp

PORTS = {0: (40000, 40001), 1: (40002, 40003)}


def negotiate(body: bytes) -> tuple[NegotiatedSession, str]:
    session = answer_offer(parse_sdp(body.decode()), local_address="192.0.2.10", ports=PORTS,
                           over_tls=True, session_id=1001)
    return session, session.answer.serialize()


def test_parse_sdp_offer(benchmark: BenchmarkFixture) -> None:
    offer = benchmark(parse_sdp, SDP.decode())
    assert len(offer.media) == 2


def test_negotiate_audio_video_sdes_offer(benchmark: BenchmarkFixture) -> None:
    session, answer = benchmark(negotiate, SDP)
    assert session.audio is not None and session.video is not None
    assert session.audio.security is MediaSecurity.SDES
    assert session.audio.codec.name.lower() == "opus" and session.video.codec.name == "VP8"
    assert answer.count("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") == 2
