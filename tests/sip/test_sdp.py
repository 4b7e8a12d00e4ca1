"""The SDP model: real-world offers round-trip, helpers read them, garbage is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.transport.sip.sdes import CryptoAttribute, SdesSuite
from confnode.transport.sip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    Fingerprint,
    MediaDescription,
    Origin,
    RtcpAddress,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
    parse_sdp,
)

K80 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"
K32 = "KCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RF"
KGCM128 = "UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqaw=="
KGCM256 = "eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqM="
KAES256CM = "qqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW1w=="


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# baresip with mediaenc=srtp-mand: RTP/SAVP, every suite it knows, G.711 and DTMF.
BARESIP = f"""v=0
o=- 1936250447 3587049155 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
m=audio 10306 RTP/SAVP 0 8 101
b=AS:64
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:2790372212 cname:e1b6a6ef-0b7c-4d3c-8b63-1dc6f0cbd9c2
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{K32}
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K80}
a=crypto:3 AEAD_AES_128_GCM inline:{KGCM128}
a=crypto:4 AEAD_AES_256_GCM inline:{KGCM256}
a=ptime:20
"""

# linphone with SRTP mandatory: AES_256_CM first (pylibsrtp cannot key it), opus, several
# telephone-event clock rates, VP8 and a Baseline H.264 without packetization-mode.
LINPHONE = f"""v=0
o=caller 3456 789 IN IP4 192.168.1.30
s=Talk
c=IN IP4 192.168.1.30
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/SAVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KAES256CM}
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K80}
a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{K32}
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/SAVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KAES256CM}
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K80}
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 ccm fir
a=rtcp-fb:97 nack pli
a=rtcp-fb:97 ccm fir
"""

ROOM_MAIN_H264 = ("profile-level-id=428016;max-br=5000;max-mbps=245000;max-fs=9000;"
                  "max-smbps=245000;max-fps=6000;packetization-mode=1")

# A Cisco/Polycom-style room system: AAC-LD first, H.264 in packetization-mode 1 and 0,
# main video plus presentation (a=content:slides) and BFCP for the floor.
ROOM_SYSTEM = f"""v=0
o=tandberg 7 1 IN IP4 10.1.1.50
s=-
c=IN IP4 10.1.1.50
b=CT:6000
t=0 0
m=audio 2326 RTP/SAVP 108 101 9 8 0
b=TIAS:64000
a=rtpmap:108 MP4A-LATM/90000
a=fmtp:108 profile-level-id=24;object=23;bitrate=64000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtpmap:9 G722/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^48
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K32}|2^48
a=sendrecv
m=video 2328 RTP/SAVP 126 97 34 31
b=TIAS:6000000
a=rtpmap:126 H264/90000
a=fmtp:126 {ROOM_MAIN_H264}
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=428016;max-br=5000;max-mbps=245000;max-fs=9000;packetization-mode=0
a=rtpmap:34 H263/90000
a=fmtp:34 CIF4=1;CIF=1;QCIF=1
a=rtpmap:31 H261/90000
a=rtcp-fb:* nack pli
a=rtcp-fb:* ccm fir
a=content:main
a=label:11
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^48
a=sendrecv
m=video 2330 RTP/SAVP 126 97
b=TIAS:6000000
a=rtpmap:126 H264/90000
a=fmtp:126 profile-level-id=428016;packetization-mode=1
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=428016;packetization-mode=0
a=content:slides
a=label:12
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^48
a=sendrecv
m=application 5070 UDP/BFCP *
a=floorctrl:c-s
a=confid:1
a=floorid:2 mstrm:12
a=userid:7
a=setup:actpass
a=connection:new
"""

# A PSTN gateway: plain RTP, PCMA first, G.729 without annex B, DTMF.
PSTN_GATEWAY = """v=0
o=AudiocodesGW 1234 5678 IN IP4 203.0.113.5
s=Phone-Call
c=IN IP4 203.0.113.5
t=0 0
m=audio 6000 RTP/AVP 8 0 18 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""

