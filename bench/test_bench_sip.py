"""Speed of the SIP message layer (pytest-benchmark).

Run: .venv/bin/pytest bench/test_bench_sip.py --benchmark-only
Each benchmark records ``messages_per_second`` in its extra info (the stream benchmark handles
100 messages per round, so its rate is 100 times its OPS).
"""

from __future__ import annotations

import itertools

from pytest_benchmark.fixture import BenchmarkFixture

from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    serialize,
)
from confnode.transport.sip.uri import SipUri
from confnode.transport.sip.user_agent import SipUserAgent

SDP = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 198.51.100.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/SAVP 111 0 8 101\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
    b"a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    b"a=sendrecv\r\n"
    b"m=video 40002 RTP/SAVP 96 97\r\n"
    b"a=rtpmap:96 VP8/90000\r\n"
    b"a=rtpmap:97 H264/90000\r\n"
    b"a=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
    b"a=sendrecv\r\n"
)
INVITE = (
    b"INVITE sip:1234567890@confnode.example.dk SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 198.51.100.20:5061;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:1234567890@confnode.example.dk>\r\n"
    b'From: "Dr. Jensen" <sip:jensen@clinic.example.dk>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.clinic.example.dk\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:jensen@198.51.100.20:5061;transport=tls>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: Example Phone 1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(SDP)
) + SDP
OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TLS 198.51.100.20:5061;branch=z9hG4bK776asdhds;rport=5061;"
    b"received=198.51.100.20\r\n"
    b"To: <sip:1234567890@confnode.example.dk>;tag=cn-8f3a2b\r\n"
    b'From: "Dr. Jensen" <sip:jensen@clinic.example.dk>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.clinic.example.dk\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:1234567890@confnode.example.dk:5061;transport=tls>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OPTIONS = (
    "OPTIONS sip:confnode.example.dk SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bKopt%d;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:confnode.example.dk>\r\n"
    "From: <sip:monitor@clinic.example.dk>;tag=%d\r\n"
    "Call-ID: keepalive-%d@clinic.example.dk\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def _record_rate(benchmark: BenchmarkFixture, messages_per_round: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.mean > 0:
        benchmark.extra_info["messages_per_second"] = round(
            messages_per_round / stats.stats.mean)


def test_parse_invite_with_sdp(benchmark: BenchmarkFixture) -> None:
    assert 1000 <= len(INVITE) <= 1400
    request = benchmark(parse_message, INVITE)
    assert isinstance(request, SipRequest) and request.body == SDP
    _record_rate(benchmark, 1)


def test_serialize_invite_with_sdp(benchmark: BenchmarkFixture) -> None:
    request = parse_message(INVITE)
    data = benchmark(serialize, request)
    # Canonical form: one list element per line (Allow, Supported), otherwise the same bytes.
    assert data.count(b"\r\nAllow: ") == 7 and data.endswith(SDP)
    assert serialize(parse_message(data)) == data
    _record_rate(benchmark, 1)


def test_parse_200_ok(benchmark: BenchmarkFixture) -> None:
    response = benchmark(parse_message, OK_200)
    assert isinstance(response, SipResponse) and response.to.tag == "cn-8f3a2b"
    _record_rate(benchmark, 1)


def test_serialize_200_ok(benchmark: BenchmarkFixture) -> None:
    response = parse_message(OK_200)
    assert benchmark(serialize, response) == OK_200
    _record_rate(benchmark, 1)


def test_make_response_to_invite(benchmark: BenchmarkFixture) -> None:
    request = parse_message(INVITE)
    response = benchmark(make_response, request, 200, to_tag="cn-8f3a2b")
    assert response.to.tag == "cn-8f3a2b"
    _record_rate(benchmark, 1)


def test_stream_framer_100_messages(benchmark: BenchmarkFixture) -> None:
    """50 INVITEs and 50 200 OKs interleaved (~70 KB), arriving in 1400-byte TCP segments."""
    stream = (INVITE + OK_200) * 50
    segments = [stream[i : i + 1400] for i in range(0, len(stream), 1400)]

    def frame_all() -> int:
        framer = StreamFramer()
        count = 0
        for segment in segments:
            count += len(framer.feed(segment))
        return count

    assert benchmark(frame_all) == 100
    _record_rate(benchmark, 100)


def test_udp_options_with_live_transactions(benchmark: BenchmarkFixture) -> None:
    """A whole UDP OPTIONS exchange through the user agent (parse, transaction, 200, timers) on
    a node already holding 10,000 live transactions: on UDP timer J keeps each answered request
    32 s, so this is the state after 10 s of 1,000 requests a second. The rate must be about
    that of an idle agent: nothing per message may scan the live transactions."""
    agent = SipUserAgent(SipUri.parse("sip:confnode.example.dk:5060;transport=udp"),
                         reliable=False)
    numbers = itertools.count(1)
    source = ("198.51.100.20", 5060)

    def exchange() -> int:
        number = next(numbers)
        now = number / 1000
        agent.receive((OPTIONS % (number, number, number)).encode(), source, now)
        sent = len(agent.datagrams_to_send())
        deadline = agent.get_timer()
        if deadline is not None and deadline <= now:
            agent.handle_timer(now)
        return sent

    for _ in range(10_000):
        exchange()
    assert agent.transaction_count == 10_000
    assert benchmark(exchange) == 1
    _record_rate(benchmark, 1)
