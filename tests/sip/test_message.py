"""Parsing, serializing and answering SIP messages (RFC 3261 §7, §8.2.6)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confnode.errors import InvalidInput
from confnode.transport.sip.errors import MessageKind, SipParseError
from confnode.transport.sip.headers import CSeq, Headers, NameAddr, Via
from confnode.transport.sip.message import (
    MAX_REQUEST_URI_LENGTH,
    SipRequest,
    SipResponse,
    make_error_response,
    make_response,
    parse_message,
    reason_phrase,
    serialize,
)
from confnode.transport.sip.uri import SipUri

SDP = (b"v=0\r\no=- 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 8 96\r\n")
assert len(SDP) == 101

INVITE = (
    b"INVITE sip:1234567890@node.example.dk SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 198.51.100.20:5061;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKfirst;received=203.0.113.9\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:1234567890@node.example.dk>\r\n"
    b'From: "Dr. Jensen" <sip:jensen@clinic.example.dk>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.clinic.example.dk\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:jensen@198.51.100.20:5061;transport=tls>\r\n"
    b"Record-Route: <sip:proxy.example.dk;lr>, <sip:edge.example.dk;lr>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE\r\n"
    b"Timestamp: 54\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 101\r\n"
    b"\r\n" + SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds8;received=192.0.2.4\r\n"
    b"To: <sip:room@node.example.dk>;tag=a6c85cf\r\n"
    b"From: <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 2 BYE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def parse_error(data: bytes) -> SipParseError:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    return caught.value


# --- parsing -----------------------------------------------------------------------------------


def test_invite_parses_into_typed_views() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    assert request.method == "INVITE"
    assert request.uri == SipUri("sip", "node.example.dk", user="1234567890")
    assert request.version == "SIP/2.0"
    assert [v.host for v in request.via] == ["198.51.100.20", "10.0.0.7"]
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.top_via.port == 5061
    assert request.from_.display_name == "Dr. Jensen"
    assert request.from_.tag == "1928301774"
    assert request.to.tag is None
    assert request.call_id == "a84b4c76e66710@pc33.clinic.example.dk"
    assert request.cseq == CSeq(314159, "INVITE")
    assert request.max_forwards == 70
    assert [c.uri.transport for c in request.contacts] == ["tls"]
    assert [r.uri.host for r in request.record_routes] == ["proxy.example.dk", "edge.example.dk"]
    assert request.routes == []
    assert request.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE"]
    assert request.content_type == "application/sdp"
    assert request.body == SDP


def test_response_parses() -> None:
    response = parse_message(OK_200)
    assert isinstance(response, SipResponse)
    assert (response.status, response.reason, response.body) == (200, "OK", b"")
    assert response.to.tag == "a6c85cf"
    assert response.cseq == CSeq(2, "BYE")
    assert response.max_forwards is None


def test_bare_lf_line_ends_and_leading_crlf_are_tolerated() -> None:
    # With LF line ends the six-line SDP is six octets shorter than its declared 101.
    lf = INVITE.replace(b"Content-Length: 101", b"Content-Length: 95").replace(b"\r\n", b"\n")
    request = parse_message(b"\r\n\r\n" + lf)
    assert isinstance(request, SipRequest)
    assert request.cseq == CSeq(314159, "INVITE")
    assert request.body == SDP.replace(b"\r\n", b"\n")
    mixed = INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert parse_message(mixed).max_forwards == 70


def test_folded_headers_are_unfolded_with_single_spaces() -> None:
    data = OK_200.replace(b"CSeq: 2 BYE\r\n", b"CSeq: 2\r\n   BYE\r\nSubject: a\r\n\t b\r\n")
    response = parse_message(data)
    assert response.cseq == CSeq(2, "BYE")
    assert response.headers.get("Subject") == "a b"


def test_compact_forms_in_a_message() -> None:
    data = (b"OPTIONS sip:node.example.dk SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"t: <sip:node.example.dk>\r\nf: <sip:a@b>;tag=1\r\ni: abc\r\nCSeq: 1 OPTIONS\r\n"
            b"k: timer, 100rel\r\nm: <sip:a@h>\r\nl: 0\r\n\r\n")
    request = parse_message(data)
    assert request.call_id == "abc"
    assert request.headers.get_list("Supported") == ["timer", "100rel"]
    assert "Content-Length" in request.headers
    assert serialize(request).startswith(b"OPTIONS sip:node.example.dk SIP/2.0\r\n"
                                         b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                                         b"To: <sip:node.example.dk>\r\n")


def test_datagram_body_rules() -> None:
    # Longer than Content-Length: cut (RFC 3261 §18.3).
    assert parse_message(INVITE + b"trailing noise").body == SDP
    # No Content-Length: the rest of the datagram is the body.
    no_length = INVITE.replace(b"Content-Length: 101\r\n", b"")
    assert parse_message(no_length + b"x").body == SDP + b"x"
    # Shorter than Content-Length: 400.
    error = parse_error(INVITE[:-1])
    assert (error.status, error.reason) == (400, "Content-Length larger than the message body")


def test_unknown_method_parses() -> None:
    data = OK_200.replace(b"SIP/2.0 200 OK", b"PUBLISHX sip:room@node.example.dk SIP/2.0")
    data = data.replace(b"CSeq: 2 BYE", b"CSeq: 2 PUBLISHX")
    request = parse_message(data)
    assert isinstance(request, SipRequest)
    assert request.method == "PUBLISHX"


def test_missing_max_forwards_is_tolerated() -> None:
    request = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", b""))
    assert request.max_forwards is None


@pytest.mark.parametrize(("old", "new", "status", "reason"), [
    (b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", 505, "Version Not Supported"),
    (b"SIP/2.0\r\nVia", b"HTTP/1.1\r\nVia", 400, "Malformed SIP version"),
    (b"dk SIP/2.0", b"dk; lr SIP/2.0", 400, "Malformed Request-Line"),
    (b"INVITE sip:1234567890@node.example.dk SIP", b"INVITE <sip:1234567890@node.example.dk> SIP",
     400, "Request-URI must not be enclosed in angle brackets"),
    (b"dk SIP/2.0", b"dk?Route=%3Csip:example.com%3E SIP/2.0", 400,
     "Request-URI must not contain headers"),
    (b"sip:1234567890@node.example.dk SIP", b"mailto:a@b SIP", 416, "Unsupported URI Scheme"),
    (b"CSeq: 314159 INVITE", b"CSeq: 314159 OPTIONS", 400,
     "CSeq method does not match the request method"),
    (b"CSeq: 314159 INVITE", b"CSeq: abc INVITE", 400, "Malformed CSeq header"),
    (b"Max-Forwards: 70", b"Max-Forwards: 256", 400, "Malformed Max-Forwards header"),
    (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nMax-Forwards: 69", 400,
     "Multiple Max-Forwards headers"),
    (b"Call-ID: a84b4c76e66710@pc33.clinic.example.dk\r\n", b"", 400, "Missing Call-ID header"),
    (b"To: <sip:1234567890@node.example.dk>\r\n", b"", 400, "Missing To header"),
    (b"Via: SIP/2.0/TLS", b"To: <sip:a@b>\r\nVia: SIP/2.0/TLS", 400, "Multiple To headers"),
    (b"Content-Length: 101", b"Content-Length: 101\r\nl: 101", 400,
     "Multiple Content-Length headers"),
    (b"Content-Length: 101", b"Content-Length: -101", 400, "Malformed Content-Length header"),
    (b"Contact: <sip:jensen@198.51.100.20:5061;transport=tls>",
     b"Contact: *\r\nContact: <sip:a@b>", 400, "Contact: * must be the only Contact"),
    (b"tls>\r\n", b"tls\r\n", 400, "Unbalanced angle brackets"),
    (b"<sip:proxy.example.dk;lr>,", b"<sip:proxy.example.dk;lr,", 400, "Malformed URI parameter"),
    (b"Timestamp: 54", b"Timestamp 54", 400, "Malformed header line"),
    (b"Timestamp: 54", b"Time\rstamp: 54", 400, "Bare CR in header section"),
    (b"Timestamp: 54", b"Timestamp: \xff54", 400, "Header section is not valid UTF-8"),
])
def test_request_errors_carry_status_reason_and_transaction_headers(
    old: bytes, new: bytes, status: int, reason: str
) -> None:
    assert old in INVITE
    error = parse_error(INVITE.replace(old, new, 1))
    assert (error.status, error.reason) == (status, reason)
    assert error.message_kind is MessageKind.REQUEST
    assert error.headers is not None
    assert error.headers.get_all("Via") == [
        "SIP/2.0/TLS 198.51.100.20:5061;branch=z9hG4bK776asdhds;rport",
        "SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKfirst;received=203.0.113.9"]
    assert error.headers.get("CSeq") is not None
    assert "Allow" not in error.headers


def test_huge_version_numbers_and_status_codes_are_plain_parse_errors() -> None:
    error = parse_error(INVITE.replace(b"SIP/2.0\r\nVia", b"SIP/" + b"2" * 5000 + b".0\r\nVia"))
    assert (error.status, error.message_kind) == (505, MessageKind.REQUEST)
    error = parse_error(OK_200.replace(b"SIP/2.0 200", b"SIP/" + b"9" * 5000 + b".0 200"))
    assert (error.status, error.message_kind) == (505, MessageKind.RESPONSE)
    assert isinstance(parse_message(INVITE.replace(b"SIP/2.0\r\nVia", b"SIP/02.00\r\nVia")),
                      SipRequest)
    assert parse_error(OK_200.replace(b"200 OK", b"9" * 5000 + b" OK")).status == 400


def test_folding_before_the_first_header_is_a_400() -> None:
    error = parse_error(b"OPTIONS sip:a@b SIP/2.0\r\n continued\r\n" + OK_200.split(b"\r\n", 1)[1])
    assert (error.status, error.reason) == (400, "Continuation line before the first header")


def test_garbage_has_no_kind_and_no_headers() -> None:
    for data in (b"", b"\r\n\r\n", b"\x00\x01\x02\r\n\r\n", b"hello", b" INVITE sip:a@b SIP/2.0"):
        error = parse_error(data)
        assert error.status == 400
        assert error.message_kind is None
        assert error.headers is None
        assert make_error_response(error) is None


def test_missing_blank_line_is_a_400_but_still_answerable() -> None:
    error = parse_error(INVITE.split(b"\r\n\r\n")[0])
    assert (error.status, error.reason) == (400, "Missing empty line after the header section")
    response = make_error_response(error)
    assert response is not None and response.status == 400


def test_response_errors_are_never_answered() -> None:
    error = parse_error(OK_200.replace(b"SIP/2.0 200", b"SIP/2.0 2000"))
    assert error.message_kind is MessageKind.RESPONSE
    assert make_error_response(error) is None
    error = parse_error(OK_200.replace(b"Call-ID: a84b4c76e66710\r\n", b""))
    assert (error.status, error.message_kind) == (400, MessageKind.RESPONSE)


def test_size_limits() -> None:
    big = INVITE.replace(b"Timestamp: 54", b"X-Pad: " + b"x" * 2000)
    with pytest.raises(SipParseError) as caught:
        parse_message(big, max_size=2048)
    assert (caught.value.status, caught.value.reason) == (413, "Request Entity Too Large")
    assert make_error_response(caught.value).status == 413
    long_uri = b"sip:" + b"a" * MAX_REQUEST_URI_LENGTH + b"@node.example.dk"
    error = parse_error(INVITE.replace(b"sip:1234567890@node.example.dk SIP", long_uri + b" SIP"))
    assert (error.status, error.reason) == (414, "Request-URI Too Long")


def test_no_size_limit_means_a_large_datagram_parses() -> None:
    big = INVITE.replace(b"Timestamp: 54", b"X-Pad: " + b"x" * 70000)
    assert parse_message(big).headers.get("X-Pad") == "x" * 70000


# --- serialization -----------------------------------------------------------------------------


def test_serialize_is_canonical_and_recomputes_content_length() -> None:
    request = parse_message(INVITE)
    request.body = b"v=0\r\n"
    data = serialize(request)
    assert data.endswith(b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n")
    assert data.count(b"Content-Length") == 1
    assert b"Record-Route: <sip:proxy.example.dk;lr>\r\nRecord-Route: <sip:edge.example.dk;lr>" \
        in data
    assert serialize(parse_message(data)) == data


def test_serialize_refuses_what_cannot_be_sent() -> None:
    request = parse_message(INVITE)
    request.method = "IN VITE"
    with pytest.raises(InvalidInput):
        serialize(request)
    response = parse_message(OK_200)
    response.reason = "OK\r\nVia: x"
    with pytest.raises(InvalidInput):
        serialize(response)
    response.reason, response.status = "OK", 99
    with pytest.raises(InvalidInput):
        serialize(response)


def test_a_hand_built_request_serializes() -> None:
    uri = SipUri("sip", "node.example.dk", user="room-42")
    headers = Headers()
    headers.add("Via", str(Via("TLS", "node.example.dk", 5061, (("branch", "z9hG4bKabc"),))))
    headers.add("To", str(NameAddr(uri)))
    headers.add("From", str(NameAddr(uri, "Confnode", (("tag", "x1"),))))
    headers.add("Call-ID", "c1@node.example.dk")
    headers.add("CSeq", str(CSeq(1, "BYE")))
    headers.add("Max-Forwards", "70")
    data = serialize(SipRequest("BYE", uri, headers))
    assert data == (
        b"BYE sip:room-42@node.example.dk SIP/2.0\r\n"
        b"Via: SIP/2.0/TLS node.example.dk:5061;branch=z9hG4bKabc\r\n"
        b"To: <sip:room-42@node.example.dk>\r\n"
        b'From: "Confnode" <sip:room-42@node.example.dk>;tag=x1\r\n'
        b"Call-ID: c1@node.example.dk\r\n"
        b"CSeq: 1 BYE\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n\r\n")
    assert parse_message(data).from_.tag == "x1"


def test_typed_views_on_a_hand_built_message_report_missing_headers() -> None:
    request = SipRequest("OPTIONS", SipUri("sip", "node.example.dk"))
    with pytest.raises(SipParseError):
        _ = request.from_
    assert request.via == [] and request.contacts == [] and request.max_forwards is None
    assert request.contact_wildcard is False


# --- responses ---------------------------------------------------------------------------------


def test_make_response_copies_transaction_headers_and_adds_the_to_tag() -> None:
    request = parse_message(INVITE)
    response = make_response(request, 180, to_tag="b3f2")
    assert (response.status, response.reason) == (180, "Ringing")
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert response.headers.get("From") == request.headers.get("From")
    assert response.headers.get("To") == "<sip:1234567890@node.example.dk>;tag=b3f2"
    assert response.call_id == request.call_id
    assert response.cseq == request.cseq
    assert "Timestamp" not in response.headers
    assert "Allow" not in response.headers and "Contact" not in response.headers
    assert serialize(response).startswith(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TLS 198.51.100.20:5061;branch=z9hG4bK776asdhds;"
        b"rport\r\nVia: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKfirst;received=203.0.113.9\r\n")


def test_make_response_keeps_an_existing_to_tag_and_bare_to_gets_a_header_tag() -> None:
    in_dialog = parse_message(OK_200.replace(b"SIP/2.0 200 OK", b"BYE sip:a@b SIP/2.0"))
    response = make_response(in_dialog, 200, to_tag="other")
    assert response.to.tag == "a6c85cf"
    bare = parse_message(INVITE.replace(b"To: <sip:1234567890@node.example.dk>",
                                        b"To: sip:1234567890@node.example.dk"))
    to = make_response(bare, 200, to_tag="t1").to
    assert (to.tag, to.uri.params) == ("t1", ())


def test_make_response_100_has_no_tag_but_the_timestamp() -> None:
    response = make_response(parse_message(INVITE), 100, to_tag="ignored")
    assert response.to.tag is None
    assert response.headers.get("Timestamp") == "54"
    assert response.reason == "Trying"


def test_make_response_body_extra_headers_and_reason() -> None:
    request = parse_message(INVITE)
    response = make_response(request, 200, "Fine", to_tag="t", body=SDP,
                             content_type="application/sdp",
                             extra_headers=[("Contact", "<sip:room@node.example.dk>"),
                                            ("Supported", "timer")])
    assert response.reason == "Fine"
    assert [str(c.uri) for c in response.contacts] == ["sip:room@node.example.dk"]
    data = serialize(response)
    assert b"Content-Type: application/sdp\r\nContent-Length: 101\r\n\r\n" + SDP == \
        data[data.index(b"Content-Type"):]
    with pytest.raises(InvalidInput):
        make_response(request, 700)
    with pytest.raises(InvalidInput):
        make_response(request, 200, to_tag="a b")
    with pytest.raises(InvalidInput):
        make_response(request, 200, "OK\r\nX-Injected: 1")


def test_reason_phrases() -> None:
    assert reason_phrase(486) == "Busy Here"
    assert reason_phrase(481) == "Call/Transaction Does Not Exist"
    assert reason_phrase(499) == "Client Error"
    assert reason_phrase(699) == "Global Failure"


def test_make_error_response_answers_with_the_salvaged_headers() -> None:
    error = parse_error(INVITE.replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia"))
    response = make_error_response(error, to_tag="e1")
    assert response is not None
    assert (response.status, response.reason) == (505, "Version Not Supported")
    assert len(response.via) == 2
    assert response.to.tag == "e1"
    assert response.cseq == CSeq(314159, "INVITE")
    assert parse_message(serialize(response)).status == 505


def test_make_error_response_copies_a_broken_to_as_it_came() -> None:
    data = INVITE.replace(b"To: <sip:1234567890@node.example.dk>", b'To: "Mr. J. User <sip:j@x>')
    response = make_error_response(parse_error(data), to_tag="e1")
    assert response is not None
    assert response.headers.get("To") == '"Mr. J. User <sip:j@x>'


# --- properties ----------------------------------------------------------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
_hosts = st.sampled_from(["node.example.dk", "192.0.2.7", "[2001:db8::5]", "pc33.example.com"])
_uris = st.builds(
    SipUri, scheme=st.sampled_from(["sip", "sips"]), host=_hosts,
    user=st.one_of(st.none(), st.text(alphabet="abc123-_.%20!", min_size=1, max_size=8).filter(
        lambda u: "%" not in u.replace("%20", ""))),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    params=st.lists(st.tuples(st.sampled_from(["transport", "lr", "x-y"]),
                              st.one_of(st.none(), st.sampled_from(["tls", "udp", "1"]))),
                    max_size=2).map(tuple),
)
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                max_size=30)
_name_addrs = st.builds(NameAddr, uri=_uris, display_name=st.one_of(st.none(), _text),
                        params=st.one_of(st.just(()), _tokens.map(lambda t: (("tag", t),))))
_vias = st.builds(Via, transport=st.sampled_from(["UDP", "TCP", "TLS"]), host=_hosts,
                  port=st.one_of(st.none(), st.integers(1, 65535)),
                  params=_tokens.map(lambda t: (("branch", "z9hG4bK" + t), ("rport", None))))
_extra = st.lists(st.tuples(_tokens.map(lambda t: "X-" + t),
                            _text.map(lambda v: v.strip(" \t"))), max_size=4)


@st.composite
def _messages(draw: st.DrawFn) -> SipRequest | SipResponse:
    headers = Headers()
    for via in draw(st.lists(_vias, min_size=1, max_size=3)):
        headers.add("Via", str(via))
    headers.add("From", str(draw(_name_addrs)))
    headers.add("To", str(draw(_name_addrs)))
    headers.add("Call-ID", draw(_tokens) + "@" + draw(_tokens))
    method = draw(st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS", "INFO"]),
                            _tokens))
    headers.add("CSeq", str(CSeq(draw(st.integers(0, 2**31 - 1)), method)))
    for contact in draw(st.lists(_name_addrs, max_size=2)):
        headers.add("Contact", str(contact))
    for name, value in draw(_extra):
        headers.add(name, value)
    body = draw(st.binary(max_size=64))
    if body:
        headers.add("Content-Type", "application/octet-stream")
    if draw(st.booleans()):
        headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
        return SipRequest(method, draw(_uris), headers, body)
    return SipResponse(draw(st.integers(100, 699)), draw(_text), headers, body)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_messages())
def test_serialize_parse_serialize_round_trips(message: SipRequest | SipResponse) -> None:
    data = serialize(message)
    parsed = parse_message(data)
    assert serialize(parsed) == data
    assert type(parsed) is type(message)
    assert parsed.body == message.body
    assert [(n, v) for n, v in parsed.headers if n != "Content-Length"] == list(message.headers)
    if isinstance(message, SipRequest):
        assert isinstance(parsed, SipRequest)
        assert (parsed.method, str(parsed.uri)) == (message.method, str(message.uri))
    else:
        assert isinstance(parsed, SipResponse)
        assert (parsed.status, parsed.reason) == (message.status, message.reason)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_sip_parse_error(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError as error:
        assert error.status in (400, 413, 414, 416, 505)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([INVITE, OK_200]), st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 3), st.binary(min_size=0, max_size=3)),
    min_size=1, max_size=4))
def test_mutated_messages_parse_or_fail_cleanly_and_stay_stable(
    base: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(base)
    for position, deleted, inserted in edits:
        position %= len(data) + 1
        data[position : position + deleted] = inserted
    try:
        parsed = parse_message(bytes(data))
    except SipParseError as error:
        assert error.status in (400, 413, 414, 416, 505)
        assert error.message_kind in (None, MessageKind.REQUEST, MessageKind.RESPONSE)
        return
    # Whatever parses re-serializes into something that parses to the same wire form.
    once = serialize(parsed)
    assert serialize(parse_message(once)) == once