REAL_WORLD = [BARESIP, LINPHONE, ROOM_SYSTEM, PSTN_GATEWAY]


@pytest.mark.parametrize("text", REAL_WORLD, ids=["baresip", "linphone", "room", "pstn"])
def test_real_world_offers_round_trip_exactly(text: str) -> None:
    parsed = parse_sdp(crlf(text))
    assert parsed.serialize() == crlf(text)
    assert parse_sdp(text) == parsed  # LF-only bodies parse the same
    assert parse_sdp(parsed.serialize()) == parsed


def test_baresip_model() -> None:
    sdp = parse_sdp(BARESIP)
    assert sdp.origin == Origin("-", 1936250447, 3587049155, "192.168.1.20")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("192.168.1.20")
    assert sdp.timings == (Timing(0, 0),)
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio", 10306, "RTP/SAVP", ("0", "8", "101"))
    assert audio.payload_types == (0, 8, 101)
    assert audio.bandwidths == (Bandwidth("AS", 64),)
    assert audio.max_bandwidth_kbps == 64
    assert audio.rtpmaps() == {0: RtpMap("PCMU", 8000, 1), 8: RtpMap("PCMA", 8000, 1),
                               101: RtpMap("telephone-event", 8000, 1)}
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp_parameters(101) == {"0-15": ""}
    assert audio.telephone_event_pt == 101
    assert audio.ptime == 20
    assert audio.direction is Direction.SENDRECV
    assert audio.rtcp_mux is False
    assert audio.rtcp is None
    assert [(c.tag, c.suite) for c in audio.crypto] == [
        (1, "AES_CM_128_HMAC_SHA1_32"), (2, "AES_CM_128_HMAC_SHA1_80"),
        (3, "AEAD_AES_128_GCM"), (4, "AEAD_AES_256_GCM")]
    assert audio.crypto[3].sdes_suite is SdesSuite.AEAD_AES_256_GCM
    # Unknown attributes are kept, in order.
    assert [a.name for a in audio.attributes] == [
        "rtpmap", "rtpmap", "rtpmap", "fmtp", "sendrecv", "label", "rtcp-rsize", "ssrc",
        "crypto", "crypto", "crypto", "crypto", "ptime"]
    assert audio.attributes[6] == Attribute("rtcp-rsize", None)


def test_linphone_model() -> None:
    sdp = parse_sdp(LINPHONE)
    assert sdp.attribute("record") == "off"
    audio, video = sdp.media
    maps = audio.rtpmaps()
    # Static payload types without a=rtpmap get their RFC 3551 meaning.
    assert maps[0] == RtpMap("PCMU", 8000) and maps[18] == RtpMap("G729", 8000)
    assert maps[96] == RtpMap("opus", 48000, 2)
    assert list(maps) == [96, 97, 98, 0, 8, 18, 101, 99, 100]  # offer order
    assert audio.telephone_event_pt == 101
    assert audio.telephone_event_pt_for(8000) == 100
    assert audio.telephone_event_pt_for(16000) == 99
    assert audio.telephone_event_pt_for(44100) is None
    assert audio.fmtp_parameters(18) == {"annexb": "yes"}
    assert video.rtcp_feedback(96) == ("trr-int 1000", "ccm tmmbr", "nack pli", "ccm fir")
    assert video.fmtp_parameters(97) == {"profile-level-id": "42801F"}
    assert sdp.media_direction(video) is Direction.SENDRECV  # none given: the default


