"""The answerer: literal offers, exact answers, every refusal, re-INVITEs, usable SRTP keys."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session
from test_sdp import BARESIP, K32, K80, KAES256CM, KGCM128, KGCM256, LINPHONE, PSTN_GATEWAY
from test_sdp import ROOM_SYSTEM as ROOM

from confnode.transport.sip.negotiation import (
    H264_LEVEL_1B,
    H264Profile,
    MediaKind,
    MediaSecurity,
    NegotiatedSession,
    NotAcceptable,
    RejectReason,
    TransportAddress,
    answer_offer,
    h264_profile,
    is_hold,
    renegotiate,
)
from confnode.transport.sip.sdes import CryptoAttribute, SdesSuite
from confnode.transport.sip.sdp import Direction, Fingerprint, SessionDescription, parse_sdp

PORTS = {0: (40000, 40001), 1: (40002, 40003), 2: (40004, 40005), 3: (40006, 40007)}
# What counting_bytes() draws first, base64-encoded, for each key size.
ANSWER_K80 = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9"
ANSWER_KGCM128 = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6uw=="
ANSWER_KGCM256 = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr/AwcLDxMXGx8jJyss="
# And the second AES_CM_128 key it draws.
ANSWER_K80_SECOND = "vr/AwcLDxMXGx8jJysvMzc7P0NHS09TV1tfY2drb"
OUR_FINGERPRINT = Fingerprint("sha-256", "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:"
                                         "19:E5:7C:AB:3A:29:4A:93:2E:44:B9:1E:EE:9E:6A:D5")
RTP_PACKET = bytes.fromhex("8000 0001 000000a0 12345678") + b"\xd5" * 160
RTCP_PACKET = bytes.fromhex("80c80006 12345678 00000000 00000000 00000000 00000001 000000a0")


def counting_bytes(start: int = 0xA0) -> Callable[[int], bytes]:
    """A deterministic stand-in for secrets.token_bytes, so answers can be compared exactly."""
    state = [start]

    def draw(n: int) -> bytes:
        out = bytes((state[0] + i) % 256 for i in range(n))
        state[0] += n
        return out

    return draw


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def offer(media: str, session: str = "", address: str = "198.51.100.7") -> SessionDescription:
    return parse_sdp(f"v=0\no=- 5 5 IN IP4 {address}\ns=-\nc=IN IP4 {address}\nt=0 0\n"
                     f"{session}{media}")


def answer(sdp: SessionDescription, **overrides: object) -> NegotiatedSession:
    arguments: dict[str, object] = {
        "local_address": "192.0.2.10", "ports": PORTS, "over_tls": True, "session_id": 1001,
        "random_bytes": counting_bytes()}
    arguments.update(overrides)
    return answer_offer(sdp, **arguments)  # type: ignore[arg-type]


def refused(sdp: SessionDescription, **overrides: object) -> NotAcceptable:
    with pytest.raises(NotAcceptable) as caught:
        answer(sdp, **overrides)
    assert caught.value.status == 488
    return caught.value


def media_text(sdp: SessionDescription, index: int = 0) -> str:
    return "\n".join(sdp.media[index].serialize_lines()) + "\n"


SAVP_PCMU = "m=audio 4000 RTP/SAVP 0\na=rtpmap:0 PCMU/8000\n"


# -- real-world offers, exact answers -----------------------------------------------------------


def test_baresip_gets_aead_aes_256_gcm_and_pcmu() -> None:
    session = answer(parse_sdp(BARESIP))
    assert session.answer.serialize() == crlf(f"""v=0
o=confnode 1001 0 IN IP4 192.0.2.10
s=confnode
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/SAVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=crypto:4 AEAD_AES_256_GCM inline:{ANSWER_KGCM256}
a=sendrecv
""")
    audio = session.audio
    assert audio is not None and session.video is None
    assert audio.security is MediaSecurity.SDES
    assert audio.codec.name == "PCMU" and audio.codec.payload_type == 0
    assert audio.telephone_event_pt == 101
    assert audio.remote_rtp == TransportAddress("192.168.1.20", 10306)
    assert audio.remote_rtcp == TransportAddress("192.168.1.20", 10307)
    assert (audio.local_rtp_port, audio.local_rtcp_port) == (40000, 40001)
    assert audio.remote_ptime == 20 and audio.remote_max_kbps == 64
    assert audio.srtp is not None
    assert audio.srtp.suite is SdesSuite.AEAD_AES_256_GCM and audio.srtp.tag == 4
    assert audio.srtp.remote_key == base64.b64decode(KGCM256)
    assert audio.srtp.local_key == base64.b64decode(ANSWER_KGCM256)


def test_linphone_offering_aes_256_cm_first_gets_aes_cm_128_80_opus_and_vp8() -> None:
    session = answer(parse_sdp(LINPHONE))
    assert session.answer.serialize() == crlf(f"""v=0
