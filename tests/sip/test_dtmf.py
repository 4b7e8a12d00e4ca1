"""DTMF parsing and de-duplication (RFC 4733, SIP INFO bodies)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confnode.errors import InvalidInput
from confnode.transport.sip.dtmf import (
    DtmfDetector,
    InfoDtmf,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
    parse_application_dtmf,
    parse_dtmf_relay,
)


def packet(event: int, duration: int, *, end: bool = False, volume: int = 10) -> bytes:
    return TelephoneEvent(event, end, volume, duration).serialize()


# --- payload ------------------------------------------------------------------------------------


def test_parse_rfc4733_payload() -> None:
    """RFC 4733 §2.3: event 5, E bit, R bit (ignored), volume 10, duration 1280."""
    event = TelephoneEvent.parse(bytes([5, 0x80 | 0x40 | 10, 0x05, 0x00]))
    assert event == TelephoneEvent(event=5, end=True, volume=10, duration=1280)
    assert event.digit == "5"


def test_serialize_roundtrip() -> None:
    assert TelephoneEvent(11, False, 63, 65535).serialize() == b"\x0b\x3f\xff\xff"
    assert TelephoneEvent.parse(b"\x0b\x3f\xff\xff").digit == "#"


def test_short_payload_is_refused() -> None:
    with pytest.raises(InvalidInput):
        TelephoneEvent.parse(b"\x05\x80\x00")


def test_extra_octets_are_ignored() -> None:
    assert TelephoneEvent.parse(b"\x01\x0a\x00\xa0\xff\xff").duration == 160


def test_event_digit_mapping() -> None:
    assert [event_to_digit(n) for n in range(17)] == [*"0123456789*#ABCD", None]
    assert digit_to_event("*") == 10
    assert digit_to_event("d") == 15
    with pytest.raises(InvalidInput):
        digit_to_event("E")


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 65535))
def test_payload_roundtrip_property(event: int, end: bool, volume: int, duration: int) -> None:
    original = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(original.serialize()) == original


# --- de-duplication -----------------------------------------------------------------------------


def typed(detector: DtmfDetector, packets: list[tuple[bytes, int]]) -> str:
    return "".join(d for p, ts in packets if (d := detector.feed(p, ts)) is not None)


def key_press(event: int, timestamp: int, *, updates: int = 3) -> list[tuple[bytes, int]]:
    """What a sender emits for one key: start, updates, and the end packet three times."""
    packets = [(packet(event, 160 * (n + 1)), timestamp) for n in range(updates)]
    packets += [(packet(event, 160 * (updates + 1), end=True), timestamp)] * 3
    return packets


def test_each_key_press_is_one_digit() -> None:
    packets = key_press(1, 1000) + key_press(2, 3000) + key_press(3, 5000)
    assert typed(DtmfDetector(), packets) == "123"


def test_same_key_twice_is_two_digits() -> None:
    """The PIN 5500: repeated keys are told apart by their start timestamps only."""
    packets = key_press(5, 1000) + key_press(5, 3000) + key_press(0, 5000) + key_press(0, 7000)
    assert typed(DtmfDetector(), packets) == "5500"


def test_only_end_packets_survive() -> None:
    """A key whose start and updates were lost still types, once."""
    ends = [(packet(7, 800, end=True), 4000)] * 3
    assert typed(DtmfDetector(), ends) == "7"


def test_late_retransmission_after_next_key_is_ignored() -> None:
    packets = key_press(1, 1000) + key_press(2, 3000) + [(packet(1, 800, end=True), 1000)]
    assert typed(DtmfDetector(), packets) == "12"


def test_reordered_packets_type_once() -> None:
    detector = DtmfDetector()
    assert detector.feed(packet(9, 480, end=True), 8000) == "9"
    assert detector.feed(packet(9, 160), 8000) is None
    assert detector.feed(packet(9, 320), 8000) is None


def test_timestamp_wraps_around() -> None:
    packets = key_press(4, 2**32 - 160) + key_press(6, 800)
    assert typed(DtmfDetector(), packets) == "46"


def test_long_key_segments_are_one_digit() -> None:
    """RFC 4733 §2.5.1.3: a key held past the 16-bit duration continues with a new timestamp."""
    detector = DtmfDetector()
    assert detector.feed(packet(0, 160), 1000) == "0"
    assert detector.feed(packet(0, 0xFFFF), 1000) is None
    assert detector.feed(packet(0, 160), 1000 + 0xFFFF) is None
    assert detector.feed(packet(0, 1000, end=True), 1000 + 0xFFFF) is None
    assert detector.feed(packet(0, 160), 1000 + 0xFFFF + 4000) == "0"


def test_non_digit_events_are_swallowed() -> None:
    detector = DtmfDetector()
    assert detector.feed(packet(16, 160), 100) is None  # hook flash
    assert detector.feed(packet(16, 320, end=True), 100) is None
    assert detector.feed(packet(3, 160), 2000) == "3"


@given(st.lists(st.sampled_from("0123456789*#"), min_size=1, max_size=20),
       st.integers(0, 2**32 - 1), st.randoms(use_true_random=False))
def test_every_press_types_exactly_once_despite_duplicates(
        digits: list[str], start: int, rnd: object) -> None:
    """Whatever duplicates each key's packets suffer, the digits come out once, in order."""
    packets: list[tuple[bytes, int]] = []
    for index, digit in enumerate(digits):
        timestamp = (start + index * 2400) % 2**32
        press = key_press(digit_to_event(digit), timestamp)
        packets += [p for p in press for _ in range(rnd.randint(1, 3))]  # type: ignore[attr-defined]
    assert typed(DtmfDetector(), packets) == "".join(digits)


# --- SIP INFO bodies ----------------------------------------------------------------------------


def test_dtmf_relay_body() -> None:
    assert parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n") == InfoDtmf("5", 160)


def test_dtmf_relay_variants() -> None:
    assert parse_dtmf_relay(b"signal= #\nduration = 250") == InfoDtmf("#", 250)
    assert parse_dtmf_relay(b"Signal=*\r\n") == InfoDtmf("*", None)
    assert parse_dtmf_relay(b"Signal=10\r\nDuration=100\r\n") == InfoDtmf("*", 100)
    assert parse_dtmf_relay(b"Signal=11\r\n") == InfoDtmf("#", None)
    assert parse_dtmf_relay(b"Signal=a\r\n") == InfoDtmf("A", None)
    assert parse_dtmf_relay(b"Signal=16\r\n") == InfoDtmf(None, None)  # flash


@pytest.mark.parametrize("body", [b"Duration=160\r\n", b"Signal=X\r\n", b"Signal=55\r\n",
                                  b"Signal=\xff\r\n", b""])
def test_dtmf_relay_garbage_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_dtmf_relay(body)


def test_application_dtmf_body() -> None:
    assert parse_application_dtmf(b"7\r\n") == InfoDtmf("7")
    assert parse_application_dtmf(b"#") == InfoDtmf("#")
    with pytest.raises(InvalidInput):
        parse_application_dtmf(b"99")