def test_room_system_model() -> None:
    sdp = parse_sdp(ROOM_SYSTEM)
    assert sdp.bandwidths == (Bandwidth("CT", 6000),)
    audio, main, slides, bfcp = sdp.media
    assert audio.max_bandwidth_kbps == 64  # from TIAS in bit/s
    assert main.content == "main" and slides.content == "slides"
    assert main.fmtp_parameters(126)["packetization-mode"] == "1"
    assert main.fmtp_parameters(97)["max-fs"] == "9000"
    assert main.rtpmaps()[34] == RtpMap("H263", 90000)
    assert audio.crypto[0].key_params[0].lifetime == 2**48
    assert (bfcp.media, bfcp.proto, bfcp.formats, bfcp.payload_types) == (
        "application", "UDP/BFCP", ("*",), ())
    assert bfcp.is_rtp is False
    assert bfcp.setup == "actpass"
    assert bfcp.attribute("floorid") == "2 mstrm:12"


def test_session_level_defaults_for_direction_fingerprint_and_setup() -> None:
    sdp = parse_sdp(crlf("""v=0
o=- 1 1 IN IP6 2001:db8::1
s=
c=IN IP6 2001:db8::1
t=0 0
a=sendonly
a=fingerprint:SHA-256 AB:CD:EF:01
a=setup:actpass
m=audio 5004 UDP/TLS/RTP/SAVP 0
a=rtcp:5005 IN IP6 2001:db8::2
m=video 5006 UDP/TLS/RTP/SAVPF 96
a=rtpmap:96 VP8/90000
a=inactive
a=fingerprint:sha-1 00:11
a=setup:passive
a=rtcp-mux
"""))
    assert sdp.session_name == ""
    audio, video = sdp.media
    assert audio.direction is None and sdp.media_direction(audio) is Direction.SENDONLY
    assert sdp.media_direction(video) is Direction.INACTIVE
    assert sdp.media_fingerprints(audio) == (Fingerprint("sha-256", "AB:CD:EF:01"),)
    assert sdp.media_fingerprints(video) == (Fingerprint("sha-1", "00:11"),)
    assert sdp.media_setup(audio) == "actpass" and sdp.media_setup(video) == "passive"
    assert audio.rtcp == RtcpAddress(5005, "2001:db8::2", "IP6", "IN")
    assert video.rtcp_mux is True
    assert sdp.media_connection(audio) == Connection("2001:db8::1", "IP6")
    assert sdp.serialize().startswith("v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns= \r\n")


def test_optional_session_lines_round_trip() -> None:
    text = crlf("""v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
b=AS:128
t=2873397496 2873404696
r=7d 1h 0 25h
t=0 0
z=2882844526 -1h 2898848070 0
a=recvonly
m=audio 49170/2 RTP/AVP 0
i=the audio
c=IN IP4 224.2.17.12/127/3
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
""")
    sdp = parse_sdp(text)
    assert sdp.serialize() == text
    assert sdp.connection == Connection("224.2.17.12", ttl=127)
    assert sdp.media[0].connection == Connection("224.2.17.12", ttl=127, count=3)
    assert sdp.media[0].port_count == 2
    assert sdp.timings[0].repeats == ("7d 1h 0 25h",)
    assert sdp.time_zones == "2882844526 -1h 2898848070 0"
    assert sdp.emails == ("j.doe@example.com (Jane Doe)",)


def test_tolerant_of_trailing_blanks_and_trailing_empty_lines() -> None:
    text = "v=0 \no=- 1 1 IN IP4 192.0.2.1\ns=-\t\nc=IN IP4 192.0.2.1\nt=0 0\n\n\n"
    sdp = parse_sdp(text)
    assert sdp.session_name == "-"
    assert parse_sdp(text.encode()) == sdp


def test_k_line_is_dropped_not_kept() -> None:
    sdp = parse_sdp(crlf("""v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
k=clear:secretsecret
m=audio 4000 RTP/AVP 0
k=base64:c2VjcmV0
"""))
    assert "secret" not in sdp.serialize()
    assert "c2VjcmV0" not in sdp.serialize()
    assert "k=" not in sdp.serialize()


