"""The UAS core driven with byte strings and a fake clock: calls into rooms from SIP phones."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_torture import (
    BADASPEC,
    BADBRANCH,
    BADINV01,
    BADVERS,
    BEXT01,
    CLERR,
    ESCRURI,
    INSUF,
    LTGTRURI,
    LWSRURI,
    MCL01,
    MISMATCH01,
    MULTI01,
    NCL,
    NOVELSC,
    QUOTBAL,
    SCALAR02,
    SCALARLG,
    UNKSCM,
    ZEROMF,
)

from confnode.errors import Conflict, InvalidInput, NotFound
from confnode.transport.sip.dtmf import DtmfVia
from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    serialize,
)
from confnode.transport.sip.transactions import Address, TimerSettings
from confnode.transport.sip.uri import SipUri
from confnode.transport.sip.user_agent import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallState,
    DtmfReceived,
    EndReason,
    IncomingCall,
    ReInvite,
    ReInviteCancelled,
    ReInviteConfirmed,
    RequestFailed,
    SipEvent,
    SipUserAgent,
)

NODE_TLS = SipUri.parse("sip:node.example.org:5061;transport=tls")
NODE_UDP = SipUri.parse("sip:node.example.org:5060")
PHONE: Address = ("192.0.2.10", 49152)  # the TLS connection (or UDP source) of the caller
CALL_ID = "3f8a2d1c9b7e6054@192.0.2.10"
FROM_TAG = "7c3b1f2e0a94d6b8"

ALLOW = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"]
OFFER = (b"v=0\r\no=- 1234 5678 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
         b"m=audio 10000 RTP/SAVP 96 0 101\r\na=rtpmap:96 opus/48000/2\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\n"
         b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n")
ANSWER = (b"v=0\r\no=confnode 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\n"
          b"t=0 0\r\nm=audio 40000 RTP/SAVP 96 101\r\n")


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def message(
    method: str,
    *,
    branch: str = "z9hG4bK4a9e1c3f5d7b",
    cseq: int = 11223,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    call_id: str = CALL_ID,
    from_tag: str = FROM_TAG,
    uri: str = "sip:1234@node.example.org;transport=tls",
    transport: str = "TLS",
    sent_by: str = "192.0.2.10:49152",
    max_forwards: int = 70,
    extra: str = "",
    body: bytes = b"",
    content_type: str | None = None,
    contact: str = "<sip:alice-0x5581@192.0.2.10:49152;transport=tls>",
) -> bytes:
    """A request as baresip sends it over TLS (same header order and style)."""
    to = "<sip:1234@node.example.org>" + (f";tag={to_tag}" if to_tag else "")
    if content_type is None and body:
        content_type = "application/sdp"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch};rport",
        f"Contact: {contact}" if contact else "",
        f"Max-Forwards: {max_forwards}",
        f"To: {to}",
        f'From: "Alice" <sip:alice@example.com>;tag={from_tag}',
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "User-Agent: baresip v3.10.1 (x86_64/linux)",
        "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE",
        extra.rstrip("\n"),
        f"Content-Type: {content_type}" if content_type else "",
        f"Content-Length: {len(body)}",
    ]
    return crlf("\n".join(line for line in lines if line) + "\n\n") + body


def invite(**kwargs: object) -> bytes:
    kwargs.setdefault("body", OFFER)
    kwargs.setdefault("extra", "Supported: replaces,norefersub\n")
    return message("INVITE", **kwargs)  # type: ignore[arg-type]


def ack(to_tag: str, **kwargs: object) -> bytes:
    kwargs.setdefault("branch", "z9hG4bKack1")
    return message("ACK", to_tag=to_tag, contact="", **kwargs)  # type: ignore[arg-type]


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"t{next(numbers)}"


def make_ua(*, reliable: bool = True, **kwargs: object) -> SipUserAgent:
    return SipUserAgent(NODE_TLS if reliable else NODE_UDP, reliable=reliable,
                        token_factory=counter(), **kwargs)  # type: ignore[arg-type]


def sent(ua: SipUserAgent) -> list[tuple[SipRequest | SipResponse, Address]]:
    return [(parse_message(data), address) for data, address in ua.datagrams_to_send()]


def responses(ua: SipUserAgent) -> list[SipResponse]:
    out = []
    for msg, _ in sent(ua):
        assert isinstance(msg, SipResponse)
        out.append(msg)
    return out


def statuses(ua: SipUserAgent) -> list[int]:
    return [r.status for r in responses(ua)]


def events(ua: SipUserAgent) -> list[SipEvent]:
    out = []
    while (event := ua.next_event()) is not None:
        out.append(event)
    return out


def answered_call(ua: SipUserAgent, now: float = 0.0) -> str:
    """INVITE -> 100 -> 200 -> ACK; returns the node's tag."""
    ua.receive(invite(), PHONE, now)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=now)
    [trying, ok] = responses(ua)
    assert trying.status == 100
    tag = ok.to.tag
    assert tag is not None
    ua.receive(ack(tag), PHONE, now + 0.05)
    assert events(ua) == [CallConfirmed(CALL_ID)]
    return tag


# --- the basic call -----------------------------------------------------------------------------


