"""SIP, SIPS and tel URIs: parsing, serialization, escaping, RFC 3261 §19.1.4 equivalence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.uri import SipUri


def test_full_sip_uri_keeps_every_part() -> None:
    uri = SipUri.parse("sips:alice:secret@Atlanta.Example.COM:5061;transport=TLS;lr;maddr=192.0.2.1"
                       "?subject=project%20x&priority=urgent")
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "Atlanta.Example.COM"
    assert uri.port == 5061
    assert uri.params == (("transport", "TLS"), ("lr", None), ("maddr", "192.0.2.1"))
    assert uri.headers == (("subject", "project%20x"), ("priority", "urgent"))
    assert uri.transport == "tls"
    assert uri.lr is True
    assert uri.maddr == "192.0.2.1"
    assert str(uri) == ("sips:alice:secret@Atlanta.Example.COM:5061;transport=TLS;lr;"
                        "maddr=192.0.2.1?subject=project%20x&priority=urgent")


def test_host_only_and_ipv4_and_ipv6() -> None:
    assert SipUri.parse("sip:example.com") == SipUri("sip", "example.com")
    v4 = SipUri.parse("sip:192.0.2.10:5070")
    assert (v4.user, v4.host, v4.port) == (None, "192.0.2.10", 5070)
    v6 = SipUri.parse("sip:room@[2001:db8::10]:5061;transport=tls")
    assert (v6.user, v6.host, v6.port, v6.transport) == ("room", "[2001:db8::10]", 5061, "tls")
    assert str(v6) == "sip:room@[2001:db8::10]:5061;transport=tls"


def test_scheme_is_case_insensitive_and_lowered() -> None:
    uri = SipUri.parse("SIP:Bob@Biloxi.example.com")
    assert uri.scheme == "sip"
    assert str(uri) == "sip:Bob@Biloxi.example.com"


def test_tel_uri_keeps_number_in_user() -> None:
    uri = SipUri.parse("tel:+45-33-12-34-56;phone-context=example.dk")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+45-33-12-34-56", "")
    assert uri.param("phone-context") == "example.dk"
    assert str(uri) == "tel:+45-33-12-34-56;phone-context=example.dk"


def test_user_may_hold_semicolons_question_marks_and_a_password() -> None:
    # RFC 4475 §3.1.1.2: the user part runs to the '@', whatever user-unreserved it holds.
    uri = SipUri.parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*"
                       "pas$wo~d_too.(doesn't-it)@example.com")
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert uri.params == ()


def test_escapes_are_kept_and_resolved_on_demand() -> None:
    uri = SipUri.parse("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.unescaped_user == "sips:user@example.com"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"


def test_escaped_nulls_are_distinct_users() -> None:
    one = SipUri.parse("sip:%00@host5.example.com")
    two = SipUri.parse("sip:%00%00@host5.example.com")
    assert one.unescaped_user == "\x00"
    assert two.unescaped_user == "\x00\x00"
    assert one != two


@pytest.mark.parametrize(("text", "status"), [
    ("http://example.com/", 416),
    ("nobodyKnowsThisScheme:totallyopaquecontent", 416),
    ("soap.beep://192.0.2.103:3002", 416),
    ("<sip:user@example.com>", 400),
    ("user@example.com", 400),
    ("sip:", 400),
    ("sip:@example.com", 400),
    ("sip:user@", 400),
    ("sip:user@exa mple.com", 400),
    ("sip:user@example.com:70000", 400),
    ("sip:user@example.com:50x", 400),
    ("sip:user@[2001:db8::zz]", 400),
    ("sip:user@[2001:db8::1", 400),
    ("sip:user@example.com;;lr", 400),
    ("sip:user@example.com;name=", 400),
    ("sip:user@example.com?noequals", 400),
    ("sip:us er@example.com", 400),
    ("sip:user@a@example.com", 400),
    ("tel:", 400),
    ("tel:+45 33", 400),
])
def test_malformed_and_unsupported_uris(text: str, status: int) -> None:
    with pytest.raises(SipParseError) as caught:
        SipUri.parse(text)
    assert caught.value.status == status


def test_constructing_an_unsafe_uri_is_refused() -> None:
    with pytest.raises(SipParseError):
        SipUri("sip", "example.com", user="evil\r\nVia: x")
    with pytest.raises(SipParseError):
        SipUri("sip", "example.com", params=(("x", "a>b"),))
    with pytest.raises(SipParseError) as caught:
        SipUri("http", "example.com")
    assert caught.value.status == 416


def test_with_param_replaces_case_insensitively_and_without_param_removes() -> None:
    uri = SipUri.parse("sip:node.example.dk;Transport=udp;lr")
    tls = uri.with_param("transport", "tls")
    assert str(tls) == "sip:node.example.dk;lr;transport=tls"
    assert str(tls.without_param("LR")) == "sip:node.example.dk;transport=tls"
    assert uri.has_param("TRANSPORT") and not uri.has_param("maddr")
    assert uri.param("lr") is None and uri.param("absent") is None


# RFC 3261 §19.1.4, the examples it gives, verbatim.
@pytest.mark.parametrize(("a", "b"), [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:room@[2001:db8:0:0::10]", "sip:room@[2001:DB8::10]"),
])
def test_equivalent_uris(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert ua == ub
    assert ub == ua
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize(("a", "b"), [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"),
    # Unescaping is not recursive (RFC 4475 §3.1.1.3): value%41 is not valueA.
    ("sip:h.example.net;name=v%61lue%25%34%31", "sip:h.example.net;name=valueA"),
])
def test_non_equivalent_uris(a: str, b: str) -> None:
    assert SipUri.parse(a) != SipUri.parse(b)


def test_escaped_parameter_equals_its_plain_spelling() -> None:
    assert (SipUri.parse("sip:h.example.net;%6C%72;n%61me=v%61lue%25%34%31")
            == SipUri.parse("sip:h.example.net;lr;name=value%2541"))


# --- properties -------------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_escape = st.sampled_from(["%41", "%20", "%00", "%3A", "%40", "%e2%82%ac"])
_users = st.lists(st.one_of(st.sampled_from(list(_ALNUM + "-_.!~*'()&=+$,;?/")), _escape),
                  min_size=1, max_size=12).map("".join)
_labels = st.text(alphabet=_ALNUM, min_size=1, max_size=8)
_hosts = st.one_of(
    st.lists(_labels, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["[::1]", "[2001:db8::10]", "[fe80::1:2:3:4]"]),
)
_pchars = st.lists(st.one_of(st.sampled_from(list(_ALNUM + "-_.!~*'()[]/:&+$")), _escape),
                   min_size=1, max_size=8).map("".join)
_params = st.lists(st.tuples(_pchars, st.one_of(st.none(), _pchars)), max_size=4).map(tuple)
_sip_uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    host=_hosts,
    user=st.one_of(st.none(), _users),
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=_params,
)


@settings(max_examples=300, deadline=None)
@given(_sip_uris)
def test_str_then_parse_gives_the_same_uri_and_text(uri: SipUri) -> None:
    again = SipUri.parse(str(uri))
    assert again == uri
    assert str(again) == str(uri)
    assert (again.user, again.host, again.port, again.params) == (
        uri.user, uri.host, uri.port, uri.params)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_raises_only_sip_parse_error(text: str) -> None:
    try:
        uri = SipUri.parse(text)
    except SipParseError as error:
        assert error.status in (400, 416)
    else:
        assert SipUri.parse(str(uri)) == uri
