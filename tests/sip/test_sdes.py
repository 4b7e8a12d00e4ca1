"""RFC 4568 crypto attributes: parsing, the suites confnode accepts and refuses, key secrecy."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from confnode.transport.sip.sdes import (
    MIN_LIFETIME,
    CryptoAttribute,
    KeyParam,
    Mki,
    SdesError,
    SdesSuite,
    answer_crypto,
    choose_crypto,
    generate_key,
    parse_crypto_lines,
    suite_refusal,
)

# Literal keys (base64 of counting bytes), so every assertion below can name the exact text.
K80 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"  # 30 bytes: AES_CM_128 key(16) || salt(14)
K32 = "KCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RF"
KGCM128 = "UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqaw=="  # 28 bytes: 16 + 12
KGCM256 = "eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqM="  # 44 bytes: 32 + 12
KAES256CM = "qqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW1w=="  # 46 bytes

RTP_PACKET = bytes.fromhex("8000 0001 000000a0 12345678") + b"\xd5" * 160


def test_parse_rfc4568_example_with_lifetime_and_mki() -> None:
    line = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^20|1:4")
    assert line.tag == 1
    assert line.suite == "AES_CM_128_HMAC_SHA1_80"
    assert line.sdes_suite is SdesSuite.AES_CM_128_HMAC_SHA1_80
    assert line.key_salt == bytes(range(1, 31))
    assert line.key_params[0].lifetime == 2**20
    assert line.key_params[0].mki == Mki(1, 4)
    assert line.session_params == ()
    assert line.serialize() == f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^20|1:4"


def test_decimal_lifetime_and_session_parameters_round_trip() -> None:
    line = CryptoAttribute.parse(f"7 AEAD_AES_128_GCM inline:{KGCM128}|1048576 WSH=128 -X_Y")
    assert line.key_params[0].lifetime == MIN_LIFETIME
    assert line.session_params == ("WSH=128", "-X_Y")
    assert line.serialize() == f"7 AEAD_AES_128_GCM inline:{KGCM128}|2^20 WSH=128 -X_Y"
    assert line.refusal() is None  # a window hint and a dash extension are harmless


def test_missing_base64_padding_is_tolerated() -> None:
    line = CryptoAttribute.parse(f"1 AEAD_AES_128_GCM inline:{KGCM128.rstrip('=')}")
    assert line.key_salt == base64.b64decode(KGCM128)
    assert line.serialize() == f"1 AEAD_AES_128_GCM inline:{KGCM128}"


@pytest.mark.parametrize(("suite", "key_length", "salt_length", "profile"), [
    (SdesSuite.AEAD_AES_256_GCM, 32, 12, Policy.SRTP_PROFILE_AEAD_AES_256_GCM),
    (SdesSuite.AEAD_AES_128_GCM, 16, 12, Policy.SRTP_PROFILE_AEAD_AES_128_GCM),
    (SdesSuite.AES_CM_128_HMAC_SHA1_80, 16, 14, Policy.SRTP_PROFILE_AES128_CM_SHA1_80),
])
def test_suite_lengths_and_pylibsrtp_profiles(suite: SdesSuite, key_length: int,
                                              salt_length: int, profile: int) -> None:
    assert (suite.key_length, suite.salt_length) == (key_length, salt_length)
    assert suite.srtp_profile == profile
    # pylibsrtp checks the key length against the profile: one byte short is refused.
    Policy(key=generate_key(suite), srtp_profile=suite.srtp_profile)
    with pytest.raises(ValueError, match="at least"):
        Policy(key=bytes(suite.key_salt_length - 1), srtp_profile=suite.srtp_profile)


def test_preference_order_is_the_enum_order() -> None:
    assert list(SdesSuite) == [SdesSuite.AEAD_AES_256_GCM, SdesSuite.AEAD_AES_128_GCM,
                               SdesSuite.AES_CM_128_HMAC_SHA1_80]


@pytest.mark.parametrize("text", [
    f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80[:-4]}",  # key too short for the suite
    f"1 AEAD_AES_256_GCM inline:{K80}",  # an AES-CM-sized key for GCM-256
    f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^20|1:4|9",  # too many fields
    f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|1:4|2^20",  # lifetime after MKI
    f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|1:0",  # MKI length 0
    f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|forever",
    f"1 AES_CM_128_HMAC_SHA1_80 uri:{K80}",  # not the inline method
    f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}!",  # not base64
    f"x AES_CM_128_HMAC_SHA1_80 inline:{K80}",  # tag not a number
    f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{K80}",  # tag longer than 9 digits
    f"1 AES-CM inline:{K80}",  # suite not a token
    "1 AES_CM_128_HMAC_SHA1_80",
    "1 AES_CM_128_HMAC_SHA1_80 inline:",
])
def test_malformed_lines_raise_without_echoing_the_key(text: str) -> None:
    with pytest.raises(SdesError) as caught:
        CryptoAttribute.parse(text)
    assert caught.value.status == 488
    for shown in (str(caught.value), repr(caught.value), caught.value.message):
        assert K80[:12] not in shown
        assert "inline:" not in shown


@pytest.mark.parametrize(("suite", "reason"), [
    ("AES_CM_128_HMAC_SHA1_32", "32-bit"),
    ("F8_128_HMAC_SHA1_80", "f8"),
    ("NULL_HMAC_SHA1_80", "NULL"),
    ("NULL_HMAC_SHA1_32", "NULL"),
    ("NULL_SOMETHING_NEW", "NULL"),
    ("AES_256_CM_HMAC_SHA1_80", "AES-256"),
    ("AES_256_CM_HMAC_SHA1_32", "AES-256"),
    ("AES_192_CM_HMAC_SHA1_80", "AES-192"),
    ("SEED_CTR_128_HMAC_SHA1_80", "unknown"),
])
def test_refused_suites_parse_but_are_refused(suite: str, reason: str) -> None:
    key = KAES256CM if "256_CM" in suite else K80
    line = CryptoAttribute.parse(f"3 {suite} inline:{key}")
    assert line.sdes_suite is None
    refusal = line.refusal()
    assert refusal is not None and reason in refusal
    assert suite_refusal(suite) == refusal


@pytest.mark.parametrize(("params", "reason"), [
    ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP"),
    ("UNENCRYPTED_SRTCP", "UNENCRYPTED_SRTCP"),
    ("UNAUTHENTICATED_SRTP", "UNAUTHENTICATED_SRTP"),
    ("WSH=64 UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP"),
    ("KDR=4", "key derivation"),
    ("FEC_KEY=inline:" + K80, "FEC"),
    ("SOMETHING_NEW=1", "unknown mandatory"),
])
def test_refused_session_parameters(params: str, reason: str) -> None:
    line = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80} {params}")
    refusal = line.refusal()
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("params", ["KDR=0", "WSH=64", "FEC_ORDER=FEC_SRTP", "-vendor-hint"])
def test_accepted_session_parameters(params: str) -> None:
    line = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80} {params}")
    assert line.refusal() is None


@pytest.mark.parametrize(("key_info", "refused"), [
    (f"inline:{K80}", None),
    (f"inline:{K80}|2^20", None),
    (f"inline:{K80}|2^48", None),
    (f"inline:{K80}|2^19", "lifetime"),
    (f"inline:{K80}|1000", "lifetime"),
    (f"inline:{K80}|2^31|1:4", "MKI"),
    (f"inline:{K80}|1:1", "MKI"),
    (f"inline:{K80}|2^31|1:4;inline:{K32}|2^31|2:4", "several master keys"),
])
def test_lifetime_and_mki_rules(key_info: str, refused: str | None) -> None:
    refusal = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 {key_info}").refusal()
    if refused is None:
        assert refusal is None
    else:
        assert refusal is not None and refused in refusal


def test_choose_follows_our_preference_not_the_offer_order() -> None:
    offered = parse_crypto_lines([
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}",
        f"2 AEAD_AES_128_GCM inline:{KGCM128}",
        f"3 AEAD_AES_256_GCM inline:{KGCM256}",
    ])
    chosen = choose_crypto(offered)
    assert chosen is not None and chosen.tag == 3
    limited = choose_crypto(offered, [SdesSuite.AES_CM_128_HMAC_SHA1_80])
    assert limited is not None and limited.tag == 1


def test_choose_skips_refused_lines_and_takes_the_first_of_equals() -> None:
    offered = parse_crypto_lines([
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{KAES256CM}",
        f"2 AES_CM_128_HMAC_SHA1_80 inline:{K80} UNENCRYPTED_SRTP",
        f"3 AES_CM_128_HMAC_SHA1_80 inline:{K80}",
        f"4 AES_CM_128_HMAC_SHA1_80 inline:{K32}",
    ])
    chosen = choose_crypto(offered)
    assert chosen is not None and chosen.tag == 3


def test_choose_returns_none_when_only_refused_suites_are_offered() -> None:
    offered = parse_crypto_lines([
        f"1 AES_CM_128_HMAC_SHA1_32 inline:{K32}",
        f"2 NULL_HMAC_SHA1_80 inline:{K80}",
    ])
    assert choose_crypto(offered) is None


def test_parse_crypto_lines_drops_malformed_lines() -> None:
    lines = parse_crypto_lines(["garbage", f"2 AES_CM_128_HMAC_SHA1_80 inline:{K80}"])
    assert [line.tag for line in lines] == [2]


def test_answer_line_keeps_tag_and_suite_and_carries_only_our_key() -> None:
    offered = CryptoAttribute.parse(f"5 AEAD_AES_128_GCM inline:{KGCM128}|2^31 WSH=64")
    ours = bytes(range(0xA0, 0xA0 + 28))
    answer = answer_crypto(offered, ours)
    assert answer.serialize() == ("5 AEAD_AES_128_GCM "
                                  "inline:oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6uw==")


def test_generated_keys_have_the_suite_length_and_differ() -> None:
    for suite in SdesSuite:
        first = CryptoAttribute.generate(1, suite)
        second = CryptoAttribute.generate(1, suite)
        assert len(first.key_salt) == suite.key_salt_length
        assert first.key_salt != second.key_salt
        assert CryptoAttribute.parse(first.serialize()) == first


def test_generate_key_refuses_a_short_random_source() -> None:
    with pytest.raises(ValueError, match="wrong number"):
        generate_key(SdesSuite.AES_CM_128_HMAC_SHA1_80, lambda n: b"\x00" * (n - 1))


def test_repr_and_str_never_show_the_key() -> None:
    line = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{K80}|2^31")
    key_bytes = base64.b64decode(K80)
    for shown in (repr(line), str(line), f"{line}", repr(line.key_params),
                  repr(KeyParam(key_bytes))):
        assert K80 not in shown
        assert K80[:8] not in shown
        assert repr(key_bytes) not in shown
        assert key_bytes.hex() not in shown
        assert "[redacted]" in shown
    assert "AES_CM_128_HMAC_SHA1_80" in repr(line)  # the suite is not a secret


@pytest.mark.parametrize("suite", list(SdesSuite))
def test_generated_keys_protect_and_unprotect_rtp_with_pylibsrtp(suite: SdesSuite) -> None:
    # Each side draws its key with generate_key; the other side learns it from the SDP text.
    alice = CryptoAttribute.generate(1, suite)
    bob = CryptoAttribute.generate(1, suite)
    for sender, seen_by_receiver in ((alice, CryptoAttribute.parse(alice.serialize())),
                                     (bob, CryptoAttribute.parse(bob.serialize()))):
        tx = Session(Policy(key=sender.key_salt, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                            srtp_profile=suite.srtp_profile))
        rx = Session(Policy(key=seen_by_receiver.key_salt, ssrc_type=Policy.SSRC_ANY_INBOUND,
                            srtp_profile=suite.srtp_profile))
        protected = tx.protect(RTP_PACKET)
        assert protected[:12] == RTP_PACKET[:12]  # the header stays in clear
        assert protected[12:172] != RTP_PACKET[12:]  # the payload does not
        assert rx.unprotect(protected) == RTP_PACKET
    # Alice's key does not open Bob's packets.
    bob_tx = Session(Policy(key=bob.key_salt, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                            srtp_profile=suite.srtp_profile))
    alice_rx = Session(Policy(key=alice.key_salt, ssrc_type=Policy.SSRC_ANY_INBOUND,
                              srtp_profile=suite.srtp_profile))
    with pytest.raises(SrtpError):
        alice_rx.unprotect(bob_tx.protect(RTP_PACKET))


_MANGLERS = st.sampled_from([
    lambda key: key[:-3],
    lambda key: key + "A",
    lambda key: key[:10] + "!" + key[10:],
    lambda key: key + "|2^x",
    lambda key: key + "|1:999",
    lambda key: key + "|2^20|1:4|1",
    lambda key: key.replace("inline:", "inline;"),
    lambda key: "",
])


@given(key=st.binary(min_size=30, max_size=30), suite=st.sampled_from(list(SdesSuite)),
       mangle=_MANGLERS, tag=st.sampled_from(["1", "x1", "9999999999"]))
def test_errors_and_reprs_never_contain_key_material(key: bytes, suite: SdesSuite,
                                                     mangle: object, tag: str) -> None:
    encoded = base64.b64encode(key).decode()
    text = f"{tag} {suite.value} inline:{mangle(encoded)}"  # type: ignore[operator]
    try:
        line = CryptoAttribute.parse(text)
    except SdesError as error:
        shown = str(error) + repr(error) + str(error.details)
    else:
        shown = repr(line) + str(line)
    for start in range(0, len(encoded) - 8):
        assert encoded[start:start + 8] not in shown
    assert repr(key) not in shown