def test_invite_ringing_accept_ack_bye() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    [(trying, to)] = sent(ua)
    assert isinstance(trying, SipResponse) and trying.status == 100 and to == PHONE
    assert trying.to.tag is None
    [incoming] = events(ua)
    assert incoming == IncomingCall(
        call_id=CALL_ID, target_user="1234", caller="sip:alice@example.com", offer_sdp=OFFER,
        content_type="application/sdp", source=PHONE,
        request_uri="sip:1234@node.example.org;transport=tls", display_name="Alice")
    assert ua.call_state(CALL_ID) is CallState.OFFERED

    ua.ringing(CALL_ID, now=0.2)
    [ringing] = responses(ua)
    assert ringing.status == 180
    tag = ringing.to.tag
    assert tag is not None
    assert [str(c.uri) for c in ringing.contacts] == ["sip:node.example.org:5061;transport=tls"]

    ua.accept(CALL_ID, ANSWER, now=1.0)
    [ok] = responses(ua)
    assert (ok.status, ok.to.tag, ok.body, ok.content_type) == (200, tag, ANSWER,
                                                               "application/sdp")
    assert ok.headers.get_list("Allow") == ALLOW
    assert ok.headers.get_list("Supported") == ["timer"]
    assert ua.call_state(CALL_ID) is CallState.ACCEPTED

    ua.receive(ack(tag), PHONE, 1.1)
    assert events(ua) == [CallConfirmed(CALL_ID)]
    assert ua.call_state(CALL_ID) is CallState.CONFIRMED
    assert sent(ua) == []

    ua.receive(message("BYE", branch="z9hG4bKbye9", cseq=11224, to_tag=tag), PHONE, 30.0)
    [bye_ok] = responses(ua)
    assert (bye_ok.status, bye_ok.cseq.method) == (200, "BYE")
    assert events(ua) == [CallEnded(CALL_ID, EndReason.BYE)]
    assert ua.call_ids == []
    # Nothing lingers: the INVITE transaction's timer L (64*T1 after the 2xx) is the last.
    assert ua.get_timer() == 33.0
    ua.handle_timer(33.0)
    assert (ua.get_timer(), ua.transaction_count) == (None, 0)
    assert ua.datagrams_to_send() == []


def test_200_ok_on_the_wire() -> None:
    """The whole 2xx, byte for byte: Via with received (the port came from rport), tags, the
    Record-Route copied in order, our Contact."""
    ua = make_ua(supported=())
    rr = ("Record-Route: <sip:edge.example.org;transport=tls;lr>\n"
          "Record-Route: <sip:core.example.org;lr>\n")
    ua.receive(invite(extra=rr, sent_by="10.0.0.5:5061", body=b"v=0\r\n"), PHONE, 0.0)
    events(ua)
    ua.datagrams_to_send()
    ua.accept(CALL_ID, b"v=0\r\n", now=0.0)
    [(data, address)] = ua.datagrams_to_send()
    assert address == PHONE
    assert data == crlf(f"""SIP/2.0 200 OK
Via: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bK4a9e1c3f5d7b;received=192.0.2.10;rport=49152
From: "Alice" <sip:alice@example.com>;tag={FROM_TAG}
To: <sip:1234@node.example.org>;tag=t1
Call-ID: {CALL_ID}
CSeq: 11223 INVITE
Record-Route: <sip:edge.example.org;transport=tls;lr>
Record-Route: <sip:core.example.org;lr>
Contact: <sip:node.example.org:5061;transport=tls>
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE
Content-Type: application/sdp
Content-Length: 5

v=0
""")


def test_invite_without_offer() -> None:
    """Delayed offer: the 2xx carries our offer and the ACK the answer."""
    ua = make_ua()
    ua.receive(invite(body=b""), PHONE, 0.0)
    [incoming] = events(ua)
    assert isinstance(incoming, IncomingCall)
    assert (incoming.offer_sdp, incoming.content_type) == (None, None)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.receive(ack(tag, body=OFFER), PHONE, 0.1)
    assert events(ua) == [CallConfirmed(CALL_ID, OFFER)]


def test_linphone_invite_over_tls_with_sips() -> None:
    ua = make_ua()
    data = crlf("""INVITE sips:meet.dr.hansen@node.example.org SIP/2.0
Via: SIP/2.0/TLS 192.168.1.20:37441;alias;branch=z9hG4bK.Xy7ZpQ2aR;rport
From: "Bob" <sips:bob@example.net>;tag=Ab3dE~fG
To: sips:meet.dr.hansen@node.example.org
CSeq: 20 INVITE
Call-ID: wZ6HkQ3mX8
Max-Forwards: 70
Supported: replaces, outbound, gruu, path
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, PRACK, UPDATE
Content-Type: application/sdp
Content-Length: 5
Contact: <sips:bob@192.168.1.20:37441;transport=tls>;+sip.instance="<urn:uuid:1b6e1f9a>"
User-Agent: Linphone-Desktop/5.2.6 (belle-sip/5.3.0)

v=0
""")
    ua.receive(data, PHONE, 0.0)
    [incoming] = events(ua)
    assert isinstance(incoming, IncomingCall)
    assert incoming.target_user == "meet.dr.hansen"
    assert incoming.caller == "sips:bob@example.net"
    ua.accept("wZ6HkQ3mX8", ANSWER, now=0.0)
    ok = responses(ua)[-1]
    # §12.1.1: a SIPS Request-URI gets a SIPS Contact.
    assert [str(c.uri) for c in ok.contacts] == ["sips:node.example.org:5061"]
    assert ok.headers.get("Via") == ("SIP/2.0/TLS 192.168.1.20:37441;alias;"
                                     "branch=z9hG4bK.Xy7ZpQ2aR;received=192.0.2.10;rport=49152")


def test_escaped_alias_is_unescaped_for_lookup() -> None:
    ua = make_ua()
    ua.receive(invite(uri="sip:r%6Fom-12@node.example.org"), PHONE, 0.0)
    [incoming] = events(ua)
    assert isinstance(incoming, IncomingCall)
    assert incoming.target_user == "room-12"


def test_events_do_not_show_personal_data_or_keys() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    [incoming] = events(ua)
    text = repr(incoming)
    assert "alice" not in text and "Alice" not in text and "inline:" not in text
    assert CALL_ID in text
    assert "1234" not in repr(DtmfReceived(CALL_ID, "1234"))


# --- retransmissions ----------------------------------------------------------------------------


def test_retransmitted_invite_gets_the_same_provisional_and_final() -> None:
    ua = make_ua(reliable=False)
    udp_invite = invite(transport="UDP")
    ua.receive(udp_invite, PHONE, 0.0)
    assert len(events(ua)) == 1
    ua.ringing(CALL_ID, now=0.1)
    first = ua.datagrams_to_send()
    ua.receive(udp_invite, PHONE, 0.5)
    assert ua.datagrams_to_send() == first[-1:]  # the same 180, same tag
    assert events(ua) == []
    ua.reject(CALL_ID, 486, now=0.6)
    [(busy, _)] = ua.datagrams_to_send()
    ua.receive(udp_invite, PHONE, 0.7)
    assert ua.datagrams_to_send() == [(busy, PHONE)]
    assert events(ua) == []


