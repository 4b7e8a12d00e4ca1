"""One outgoing RTP stream keeps counting while its source changes (passthrough ⇄ mixing)."""

from __future__ import annotations

from confnode.transport.webrtc.continuity import StreamContinuity


def test_first_source_starts_at_the_streams_origin() -> None:
    stream = StreamContinuity(90000, first_sequence=1000, first_timestamp=5000)
    assert stream.map("a", 40000, 123456, now=10.0) == (1000, 5000)
    assert stream.map("a", 40001, 126456, now=10.033) == (1001, 8000)


def test_upstream_gap_stays_a_gap_and_retransmission_maps_to_its_original_number() -> None:
    stream = StreamContinuity(90000, first_sequence=10, first_timestamp=0)
    stream.map("a", 100, 0, now=0.0)
    assert stream.map("a", 103, 3000, now=0.1) == (13, 3000)  # 101, 102 lost upstream
    assert stream.map("a", 101, 0, now=0.2) == (11, 0)  # the RTX answer fills the hole
    # ...and does not move where the next source continues from.
    assert stream.map("b", 7, 777, now=0.2)[0] == 14


def test_switching_source_continues_one_number_on_and_wall_clock_later() -> None:
    stream = StreamContinuity(48000, first_sequence=65534, first_timestamp=2**32 - 480)
    assert stream.map("relay", 5, 100, now=1.0) == (65534, 2**32 - 480)
    assert stream.map("relay", 6, 1060, now=1.02) == (65535, 480)  # wraps
    seq, ts = stream.map("track", 0, 0, now=1.52)
    assert seq == 0  # 16-bit wrap, no gap
    assert ts == (480 + 24000) % 2**32  # 0.5 s of 48 kHz later
    assert stream.map("track", 1, 960, now=1.54) == (1, 480 + 24000 + 960)


def test_a_source_change_within_the_same_instant_still_advances_the_timestamp() -> None:
    stream = StreamContinuity(90000, first_sequence=0, first_timestamp=0)
    stream.map("a", 0, 50, now=3.0)
    assert stream.map("b", 9, 9, now=3.0) == (1, 1)
