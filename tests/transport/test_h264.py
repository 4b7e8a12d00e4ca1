"""H.264 towards SIP endpoints, without sockets: single NAL unit packetization (RFC 6184 mode 0)
from a real x264 encode back through aiortc's depacketizer and decoder, and the level limits that
size the node's pictures."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.codecs import depayload, get_decoder
from aiortc.codecs.h264 import H264Encoder as AiortcH264
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from confnode.transport.encoders import H264Encoder, VideoTarget, video_encoder
from confnode.transport.h264 import (
    LEVEL_1B,
    MAX_SINGLE_NAL_SIZE,
    RTP_HEADER_SIZE,
    RTP_PAYLOAD_MTU,
    H264SendLimits,
    packetize_single_nal,
)

H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=97)


def busy_picture(width: int, height: int, seed: int) -> np.ndarray:
    """Noise compresses badly: frames of tens of kilobytes, far above one packet."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)


def nal_types(payloads: list[bytes]) -> set[int]:
    return {p[0] & 0x1F for p in payloads}


def test_mode_0_packets_carry_one_nal_unit_each_within_the_mtu_and_decode() -> None:
    encoder = H264Encoder(640, 360, fps=15, max_nal_size=MAX_SINGLE_NAL_SIZE)
    decoder = get_decoder(H264)
    decoded = []
    sizes = []
    for i in range(5):
        frame = encoder.encode(busy_picture(640, 360, i))
        assert frame is not None
        assert len(frame.data) > 10 * RTP_PAYLOAD_MTU  # a frame that mode 1 would fragment
        payloads = packetize_single_nal(AiortcH264._split_bitstream(frame.data))
        assert nal_types(payloads) <= set(range(1, 24))  # never STAP-A (24) or FU-A (28)
        assert all(len(p) + RTP_HEADER_SIZE <= RTP_PAYLOAD_MTU for p in payloads)
        sizes.extend(len(p) for p in payloads)
        if i == 0:
            assert {5, 7, 8} <= nal_types(payloads)  # IDR slices with SPS and PPS
        # The receiver's side: aiortc's depacketizer rebuilds the access unit.
        access_unit = b"".join(depayload(H264, p) for p in payloads)
        decoded += decoder.decode(JitterFrame(access_unit, i * 6000))
    assert len(decoded) == 5 and (decoded[-1].width, decoded[-1].height) == (640, 360)
    assert max(sizes) > MAX_SINGLE_NAL_SIZE // 2  # slices are cut near the limit, not tiny


def test_mode_1_still_fragments_large_nal_units() -> None:
    encoder = H264Encoder(640, 360, fps=15)
    frame = encoder.encode(busy_picture(640, 360, 0))
    assert frame is not None
    payloads = AiortcH264._packetize(list(AiortcH264._split_bitstream(frame.data)))
    assert 28 in nal_types(payloads)  # FU-A: one slice per picture, far above the MTU


def test_single_nal_packetizer_drops_aggregation_types() -> None:
    units = [bytes([0x67, 1, 2]), bytes([0x78, 0, 1]), bytes([0x7C, 0x85]), b"", bytes([0x65])]
    assert packetize_single_nal(units) == [bytes([0x67, 1, 2]), bytes([0x65])]


@pytest.mark.parametrize(("level", "fmtp", "fps", "expected"), [
    (31, {}, 15, (1280, 720)),  # 3600 macroblocks: exactly level 3.1's MaxFS
    (30, {}, 15, (848, 480)),  # MaxFS 1620
    (22, {}, 15, (768, 432)),  # same MaxFS, but MaxMBPS 20250 / 15 fps allows only 1350
    (22, {}, 30, (544, 304)),  # ... and 675 at 30 fps
    (13, {}, 15, (416, 224)),  # MaxFS 396 (CIF)
    (LEVEL_1B, {}, 15, (208, 112)),  # MaxFS 99 (QCIF)
    # Room systems signal level 1.3 with max-fs/max-mbps far above it (RFC 6184 §8.1).
    (13, {"max-fs": "8160", "max-mbps": "245000"}, 30, (1280, 720)),
    # A max-fs below the level's own is ignored: the level stands.
    (31, {"max-fs": "99"}, 15, (1280, 720)),
])
def test_pictures_are_fitted_to_the_negotiated_level(
        level: int, fmtp: dict[str, str], fps: int, expected: tuple[int, int]) -> None:
    limits = H264SendLimits.negotiated(level, 1, fmtp)
    width, height = limits.fit(1280, 720, fps)
    assert (width, height) == expected
    mbs = (width // 16) * (height // 16)
    assert mbs <= limits.max_fs and mbs * fps <= limits.max_mbps
    assert width % 16 == 0 and height % 16 == 0


def test_level_side_length_limit() -> None:
    # A very wide picture: at level 3.0 each side is at most sqrt(8 * 1620) = 113 macroblocks.
    width, height = H264SendLimits.negotiated(30, 1, {}).fit(3840, 160, 15)
    assert (width, height) == (113 * 16, 4 * 16)


def test_default_stream_sharing_and_route_names() -> None:
    assert H264SendLimits.negotiated(31, 1, {}).takes_default_stream
    assert H264SendLimits.negotiated(40, 1, {}).takes_default_stream
    assert not H264SendLimits.negotiated(31, 0, {}).takes_default_stream  # mode 0
    assert not H264SendLimits.negotiated(30, 1, {}).takes_default_stream
    assert VideoTarget("h264").route_name == "h264"
    limited = VideoTarget("h264", H264SendLimits.negotiated(30, 0, {}))
    assert limited.route_name == "h264/30/1620/40500/0"


def sps_level(data: bytes) -> int:
    sps = next(u for u in AiortcH264._split_bitstream(data) if u[0] & 0x1F == 7)
    return sps[3]


def test_a_level_limited_encoder_scales_and_declares_the_level() -> None:
    target = VideoTarget("h264", H264SendLimits.negotiated(30, 0, {}))
    encoder = video_encoder(target, 1280, 720, 15, 1_200_000)
    assert isinstance(encoder, H264Encoder)
    assert (encoder.width, encoder.height) == (848, 480)
    frame = encoder.encode(busy_picture(1280, 720, 1))  # the room's picture, scaled down
    assert frame is not None and frame.keyframe
    assert sps_level(frame.data) == 30
    assert max(len(u) for u in AiortcH264._split_bitstream(frame.data)) <= MAX_SINGLE_NAL_SIZE
    decoded = get_decoder(H264).decode(JitterFrame(frame.data, 0))
    assert (decoded[0].width, decoded[0].height) == (848, 480)
    default = video_encoder("H264", 1280, 720, 15, 1_200_000)
    first = default.encode(busy_picture(1280, 720, 1))
    assert first is not None and sps_level(first.data) == 31


def test_level_1b_is_declared_with_constraint_set3() -> None:
    target = VideoTarget("h264", H264SendLimits.negotiated(LEVEL_1B, 1, {}))
    encoder = video_encoder(target, 1280, 720, 15, 1_200_000)
    assert (encoder.width, encoder.height) == (208, 112)  # QCIF-sized: MaxFS 99
    frame = encoder.encode(busy_picture(1280, 720, 2))
    assert frame is not None
    sps = next(u for u in AiortcH264._split_bitstream(frame.data) if u[0] & 0x1F == 7)
    assert sps[3] == 11 and sps[2] & 0x10  # RFC 6184 §8.1: level_idc 11 + constraint_set3