o=confnode 1001 0 IN IP4 192.0.2.10
s=confnode
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/SAVP 96 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/48000
a=fmtp:101 0-15
a=ptime:20
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{ANSWER_K80}
a=sendrecv
m=video 40002 RTP/SAVP 96
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 ccm fir
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{ANSWER_K80_SECOND}
a=sendrecv
""")
    audio, video = session.media
    # telephone-event follows the codec's clock rate (RFC 4733): 48000 for opus, not 8000.
    assert audio.telephone_event_pt == 101
    assert (audio.codec.clock_rate, audio.codec.channels) == (48000, 2)
    assert video.kind is MediaKind.VIDEO and video.codec.feedback == ("nack pli", "ccm fir")
    # Each stream has its own key.
    assert audio.srtp is not None and video.srtp is not None
    assert audio.srtp.local_key != video.srtp.local_key


def test_room_system_keeps_main_video_and_rejects_slides_and_bfcp_in_place() -> None:
    session = answer(parse_sdp(ROOM))
    assert session.answer.serialize() == crlf(f"""v=0
o=confnode 1001 0 IN IP4 192.0.2.10
s=confnode
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/SAVP 9 101
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{ANSWER_K80}
a=sendrecv
m=video 40002 RTP/SAVP 126
a=rtpmap:126 H264/90000
a=fmtp:126 profile-level-id=420016;packetization-mode=1
a=rtcp-fb:126 nack pli
a=rtcp-fb:126 ccm fir
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{ANSWER_K80_SECOND}
a=sendrecv
m=video 0 RTP/SAVP 126 97
m=application 0 UDP/BFCP *
""")
    assert [(r.index, r.reason) for r in session.rejected] == [
        (2, RejectReason.PRESENTATION), (3, RejectReason.MEDIA_TYPE)]
    video = session.video
    assert video is not None and video.codec.h264 is not None
    assert video.codec.h264.profile is H264Profile.BASELINE
    assert video.codec.h264.packetization_mode == 1
    assert (video.codec.h264.receive_level, video.codec.h264.send_level) == (22, 22)
    assert video.codec.remote_fmtp is not None and "max-fs=9000" in video.codec.remote_fmtp
    assert video.remote_max_kbps == 6000
    assert session.ports == {0: (40000, 40001), 1: (40002, 40003)}


def test_pstn_gateway_plain_rtp_when_allowed_keeps_the_offer_codec_order() -> None:
    session = answer(parse_sdp(PSTN_GATEWAY), over_tls=False, allow_plain_rtp=True)
    assert session.answer.serialize() == crlf("""v=0
o=confnode 1001 0 IN IP4 192.0.2.10
s=confnode
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")
    audio = session.audio
    assert audio is not None and audio.security is MediaSecurity.PLAIN and audio.srtp is None


def test_pstn_gateway_plain_rtp_is_refused_by_default() -> None:
    error = refused(parse_sdp(PSTN_GATEWAY), over_tls=False)
    assert error.reason == RejectReason.PLAIN_RTP.value
    assert error.warning == 303


# -- SDES refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [BARESIP, LINPHONE, ROOM])
def test_sdes_over_plain_udp_or_tcp_is_refused_even_when_plain_rtp_is_allowed(text: str) -> None:
    for allow in (False, True):
        error = refused(parse_sdp(text), over_tls=False, allow_plain_rtp=allow)
        assert error.reason == RejectReason.SDES_WITHOUT_TLS.value


def test_only_32_bit_tag_suites_are_refused() -> None:
    sdp = offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{K32}\n")
    assert refused(sdp).reason == RejectReason.NO_CRYPTO_SUITE.value


@pytest.mark.parametrize("line", [
    f"NULL_HMAC_SHA1_80 inline:{K80}",
    f"F8_128_HMAC_SHA1_80 inline:{K80}",
    f"AES_CM_128_HMAC_SHA1_80 inline:{K80} UNENCRYPTED_SRTP",
    f"AES_CM_128_HMAC_SHA1_80 inline:{K80} UNENCRYPTED_SRTCP",
    f"AES_CM_128_HMAC_SHA1_80 inline:{K80} UNAUTHENTICATED_SRTP",
    f"AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^31|1:4",  # MKI
    f"AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^10",  # lifetime too short
    f"AES_256_CM_HMAC_SHA1_80 inline:{KAES256CM}",
    "AES_CM_128_HMAC_SHA1_80 inline:broken",
])
def test_weak_or_unusable_lines_alone_are_refused_and_skipped_beside_a_good_one(line: str) -> None:
    assert refused(offer(SAVP_PCMU + f"a=crypto:1 {line}\n")).reason == (
        RejectReason.NO_CRYPTO_SUITE.value)
    session = answer(offer(SAVP_PCMU + f"a=crypto:1 {line}\n"
                           f"a=crypto:2 AEAD_AES_128_GCM inline:{KGCM128}\n"))
    assert session.audio is not None and session.audio.srtp is not None
    assert (session.audio.srtp.tag, session.audio.srtp.suite) == (2, SdesSuite.AEAD_AES_128_GCM)
    assert f"a=crypto:2 AEAD_AES_128_GCM inline:{ANSWER_KGCM128}\n" in media_text(
        session.answer)


