"""Video transcoding at 720p, one frame: decode one codec, encode the other (pytest-benchmark).

Run: .venv/bin/pytest bench/test_bench_video_transcode.py --benchmark-only

The two directions of a SIP room system (H.264) talking to a browser (VP8): what the node pays
per frame, per direction, when the pair cannot share a codec. Decoding goes through aiortc's
decoders exactly as the endpoints do (``get_decoder`` on a ``JitterFrame``), the picture crosses
as I420 numpy (``to_ndarray(format="yuv420p")``, as ``RoomMedia`` takes it) and is re-encoded
by the node's own encoders (``Vp8Encoder``/``H264Encoder``: realtime VP8, x264 ultrafast
zerolatency Constrained Baseline). At 15 fps a direction costing ``t`` per frame takes ``15 t``
of a core per second.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from pytest_benchmark.fixture import BenchmarkFixture

from confnode.transport.encoders import H264Encoder, Vp8Encoder

WIDTH, HEIGHT, FPS = 1280, 720, 15
CLIP_FRAMES = 10  # 2/3 s; the first is a keyframe, so the clip loops without a broken reference
CODECS = {
    "vp8": (Vp8Encoder, RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000,
                                              payloadType=96)),
    "h264": (H264Encoder, RTCRtpCodecParameters(
        mimeType="video/H264", clockRate=90000, payloadType=97,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"})),
}


@cache
def camera_clip() -> tuple[np.ndarray, ...]:
    """A camera-like I420 clip: smooth shading, a moving bright block, light sensor noise.

    Random noise alone would be the encoders' worst case and nothing like a consultation."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = (60 + 80 * x / WIDTH + 40 * y / HEIGHT).astype(np.float32)
    noise = rng.normal(0, 2, base.shape).astype(np.float32)
    frames = []
    for i in range(CLIP_FRAMES):
        luma = base + np.roll(noise, 7919 * i)
        left, top = 200 + 12 * i, 200 + 4 * i
        luma[top:top + 240, left:left + 180] += 70
        plane = np.full((HEIGHT * 3 // 2, WIDTH), 128, dtype=np.uint8)
        plane[:HEIGHT] = np.clip(luma, 0, 255).astype(np.uint8)
        frames.append(plane)
    return tuple(frames)


def encoded_clip(codec: str) -> list[bytes]:
    encoder = CODECS[codec][0](WIDTH, HEIGHT, FPS)
    out = []
    for picture in camera_clip():
        encoded = encoder.encode(picture)
        assert encoded is not None
        out.append(encoded.data)
    return out


@pytest.mark.parametrize(("source", "target"), [("vp8", "h264"), ("h264", "vp8")],
                         ids=["vp8-to-h264", "h264-to-vp8"])
def test_transcode_one_720p_frame(benchmark: BenchmarkFixture, source: str,
                                  target: str) -> None:
    clip = encoded_clip(source)
    decoder = get_decoder(CODECS[source][1])
    encoder = CODECS[target][0](WIDTH, HEIGHT, FPS)
    position = [0]
    produced: list[int] = []

    def transcode_next_frame() -> None:
        index = position[0] % CLIP_FRAMES
        position[0] += 1
        for frame in decoder.decode(JitterFrame(clip[index], index * 6000)):
            encoded = encoder.encode(frame.to_ndarray(format="yuv420p"))
            if encoded is not None:
                produced.append(len(encoded.data))

    benchmark(transcode_next_frame)
    # Real pictures came through: every decoded frame was re-encoded to a plausible size.
    assert produced and all(200 < size < 400_000 for size in produced)