def test_repr_redacts_sdes_keys_and_mikey() -> None:
    sdp = parse_sdp(BARESIP.replace("a=ptime:20", "a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAsA"))
    shown = repr(sdp) + str(sdp) + repr(sdp.media[0]) + repr(sdp.media[0].attributes)
    for key in (K80, K32, KGCM128, KGCM256, "AQAFgM0XflABAAAAAAAAAAAAAAsA"):
        assert key not in shown
    assert "inline:[redacted]" in shown
    assert "AES_CM_128_HMAC_SHA1_80" in shown
    assert K80 in sdp.serialize()  # the wire form keeps the key, of course


def test_a_model_built_in_code_serializes() -> None:
    crypto = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}")
    sdp = SessionDescription(
        origin=Origin("confnode", 42, 1, "192.0.2.1"), session_name="confnode",
        connection=Connection("192.0.2.1"),
        media=(MediaDescription(media="audio", port=5000, proto="RTP/SAVP", formats=("0",),
                                attributes=(Attribute("rtpmap", "0 PCMU/8000"),
                                            Attribute("crypto", crypto.serialize()),
                                            Attribute("sendrecv"))),))
    assert sdp.serialize() == crlf(f"""v=0
o=confnode 42 1 IN IP4 192.0.2.1
s=confnode
c=IN IP4 192.0.2.1
t=0 0
m=audio 5000 RTP/SAVP 0
a=rtpmap:0 PCMU/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}
a=sendrecv
""")
    assert parse_sdp(sdp.serialize()) == sdp


def test_rejected_line_without_formats_is_tolerated() -> None:
    sdp = parse_sdp("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=video 0 RTP/AVP\n")
    assert sdp.media[0].formats == () and sdp.media[0].port == 0


HEAD = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"


@pytest.mark.parametrize(("text", "status"), [
    ("", 400),
    ("hello world", 400),
    ("<html><body>not sdp</body></html>", 400),
    ("v=0\r\n", 400),  # no o=
    ("o=- 1 1 IN IP4 192.0.2.1\nv=0\ns=-\nt=0 0\n", 400),  # v= not first
    ("v=1\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n", 488),  # another SDP version
    ("v=0\no=- 1 1 IN IP4\ns=-\nt=0 0\n", 400),  # o= short a field
    ("v=0\no=- x 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n", 400),  # session id not a number
    ("v=0\no=- 1 1 ATM NSAP 47.0005\ns=-\nt=0 0\n", 488),  # another network type
    ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\n", 400),  # no t=
    ("v=0\no=- 1 1 IN IP4 192.0.2.1\nt=0 0\n", 400),  # no s=
    (HEAD + "x=unknown\n", 488),  # RFC 8866 §5: unknown type letters are refused
    (HEAD + "V=0\n", 400),  # type letters are lower case
    (HEAD + "a =rtcp-mux\n", 400),
    (HEAD + "o=- 2 2 IN IP4 192.0.2.1\n", 400),  # a second o=
    (HEAD + "c=IN IP4 192.0.2.2\n", 400),  # a second session c=
    (HEAD + "t=0\n", 400),
    (HEAD.replace("t=0 0\n", "r=7d\nt=0 0\n"), 400),  # r= before any t=
    (HEAD + "b=AS\n", 400),
    (HEAD + "b=AS:fast\n", 400),
    (HEAD + "m=audio\n", 400),
    (HEAD + "m=audio x RTP/AVP 0\n", 400),
    (HEAD + "m=audio 70000 RTP/AVP 0\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP\n", 400),  # an active line needs formats
    (HEAD + "m=audio 4000 RTP/AVP PCMU\n", 400),  # RTP formats are payload type numbers
    (HEAD + "m=audio 4000 RTP/AVP 128\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\nt=0 0\n", 400),  # t= inside a media section
    (HEAD + "m=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.3\nc=IN IP4 192.0.2.4\n", 488),
    (HEAD + "m=audio 4000 RTP/AVP 0\ni=a\ni=b\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.3/x\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 96\na=rtpmap:96 opus\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 96\na=rtpmap:200 opus/48000\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 96\na=rtpmap\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=rtcp:x\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=rtcp:4001 IN IP4\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=ptime:twenty\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=sendrecv:yes\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=rtcp-mux:1\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=fingerprint:sha-256 XYZ\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=setup:sometimes\n", 488),
    (HEAD + "m=audio 4000 RTP/AVP 0\na=bad name:1\n", 400),
    (HEAD + "m=audio 4000 RTP/AVP 0\n\na=sendrecv\n", 400),  # empty line inside
    (HEAD + "m=audio 4000 RTP/AVP 0\ra=sendrecv\n", 400),  # a bare CR
    (HEAD + "s=\x00\n", 400),
    ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n", 400),  # no c=
])
def test_garbage_is_refused_with_the_right_status(text: str, status: int) -> None:
    with pytest.raises(SdpError) as caught:
        parse_sdp(text)
    assert caught.value.status == status
    assert caught.value.code == "sdp_invalid"


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(SdpError) as caught:
        parse_sdp(HEAD.encode() + b"s=\xff\n")
    assert caught.value.status == 400