def test_2xx_is_retransmitted_on_udp_until_ack() -> None:
    ua = make_ua(reliable=False)
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    [_, (ok, to)] = ua.datagrams_to_send()
    assert to == PHONE  # rport: back to the source port
    times = []
    for _ in range(3):
        deadline = ua.get_timer()
        assert deadline is not None
        ua.handle_timer(deadline)
        assert ua.datagrams_to_send() == [(ok, PHONE)]
        times.append(deadline)
    assert times == [0.5, 1.5, 3.5]
    tag = parse_message(ok).to.tag
    assert tag is not None
    ua.receive(ack(tag, transport="UDP"), PHONE, 4.0)
    assert events(ua) == [CallConfirmed(CALL_ID)]
    ua.handle_timer(7.5)
    ua.handle_timer(40.0)
    assert ua.datagrams_to_send() == []
    assert ua.call_state(CALL_ID) is CallState.CONFIRMED


def test_2xx_is_not_retransmitted_on_tls() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    ua.datagrams_to_send()
    assert ua.get_timer() == 32.0  # only the ACK deadline
    ua.handle_timer(31.9)
    assert ua.datagrams_to_send() == []


def test_ack_timeout_sends_bye() -> None:
    ua = make_ua()
    ua.receive(invite(extra="Record-Route: <sip:edge.example.org;transport=tls;lr>\n"),
               PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    ua.handle_timer(32.0)
    [(bye, to)] = sent(ua)
    assert isinstance(bye, SipRequest) and to == PHONE
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:alice-0x5581@192.0.2.10:49152;transport=tls"
    assert bye.headers.get_all("Route") == ["<sip:edge.example.org;transport=tls;lr>"]
    assert (bye.from_.tag, bye.to.tag, bye.call_id) == (tag, FROM_TAG, CALL_ID)
    assert bye.cseq.number == 1
    assert bye.top_via.transport == "TLS" and bye.top_via.magic_cookie
    assert bye.top_via.sent_by == ("node.example.org", 5061)
    assert events(ua) == [CallEnded(CALL_ID, EndReason.ACK_TIMEOUT)]
    assert ua.call_ids == []
    # The peer answers the BYE: nothing more to report.
    ua.receive(serialize(make_response(bye, 200)), PHONE, 32.1)
    assert events(ua) == []
    assert ua.datagrams_to_send() == []


def test_late_ack_after_the_timeout_is_ignored() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.handle_timer(32.0)
    ua.datagrams_to_send()
    events(ua)
    ua.receive(ack(tag), PHONE, 33.0)
    assert events(ua) == [] and ua.datagrams_to_send() == []


# --- CANCEL ------------------------------------------------------------------------------------


def test_cancel_before_answer() -> None:
    ua = make_ua(reliable=False)
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.ringing(CALL_ID, now=0.1)
    tag = responses(ua)[-1].to.tag
    ua.receive(message("CANCEL", transport="UDP", contact=""), PHONE, 0.2)
    cancel_ok, terminated = responses(ua)
    assert (cancel_ok.status, cancel_ok.cseq.method, cancel_ok.to.tag) == (200, "CANCEL", tag)
    assert (terminated.status, terminated.cseq.method, terminated.to.tag) == (487, "INVITE", tag)
    assert events(ua) == [CallCancelled(CALL_ID)]
    assert ua.call_ids == []
    with pytest.raises(NotFound):
        ua.accept(CALL_ID, ANSWER, now=0.3)
    # The ACK for the 487 is absorbed by the INVITE transaction; the 487 is no longer resent.
    assert tag is not None
    ua.receive(ack(tag, transport="UDP", branch="z9hG4bK4a9e1c3f5d7b"), PHONE, 0.3)
    assert ua.datagrams_to_send() == [] and events(ua) == []
    ua.handle_timer(10.0)
    assert ua.datagrams_to_send() == []


def test_cancel_after_answer_changes_nothing() -> None:
    """The race: the CANCEL crossed our 200. It is answered 200; the call stands (§9.2)."""
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=1.0)
    tag = responses(ua)[-1].to.tag
    ua.receive(message("CANCEL", contact=""), PHONE, 1.01)
    [cancel_ok] = responses(ua)
    assert (cancel_ok.status, cancel_ok.cseq.method, cancel_ok.to.tag) == (200, "CANCEL", tag)
    assert events(ua) == []
    assert ua.call_state(CALL_ID) is CallState.ACCEPTED


def test_cancel_for_nothing_is_481() -> None:
    ua = make_ua()
    ua.receive(message("CANCEL", contact=""), PHONE, 0.0)
    assert statuses(ua) == [481]


# --- hanging up from the node -------------------------------------------------------------------


def test_hangup_sends_bye_and_reports_a_failed_bye() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.hangup(CALL_ID, now=10.0)
    [(bye, _)] = sent(ua)
    assert isinstance(bye, SipRequest) and bye.method == "BYE" and bye.from_.tag == tag
    assert events(ua) == []
    assert ua.call_ids == []
    ua.receive(serialize(make_response(bye, 481)), PHONE, 10.1)
    assert events(ua) == [RequestFailed(CALL_ID, 481, "BYE")]


def test_bye_timeout_is_a_408() -> None:
    ua = make_ua(reliable=False)
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.receive(ack(tag, transport="UDP"), PHONE, 0.1)
    events(ua)
    ua.hangup(CALL_ID, now=5.0)
    bye_count = len(ua.datagrams_to_send())
    while (deadline := ua.get_timer()) is not None:
        ua.handle_timer(deadline)
        bye_count += len(ua.datagrams_to_send())
    assert deadline is None and bye_count == 11  # timer E: the BYE and 10 retransmissions
    assert events(ua) == [RequestFailed(CALL_ID, 408, "BYE")]


def test_hangup_before_ack_waits_for_it() -> None:
    """§15: no BYE on a confirmed dialog until the 2xx has its ACK (or gave up)."""
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.hangup(CALL_ID, now=0.01)
    assert sent(ua) == []
    ua.receive(ack(tag), PHONE, 0.1)
    [(bye, _)] = sent(ua)
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    assert events(ua) == []


