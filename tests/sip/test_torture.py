"""Torture tests in the style of RFC 4475: the messages are written here from the RFC's
descriptions (section numbers in each test), every one asserting the exact outcome.

Where RFC 4475 leaves a choice, confnode's parser takes the strict one for syntax (400 rather than
guessing what was meant) and the liberal one for spacing in the start line; the tests say which.
"""

from __future__ import annotations

import pytest

from confnode.transport.sip.errors import MessageKind, SipParseError
from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.headers import CSeq, NameAddr
from confnode.transport.sip.message import (
    SipRequest,
    SipResponse,
    make_error_response,
    parse_message,
    serialize,
)
from confnode.transport.sip.uri import SipUri


def crlf(text: str) -> bytes:
    """The messages below are written with \\n; on the wire every line ends in CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


def sdp(ip: str) -> bytes:
    return crlf(f"v=0\no=mhandley 29739 7272939 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\n"
                "m=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n")


def request(data: bytes) -> SipRequest:
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    assert serialize(parse_message(serialize(message))) == serialize(message)
    return message


def response(data: bytes) -> SipResponse:
    message = parse_message(data)
    assert isinstance(message, SipResponse)
    assert serialize(parse_message(serialize(message))) == serialize(message)
    return message


# === 3.1.1 Valid messages ======================================================================

WSINV = crlf('''INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;rport;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

''') + sdp("192.0.2.1")


def test_wsinv_short_tortuous_invite() -> None:
    """§3.1.1.1: folding, LWS everywhere, escapes in quotes, mixed compact forms, odd case."""
    req = request(WSINV)
    assert req.method == "INVITE"
    assert req.uri == SipUri("sip", "chair-dnrc.example.com", user="vivekg",
                             params=(("unknownparam", None),))
    assert req.to.uri == SipUri("sip", "chair-dnrc.example.com", user="vivekg")
    assert req.to.tag == "1918181833n"
    assert req.from_.display_name == 'J Rosenberg \\"'
    assert req.from_.tag == "98asjd8"
    assert req.max_forwards == 68
    assert req.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert req.cseq == CSeq(9, "INVITE")
    vias = req.via
    assert [(v.transport, v.host, v.branch, v.magic_cookie) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw", False),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8", True),
        ("UDP", "192.168.255.111", "z9hG4bK30239", True),
    ]
    assert vias[0].has_param("rport")
    assert req.headers.get("Subject") == ""
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    # Unknown grammar: kept whole, never split at its commas.
    assert req.headers.get_all("UnknownHeaderWithUnusualValue") == [";;,,;;,;"]
    assert req.routes[0].uri.params == (("lr", None), ("unknownwith", "value"),
                                        ("unknown-no-value", None))
    [contact] = req.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert req.body == sdp("192.0.2.1")


INTMETH = "\r\n".join([
    "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?"
    ",/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0",
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
    'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*'
    "@example.com>",
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1\'+`*%!-.',
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~",
    "Max-Forwards: 255",
    "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb",
    "Content-Length: 0",
    "", "",
]).encode("utf-8")


def test_intmeth_wide_range_of_valid_characters() -> None:
    """§3.1.1.2: token characters in the method, user-unreserved in the URI, quoted NUL."""
    req = request(INTMETH)
    assert req.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert req.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert req.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert (req.uri.host, req.uri.params) == ("example.com", ())
    assert req.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert req.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert req.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert req.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert req.from_.param("fromParam''~+*_!.-%") == (
        '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"')
    assert req.from_.tag == "_token~1'+`*%!-."
    assert req.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert req.cseq == CSeq(139122385, "!interesting-Method0123456789_*+`.%indeed'~")
    assert req.max_forwards == 255
    assert req.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert req.body == b""


ESC01 = crlf('''INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

''') + sdp("192.0.2.1")


def test_esc01_valid_percent_escapes() -> None:
    """§3.1.1.3: escapes in userparts and URI parameters, resolved only when comparing."""
    req = request(ESC01)
    assert req.uri.user == "sips%3Auser%40example.com"
    assert req.uri.unescaped_user == "sips:user@example.com"
    assert req.uri.host == "example.net"
    assert req.to.uri == SipUri("sip", "example.com", user="user")
    assert req.from_.uri.unescaped_user == "I have spaces"
    [contact] = req.contacts
    assert contact.uri.unescaped_user == "caller"
    assert contact.uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    assert contact.uri == SipUri.parse("sip:caller@host5.example.net;lr;name=value%2541")
    assert contact.uri != SipUri.parse("sip:caller@host5.example.net;lr;name=valueA")
    assert req.content_type == "application/sdp"


ESCNULL = crlf('''REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

''')


def test_escnull_escaped_nulls_are_not_truncated() -> None:
    """§3.1.1.4: two distinct contacts whose users are one and two NULs."""
    req = request(ESCNULL)
    assert req.to.uri.unescaped_user == "null-\x00-null"
    users = [c.uri.unescaped_user for c in req.contacts]
    assert users == ["\x00", "\x00\x00"]
    assert req.contacts[0].uri != req.contacts[1].uri


ESC02 = crlf('''RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

''')


def test_esc02_percent_that_is_not_an_escape() -> None:
    """§3.1.1.5: an unknown method (not REGISTER), a literal %Z%45 name, two Contacts."""
    req = request(ESC02)
    assert req.method == "RE%47IST%45R"
    assert req.to.display_name == "%Z%45"
    assert req.from_.display_name == "%Z%45"
    assert req.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [c.uri.host for c in req.contacts] == ["host1.example.com", "host3.example.com"]
    assert req.headers.get_all("C%6Fntact") == ["<sip:alias2@host2.example.com>"]


LWSDISP = crlf('''OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

''')


def test_lwsdisp_no_space_before_angle_bracket() -> None:
    """§3.1.1.6: accepted although RFC 3261's grammar wants LWS after a token display name."""
    req = request(LWSDISP)
    assert req.from_.display_name == "caller"
    assert req.from_.tag == "323"
    assert req.to.uri == SipUri("sip", "example.com", user="user")