def test_errors_name_the_line_but_never_echo_it() -> None:
    text = HEAD + f"m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n" \
        + f"a crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n"
    with pytest.raises(SdpError) as caught:
        parse_sdp(text)
    assert caught.value.line == 8
    assert "line 8" in str(caught.value)
    for shown in (str(caught.value), repr(caught.value), repr(caught.value.details)):
        assert K80 not in shown and "inline" not in shown and "crypto" not in shown


def test_malformed_crypto_lines_parse_but_are_skipped_by_the_helper() -> None:
    sdp = parse_sdp(HEAD + "m=audio 4000 RTP/SAVP 0\na=crypto:garbage\n"
                    + f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert [c.tag for c in sdp.media[0].crypto] == [2]
    assert sdp.media[0].attribute_values("crypto")[0] == "garbage"


def test_direction_mirroring() -> None:
    assert Direction.SENDRECV.mirrored() is Direction.SENDRECV
    assert Direction.SENDONLY.mirrored() is Direction.RECVONLY
    assert Direction.RECVONLY.mirrored() is Direction.SENDONLY
    assert Direction.INACTIVE.mirrored() is Direction.INACTIVE


# -- hypothesis: any model we can build survives serialize -> parse ---------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._+!*~"
_CHECKED = {"rtpmap", "fmtp", "rtcp", "ptime", "maxptime", "fingerprint", "setup", "rtcp-mux",
            "sendrecv", "sendonly", "recvonly", "inactive"}
tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
# Free text: no control characters, no surrogates, and not ending in a blank (trailing blanks
# are stripped by the tolerant parser, so they are not part of any model it can produce).
free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30,
).filter(lambda s: s == s.rstrip(" \t"))
small_ints = st.integers(min_value=0, max_value=2**64)


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    if draw(st.booleans()):
        count = draw(st.none() | st.integers(1, 9))
        return Connection(draw(tokens.filter(lambda t: "/" not in t)), "IP6", count=count)
    ttl = draw(st.none() | st.integers(0, 255))
    count = draw(st.none() | st.integers(1, 9)) if ttl is not None else None
    return Connection(draw(tokens), "IP4", ttl=ttl, count=count)