def test_hangup_of_an_unanswered_call_is_480() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.datagrams_to_send()
    ua.hangup(CALL_ID, now=1.0)
    assert statuses(ua) == [480]
    assert ua.call_ids == []


def test_actions_check_the_call_state() -> None:
    ua = make_ua()
    with pytest.raises(NotFound):
        ua.ringing("nope", now=0.0)
    answered_call(ua)
    with pytest.raises(Conflict):
        ua.accept(CALL_ID, ANSWER, now=1.0)
    with pytest.raises(Conflict):
        ua.reject(CALL_ID, 486, now=1.0)
    with pytest.raises(Conflict):
        ua.answer_reinvite(CALL_ID, ANSWER, now=1.0)


# --- rejecting ------------------------------------------------------------------------------


def test_reject_full_node_with_retry_after_and_warning() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.datagrams_to_send()
    ua.reject(CALL_ID, 503, "Node Full", retry_after=30, warning='All "ports" in use', now=0.1)
    [full] = responses(ua)
    assert (full.status, full.reason) == (503, "Node Full")
    assert full.headers.get("Retry-After") == "30"
    assert full.headers.get("Warning") == (
        '399 node.example.org:5061 "All \\"ports\\" in use"')
    assert full.to.tag is not None
    assert ua.call_ids == []


def test_reject_488_with_a_media_warning_code() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.datagrams_to_send()
    ua.reject(CALL_ID, 488, warning=(305, "Incompatible media format"), now=0.1)
    [refused] = responses(ua)
    assert refused.headers.get("Warning") == '305 node.example.org:5061 "Incompatible media format"'


def test_reject_needs_an_error_status() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    with pytest.raises(InvalidInput):
        ua.reject(CALL_ID, 200, now=0.0)


def test_unknown_alias_404_then_the_ack() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.datagrams_to_send()
    ua.reject(CALL_ID, 404, now=0.0)
    [not_found] = responses(ua)
    assert not_found.status == 404
    assert not_found.to.tag is not None
    ua.receive(ack(not_found.to.tag, branch="z9hG4bK4a9e1c3f5d7b"), PHONE, 0.1)
    assert sent(ua) == [] and events(ua) == []
    assert ua.transaction_count == 0  # timer I is zero on TLS


# --- requests the core answers by itself --------------------------------------------------------


def test_options_keepalive() -> None:
    ua = make_ua()
    ua.receive(message("OPTIONS", branch="z9hG4bKopt1", cseq=1, contact=""), PHONE, 0.0)
    [ok] = responses(ua)
    assert ok.status == 200 and ok.to.tag is not None
    assert ok.headers.get_list("Allow") == ALLOW
    assert ok.headers.get_list("Accept") == ["application/sdp", "multipart/mixed",
                                             "application/dtmf-relay", "application/dtmf"]
    assert ok.headers.get_list("Supported") == ["timer"]
    assert events(ua) == []


def test_options_with_max_forwards_zero_is_answered() -> None:
    ua = make_ua()
    ua.receive(ZEROMF, ("192.0.2.99", 5060), 0.0)
    assert statuses(ua) == [200]


def test_max_forwards_zero_invite_is_483() -> None:
    ua = make_ua()
    ua.receive(invite(max_forwards=0), PHONE, 0.0)
    assert statuses(ua) == [483]
    assert events(ua) == []


@pytest.mark.parametrize(("method", "status"), [
    ("REGISTER", 405), ("SUBSCRIBE", 405), ("MESSAGE", 405), ("REFER", 405), ("PUBLISH", 405),
    ("FROBNICATE", 501),
])
def test_methods_the_node_does_not_take(method: str, status: int) -> None:
    ua = make_ua()
    ua.receive(message(method, branch="z9hG4bKm1", cseq=1), PHONE, 0.0)
    [refused] = responses(ua)
    assert refused.status == status
    assert refused.headers.get_list("Allow") == ALLOW