_LONG_VIAS = "".join(f"{name}: SIP/2.0/TCP sip{n}.example.com\n" for n, name in zip(
    range(33, 0, -1),
    ["Via", "v", "V", "Via", "ViA", "VIa", "VIA", "via", "viA", "vIa", "vIA", "V ", "v ", "V  ",
     "v  ", "Via ", "Via  "] + ["Via"] * 16, strict=True))
LONGREQ = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    'To: "I have a user name of ' + "extreme" * 10 + ' proportion"<sip:user@example.com:6000;'
    "unknownparam1=very" + "long" * 20 + "value;longparam" + "name" * 25 + "=shortvalue;very"
    + "long" * 25 + "ParameterNameWithNoValue>\n"
    "F: sip:" + "amazinglylongcallername" * 5 + "@example.net;tag=12" + "982" * 50 + "424;"
    "unknownheaderparam" + "name" * 20 + "=unknowheaderparam" + "value" * 15 + ";unknownValueless"
    + "paramname" * 10 + "\n"
    "Call-ID: longreq.one" + "really" * 20 + "longcallid\n"
    "CSeq: 3882340 INVITE\n"
    "Unknown-" + "Long" * 20 + "-Name: unknown-" + "long" * 20 + "-value; unknown-" + "long" * 20
    + "-parameter-name = unknown-" + "long" * 20 + "-parameter-value\n"
    + _LONG_VIAS
    + "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very" + "long" * 50
    + "branchvalue\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:" + "amazinglylongcallername" * 5 + "@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "l: 150\n\n") + sdp("192.0.2.1")