def test_aes_256_cm_first_then_aes_cm_128_80_is_answered_with_80() -> None:
    sdp = offer(SAVP_PCMU + f"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KAES256CM}\n"
                f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert media_text(answer(sdp).answer) == f"""m=audio 40000 RTP/SAVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{ANSWER_K80}
a=sendrecv
"""


def test_our_preference_beats_the_offer_order() -> None:
    sdp = offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n"
                f"a=crypto:2 AEAD_AES_128_GCM inline:{KGCM128}\n")
    keys = answer(sdp).media[0].srtp
    assert keys is not None and keys.suite is SdesSuite.AEAD_AES_128_GCM
    limited = answer(sdp, sdes_suites=[SdesSuite.AES_CM_128_HMAC_SHA1_80]).media[0].srtp
    assert limited is not None and limited.suite is SdesSuite.AES_CM_128_HMAC_SHA1_80


def test_savp_without_crypto_lines_is_refused() -> None:
    assert refused(offer(SAVP_PCMU)).reason == RejectReason.NO_CRYPTO_SUITE.value


def test_best_effort_srtp_on_rtp_avp_over_tls_is_answered_with_srtp() -> None:
    sdp = offer("m=audio 4000 RTP/AVP 0\n" f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(sdp)
    assert media_text(session.answer) == f"""m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{ANSWER_K80}
a=sendrecv
"""
    assert session.media[0].security is MediaSecurity.SDES


def test_best_effort_srtp_over_udp_never_echoes_keys() -> None:
    sdp = offer("m=audio 4000 RTP/AVP 0\n" f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert refused(sdp, over_tls=False).reason == RejectReason.SDES_WITHOUT_TLS.value
    plain = answer(sdp, over_tls=False, allow_plain_rtp=True)
    assert plain.media[0].security is MediaSecurity.PLAIN
    assert "crypto" not in plain.answer.serialize()


def test_best_effort_srtp_with_only_weak_suites_falls_back_only_if_plain_is_allowed() -> None:
    sdp = offer("m=audio 4000 RTP/AVP 0\n" f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{K32}\n")
    assert refused(sdp).reason == RejectReason.NO_CRYPTO_SUITE.value
    assert answer(sdp, allow_plain_rtp=True).media[0].security is MediaSecurity.PLAIN


# -- codecs -------------------------------------------------------------------------------------


def test_no_common_codec_is_refused() -> None:
    sdp = offer("m=audio 4000 RTP/SAVP 18 4\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    error = refused(sdp)
    assert (error.reason, error.warning) == (RejectReason.NO_CODEC.value, 305)


def test_offer_order_wins_within_a_band() -> None:
    sdp = offer("m=audio 4000 RTP/SAVP 8 0\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert answer(sdp).media[0].codec.name == "PCMA"  # our list has PCMU first: the offer wins
    sdp = offer("m=audio 4000 RTP/SAVP 9 96\na=rtpmap:96 opus/48000/2\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert answer(sdp).media[0].codec.name == "G722"


def test_wideband_g722_is_answered_before_a_g711_listed_first() -> None:
    sdp = offer("m=audio 4000 RTP/SAVP 0 8 9 101\na=rtpmap:101 telephone-event/8000\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(sdp)
    codec = session.media[0].codec
    # RFC 3551: static payload type 9, and an RTP clock of 8000 although G.722 samples at 16 kHz.
    assert (codec.name, codec.payload_type, codec.clock_rate) == ("G722", 9, 8000)
    assert session.media[0].telephone_event_pt == 101
    lines = session.answer.serialize()
    assert "m=audio" in lines and " RTP/SAVP 9 101\r\n" in lines
    assert "a=rtpmap:9 G722/8000\r\n" in lines
    # A node that leaves G.722 out answers G.711 in the offer's order.
    assert answer(sdp, supported_audio=["PCMA", "PCMU"]).media[0].codec.name == "PCMU"


def test_codec_names_are_case_insensitive_and_clock_rates_checked() -> None:
    sdp = offer("m=audio 4000 RTP/SAVP 96 97 98\na=rtpmap:96 OPUS/8000\n"
                "a=rtpmap:97 g722/8000\na=rtpmap:98 pcmu/8000\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    codec = answer(sdp).media[0].codec
    assert (codec.name, codec.payload_type) == ("G722", 97)  # opus at 8000 Hz is not opus


def test_telephone_event_is_dropped_when_no_clock_rate_matches() -> None:
    sdp = offer("m=audio 4000 RTP/SAVP 96 101\na=rtpmap:96 opus/48000/2\n"
                "a=rtpmap:101 telephone-event/8000\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(sdp)
    assert session.media[0].telephone_event_pt is None
    assert session.answer.media[0].formats == ("96",)


def test_comfort_noise_and_events_are_never_the_codec() -> None:
    sdp = offer("m=audio 4000 RTP/SAVP 13 101 0\na=rtpmap:101 telephone-event/8000\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert answer(sdp, supported_audio=["CN", "telephone-event", "PCMU"]).media[0].codec.name \
        == "PCMU"


# -- H.264 --------------------------------------------------------------------------------------


def h264_offer(*fmtps: str, extra: str = "") -> SessionDescription:
    pts = [str(96 + i) for i in range(len(fmtps))]
    lines = "".join(f"a=rtpmap:{pt} H264/90000\n" + (f"a=fmtp:{pt} {fmtp}\n" if fmtp else "")
                    for pt, fmtp in zip(pts, fmtps, strict=True))
    return offer(f"m=video 4002 RTP/SAVP {' '.join(pts)}{extra}\n{lines}"
                 f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")


def h264_answer_fmtp(sdp: SessionDescription, **overrides: object) -> str | None:
    return answer(sdp, **overrides).media[0].codec.fmtp


@pytest.mark.parametrize(("fmtps", "chosen_pt", "fmtp"), [
    # Offer order wins between packetization modes 1 and 0.
    (("profile-level-id=42e01f;packetization-mode=1", "profile-level-id=42e01f"), 96,
     "profile-level-id=42e01f;packetization-mode=1"),
    (("profile-level-id=42e01f", "profile-level-id=42e01f;packetization-mode=1"), 96,
     "profile-level-id=42e01f;packetization-mode=0"),
    # Interleaved mode 2 is not supported: the next payload type is taken.
    (("profile-level-id=42e01f;packetization-mode=2", "profile-level-id=42e01f"), 97,
     "profile-level-id=42e01f;packetization-mode=0"),
    # High 10 (profile_idc 0x6e) is not supported.
    (("profile-level-id=6e001f;packetization-mode=1",
      "profile-level-id=4d001f;packetization-mode=1"), 97,
     "profile-level-id=4d001f;packetization-mode=1"),
    # No profile-level-id means Baseline level 1.0 (RFC 6184 §8.1).
    (("packetization-mode=1",), 96, "profile-level-id=42000a;packetization-mode=1"),
    (("",), 96, "profile-level-id=42000a;packetization-mode=0"),
])
def test_h264_packetization_mode_and_profile_choice(fmtps: tuple[str, ...], chosen_pt: int,
                                                    fmtp: str) -> None:
    codec = answer(h264_offer(*fmtps)).media[0].codec
    assert (codec.payload_type, codec.fmtp) == (chosen_pt, fmtp)


@pytest.mark.parametrize(("offered", "our_max", "answered", "send_level"), [
    ("42e01f", 31, "42e01f", 31),  # equal
    ("42e00d", 31, "42e00d", 13),  # the offer is lower: answer no higher than the offer
    ("640032", 31, "64001f", 31),  # the offer is higher: our maximum
    ("42c01f", 31, "42e01f", 31),  # another spelling of Constrained Baseline, canonical answer
    ("42801f", 31, "42001f", 31),  # Baseline
    ("640c1f", 31, "640c1f", 31),  # Constrained High
    ("42f00b", 31, "42f00b", H264_LEVEL_1B),  # level 1b (11 + constraint_set3)
    ("42e01f", 12, "42e00c", 12),
])
def test_h264_level_without_asymmetry_is_never_above_the_offer(
        offered: str, our_max: int, answered: str, send_level: int) -> None:
    codec = answer(h264_offer(f"profile-level-id={offered};packetization-mode=1"),
                   h264_max_level=our_max).media[0].codec
    assert codec.fmtp == f"profile-level-id={answered};packetization-mode=1"
    assert codec.h264 is not None and codec.h264.send_level == send_level
    assert codec.h264.receive_level == send_level


def test_h264_level_asymmetry_answers_our_receive_level_and_sends_at_the_offer_level() -> None:
    sdp = h264_offer("profile-level-id=42e00d;packetization-mode=1;level-asymmetry-allowed=1")
    codec = answer(sdp).media[0].codec
    assert codec.fmtp == "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1"
    assert codec.h264 is not None
    assert (codec.h264.receive_level, codec.h264.send_level) == (31, 13)
    assert codec.h264.level_asymmetry_allowed is True


def test_h264_mode_0_only_room_system_offer_is_answered_in_mode_0() -> None:
    # A room system's habit: level 1.3 with max-fs/max-mbps declaring far more (RFC 6184 §8.1).
    offered = "profile-level-id=42e00d;packetization-mode=0;max-mbps=245000;max-fs=8160"
    codec = answer(h264_offer(offered)).media[0].codec
    assert codec.fmtp == "profile-level-id=42e00d;packetization-mode=0"
    assert codec.h264 is not None
    assert (codec.h264.packetization_mode, codec.h264.send_level) == (0, 13)
    assert codec.remote_fmtp == offered  # what the encoder is fitted to (transport.h264)


def test_h264_unsupported_profiles_fall_through_to_vp8_or_488() -> None:
    only_main = h264_offer("profile-level-id=4d001f;packetization-mode=1")
    assert refused(only_main, h264_profiles=[H264Profile.CONSTRAINED_BASELINE]).reason == (
        RejectReason.NO_CODEC.value)
    with_vp8 = offer("m=video 4002 RTP/SAVP 96 100\na=rtpmap:96 H264/90000\n"
                     "a=fmtp:96 profile-level-id=42e01f;packetization-mode=2\n"
                     "a=rtpmap:100 VP8/90000\n"
                     f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert answer(with_vp8).media[0].codec.name == "VP8"


@pytest.mark.parametrize(("plid", "parsed"), [
    ("42e01f", (H264Profile.CONSTRAINED_BASELINE, 31)),
    ("4d401f", (H264Profile.MAIN, 31)),
    ("4de01f", (H264Profile.CONSTRAINED_BASELINE, 31)),
    ("58a01f", (H264Profile.BASELINE, 31)),
    ("580028", (H264Profile.EXTENDED, 40)),
    ("640033", (H264Profile.HIGH, 51)),
    ("42100b", (H264Profile.BASELINE, H264_LEVEL_1B)),
    ("42e01", None),
    ("zz001f", None),
    ("6e001f", None),  # High 10
    ("640017", None),  # level 2.3 does not exist
])
def test_h264_profile_level_id_parsing(plid: str, parsed: tuple[H264Profile, int] | None) -> None:
    assert h264_profile(plid) == parsed


# -- RTCP ---------------------------------------------------------------------------------------


def test_rtcp_mux_offered_is_answered_and_shares_the_port() -> None:
    sdp = offer(SAVP_PCMU + "a=rtcp-mux\n" f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(sdp, ports={0: (40000, 40001)})
    media = session.media[0]
    assert media.rtcp_mux is True
    assert media.remote_rtcp == media.remote_rtp == TransportAddress("198.51.100.7", 4000)
    assert media.local_rtcp_port == 40000
    assert "a=rtcp-mux\n" in media_text(session.answer)


def test_separate_rtcp_follows_a_rtcp_or_rtp_plus_one() -> None:
    with_attribute = offer(SAVP_PCMU + "a=rtcp:4011 IN IP4 198.51.100.8\n"
                           f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert answer(with_attribute).media[0].remote_rtcp == TransportAddress("198.51.100.8", 4011)
    port_only = offer(SAVP_PCMU + "a=rtcp:4011\n"
                      f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    assert answer(port_only).media[0].remote_rtcp == TransportAddress("198.51.100.7", 4011)
    default = offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(default)
    assert session.media[0].remote_rtcp == TransportAddress("198.51.100.7", 4001)
    assert session.media[0].rtcp_mux is False
    text = media_text(session.answer)
    assert "a=rtcp-mux" not in text and "a=rtcp:" not in text  # ours is RTP + 1


def test_our_rtcp_port_is_announced_when_it_is_not_rtp_plus_one() -> None:
    sdp = offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(sdp, ports={0: (40000, 40100)})
    assert "a=rtcp:40100\n" in media_text(session.answer)
    assert session.media[0].local_rtcp_port == 40100


# -- direction and hold -------------------------------------------------------------------------


@pytest.mark.parametrize(("offered", "answered", "held"), [
    ("a=sendrecv\n", Direction.SENDRECV, False),
    ("", Direction.SENDRECV, False),
    ("a=sendonly\n", Direction.RECVONLY, True),
    ("a=recvonly\n", Direction.SENDONLY, False),  # muted, not held
    ("a=inactive\n", Direction.INACTIVE, True),
])
def test_direction_answers_and_hold(offered: str, answered: Direction, held: bool) -> None:
    sdp = offer(SAVP_PCMU + offered + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    session = answer(sdp)
    assert session.media[0].direction is answered
    assert session.answer.media[0].attributes[-1].name == answered.value
    assert is_hold(sdp) is held and session.on_hold is held
    assert session.media[0].on_hold is (not answered.sends)


def test_rfc2543_hold_with_zero_address_is_never_sent_to() -> None:
    sdp = offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n",
                address="0.0.0.0")
    session = answer(sdp)
    assert session.media[0].direction is Direction.RECVONLY
    assert is_hold(sdp) is True


def test_session_level_direction_applies_to_every_line() -> None:
    sdp = offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n",
                session="a=sendonly\n")
    assert answer(sdp).media[0].direction is Direction.RECVONLY
    assert is_hold(sdp) is True


# -- DTLS-SRTP ----------------------------------------------------------------------------------

THEIR_FINGERPRINT = ("11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:"
                     "11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00")
DTLS_OFFER = f"""m=audio 4000 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=setup:actpass
a=fingerprint:sha-256 {THEIR_FINGERPRINT}
a=rtcp-mux
a=sendrecv
"""


def test_dtls_srtp_offer_is_answered_passive_with_our_fingerprint() -> None:
    session = answer(offer(DTLS_OFFER), over_tls=False, dtls_fingerprint=OUR_FINGERPRINT)
    assert media_text(session.answer) == f"""m=audio 40000 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=rtpmap:111 opus/48000/2
a=fmtp:111 useinbandfec=1
a=ptime:20
a=rtcp-mux
a=setup:passive
a=fingerprint:sha-256 {OUR_FINGERPRINT.value}
a=sendrecv
"""
    media = session.media[0]
    assert media.security is MediaSecurity.DTLS_SRTP and media.srtp is None
    assert media.dtls is not None
    assert media.dtls.remote_setup == "actpass" and media.dtls.local_setup == "passive"
    assert media.dtls.remote_fingerprints == (Fingerprint("sha-256", THEIR_FINGERPRINT),)


def test_dtls_srtp_passive_offer_makes_us_active() -> None:
    sdp = offer(DTLS_OFFER.replace("a=setup:actpass", "a=setup:passive"))
    dtls = answer(sdp, dtls_fingerprint=OUR_FINGERPRINT).media[0].dtls
    assert dtls is not None and dtls.local_setup == "active"


def test_dtls_srtp_session_level_fingerprint_and_missing_setup() -> None:
    media, fingerprint = DTLS_OFFER.split("a=setup:actpass\n")
    fingerprint_line, rest = fingerprint.split("\n", 1)
    sdp = offer(media + rest, session=fingerprint_line + "\n")
    dtls = answer(sdp, dtls_fingerprint=OUR_FINGERPRINT).media[0].dtls
    assert dtls is not None and len(dtls.remote_fingerprints) == 1
    assert (dtls.remote_setup, dtls.local_setup) == ("active", "passive")  # RFC 4145 default


def test_dtls_srtp_refusals() -> None:
    assert refused(offer(DTLS_OFFER)).reason == RejectReason.NO_DTLS.value
    no_fingerprint = offer("\n".join(line for line in DTLS_OFFER.splitlines()
                                     if "fingerprint" not in line) + "\n")
    assert refused(no_fingerprint, dtls_fingerprint=OUR_FINGERPRINT).reason == (
        RejectReason.NO_FINGERPRINT.value)


# -- rejected lines -----------------------------------------------------------------------------


def test_unsupported_media_keep_their_order_and_mid() -> None:
    sdp = offer("m=text 5000 RTP/AVP 98\na=mid:t\na=rtpmap:98 t140/1000\n"
                + SAVP_PCMU + "a=mid:a\n" + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n"
                + "m=image 5002 udptl t38\n"
                + "m=video 0 RTP/SAVP 96\n"
                + "m=video 5004 RTP/SAVP 96\na=rtpmap:96 VP8/90000\n"
                + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n"
                + "m=video 5006 RTP/SAVP 96\na=rtpmap:96 VP8/90000\n"
                + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    ports = {i: (40000 + 2 * i, 40001 + 2 * i) for i in range(6)}
    session = answer(sdp, ports=ports)
    assert [(m.media, m.port) for m in session.answer.media] == [
        ("text", 0), ("audio", 40002), ("image", 0), ("video", 0), ("video", 40008), ("video", 0)]
    assert media_text(session.answer, 0) == "m=text 0 RTP/AVP 98\na=mid:t\n"
    assert media_text(session.answer, 2) == "m=image 0 udptl t38\n"
    assert [(r.index, r.reason) for r in session.rejected] == [
        (0, RejectReason.MEDIA_TYPE), (2, RejectReason.MEDIA_TYPE),
        (3, RejectReason.OFFERER_REJECTED), (5, RejectReason.EXTRA_VIDEO)]
    assert session.ports == {1: (40002, 40003), 4: (40008, 40009)}


def test_lines_without_allocated_ports_are_rejected() -> None:
    session = answer(parse_sdp(LINPHONE), ports={0: (40000, 40001)})
    assert session.video is None
    assert session.rejected[0].reason is RejectReason.NO_PORT
    error = refused(parse_sdp(LINPHONE), ports={})
    assert error.reason == RejectReason.NO_PORT.value


def test_an_offer_with_nothing_active_is_refused() -> None:
    error = refused(offer("m=audio 0 RTP/SAVP 0\n"))
    assert error.reason == "the offer has no active media line"
    assert refused(offer("")).reason == "the offer has no active media line"


def test_ipv6_local_address_and_video_bandwidth() -> None:
    session = answer(parse_sdp(LINPHONE), local_address="2001:db8::10", video_max_kbps=1500)
    text = session.answer.serialize()
    assert "o=confnode 1001 0 IN IP6 2001:db8::10\r\n" in text
    assert "c=IN IP6 2001:db8::10\r\n" in text
    assert media_text(session.answer, 1).startswith("m=video 40002 RTP/SAVP 96\nb=AS:1500\n")


def test_bad_ports_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="ports"):
        answer(parse_sdp(BARESIP), ports={0: (0, 1)})
    with pytest.raises(ValueError, match="local_address"):
        answer(parse_sdp(BARESIP), local_address="")


# -- re-INVITE ----------------------------------------------------------------------------------


def test_identical_reoffer_gets_the_same_answer() -> None:
    first = answer(parse_sdp(BARESIP))
    again = renegotiate(first, parse_sdp(BARESIP), over_tls=True, random_bytes=counting_bytes(0))
    assert again is first


def test_hold_and_resume_keep_ports_keys_and_codec_and_bump_the_version() -> None:
    first = answer(parse_sdp(BARESIP))
    held_offer = parse_sdp(BARESIP.replace("a=sendrecv", "a=sendonly")
                           .replace("3587049155", "3587049156"))
    held = renegotiate(first, held_offer, over_tls=True, ports={0: (50000, 50001)},
                       random_bytes=counting_bytes(0))
    assert held.on_hold and held.media[0].direction is Direction.RECVONLY
    assert held.answer.origin.session_version == 1
    assert held.media[0].local_ports == (40000, 40001)  # not the ports offered for new lines
    assert held.media[0].srtp == first.media[0].srtp  # same key, same suite, same tag
    assert held.media[0].codec == first.media[0].codec
    resumed_offer = parse_sdp(BARESIP.replace("3587049155", "3587049157"))
    resumed = renegotiate(held, resumed_offer, over_tls=True, random_bytes=counting_bytes(0))
    assert resumed.answer.origin.session_version == 2
    assert resumed.media[0].direction is Direction.SENDRECV
    assert resumed.media[0].srtp == first.media[0].srtp
    # Back to the first answer in everything but the version.
    assert resumed.answer == replace(first.answer, origin=resumed.answer.origin)


def test_reoffer_with_only_a_new_origin_version_keeps_the_answer_version() -> None:
    first = answer(parse_sdp(BARESIP))
    refreshed = renegotiate(first, parse_sdp(BARESIP.replace("3587049155", "3587049156")),
                            over_tls=True, random_bytes=counting_bytes(0))
    assert refreshed is not first
    assert refreshed.answer == first.answer
    assert refreshed.answer.origin.session_version == 0


def test_peer_rekey_makes_us_rekey() -> None:
    first = answer(parse_sdp(BARESIP))
    new_key = base64.b64encode(bytes(range(200, 244))).decode()
    rekeyed = parse_sdp(BARESIP.replace(KGCM256, new_key))
    second = renegotiate(first, rekeyed, over_tls=True, random_bytes=counting_bytes(0))
    before, after = first.media[0].srtp, second.media[0].srtp
    assert before is not None and after is not None
    assert after.remote_key != before.remote_key
    assert after.local_key != before.local_key
    assert after.local_key == bytes(range(44))
    assert second.answer.origin.session_version == 1


def test_previous_codec_is_kept_while_still_offered() -> None:
    first = answer(parse_sdp(PSTN_GATEWAY), over_tls=False, allow_plain_rtp=True)
    assert first.media[0].codec.name == "PCMA"
    reordered = parse_sdp(PSTN_GATEWAY.replace("RTP/AVP 8 0 18 101", "RTP/AVP 0 8 18 101"))
    kept = renegotiate(first, reordered, over_tls=False)
    assert kept.media[0].codec.name == "PCMA"
    assert kept.answer == first.answer
    dropped = parse_sdp(PSTN_GATEWAY.replace("RTP/AVP 8 0 18 101", "RTP/AVP 0 18 101"))
    switched = renegotiate(first, dropped, over_tls=False)
    assert switched.media[0].codec.name == "PCMU"
    assert switched.answer.origin.session_version == 1


def test_reoffer_adding_video_takes_new_ports_and_removing_lines_is_refused() -> None:
    first = answer(parse_sdp(BARESIP), ports={0: (40000, 40001)})
    with_video = parse_sdp(BARESIP + "m=video 10308 RTP/SAVP 96\na=rtpmap:96 VP8/90000\n"
                           f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n")
    second = renegotiate(first, with_video, over_tls=True, ports={0: (1, 2), 1: (40010, 40011)},
                         random_bytes=counting_bytes(0))
    assert second.ports == {0: (40000, 40001), 1: (40010, 40011)}
    with pytest.raises(NotAcceptable) as caught:
        renegotiate(second, parse_sdp(BARESIP), over_tls=True)
    assert caught.value.status == 488


def test_reoffer_moving_the_media_is_followed() -> None:
    """A re-INVITE with a new c=/m= address (a transfer, a NAT rebinding, a new media relay)."""
    first = answer(parse_sdp(BARESIP))
    moved = parse_sdp(BARESIP.replace("c=IN IP4 192.168.1.20", "c=IN IP4 192.168.1.77")
                      .replace("m=audio 10306", "m=audio 20400"))
    second = renegotiate(first, moved, over_tls=True, random_bytes=counting_bytes(0))
    audio = second.audio
    assert audio is not None
    assert audio.remote_rtp == TransportAddress("192.168.1.77", 20400)
    assert audio.remote_rtcp == TransportAddress("192.168.1.77", 20401)
    assert audio.local_ports == first.media[0].local_ports and audio.srtp == first.media[0].srtp
    assert second.answer == first.answer  # our side did not change, so neither did o=


@pytest.mark.parametrize(("held_text", "answered"), [
    ("a=sendonly", Direction.RECVONLY),
    ("a=inactive", Direction.INACTIVE),
    ("c=IN IP4 0.0.0.0", Direction.RECVONLY),  # RFC 2543: "send to nowhere", still sending
])
def test_reoffer_hold_styles_and_resume(held_text: str, answered: Direction) -> None:
    first = answer(parse_sdp(BARESIP))
    held_sdp = (BARESIP.replace("c=IN IP4 192.168.1.20", held_text) if held_text.startswith("c=")
                else BARESIP.replace("a=sendrecv", held_text))
    held = renegotiate(first, parse_sdp(held_sdp), over_tls=True, random_bytes=counting_bytes(0))
    assert held.on_hold and held.media[0].direction is answered
    assert not held.media[0].direction.sends  # nothing sent to a held peer
    assert f"a={answered.value}" in held.answer.serialize()
    resumed = renegotiate(held, parse_sdp(BARESIP), over_tls=True,
                          random_bytes=counting_bytes(0))
    assert not resumed.on_hold and resumed.media[0].direction is Direction.SENDRECV


def test_reoffer_with_nothing_acceptable_is_488_and_the_session_stands() -> None:
    """RFC 3261 §14.2: the refused re-offer leaves the previous session in force."""
    first = answer(parse_sdp(PSTN_GATEWAY), over_tls=False, allow_plain_rtp=True)
    g729_only = parse_sdp(PSTN_GATEWAY.replace("RTP/AVP 8 0 18 101", "RTP/AVP 18 101"))
    with pytest.raises(NotAcceptable) as caught:
        renegotiate(first, g729_only, over_tls=False)
    assert (caught.value.status, caught.value.warning) == (488, 305)
    # The next acceptable re-offer is answered against the untouched first session.
    again = renegotiate(first, parse_sdp(PSTN_GATEWAY.replace("5678", "5679")), over_tls=False)
    assert again.answer == first.answer


# -- SRTP keys are usable -----------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(SdesSuite))
def test_answer_keys_protect_and_unprotect_rtp_and_rtcp_both_ways(suite: SdesSuite) -> None:
    endpoint_line = CryptoAttribute.generate(1, suite)  # the endpoint's own key, real randomness
    sdp = offer(SAVP_PCMU + f"a=crypto:{endpoint_line.serialize()}\n")
    session = answer_offer(sdp, local_address="192.0.2.10", ports={0: (40000, 40001)},
                           over_tls=True, session_id=1)
    keys = session.media[0].srtp
    assert keys is not None and keys.suite is suite
    # The endpoint reads our key from the answer text it receives.
    (our_line,) = parse_sdp(session.answer.serialize()).media[0].crypto
    assert our_line.sdes_suite is suite and our_line.key_salt == keys.local_key

    def srtp(key: bytes, direction: int) -> Session:
        return Session(Policy(key=key, ssrc_type=direction, srtp_profile=keys.srtp_profile))

    node_tx = srtp(keys.local_key, Policy.SSRC_ANY_OUTBOUND)
    endpoint_rx = srtp(our_line.key_salt, Policy.SSRC_ANY_INBOUND)
    protected = node_tx.protect(RTP_PACKET)
    tag_length = 10 if suite is SdesSuite.AES_CM_128_HMAC_SHA1_80 else 16
    assert len(protected) == len(RTP_PACKET) + tag_length
    assert protected[12:] != RTP_PACKET[12:]
    assert endpoint_rx.unprotect(protected) == RTP_PACKET
    assert endpoint_rx.unprotect_rtcp(node_tx.protect_rtcp(RTCP_PACKET)) == RTCP_PACKET

    endpoint_tx = srtp(endpoint_line.key_salt, Policy.SSRC_ANY_OUTBOUND)
    node_rx = srtp(keys.remote_key, Policy.SSRC_ANY_INBOUND)
    assert node_rx.unprotect(endpoint_tx.protect(RTP_PACKET)) == RTP_PACKET
    assert node_rx.unprotect_rtcp(endpoint_tx.protect_rtcp(RTCP_PACKET)) == RTCP_PACKET

    # The two directions really use different keys.
    wrong = srtp(keys.local_key, Policy.SSRC_ANY_INBOUND)
    with pytest.raises(SrtpError):
        wrong.unprotect(srtp(endpoint_line.key_salt, Policy.SSRC_ANY_OUTBOUND).protect(
            RTP_PACKET))


# -- secrecy ------------------------------------------------------------------------------------


def test_negotiated_session_repr_shows_no_key() -> None:
    session = answer(parse_sdp(BARESIP))
    keys = session.media[0].srtp
    assert keys is not None
    shown = repr(session) + str(session) + repr(keys) + repr(session.media)
    for secret in (base64.b64encode(keys.local_key).decode(),
                   base64.b64encode(keys.remote_key).decode(), repr(keys.local_key),
                   repr(keys.remote_key), keys.local_key.hex(), K80, K32, KGCM128, KGCM256):
        assert secret not in shown
    assert "[redacted]" in shown


@given(key=st.binary(min_size=30, max_size=30),
       extra=st.sampled_from(["", " UNENCRYPTED_SRTP", "|2^10", "|1:4", " KDR=3"]),
       suite=st.sampled_from(["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
                              "NULL_HMAC_SHA1_80"]),
       over_tls=st.booleans(), codec=st.sampled_from(["0", "18"]))
def test_refusals_never_carry_key_material(key: bytes, extra: str, suite: str, over_tls: bool,
                                           codec: str) -> None:
    encoded = base64.b64encode(key).decode()
    sdp = offer(f"m=audio 4000 RTP/SAVP {codec}\na=crypto:1 {suite} inline:{encoded}{extra}\n")
    try:
        session = answer(sdp, over_tls=over_tls)
    except NotAcceptable as error:
        shown = str(error) + repr(error) + repr(error.details) + error.reason
        assert error.reason in {r.value for r in RejectReason}
    else:
        shown = repr(session)
    for start in range(0, len(encoded) - 8, 4):
        assert encoded[start:start + 8] not in shown
    assert repr(key) not in shown


def test_a_model_without_any_connection_address_is_refused() -> None:
    sdp = replace(offer(SAVP_PCMU + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K80}\n"),
                  connection=None)
    error = refused(sdp)
    assert (error.reason, error.warning) == (RejectReason.NO_ADDRESS.value, 302)