def test_allow_can_narrow_the_methods() -> None:
    ua = make_ua(allow=("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"))
    tag = answered_call(ua)
    ua.receive(message("INFO", branch="z9hG4bKi1", cseq=11224, to_tag=tag,
                       body=b"Signal=1\r\n", content_type="application/dtmf-relay"), PHONE, 1.0)
    [refused] = responses(ua)
    assert (refused.status, refused.headers.get_list("Allow")) == (
        405, ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"])


def test_constructor_refuses_bad_settings() -> None:
    with pytest.raises(InvalidInput):
        SipUserAgent(NODE_TLS, reliable=True, allow=("INVITE", "ACK", "CANCEL"))
    with pytest.raises(InvalidInput):
        SipUserAgent(NODE_TLS, reliable=True, allow=(*"INVITE ACK CANCEL BYE".split(), "PRACK"))
    with pytest.raises(InvalidInput):
        SipUserAgent(NODE_TLS, reliable=True, min_se=30)


def test_require_unsupported_is_420() -> None:
    ua = make_ua()
    ua.receive(invite(extra="Require: 100rel, timer, precondition\n"), PHONE, 0.0)
    [refused] = responses(ua)
    assert refused.status == 420
    assert refused.headers.get_list("Unsupported") == ["100rel", "precondition"]
    assert events(ua) == []


def test_bext01_unknown_extensions_are_420() -> None:
    ua = make_ua()
    ua.receive(BEXT01, ("192.0.2.99", 5060), 0.0)
    [refused] = responses(ua)
    assert refused.status == 420
    assert refused.headers.get_list("Unsupported") == ["nothingSupportsThis",
                                                       "nothingSupportsThisEither"]


def test_non_sdp_body_is_415() -> None:
    ua = make_ua()
    ua.receive(invite(body=b"hello", content_type="text/plain"), PHONE, 0.0)
    [refused] = responses(ua)
    assert refused.status == 415
    assert refused.headers.get_list("Accept") == ["application/sdp", "multipart/mixed"]
    assert events(ua) == []


def test_compressed_body_is_415() -> None:
    ua = make_ua()
    ua.receive(invite(extra="Content-Encoding: gzip\n"), PHONE, 0.0)
    [refused] = responses(ua)
    assert (refused.status, refused.headers.get("Accept-Encoding")) == (415, "identity")


def test_multipart_body_with_sdp_is_taken() -> None:
    body = (b"--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n" + OFFER
            + b"\r\n--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n"
            b"Content-Disposition: signal;handling=optional\r\n\r\n\x01\x00\x49\x00\x00"
            b"\r\n--unique-boundary-1--\r\n")
    ua = make_ua()
    ua.receive(invite(body=body, content_type='multipart/mixed;boundary="unique-boundary-1"'),
               PHONE, 0.0)
    [incoming] = events(ua)
    assert isinstance(incoming, IncomingCall)
    assert (incoming.offer_sdp, incoming.content_type) == (OFFER, "application/sdp")


def test_multipart_body_without_sdp_is_415() -> None:
    body = b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n"
    ua = make_ua()
    ua.receive(invite(body=body, content_type="multipart/mixed; boundary=b1"), PHONE, 0.0)
    assert statuses(ua) == [415]


def test_invite_without_contact_is_400() -> None:
    ua = make_ua()
    ua.receive(invite(contact=""), PHONE, 0.0)
    [refused] = responses(ua)
    assert (refused.status, refused.reason) == (400, "Missing Contact header")


@pytest.mark.parametrize("method", ["BYE", "INFO", "INVITE", "UPDATE", "OPTIONS"])
def test_in_dialog_request_for_an_unknown_dialog_is_481(method: str) -> None:
    ua = make_ua()
    ua.receive(message(method, branch="z9hG4bKx1", cseq=5, to_tag="gone"), PHONE, 0.0)
    assert statuses(ua) == [481]
    assert events(ua) == []


@pytest.mark.parametrize("method", ["BYE", "INFO", "UPDATE"])
def test_dialog_request_outside_a_dialog_is_481(method: str) -> None:
    ua = make_ua()
    ua.receive(message(method, branch="z9hG4bKx1", cseq=5), PHONE, 0.0)
    assert statuses(ua) == [481]


def test_out_of_order_cseq_is_500() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(message("INFO", branch="z9hG4bKold", cseq=11000, to_tag=tag), PHONE, 1.0)
    [refused] = responses(ua)
    assert refused.status == 500
    assert 0 <= int(refused.headers.get("Retry-After") or "-1") <= 10


def test_merged_invite_is_482() -> None:
    """§8.2.2.2: the same INVITE forked and merged again arrives with another branch."""
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    ua.receive(invite(branch="z9hG4bKotherpath"), ("192.0.2.11", 5061), 0.01)
    assert events(ua)[0].call_id == CALL_ID  # type: ignore[union-attr]
    assert events(ua) == []
    assert statuses(ua) == [100, 482]


def test_second_call_with_a_live_call_id_is_482() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    ua.receive(invite(branch="z9hG4bKnew", from_tag="other", cseq=1), PHONE, 0.01)
    assert statuses(ua) == [100, 482]
    assert len(events(ua)) == 1


def test_rfc2543_invite_without_tags_or_branch() -> None:
    """An RFC 2543 caller (no From tag, no branch) still gets a dialog and a BYE."""
    ua = make_ua()
    data = crlf("""INVITE sip:1234@node.example.org SIP/2.0
Via: SIP/2.0/TLS 192.0.2.10:5061
From: <sip:old@example.com>
To: <sip:1234@node.example.org>
Call-ID: old-1@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:old@192.0.2.10:5061;transport=tls>
Content-Length: 0

""")
    ua.receive(data, PHONE, 0.0)
    ua.receive(data, PHONE, 0.1)  # a retransmission, matched without a branch: the 100 again
    assert len(events(ua)) == 1
    assert statuses(ua) == [100, 100]
    ua.accept("old-1@192.0.2.10", ANSWER, now=0.2)
    ua.hangup("old-1@192.0.2.10", now=0.3)  # deferred until the ACK ...
    ua.handle_timer(32.2)  # ... which never comes
    bye = sent(ua)[-1][0]
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    assert bye.to.tag is None
    assert events(ua) == []  # the application hung up itself: no CallEnded


# --- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "status"), [
    (BADINV01, 400), (CLERR, 400), (NCL, 400), (SCALAR02, 400), (QUOTBAL, 400),
    (LTGTRURI, 400), (LWSRURI, 400), (ESCRURI, 400), (BADASPEC, 400), (BADVERS, 505),
    (MISMATCH01, 400), (INSUF, 400), (UNKSCM, 416), (NOVELSC, 416), (MULTI01, 400),
    (MCL01, 400),
])
def test_malformed_requests_are_answered_and_the_ua_keeps_working(data: bytes,
                                                                   status: int) -> None:
    ua = make_ua(reliable=False)
    ua.receive(data, ("192.0.2.99", 5060), 0.0)
    # The answer echoes the request's headers as they came, broken ones included (§8.2.6.2),
    # so it is read by its status line only.
    [(answer, _)] = ua.datagrams_to_send()
    assert answer.startswith(f"SIP/2.0 {status} ".encode())
    assert events(ua) == []
    ua.receive(invite(transport="UDP"), PHONE, 1.0)
    assert [type(e) for e in events(ua)] == [IncomingCall]


def test_malformed_session_expires_is_400() -> None:
    ua = make_ua()
    ua.receive(invite(extra="Supported: timer\nSession-Expires: soon\n"), PHONE, 0.0)
    [refused] = responses(ua)
    assert (refused.status, refused.reason) == (400, "Malformed Session-Expires header")
    assert ua.call_ids == []


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_requests_never_raise(data: st.DataObject) -> None:
    """Whatever bytes a peer flips, ``receive`` answers or drops: it never raises, and all it
    sends are responses (a corrupted request never makes the node send a request)."""
    original = bytearray(invite(transport="UDP"))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(original) - 1))
        original[index] = data.draw(st.integers(0, 255))
    ua = make_ua(reliable=False)
    ua.receive(bytes(original), PHONE, 0.0)
    for datagram, _ in ua.datagrams_to_send():
        assert datagram.startswith(b"SIP/2.0 ")