def test_longreq_long_values_and_many_vias() -> None:
    """§3.1.1.7: 34 Vias in every spelling of the name, long names, values and parameters."""
    req = request(LONGREQ)
    assert len(LONGREQ) > 3000
    vias = req.via
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[33].received == "192.0.2.5"
    assert vias[33].branch == "very" + "long" * 50 + "branchvalue"
    assert req.to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    assert req.to.uri.port == 6000
    assert req.to.uri.param("longparam" + "name" * 25) == "shortvalue"
    assert req.from_.tag == "12" + "982" * 50 + "424"
    assert req.from_.has_param("unknownValueless" + "paramname" * 10)
    assert req.headers.get("Unknown-" + "Long" * 20 + "-Name", "").startswith("unknown-long")
    assert req.body == sdp("192.0.2.1")


DBLREQ_REGISTER = crlf('''REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

''')
DBLREQ_INVITE = crlf('''INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 152

''') + sdp("192.0.2.15")


def test_dblreq_extra_octets_in_a_datagram_are_ignored() -> None:
    """§3.1.1.8: the INVITE after a Content-Length of 0 is noise in a UDP datagram."""
    req = request(DBLREQ_REGISTER + DBLREQ_INVITE)
    assert req.method == "REGISTER"
    assert req.body == b""
    assert serialize(req) == serialize(request(DBLREQ_REGISTER))


def test_dblreq_on_a_stream_is_two_requests() -> None:
    framer = StreamFramer()
    messages = framer.feed(DBLREQ_REGISTER + DBLREQ_INVITE)
    assert [m.method for m in messages if isinstance(m, SipRequest)] == ["REGISTER", "INVITE"]
    assert len(messages) == 2
    assert messages[1].body == sdp("192.0.2.15")


SEMIURI = crlf('''OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

''')


def test_semiuri_semicolon_in_the_user_part() -> None:
    """§3.1.1.9: the user is "user;par=u@example.net", and the URI has no parameters."""
    req = request(SEMIURI)
    assert req.uri.user == "user;par=u%40example.net"
    assert req.uri.unescaped_user == "user;par=u@example.net"
    assert (req.uri.host, req.uri.params) == ("example.com", ())
    assert req.headers.get_all("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag"]


TRANSPORTS = crlf('''OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

''')


