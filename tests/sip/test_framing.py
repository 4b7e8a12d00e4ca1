"""Framing SIP over TCP/TLS: Content-Length, keep-alives, size limits, any chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.transport.sip.errors import MessageKind, SipParseError
from confnode.transport.sip.framing import StreamFramer, is_keepalive
from confnode.transport.sip.message import SipRequest, SipResponse, parse_message, serialize

OPTIONS = (
    b"OPTIONS sip:room@node.example.dk SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 198.51.100.20:50432;branch=z9hG4bKopt1\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:room@node.example.dk>\r\n"
    b"From: <sip:probe@example.com>;tag=p1\r\n"
    b"Call-ID: opt1@198.51.100.20\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
MESSAGE = (
    b"MESSAGE sip:room@node.example.dk SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 198.51.100.20:5061;branch=z9hG4bKmsg1\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:room@node.example.dk>\r\n"
    b"From: <sip:jensen@clinic.example.dk>;tag=m1\r\n"
    b"Call-ID: msg1@198.51.100.20\r\n"
    b"CSeq: 7 MESSAGE\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 16\r\n"
    b"\r\n"
    b"Hello\r\n\r\nroom!\r\n"
)
RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TLS node.example.dk:5061;branch=z9hG4bKbye9\r\n"
    b"To: <sip:jensen@clinic.example.dk>;tag=m1\r\n"
    b"From: <sip:room@node.example.dk>;tag=r1\r\n"
    b"Call-ID: bye9@node.example.dk\r\n"
    b"CSeq: 2 BYE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
NO_LENGTH = OPTIONS.replace(b"Content-Length: 0\r\n", b"")


def methods(out: list[SipRequest | SipResponse | SipParseError]) -> list[str | int]:
    return [m.method if isinstance(m, SipRequest) else
            m.status if isinstance(m, SipResponse) else f"error {m.status}" for m in out]


def test_several_messages_in_one_chunk() -> None:
    framer = StreamFramer()
    out = framer.feed(OPTIONS + MESSAGE + RESPONSE)
    assert methods(out) == ["OPTIONS", "MESSAGE", 200]
    assert out[1].body == b"Hello\r\n\r\nroom!\r\n"
    assert framer.buffered == 0 and framer.broken is False


def test_byte_by_byte_feeding() -> None:
    framer = StreamFramer()
    out: list[SipRequest | SipResponse | SipParseError] = []
    stream = MESSAGE + OPTIONS
    for index in range(len(stream)):
        got = framer.feed(stream[index : index + 1])
        out += got
        if index == len(MESSAGE) - 2:
            assert out == []  # the body's last byte is still missing
    assert methods(out) == ["MESSAGE", "OPTIONS"]
    assert out[0].body == b"Hello\r\n\r\nroom!\r\n"


def test_a_blank_line_split_across_chunks_is_found() -> None:
    framer = StreamFramer()
    head_end = OPTIONS.index(b"\r\n\r\n")
    assert framer.feed(OPTIONS[: head_end + 1]) == []
    assert framer.feed(OPTIONS[head_end + 1 : head_end + 3]) == []
    assert methods(framer.feed(OPTIONS[head_end + 3 :])) == ["OPTIONS"]


def test_double_crlf_keepalives_are_counted_and_single_crlf_is_not() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.take_pings() == 1
    assert framer.take_pings() == 0
    framer.feed(b"\r\n")
    assert framer.take_pings() == 0  # a pong, or just a stray CRLF before a message
    framer.feed(b"\r\n")
    assert framer.take_pings() == 1  # ...that became a ping
    for byte in b"\r\n\r\n\r\n\r\n":
        framer.feed(bytes([byte]))
    assert framer.take_pings() == 2
    assert framer.pings_received == 4


def test_pings_between_messages_and_a_crlf_before_a_message() -> None:
    framer = StreamFramer()
    out = framer.feed(b"\r\n" + OPTIONS + b"\r\n\r\n" + RESPONSE + b"\r\n\r\n\r\n\r\n")
    assert methods(out) == ["OPTIONS", 200]
    assert framer.take_pings() == 3
    assert framer.buffered == 0


def test_missing_content_length_breaks_the_stream() -> None:
    framer = StreamFramer()
    out = framer.feed(OPTIONS + NO_LENGTH + OPTIONS)
    assert methods(out) == ["OPTIONS", "error 400"]
    error = out[1]
    assert isinstance(error, SipParseError)
    assert error.reason == "Missing Content-Length on a stream transport"
    assert error.message_kind is MessageKind.REQUEST
    assert error.headers is not None and error.headers.get("CSeq") == "1 OPTIONS"
    assert framer.broken is True
    assert framer.buffered == 0
    assert framer.feed(OPTIONS) == []


def test_a_malformed_but_framed_message_costs_only_itself() -> None:
    framer = StreamFramer()
    bad = MESSAGE.replace(b"CSeq: 7 MESSAGE", b"CSeq: 7 INVITE")
    out = framer.feed(bad + OPTIONS + b"GARBAGE\r\nContent-Length: 3\r\n\r\nabc" + RESPONSE)
    assert methods(out) == ["error 400", "OPTIONS", "error 400", 200]
    assert out[0].reason == "CSeq method does not match the request method"
    assert out[2].message_kind is None
    assert framer.broken is False


def test_oversized_message_is_a_413_and_breaks_the_stream() -> None:
    framer = StreamFramer(max_message_size=1024)
    huge_body = MESSAGE.replace(b"Content-Length: 16", b"Content-Length: 5000")
    [error] = framer.feed(huge_body)
    assert isinstance(error, SipParseError)
    assert (error.status, error.message_kind) == (413, MessageKind.REQUEST)
    assert framer.broken is True

    framer = StreamFramer(max_message_size=1024)
    assert framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX-Pad: " + b"x" * 950) == []
    [error] = framer.feed(b"x" * 100)
    assert isinstance(error, SipParseError) and error.status == 413
    assert framer.broken is True


def test_negative_and_repeated_content_length_break_the_stream() -> None:
    for bad in (OPTIONS.replace(b"Content-Length: 0", b"Content-Length: -1"),
                OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"),
                OPTIONS.replace(b"Content-Length: 0", b"Content-Length: five")):
        framer = StreamFramer()
        [error] = framer.feed(bad)
        assert isinstance(error, SipParseError) and error.status == 400
        assert framer.broken is True


def test_is_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and is_keepalive(b"\n")
    assert not is_keepalive(b"") and not is_keepalive(OPTIONS)


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([OPTIONS, MESSAGE, RESPONSE]), st.integers(0, 2)),
             min_size=1, max_size=6),
    st.lists(st.integers(1, 60), min_size=1, max_size=40),
)
def test_any_chunking_yields_the_same_messages_and_pings(
    parts: list[tuple[bytes, int]], cuts: list[int]
) -> None:
    stream = b"".join(b"\r\n\r\n" * pings + message for message, pings in parts)
    framer = StreamFramer()
    out: list[SipRequest | SipResponse | SipParseError] = []
    position = 0
    index = 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        out += framer.feed(stream[position : position + size])
        position += size
        index += 1
    assert [serialize(m) for m in out if not isinstance(m, SipParseError)] == [
        serialize(parse_message(message)) for message, _ in parts]
    assert len(out) == len(parts)
    assert framer.take_pings() == sum(pings for _, pings in parts)
    assert framer.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_message_size=512)
    for chunk in chunks:
        for item in framer.feed(chunk):
            assert isinstance(item, SipRequest | SipResponse | SipParseError)
    assert framer.buffered <= 512 + 80