def test_broken_responses_and_garbage_are_dropped() -> None:
    ua = make_ua()
    for data in (SCALARLG, b"\x00\x01\x00\x08stun-ish", b"\r\n\r\n", b"hello world\r\n\r\n"):
        ua.receive(data, PHONE, 0.0)
    assert ua.datagrams_to_send() == [] and events(ua) == []


def test_a_broken_ack_is_never_answered() -> None:
    ua = make_ua()
    broken = ack("t1").replace(b'From: "Alice"', b'From: "Alice')
    ua.receive(broken, PHONE, 0.0)
    assert ua.datagrams_to_send() == []


def test_badbranch_bare_magic_cookie_still_works() -> None:
    ua = make_ua(reliable=False)
    ua.receive(BADBRANCH, ("192.0.2.99", 5060), 0.0)
    assert statuses(ua) == [200]


def test_stray_response_is_dropped() -> None:
    ua = make_ua()
    ua.receive(crlf("""SIP/2.0 200 OK
Via: SIP/2.0/TLS node.example.org:5061;branch=z9hG4bKnotours
From: <sip:1234@node.example.org>;tag=x
To: <sip:a@example.com>;tag=y
Call-ID: stray
CSeq: 1 BYE
Content-Length: 0

"""), PHONE, 0.0)
    assert ua.datagrams_to_send() == [] and events(ua) == []


def test_stream_messages_and_errors_from_the_framer() -> None:
    ua = make_ua()
    framer = StreamFramer()
    bad = invite(branch="z9hG4bKbad").replace(b"CSeq: 11223 INVITE", b"CSeq: 11223 BYE")
    for item in framer.feed(bad + b"\r\n\r\n" + invite()):
        ua.receive_message(item, PHONE, 0.0)
    assert statuses(ua) == [400, 100]
    assert [type(e) for e in events(ua)] == [IncomingCall]


# --- UDP transport details ----------------------------------------------------------------------


def test_udp_responses_without_rport_go_to_the_via_port() -> None:
    ua = make_ua(reliable=False)
    data = invite(transport="UDP", sent_by="192.0.2.10:5062").replace(b";rport", b"")
    ua.receive(data, ("192.0.2.10", 40000), 0.0)
    [(trying, address)] = sent(ua)
    assert address == ("192.0.2.10", 5062)
    assert trying.headers.get("Via") == "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK4a9e1c3f5d7b"