def test_transports_varied_and_unknown() -> None:
    """§3.1.1.10: every known transport and an unknown one."""
    req = request(TRANSPORTS)
    assert [(v.transport, v.host) for v in req.via] == [
        ("UDP", "t1.example.com"), ("SCTP", "t2.example.com"), ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"), ("TCP", "t5.example.com")]
    assert req.call_id == "transports.kijh4akdnaqjkwendsasfdj"


MPART_BODY = (
    b"--7a9cbec02ceef655\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"Hello\r\n"
    b"--7a9cbec02ceef655\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"0\x82\x01R\x06\t*\x86H\x86\xf7\r\x01\x07\x02\xa0\x82\x01C\x00\x00\r\n\r\n\x00\xff"
    b"\r\n--7a9cbec02ceef655--\r\n"
)
MPART01 = crlf(f'''MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+8=
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=7a9cbec02ceef655
Date: Sat, 15 Oct 2005 04:44:56 GMT
User-Agent: SIPimp.org/0.2.5 (curses)
Content-Length: {len(MPART_BODY)}

''') + MPART_BODY


def test_mpart01_binary_multipart_body_is_framed_exactly() -> None:
    """§3.1.1.11: a body with NULs and blank lines inside; Content-Length frames it."""
    req = request(MPART01)
    assert req.body == MPART_BODY
    assert req.content_type == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert req.headers.get("Date") == "Sat, 15 Oct 2005 04:44:56 GMT"
    assert req.top_via.sent_by == ("127.0.0.1", 5070)
    assert req.routes[0].uri == SipUri("sip", "127.0.0.1", port=5080)
    framer = StreamFramer()
    assert [m.body for m in framer.feed(MPART01 + MPART01)] == [MPART_BODY, MPART_BODY]


UNREASON_PHRASE = ("= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f"
                   "\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - "
                   "\u043f\u0440\u043e\u0441\u0442\u043e\u0435")
UNREASON = crlf(f'''SIP/2.0 200 {UNREASON_PHRASE}
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

''') + sdp("192.0.2.198")


def test_unreason_utf8_reason_phrase() -> None:
    """§3.1.1.12: any UTF-8 in a reason phrase, kept exactly."""
    resp = response(UNREASON)
    assert resp.status == 200
    assert resp.reason == UNREASON_PHRASE
    assert resp.to.tag == "2229"
    assert resp.body == sdp("192.0.2.198")
    assert serialize(resp).startswith(f"SIP/2.0 200 {UNREASON_PHRASE}\r\n".encode())


NOREASON = crlf('''SIP/2.0 100 
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

''')  # noqa: W291 (the space after 100 is the point of this test)


def test_noreason_empty_reason_phrase() -> None:
    """§3.1.1.13: "SIP/2.0 100 " has an empty reason; a missing space is tolerated too."""
    resp = response(NOREASON)
    assert (resp.status, resp.reason) == (100, "")
    assert serialize(resp).startswith(b"SIP/2.0 100 \r\n")
    assert response(NOREASON.replace(b"100 \r\n", b"100\r\n")).reason == ""


# === 3.1.2 Invalid messages, 3.3 application-layer semantics ======================================

BADINV01 = crlf('''INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
Content-Length: 152
Content-Type: application/sdp

''') + sdp("192.0.2.15")

CLERR = crlf('''INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

''') + sdp("192.0.2.155")

NCL = crlf('''INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999

''') + sdp("192.0.2.53")

SCALAR02 = crlf('''REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1''' + "0" * 100 + '''
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0

''')

SCALARLG = crlf('''SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture "In Progress"
Content-Length: 0

''')

QUOTBAL = crlf('''INVITE sip:user@example.com SIP/2.0
To: "Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
Content-Length: 152

''') + sdp("192.0.2.15")

_PLAIN_INVITE = '''{line}
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: {name}.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKkdjuw{name}
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 150

'''


def plain_invite(name: str, line: str) -> bytes:
    return crlf(_PLAIN_INVITE.format(name=name, line=line)) + sdp("192.0.2.5")


LTGTRURI = plain_invite("ltgtruri", "INVITE <sip:user@example.com> SIP/2.0")
LWSRURI = plain_invite("lwsruri", "INVITE sip:user@example.com; lr SIP/2.0")
ESCRURI = plain_invite("escruri", "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0")
LWSSTART = plain_invite("lwsstart", "INVITE  sip:user@example.com  SIP/2.0")
TRWS = plain_invite("trws", "INVITE sip:user@example.com SIP/2.0  ")
BADDATE = plain_invite("baddate", "INVITE sip:user@example.com SIP/2.0").replace(
    b"Contact:", b"Date: Fri, 01 Jan 2010 16:00:00 EST\r\nContact:")

_PLAIN_OPTIONS = '''{line}
To: {to}
From: {from_}
Max-Forwards: 70
Call-ID: {name}.31415@c.example.com
CSeq: 3923239 OPTIONS
Via: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw{name}
{extra}l: 0

'''


def plain_options(name: str, *, line: str = "OPTIONS sip:t.watson@example.org SIP/2.0",
                  to: str = "sip:t.watson@example.org",
                  from_: str = "sip:a.g.bell@example.com;tag=43", extra: str = "") -> bytes:
    return crlf(_PLAIN_OPTIONS.format(name=name, line=line, to=to, from_=from_, extra=extra))


REGBADCT = plain_options("regbadct", line="REGISTER sip:example.com SIP/2.0",
                         extra="Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\n"
                         ).replace(b"OPTIONS\r\n", b"REGISTER\r\n")
BADASPEC = plain_options("badaspec", to='"Watson, Thomas" < sip:t.watson@example.org >',
                         from_='"Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423')
BADDN = plain_options("baddn", to="Watson, Thomas <sip:t.watson@example.org>",
                      from_="Bell, Alexander <sip:a.g.bell@example.com>;tag=43")
BADVERS = plain_options("badvers", line="OPTIONS sip:t.watson@example.org SIP/7.0",
                        to="T. Watson <sip:t.watson@example.org>",
                        from_="A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe"
                        ).replace(b"SIP/2.0/UDP", b"SIP/7.0/UDP")
MISMATCH01 = plain_options("mismatch01").replace(b"3923239 OPTIONS", b"8 INVITE")
MISMATCH02 = plain_options("mismatch02", line="NEWMETHOD sip:user@example.com SIP/2.0"
                           ).replace(b"3923239 OPTIONS", b"8 INVITE")
UNKSCM = plain_options("unkscm", line="OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0")
NOVELSC = plain_options("novelsc", line="OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0")
UNKSM2 = plain_options("unksm2", to="isbn:2983792873", from_="<http://www.example.com>;tag=3234233",
                       extra="Contact: <name:John_Smith>\n")
BADBRANCH = plain_options("badbranch").replace(b"branch=z9hG4bKkdjuwbadbranch", b"branch=z9hG4bK")
BEXT01 = plain_options("bext01", extra="Require: nothingSupportsThis, nothingSupportsThisEither\n"
                       "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\n")
REGAUT01 = plain_options("regaut01", line="REGISTER sip:example.com SIP/2.0",
                         extra="Authorization: NoOneKnowsThisScheme opaque-data=here\n"
                         ).replace(b"OPTIONS\r\n", b"REGISTER\r\n")
ZEROMF = plain_options("zeromf").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
CPARAM01 = plain_options("cparam01",
                         extra="Contact: sip:+19725552222@gw1.example.net;unknownparam\n")
CPARAM02 = plain_options("cparam02",
                         extra="Contact: <sip:+19725552222@gw1.example.net;unknownparam>\n")
REGESCRT = plain_options("regescrt",
                         extra="M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\n")
MCL01 = crlf('''OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423
To: sip:user@example.com
From: sip:other@example.net;tag=3923942
Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf
CSeq: 15932 OPTIONS
Content-Length: 13
Max-Forwards: 60
Content-Length: 5
Content-Type: text/plain

There's no way to know how many octets are supposed to be here.
''')
MULTI01 = crlf('''INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: 150
Contact: <sip:caller@host36.example.net>
Max-Forwards: 5

''') + sdp("192.0.2.5")
INSUF = crlf('''INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: 152

''') + sdp("192.0.2.95")
BIGCODE = crlf('''SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

''')
BCAST = crlf('''SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host28.example.com>

''') + sdp("192.0.2.198")
INV2543 = crlf('''INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0
''')


@pytest.mark.parametrize(("name", "data", "status", "reason", "kind"), [
    # §3.1.2.1: ";;,;,," in Via and ";;;;" in Contact.
    ("badinv01", BADINV01, 400, "Malformed Via header parameters", MessageKind.REQUEST),
    # §3.1.2.2: over UDP a Content-Length beyond the datagram is a 400.
    ("clerr", CLERR, 400, "Content-Length larger than the message body", MessageKind.REQUEST),
    ("ncl", NCL, 400, "Malformed Content-Length header", MessageKind.REQUEST),  # §3.1.2.3
    ("scalar02", SCALAR02, 400, "CSeq number out of range", MessageKind.REQUEST),  # §3.1.2.4
    ("scalarlg", SCALARLG, 400, "CSeq number out of range", MessageKind.RESPONSE),  # §3.1.2.5
    ("quotbal", QUOTBAL, 400, "Unbalanced quotes in display name", MessageKind.REQUEST),  # 3.1.2.6
    ("ltgtruri", LTGTRURI, 400, "Request-URI must not be enclosed in angle brackets",
     MessageKind.REQUEST),  # §3.1.2.7
    ("lwsruri", LWSRURI, 400, "Malformed Request-Line", MessageKind.REQUEST),  # §3.1.2.8
    # §3.1.2.11: rejecting is allowed; a proxy must not turn URI headers into real ones.
    ("escruri", ESCRURI, 400, "Request-URI must not contain headers", MessageKind.REQUEST),
    ("regbadct", REGBADCT, 400, "URI with headers must be enclosed in angle brackets",
     MessageKind.REQUEST),  # §3.1.2.13
    ("badaspec", BADASPEC, 400, "Whitespace inside an addr-spec", MessageKind.REQUEST),  # 3.1.2.14
    ("baddn", BADDN, 400, "Malformed display name", MessageKind.REQUEST),  # §3.1.2.15
    ("badvers", BADVERS, 505, "Version Not Supported", MessageKind.REQUEST),  # §3.1.2.16
    ("mismatch01", MISMATCH01, 400, "CSeq method does not match the request method",
     MessageKind.REQUEST),  # §3.1.2.17
    # §3.1.2.18: 501 is preferred, 400 allowed; the parser cannot tell the TU's methods.
    ("mismatch02", MISMATCH02, 400, "CSeq method does not match the request method",
     MessageKind.REQUEST),
    ("bigcode", BIGCODE, 400, "Malformed Status-Line", MessageKind.RESPONSE),  # §3.1.2.19
    ("insuf", INSUF, 400, "Missing From header", MessageKind.REQUEST),  # §3.3.1
    ("unkscm", UNKSCM, 416, "Unsupported URI Scheme", MessageKind.REQUEST),  # §3.3.2
    ("novelsc", NOVELSC, 416, "Unsupported URI Scheme", MessageKind.REQUEST),  # §3.3.3
    # §3.3.4: confnode serves only sip/sips/tel addresses, so it answers rather than guesses.
    ("unksm2", UNKSM2, 416, "Unsupported URI Scheme", MessageKind.REQUEST),
    ("multi01", MULTI01, 400, "Multiple From headers", MessageKind.REQUEST),  # §3.3.8
    ("mcl01", MCL01, 400, "Multiple Content-Length headers", MessageKind.REQUEST),  # §3.3.9
])
def test_invalid_messages(name: str, data: bytes, status: int, reason: str,
                          kind: MessageKind) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    error = caught.value
    assert (error.status, error.reason, error.message_kind) == (status, reason, kind), name
    answer = make_error_response(error, to_tag="e1")
    if kind is MessageKind.RESPONSE:
        assert answer is None
        return
    # Every invalid request here still carries a Via and a CSeq, so it gets its answer.
    assert answer is not None
    assert (answer.status, answer.reason) == (status, reason)
    assert answer.headers.get_all("Via") == error.headers.get_all("Via")
    assert answer.headers.get("CSeq") == error.headers.get("CSeq")
    # The answer echoes the request's headers as they came, broken ones included (§8.2.6.2).
    assert serialize(answer).startswith(f"SIP/2.0 {status} {reason}\r\nVia: ".encode())


def test_insuf_answer_carries_only_what_exists() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(INSUF)
    answer = make_error_response(caught.value)
    assert answer is not None
    assert list(answer.headers) == [("Via", "SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf"),
                                    ("CSeq", "193942 INVITE")]


def test_badvers_answer_is_a_505_with_the_transaction_headers() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(BADVERS)
    answer = make_error_response(caught.value, to_tag="v1")
    assert answer is not None
    assert serialize(answer) == crlf('''SIP/2.0 505 Version Not Supported
Via: SIP/7.0/UDP c.example.com:5060;branch=z9hG4bKkdjuwbadvers
From: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To: T. Watson <sip:t.watson@example.org>;tag=v1
Call-ID: badvers.31415@c.example.com
CSeq: 3923239 OPTIONS
Content-Length: 0

''')


def test_clerr_on_a_stream_waits_for_the_rest() -> None:
    """§3.1.2.2: on TCP a long Content-Length just means more bytes are coming."""
    framer = StreamFramer()
    assert framer.feed(CLERR) == []
    assert framer.broken is False
    assert framer.buffered == len(CLERR)


def test_ncl_on_a_stream_breaks_framing() -> None:
    """§3.1.2.3: a negative length on TCP is not recoverable."""
    framer = StreamFramer()
    [error] = framer.feed(NCL + DBLREQ_REGISTER)
    assert isinstance(error, SipParseError)
    assert (error.status, error.message_kind) == (400, MessageKind.REQUEST)
    assert framer.broken is True
    assert framer.feed(DBLREQ_REGISTER) == []


@pytest.mark.parametrize("data", [LWSSTART, TRWS])
def test_lwsstart_and_trws_extra_spaces_in_the_request_line_are_tolerated(data: bytes) -> None:
    """§3.1.2.9, §3.1.2.10: liberal; serializing writes single spaces and no trailing ones."""
    req = request(data)
    assert req.uri == SipUri("sip", "example.com", user="user")
    assert serialize(req).startswith(b"INVITE sip:user@example.com SIP/2.0\r\n")


def test_baddate_date_is_kept_whole_and_unjudged() -> None:
    """§3.1.2.12: the Date header is not confnode's concern; it is never split at commas."""
    req = request(BADDATE)
    assert req.headers.get_all("Date") == ["Fri, 01 Jan 2010 16:00:00 EST"]


def test_badbranch_magic_cookie_without_identifier_parses() -> None:
    """§3.2.1: syntactically valid; the transaction layer decides what to do with it."""
    via = request(BADBRANCH).top_via
    assert (via.branch, via.magic_cookie) == ("z9hG4bK", True)


def test_bext01_unknown_required_extensions_parse() -> None:
    """§3.3.5: the TU answers 420 (Require) or a proxy 420 (Proxy-Require)."""
    req = request(BEXT01)
    assert req.headers.get_list("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert req.headers.get_list("Proxy-Require") == [
        "noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def test_regaut01_unknown_authorization_scheme_is_kept_whole() -> None:
    """§3.3.7: an Authorization header is never split; the TU answers 401."""
    assert request(REGAUT01).headers.get_all("Authorization") == [
        "NoOneKnowsThisScheme opaque-data=here"]


def test_bcast_response_with_a_broadcast_via_parses() -> None:
    """§3.3.10: not the parser's business; whoever forwards it must not send to 255.255.255.255."""
    resp = response(BCAST)
    assert [v.host for v in resp.via] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf_max_forwards_zero_parses() -> None:
    """§3.3.11: legal; the TU answers an OPTIONS itself or a proxy answers 483."""
    assert request(ZEROMF).max_forwards == 0


def test_cparam01_and_cparam02_parameter_ownership() -> None:
    """§3.3.12, §3.3.13: bare addr-spec parameters are the header's, bracketed are the URI's."""
    [bare] = request(CPARAM01).contacts
    assert (bare.params, bare.uri.params) == ((("unknownparam", None),), ())
    [bracketed] = request(CPARAM02).contacts
    assert (bracketed.params, bracketed.uri.params) == ((), (("unknownparam", None),))


def test_regescrt_escaped_route_in_a_contact_uri_parses() -> None:
    """§3.3.14: allowed in a bracketed Contact; acting on it is the registrar's choice."""
    [contact] = request(REGESCRT).contacts
    assert contact.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_inv2543_rfc_2543_syntax_parses() -> None:
    """§3.4.1: no branch, no tags, no Max-Forwards, no Content-Length (body = rest of datagram)."""
    req = request(INV2543)
    assert req.top_via.branch is None and req.top_via.magic_cookie is False
    assert req.from_.tag is None
    assert req.max_forwards is None
    assert "Content-Length" not in req.headers
    assert req.body == crlf("v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.5\ns=-\n"
                            "c=IN IP4 192.0.2.5\nt=0 0\nm=audio 49217 RTP/AVP 0\n")
    assert req.to.params == (("user", "phone"),)
    assert req.to.uri == SipUri("sip", "ss1.example.net", user="+16505552222")
    assert NameAddr.parse(req.headers.get("From") or "").uri.param("user") == "phone"
