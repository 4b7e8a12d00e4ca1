"""Encoders for what the node itself produces (mixes and compositions), via libav (PyAV).

Each encoder serves every participant who receives the same output, so one encode per distinct
mix or picture instead of one per participant. Frames go in as numpy arrays (the media engine's
currency) and come out as encoded bytes the outbound tracks packetize.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes
    keyframe: bool


class OpusEncoder:
    """Mono Opus at 48 kHz (RFC 7587 always signals 2 channels; mono content is valid)."""

    def __init__(self, bitrate: int = 32000) -> None:
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.layout = "mono"
        self._codec.format = "s16"
        self._codec.bit_rate = bitrate
        self._codec.time_base = Fraction(1, SAMPLE_RATE)
        self._pts = 0
        self.frames_encoded = 0

    def encode(self, samples: np.ndarray) -> bytes | None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = self._codec.time_base
        self._pts += samples.shape[-1]
        packets = self._codec.encode(frame)
        self.frames_encoded += 1
        return bytes(packets[0]) if packets else None


class Vp8Encoder:
    """Realtime libvpx VP8; a keyframe on request (a new viewer, a PLI from any viewer)."""

    def __init__(self, width: int, height: int, fps: int = 15,
                 bitrate: int = 1_200_000) -> None:
        self.width, self.height = width, height
        self._codec = av.CodecContext.create("libvpx", "w")
        self._codec.width = width
        self._codec.height = height
        self._codec.pix_fmt = "yuv420p"
        self._codec.time_base = Fraction(1, 90000)
        self._codec.framerate = Fraction(fps, 1)
        self._codec.bit_rate = bitrate
        # No look-ahead (latency), error resilience for lossy networks, fastest realtime preset.
        self._codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                               "error-resilient": "1", "kf-max-dist": str(fps * 10)}
        self._step = 90000 // fps
        self._pts = 0
        self._force_keyframe = True
        self.frames_encoded = 0

    def request_keyframe(self) -> None:
        self._force_keyframe = True

    def encode(self, yuv420: np.ndarray) -> EncodedFrame | None:
        frame = av.VideoFrame.from_ndarray(yuv420, format="yuv420p")
        frame.pts = self._pts
        frame.time_base = self._codec.time_base
        self._pts += self._step
        if self._force_keyframe:
            frame.pict_type = PictureType.I
            self._force_keyframe = False
        packets = self._codec.encode(frame)
        self.frames_encoded += 1
        if not packets:
            return None
        return EncodedFrame(bytes(packets[0]), bool(packets[0].is_keyframe))