def test_udp_bye_goes_where_the_responses_went() -> None:
    ua = make_ua(reliable=False)
    data = invite(transport="UDP", sent_by="192.0.2.10:5062").replace(b";rport", b"")
    ua.receive(data, ("192.0.2.10", 40000), 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.receive(ack(tag, transport="UDP"), ("192.0.2.10", 40000), 0.1)
    ua.hangup(CALL_ID, now=1.0)
    [(bye, address)] = sent(ua)
    assert isinstance(bye, SipRequest) and address == ("192.0.2.10", 5062)


def test_udp_via_names_the_local_transport() -> None:
    ua = make_ua(reliable=False)
    answered = answered_call_udp(ua)
    ua.hangup(CALL_ID, now=2.0)
    [(bye, _)] = sent(ua)
    assert isinstance(bye, SipRequest)
    assert bye.top_via.transport == "UDP" and bye.top_via.has_param("rport")
    assert bye.from_.tag == answered


def answered_call_udp(ua: SipUserAgent) -> str:
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.receive(ack(tag, transport="UDP"), PHONE, 0.1)
    events(ua)
    return tag


def test_udp_invite_retransmitted_after_the_2xx_is_no_second_call() -> None:
    """RFC 6026: the retransmission is absorbed by the Accepted transaction; the 2xx goes out
    again only on the core's own T1-doubling schedule, not once per retransmitted INVITE."""
    ua = make_ua(reliable=False)
    udp_invite = invite(transport="UDP")
    ua.receive(udp_invite, PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.1)
    [_, (ok, _)] = ua.datagrams_to_send()
    for now in (0.2, 0.3):
        ua.receive(udp_invite, PHONE, now)
        assert ua.datagrams_to_send() == [] and events(ua) == []
    ua.handle_timer(0.6)
    assert ua.datagrams_to_send() == [(ok, PHONE)]
    assert ua.call_ids == [CALL_ID] and ua.call_state(CALL_ID) is CallState.ACCEPTED


def test_udp_error_is_repeated_until_its_ack_and_the_ack_stays_in_the_transaction() -> None:
    """§17.2.1: timer G repeats the 488, the ACK (the INVITE's branch) stops it and is never
    the application's business; timer I then ends the transaction."""
    ua = make_ua(reliable=False)
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.reject(CALL_ID, 488, warning=(305, "Incompatible media format"), now=0.0)
    [_, (refused, _)] = ua.datagrams_to_send()
    ua.handle_timer(0.5)
    assert ua.datagrams_to_send() == [(refused, PHONE)]
    tag = parse_message(refused).to.tag
    assert tag is not None
    ua.receive(ack(tag, transport="UDP", branch="z9hG4bK4a9e1c3f5d7b"), PHONE, 0.7)
    assert ua.get_timer() == pytest.approx(5.7)  # timer I (T4), no more G
    ua.handle_timer(1.5)
    assert ua.datagrams_to_send() == [] and events(ua) == []
    ua.handle_timer(5.7)
    assert ua.transaction_count == 0 and ua.get_timer() is None


def test_udp_error_without_ack_gives_up_at_timer_h() -> None:
    ua = make_ua(reliable=False)
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.reject(CALL_ID, 404, now=0.0)
    ua.datagrams_to_send()
    repeats = 0
    while (deadline := ua.get_timer()) is not None:
        ua.handle_timer(deadline)
        repeats += len(ua.datagrams_to_send())
    assert repeats == 10  # G at 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s to 31.5; H at 32
    assert ua.transaction_count == 0 and events(ua) == []


# --- BYE, INFO and re-INVITE in the dialog ------------------------------------------------------


def test_bye_before_answer_ends_the_early_dialog() -> None:
    ua = make_ua()
    ua.receive(invite(), PHONE, 0.0)
    events(ua)
    ua.ringing(CALL_ID, now=0.1)
    tag = responses(ua)[-1].to.tag
    ua.receive(message("BYE", branch="z9hG4bKb2", cseq=11224, to_tag=tag), PHONE, 0.2)
    assert [(r.status, r.cseq.method) for r in responses(ua)] == [(200, "BYE"), (487, "INVITE")]
    assert events(ua) == [CallEnded(CALL_ID, EndReason.BYE)]


def test_retransmitted_bye_gets_the_same_200() -> None:
    ua = make_ua(reliable=False)
    tag = answered_call_udp(ua)
    bye = message("BYE", branch="z9hG4bKb3", cseq=11224, to_tag=tag, transport="UDP")
    ua.receive(bye, PHONE, 1.0)
    [(ok, _)] = ua.datagrams_to_send()
    ua.receive(bye, PHONE, 1.5)
    assert ua.datagrams_to_send() == [(ok, PHONE)]
    assert events(ua) == [CallEnded(CALL_ID, EndReason.BYE)]


@pytest.mark.parametrize(("body", "content_type", "digit", "duration"), [
    (b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay", "5", 160),
    (b"Signal=#\r\n", "application/dtmf-relay", "#", None),
    (b"*", "application/dtmf", "*", None),
])
def test_info_dtmf(body: bytes, content_type: str, digit: str, duration: int | None) -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(message("INFO", branch="z9hG4bKi1", cseq=11224, to_tag=tag, body=body,
                       content_type=content_type), PHONE, 5.0)
    assert statuses(ua) == [200]
    assert events(ua) == [DtmfReceived(CALL_ID, digit, DtmfVia.INFO, duration)]


def test_info_variants() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    cases = [
        (b"", None, 200),  # keep-alive INFO
        (b"Signal=16\r\n", "application/dtmf-relay", 200),  # flash: no digit
        (b"Signal=Q\r\n", "application/dtmf-relay", 400),
        (b"<xml/>", "application/media_control+xml", 415),
    ]
    for n, (body, content_type, status) in enumerate(cases):
        ua.receive(message("INFO", branch=f"z9hG4bKv{n}", cseq=11224 + n, to_tag=tag, body=body,
                           content_type=content_type), PHONE, 5.0)
        assert statuses(ua) == [status]
    assert events(ua) == []
    ua.receive(message("INFO", branch="z9hG4bKpkg", cseq=11300, to_tag=tag,
                       extra="Info-Package: foo\n", body=b"x", content_type="application/foo"),
               PHONE, 6.0)
    [refused] = responses(ua)
    assert (refused.status, refused.headers.get("Recv-Info")) == (469, "")


def test_reinvite_offer_answer_and_ack() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    new_contact = "<sip:alice-0x5581@192.0.2.77:49152;transport=tls>"
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag, contact=new_contact),
               PHONE, 60.0)
    assert sent(ua) == []  # no 100 for a re-INVITE answered by the application
    assert events(ua) == [ReInvite(CALL_ID, OFFER, "INVITE")]
    ua.answer_reinvite(CALL_ID, ANSWER, now=60.1)
    [ok] = responses(ua)
    assert (ok.status, ok.cseq.number, ok.body, ok.to.tag) == (200, 11224, ANSWER, tag)
    assert ok.headers.get_all("Record-Route") == []
    ua.receive(ack(tag, cseq=11224, branch="z9hG4bKack2"), PHONE, 60.2)
    assert events(ua) == [ReInviteConfirmed(CALL_ID)]
    # The target refresh took effect: our BYE goes to the new Contact.
    ua.hangup(CALL_ID, now=70.0)
    bye = sent(ua)[-1][0]
    assert isinstance(bye, SipRequest)
    assert str(bye.uri) == "sip:alice-0x5581@192.0.2.77:49152;transport=tls"


def test_reinvite_refused_leaves_the_call() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag), PHONE, 60.0)
    events(ua)
    ua.answer_reinvite(CALL_ID, None, 488, warning=(304, "Media type not available"), now=60.1)
    [refused] = responses(ua)
    assert refused.status == 488
    assert refused.headers.get("Warning") == '304 node.example.org:5061 "Media type not available"'
    assert ua.call_state(CALL_ID) is CallState.CONFIRMED


def test_second_offer_while_one_is_pending_is_500() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag), PHONE, 60.0)
    ua.receive(message("UPDATE", branch="z9hG4bKup1", cseq=11225, to_tag=tag, body=OFFER),
               PHONE, 60.1)
    [refused] = responses(ua)
    assert refused.status == 500 and refused.headers.get("Retry-After") is not None
    assert events(ua) == [ReInvite(CALL_ID, OFFER, "INVITE")]


def test_offer_while_our_own_offer_is_unanswered_is_491_glare() -> None:
    """An INVITE without an offer gets ours in the 2xx; until the ACK brings the answer, a new
    offer from the peer crosses ours (RFC 3311 §5.2, RFC 3261 §14.2): 491, no event."""
    ua = make_ua()
    ua.receive(invite(body=b""), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    tag = responses(ua)[-1].to.tag
    assert tag is not None
    ua.receive(message("UPDATE", branch="z9hG4bKup1", cseq=11224, to_tag=tag, body=OFFER),
               PHONE, 0.05)
    [refused] = responses(ua)
    assert (refused.status, refused.cseq.method) == (491, "UPDATE")
    assert events(ua) == []
    ua.receive(ack(tag, body=OFFER), PHONE, 0.1)
    assert events(ua) == [CallConfirmed(CALL_ID, OFFER)]
    # Answered: the peer's retry is an ordinary re-offer now.
    ua.receive(message("UPDATE", branch="z9hG4bKup2", cseq=11225, to_tag=tag, body=OFFER),
               PHONE, 2.0)
    assert events(ua) == [ReInvite(CALL_ID, OFFER, "UPDATE")]


def test_reinvite_without_offer_then_crossing_update_is_491() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag, body=b""), PHONE, 60.0)
    assert events(ua) == [ReInvite(CALL_ID, None, "INVITE")]
    ua.answer_reinvite(CALL_ID, ANSWER, now=60.1)  # our offer, in the 2xx
    assert [r.status for r in responses(ua)] == [200]
    ua.receive(message("UPDATE", branch="z9hG4bKup1", cseq=11225, to_tag=tag, body=OFFER),
               PHONE, 60.15)
    assert statuses(ua) == [491]
    ua.receive(ack(tag, cseq=11224, branch="z9hG4bKack2", body=OFFER), PHONE, 60.2)
    assert events(ua) == [ReInviteConfirmed(CALL_ID, OFFER)]


