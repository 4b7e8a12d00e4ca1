"""The header multi-map, list splitting, and the parsed header forms."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.errors import InvalidInput
from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.headers import (
    COMPACT_FORMS,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    parse_call_id,
    parse_content_length,
    parse_max_forwards,
    split_commas,
    split_header_values,
)
from confnode.transport.sip.uri import SipUri

# --- names and splitting ------------------------------------------------------------------


@pytest.mark.parametrize(("compact", "full"), [
    ("i", "Call-ID"), ("m", "Contact"), ("e", "Content-Encoding"), ("l", "Content-Length"),
    ("c", "Content-Type"), ("f", "From"), ("s", "Subject"), ("k", "Supported"), ("t", "To"),
    ("v", "Via"), ("o", "Event"), ("r", "Refer-To"), ("b", "Referred-By"), ("u", "Allow-Events"),
    ("x", "Session-Expires"), ("a", "Accept-Contact"), ("j", "Reject-Contact"),
    ("d", "Request-Disposition"), ("y", "Identity"),
])
def test_compact_forms_expand_in_either_case(compact: str, full: str) -> None:
    assert canonical_name(compact) == full
    assert canonical_name(compact.upper()) == full
    assert COMPACT_FORMS[compact] == full


def test_known_names_get_canonical_spelling_and_unknown_names_are_kept() -> None:
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("MaX-fOrWaRdS") == "Max-Forwards"
    assert canonical_name("X-Confnode-Room") == "X-Confnode-Room"
    assert canonical_name("C%6Fntact") == "C%6Fntact"  # not a Contact (RFC 4475 §3.1.1.5)


def test_split_commas_respects_quotes_and_angle_brackets() -> None:
    assert split_commas('"Bell, Alexander" <sip:a@b>;tag=1, <sip:c,d@e>') == [
        '"Bell, Alexander" <sip:a@b>;tag=1', "<sip:c,d@e>"]
    assert split_commas('"a \\", b" <sip:x@y>') == ['"a \\", b" <sip:x@y>']
    assert split_commas(" INVITE ,ACK,  BYE ") == ["INVITE", "ACK", "BYE"]
    assert split_commas("a,,b") == ["a", "", "b"]
    assert split_commas("") == [""]


def test_only_list_headers_are_split() -> None:
    assert split_header_values("Allow", "INVITE, ACK") == ["INVITE", "ACK"]
    assert split_header_values("k", "timer, 100rel") == ["timer", "100rel"]
    assert split_header_values("Date", "Sat, 13 Nov 2010 23:29:00 GMT") == [
        "Sat, 13 Nov 2010 23:29:00 GMT"]
    challenge = 'Digest realm="confnode", nonce="abc", qop="auth,auth-int"'
    assert split_header_values("WWW-Authenticate", challenge) == [challenge]
    assert split_header_values("Authorization", "NoOneKnowsThisScheme a=1, b=2") == [
        "NoOneKnowsThisScheme a=1, b=2"]
    assert split_header_values("Subject", "Hi, there") == ["Hi, there"]


# --- the multi-map -------------------------------------------------------------------------


def test_headers_are_ordered_case_insensitive_and_multi_valued() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("To", "<sip:b@c>"), ("VIA", "SIP/2.0/UDP d")])
    assert list(headers) == [("Via", "SIP/2.0/UDP a"), ("To", "<sip:b@c>"),
                             ("Via", "SIP/2.0/UDP d")]
    assert headers.get("via") == "SIP/2.0/UDP a"
    assert headers.get_all("V") == ["SIP/2.0/UDP a", "SIP/2.0/UDP d"]
    assert "t" in headers and "From" not in headers and 42 not in headers
    assert headers.get("From") is None
    assert headers.get("From", "x") == "x"
    assert len(headers) == 3


def test_set_replaces_all_values_at_the_first_position() -> None:
    headers = Headers([("X-A", "1"), ("Contact", "<sip:x@y>"), ("X-B", "2"), ("m", "<sip:z@y>")])
    headers.set("contact", "*")
    assert list(headers) == [("X-A", "1"), ("Contact", "*"), ("X-B", "2")]
    headers.set("Expires", "0")
    assert list(headers)[-1] == ("Expires", "0")


def test_add_prepend_remove_copy_and_equality() -> None:
    headers = Headers()
    headers.add("Via", "SIP/2.0/UDP b")
    headers.prepend("Via", "SIP/2.0/TLS a")
    assert headers.get_all("Via") == ["SIP/2.0/TLS a", "SIP/2.0/UDP b"]
    copy = headers.copy()
    assert copy == headers
    assert headers.remove("v") == 2
    assert headers.remove("v") == 0
    assert len(headers) == 0
    assert copy != headers
    assert copy == Headers([("VIA", "SIP/2.0/TLS a"), ("via", "SIP/2.0/UDP b")])


def test_get_list_reads_option_tags_across_lines() -> None:
    headers = Headers([("Supported", "timer, 100rel"), ("Supported", ""), ("k", "replaces")])
    assert headers.get_list("Supported") == ["timer", "100rel", "replaces"]
    assert headers.get_list("Require") == []


@pytest.mark.parametrize(("name", "value"), [
    ("X-Evil", "a\r\nVia: SIP/2.0/UDP attacker"),
    ("X-Evil", "a\nb"),
    ("X Evil", "a"),
    ("", "a"),
    ("X-Evil:", "a"),
])
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(InvalidInput):
        Headers().add(name, value)
    with pytest.raises(InvalidInput):
        Headers().set(name, value)


# --- Via -----------------------------------------------------------------------------------


def test_via_with_lws_everywhere() -> None:
    via = Via.parse("SIP  /   2.0 /UDP 192.0.2.2 ; rport;branch = z9hG4bK390skdjuw")
    assert (via.protocol, via.transport, via.host, via.port) == ("SIP/2.0", "UDP", "192.0.2.2",
                                                                 None)
    assert via.branch == "z9hG4bK390skdjuw"
    assert via.magic_cookie is True
    assert via.has_param("rport") and via.rport is None
    assert str(via) == "SIP/2.0/UDP 192.0.2.2;rport;branch=z9hG4bK390skdjuw"


def test_via_received_rport_port_ipv6_and_without_cookie() -> None:
    via = Via.parse("SIP/2.0/tls [2001:db8::9]:5061;branch=390skdjuw;received=2001:db8::1;"
                    "rport=5062;ttl=16;maddr=224.2.0.1;x-custom=\"quoted;value\"")
    assert via.transport == "TLS"
    assert via.sent_by == ("[2001:db8::9]", 5061)
    assert via.magic_cookie is False
    assert via.received == "2001:db8::1"
    assert via.rport == 5062
    assert via.ttl == 16
    assert via.maddr == "224.2.0.1"
    assert via.param("X-CUSTOM") == '"quoted;value"'


def test_via_with_param_adds_received_and_fills_rport() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.7:5060;rport;branch=z9hG4bKx")
    answered = via.with_param("received", "198.51.100.7").with_param("rport", "40112")
    assert str(answered) == ("SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKx;received=198.51.100.7;"
                             "rport=40112")
    assert answered.rport == 40112
    with pytest.raises(InvalidInput):
        via.with_param("received", "a b")


@pytest.mark.parametrize("text", [
    "SIP/2.0/UDP 192.0.2.15;;",  # RFC 4475 §3.1.2.1
    ";",
    "",
    "SIP/2.0 192.0.2.15",
    "SIP/2.0/UDP",
    "SIP/2.0/UDP host:99999",
    "SIP/2.0/UDP host extra",
    "SIP/2.0/UDP host;branch",
    "SIP/2.0/UDP host;branch=",
    "SIP/2.0/UDP host;rport=abc",
    "SIP/2.0/UDP host;ttl=300",
    "SIP/2.0/UDP host;branch=\"z9hG4bK\"",
    "SIP/2.0/UDP [2001:db8::zz]",
])
def test_malformed_via_is_a_400(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        Via.parse(text)
    assert caught.value.status == 400


# --- name-addr -----------------------------------------------------------------------------


def test_name_addr_quoted_display_with_escapes() -> None:
    addr = NameAddr.parse('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert addr.display_name == 'J Rosenberg \\"'
    assert addr.uri == SipUri("sip", "example.com", user="jdrosen")
    assert addr.tag == "98asjd8"
    assert str(addr) == '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8'


def test_name_addr_token_display_names_and_no_space_before_angle() -> None:
    assert NameAddr.parse("caller<sip:caller@example.com>;tag=323").display_name == "caller"
    addr = NameAddr.parse("token1~`  token2'+_ token3*%!.- <sip:mundane@example.com>")
    assert addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert NameAddr.parse("<sip:a@b>").display_name is None
    assert NameAddr.parse('"" <sip:a@b>').display_name == ""


def test_bare_addr_spec_parameters_belong_to_the_header() -> None:
    bare = NameAddr.parse("sip:+19725552222@gw1.example.net;unknownparam")
    assert bare.uri.params == ()
    assert bare.params == (("unknownparam", None),)
    angled = NameAddr.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert angled.uri.params == (("unknownparam", None),)
    assert angled.params == ()
    spaced = NameAddr.parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert spaced.tag == "1918181833n"
    assert str(spaced) == "<sip:vivekg@chair-dnrc.example.com>;tag=1918181833n"


def test_name_addr_serialization_escapes_and_drops_line_breaks() -> None:
    addr = NameAddr(SipUri("sip", "node.example.dk", user="1234"),
                    display_name='Dr. "Ø" \\ Jensen\r\nVia: evil\x07')
    text = str(addr)
    assert text == '"Dr. \\"Ø\\" \\\\ JensenVia: evil\\\x07" <sip:1234@node.example.dk>'
    assert "\r" not in text and "\n" not in text
    assert NameAddr.parse(text).display_name == 'Dr. "Ø" \\ JensenVia: evil\x07'


def test_with_tag_sets_or_replaces_the_tag() -> None:
    addr = NameAddr.parse("<sip:room@node.example.dk>;x=1")
    assert str(addr.with_tag("a1b2")) == "<sip:room@node.example.dk>;x=1;tag=a1b2"
    assert addr.with_tag("a1b2").with_tag("c3").tag == "c3"
    with pytest.raises(InvalidInput):
        addr.with_tag("bad tag")


@pytest.mark.parametrize(("text", "status"), [
    ('"Mr. J. User <sip:j.user@example.com>', 400),  # quotbal, RFC 4475 §3.1.2.6
    ('"Watson, Thomas" < sip:t.watson@example.org >', 400),  # badaspec, §3.1.2.14
    ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", 400),  # baddn, §3.1.2.15
    ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", 400),  # regbadct, §3.1.2.13
    ('"Joe" <sip:joe@example.org>;;;;', 400),  # badinv01, §3.1.2.1
    ("<sip:a@b", 400),
    ('"a" sip:a@b', 400),
    ("<sip:a@b>;tag", 400),
    ("<sip:a@b>;tag=\"x\"", 400),
    ("<sip:a@b> junk", 400),
    ("", 400),
    ("*", 400),
    ("isbn:2983792873", 416),
    ("<http://www.example.com>;tag=3234233", 416),
])
def test_malformed_name_addr(text: str, status: int) -> None:
    with pytest.raises(SipParseError) as caught:
        NameAddr.parse(text)
    assert caught.value.status == status


# --- scalars -------------------------------------------------------------------------------


def test_cseq_bounds_and_leading_zeros() -> None:
    assert CSeq.parse("0009 INVITE") == CSeq(9, "INVITE")
    assert CSeq.parse(" 2147483647\t ACK ") == CSeq(2**31 - 1, "ACK")
    assert str(CSeq(1, "BYE")) == "1 BYE"
    for bad in ("2147483648 INVITE", "36893488147419103232 REGISTER", "1", "INVITE 1",
                "-1 INVITE", "1 INV ITE", "0x10 INVITE", "1 INVITE;x"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)
    with pytest.raises(InvalidInput):
        CSeq(2**31, "INVITE")


def test_numbers_of_any_length_are_judged_without_int_overflow() -> None:
    # int() refuses strings over 4300 digits with ValueError; that must surface as a 400.
    assert CSeq.parse("0" * 5000 + "7 ACK") == CSeq(7, "ACK")
    assert parse_content_length("0" * 5000 + "12") == 12
    assert parse_max_forwards("0" * 5000 + "70") == 70
    for parse, text in ((CSeq.parse, "9" * 5000 + " ACK"), (parse_content_length, "9" * 5000),
                        (parse_max_forwards, "9" * 5000),
                        (Via.parse, "SIP/2.0/UDP h;rport=" + "9" * 5000),
                        (Via.parse, "SIP/2.0/UDP h;ttl=" + "9" * 5000)):
        with pytest.raises(SipParseError) as caught:
            parse(text)
        assert caught.value.status == 400
    assert Via("UDP", "h", params=(("rport", "x"),)).rport is None


def test_content_length_max_forwards_and_call_id() -> None:
    assert parse_content_length(" 0150 ") == 150
    assert parse_max_forwards("0068") == 68
    assert parse_max_forwards("0") == 0
    assert parse_max_forwards("255") == 255
    for bad in ("-999", "five", "", "1 2", "+1", "9" * 4400):
        with pytest.raises(SipParseError):
            parse_content_length(bad)
    for bad in ("256", "300", "-1", "", "1.0"):
        with pytest.raises(SipParseError):
            parse_max_forwards(bad)
    assert parse_call_id(" intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{ ") == (
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    for bad in ("", "a b", "a@b@c", "a@"):
        with pytest.raises(SipParseError):
            parse_call_id(bad)


# --- properties ----------------------------------------------------------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=10)
_display = st.one_of(st.none(), st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
_uris = st.builds(lambda user, host: SipUri("sip", host, user=user),
                  st.one_of(st.none(), st.text(alphabet="abc123-_.", min_size=1, max_size=8)),
                  st.sampled_from(["example.com", "192.0.2.1", "[::1]"]))


@settings(max_examples=300, deadline=None)
@given(_uris, _display, st.lists(st.tuples(_tokens, st.one_of(st.none(), _tokens)), max_size=3))
def test_name_addr_str_parse_round_trip(uri: SipUri, display: str | None,
                                        params: list[tuple[str, str | None]]) -> None:
    params = [(n, v) for n, v in params if n.lower() != "tag"]
    addr = NameAddr(uri, display, tuple(params))
    again = NameAddr.parse(str(addr))
    expected = None if display is None else display.replace("\r", "").replace("\n", "")
    assert again.display_name == expected
    assert again.uri == uri
    assert again.params == tuple(params)
    assert str(NameAddr.parse(str(again))) == str(again)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["UDP", "TCP", "TLS", "WS", "SCTP"]),
       st.sampled_from(["192.0.2.1", "pc33.example.dk", "[2001:db8::1]"]),
       st.one_of(st.none(), st.integers(0, 65535)), _tokens)
def test_via_str_parse_round_trip(transport: str, host: str, port: int | None,
                                  branch: str) -> None:
    via = Via(transport, host, port, (("branch", "z9hG4bK" + branch), ("rport", None)))
    assert Via.parse(str(via)) == via


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_header_parsers_raise_only_sip_parse_error(text: str) -> None:
    for parse in (Via.parse, NameAddr.parse, CSeq.parse, parse_content_length,
                  parse_max_forwards, parse_call_id):
        try:
            parse(text)
        except SipParseError as error:
            assert error.status in (400, 416)