@st.composite
def attributes(draw: st.DrawFn) -> Attribute:
    kind = draw(st.sampled_from(["generic", "flag", "direction", "rtpmap", "crypto", "ptime",
                                 "fmtp", "rtcp", "setup", "fingerprint"]))
    if kind == "generic":
        name = draw(tokens.filter(lambda n: n not in _CHECKED))
        return Attribute(name, draw(st.none() | free_text))
    if kind == "flag":
        return Attribute("rtcp-mux")
    if kind == "direction":
        return Attribute(draw(st.sampled_from([d.value for d in Direction])))
    if kind == "rtpmap":
        channels = draw(st.sampled_from(["", "/2"]))
        return Attribute("rtpmap", f"{draw(st.integers(0, 127))} {draw(tokens)}/"
                                   f"{draw(st.integers(1, 96000))}{channels}")
    if kind == "crypto":
        suite = draw(st.sampled_from(list(SdesSuite)))
        key = draw(st.binary(min_size=suite.key_salt_length, max_size=suite.key_salt_length))
        line = CryptoAttribute.generate(draw(st.integers(0, 99)), suite, lambda n: key)
        return Attribute("crypto", line.serialize())
    if kind == "ptime":
        return Attribute("ptime", str(draw(st.integers(1, 200))))
    if kind == "fmtp":
        return Attribute("fmtp", f"{draw(st.integers(0, 127))} {draw(tokens)}={draw(tokens)}")
    if kind == "rtcp":
        return Attribute("rtcp", str(draw(st.integers(0, 65535))))
    if kind == "setup":
        return Attribute("setup", draw(st.sampled_from(["active", "passive", "actpass"])))
    digest = ":".join(f"{b:02X}" for b in draw(st.binary(min_size=1, max_size=32)))
    return Attribute("fingerprint", f"sha-256 {digest}")


@st.composite
def media_descriptions(draw: st.DrawFn) -> MediaDescription:
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF",
                                  "UDP/BFCP", "udptl"]))
    port = draw(st.integers(0, 65535))
    if proto.upper().startswith(("RTP/", "UDP/TLS")):
        formats = draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=6))
    else:
        formats = draw(st.lists(tokens, min_size=1, max_size=3))
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video", "application", "text"])), port=port,
        proto=proto, formats=tuple(formats), port_count=draw(st.none() | st.integers(1, 4)),
        information=draw(st.none() | free_text), connection=draw(st.none() | connections()),
        bandwidths=tuple(draw(st.lists(st.builds(Bandwidth, tokens, small_ints), max_size=2))),
        attributes=tuple(draw(st.lists(attributes(), max_size=6))))


@st.composite
def sessions(draw: st.DrawFn) -> SessionDescription:
    timings = draw(st.lists(st.builds(Timing, small_ints, small_ints,
                                      st.lists(free_text.filter(bool), max_size=2).map(tuple)),
                            min_size=1, max_size=2))
    return SessionDescription(
        origin=Origin(draw(tokens), draw(small_ints), draw(small_ints), draw(tokens),
                      draw(st.sampled_from(["IP4", "IP6"]))),
        session_name=draw(free_text), information=draw(st.none() | free_text),
        uri=draw(st.none() | free_text), emails=tuple(draw(st.lists(free_text, max_size=2))),
        phones=tuple(draw(st.lists(free_text, max_size=2))),
        # A session-level c= covers every media line, as parse_sdp requires for active lines.
        connection=draw(connections()),
        bandwidths=tuple(draw(st.lists(st.builds(Bandwidth, tokens, small_ints), max_size=2))),
        timings=tuple(timings), time_zones=draw(st.none() | free_text),
        attributes=tuple(draw(st.lists(attributes(), max_size=4))),
        media=tuple(draw(st.lists(media_descriptions(), max_size=4))))


@settings(max_examples=300)
@given(sessions())
def test_parse_serialize_round_trips(sdp: SessionDescription) -> None:
    text = sdp.serialize()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    parsed = parse_sdp(text)
    assert parsed == sdp
    assert parsed.serialize() == text


@given(sessions())
def test_repr_never_contains_crypto_keys(sdp: SessionDescription) -> None:
    shown = repr(sdp)
    for media in (*sdp.media, None):
        attrs = media.attributes if media is not None else sdp.attributes
        for value in (a.value for a in attrs if a.name == "crypto"):
            assert value is not None
            key = value.split("inline:")[1].split()[0]
            assert key not in shown