def test_overlapping_reinvite_from_the_peer_is_500_not_491() -> None:
    """Not glare: the peer's own re-INVITE is unanswered (RFC 3261 §14.2)."""
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag), PHONE, 60.0)
    ua.receive(invite(branch="z9hG4bKre2", cseq=11225, to_tag=tag), PHONE, 60.1)
    [refused] = responses(ua)
    assert refused.status == 500 and refused.headers.get("Retry-After") is not None


def test_update_with_offer() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(message("UPDATE", branch="z9hG4bKup1", cseq=11224, to_tag=tag, body=OFFER),
               PHONE, 10.0)
    assert events(ua) == [ReInvite(CALL_ID, OFFER, "UPDATE")]
    ua.answer_reinvite(CALL_ID, ANSWER, now=10.1)
    [ok] = responses(ua)
    assert (ok.status, ok.cseq.method, ok.body) == (200, "UPDATE", ANSWER)
    ua.handle_timer(40.0)  # no ACK for an UPDATE, so nothing to resend or miss
    assert ua.datagrams_to_send() == [] and events(ua) == []
    assert ua.call_state(CALL_ID) is CallState.CONFIRMED


def test_cancelled_reinvite() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag), PHONE, 60.0)
    events(ua)
    ua.receive(message("CANCEL", branch="z9hG4bKre1", cseq=11224, to_tag=tag, contact=""),
               PHONE, 60.1)
    assert [(r.status, r.cseq.method) for r in responses(ua)] == [(200, "CANCEL"),
                                                                 (487, "INVITE")]
    assert events(ua) == [ReInviteCancelled(CALL_ID)]
    assert ua.call_state(CALL_ID) is CallState.CONFIRMED
    with pytest.raises(Conflict):
        ua.answer_reinvite(CALL_ID, ANSWER, now=60.2)


def test_bye_answers_a_pending_reinvite_487() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(invite(branch="z9hG4bKre1", cseq=11224, to_tag=tag), PHONE, 60.0)
    events(ua)
    ua.receive(message("BYE", branch="z9hG4bKb9", cseq=11225, to_tag=tag), PHONE, 60.1)
    assert [(r.status, r.cseq.method) for r in responses(ua)] == [(200, "BYE"), (487, "INVITE")]
    assert events(ua) == [CallEnded(CALL_ID, EndReason.BYE)]


def test_in_dialog_options() -> None:
    ua = make_ua()
    tag = answered_call(ua)
    ua.receive(message("OPTIONS", branch="z9hG4bKo2", cseq=11224, to_tag=tag), PHONE, 1.0)
    [ok] = responses(ua)
    assert (ok.status, ok.to.tag) == (200, tag)


# --- session timers (RFC 4028) ------------------------------------------------------------------


def timer_invite(expires: int, **kwargs: object) -> bytes:
    return invite(extra=f"Supported: timer, replaces\nSession-Expires: {expires}\nMin-SE: 90\n",
                  **kwargs)


def test_session_timer_ends_an_unrefreshed_call() -> None:
    ua = make_ua()
    ua.receive(timer_invite(300), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    ok = responses(ua)[-1]
    assert ok.headers.get("Session-Expires") == "300;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    assert ok.to.tag is not None
    ua.receive(ack(ok.to.tag), PHONE, 0.1)
    events(ua)
    # The caller refreshes with an UPDATE at 150 s: the deadline moves to 150 + 300 - 32.
    ua.receive(message("UPDATE", branch="z9hG4bKref1", cseq=11224, to_tag=ok.to.tag,
                       extra="Supported: timer\nSession-Expires: 300;refresher=uac\n"),
               PHONE, 150.0)
    [refreshed] = responses(ua)
    assert (refreshed.status, refreshed.headers.get("Session-Expires")) == (200,
                                                                           "300;refresher=uac")
    assert events(ua) == []
    ua.handle_timer(33.0)  # the INVITE transaction's timer L
    assert ua.get_timer() == 418.0
    ua.handle_timer(417.9)
    assert sent(ua) == []
    ua.handle_timer(418.0)
    [(bye, _)] = sent(ua)
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    assert events(ua) == [CallEnded(CALL_ID, EndReason.SESSION_EXPIRED)]


def test_session_interval_below_min_se_is_422() -> None:
    ua = make_ua()
    ua.receive(timer_invite(60), PHONE, 0.0)
    [refused] = responses(ua)
    assert (refused.status, refused.headers.get("Min-SE")) == (422, "90")


def test_no_session_timer_without_caller_support() -> None:
    ua = make_ua()
    ua.receive(invite(extra="Session-Expires: 1800\n"), PHONE, 0.0)  # put there by a proxy
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    ok = responses(ua)[-1]
    assert ok.headers.get("Session-Expires") is None and ok.headers.get("Require") is None


def test_session_timer_default_interval() -> None:
    ua = make_ua(session_expires=600)
    ua.receive(invite(extra="Supported: timer\n"), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    assert responses(ua)[-1].headers.get("Session-Expires") == "600;refresher=uac"


def test_custom_timers_speed_everything_up() -> None:
    ua = make_ua(reliable=False, timers=TimerSettings(t1=0.1, t2=0.4, t4=0.5))
    ua.receive(invite(transport="UDP"), PHONE, 0.0)
    events(ua)
    ua.accept(CALL_ID, ANSWER, now=0.0)
    ua.datagrams_to_send()
    ua.handle_timer(6.4)
    assert events(ua) == [CallEnded(CALL_ID, EndReason.ACK_TIMEOUT)]
