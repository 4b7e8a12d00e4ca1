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
G711_RATE = 8000


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


def _lowpass_taps(cutoff: float, taps: int = 63) -> np.ndarray:
    """A Hamming-windowed sinc low-pass; ``cutoff`` as a fraction of the input sample rate."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = np.sinc(2 * cutoff * n) * np.hamming(taps)
    return (kernel / kernel.sum()).astype(np.float32)


class G711Encoder:
    """PCMU or PCMA at 8 kHz from the mixer's 48 kHz frames: low-pass, decimate by 6 (keeping
    filter state across frames so there is no click every 20 ms), then libav's G.711 encoder."""

    _DECIMATION = SAMPLE_RATE // G711_RATE

    def __init__(self, codec: str) -> None:
        name = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}[codec.lower()]
        self._codec = av.CodecContext.create(name, "w")
        self._codec.sample_rate = G711_RATE
        self._codec.layout = "mono"
        self._codec.format = "s16"
        self._taps = _lowpass_taps(3400 / SAMPLE_RATE)
        self._history = np.zeros(len(self._taps) - 1, dtype=np.float32)
        self._pts = 0
        self.frames_encoded = 0

    def encode(self, samples: np.ndarray) -> bytes | None:
        signal = np.concatenate([self._history, samples.astype(np.float32).reshape(-1)])
        self._history = signal[-(len(self._taps) - 1):]
        filtered = np.convolve(signal, self._taps, mode="valid")[::self._DECIMATION]
        pcm = np.clip(filtered, -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = G711_RATE
        frame.pts = self._pts
        self._pts += pcm.shape[-1]
        packets = self._codec.encode(frame)
        self.frames_encoded += 1
        return b"".join(bytes(p) for p in packets) or None


def audio_encoder(codec: str, bitrate: int) -> OpusEncoder | G711Encoder:
    """One encoder for a negotiated audio codec name (as in SDP: opus, PCMU, PCMA)."""
    if codec.lower() == "opus":
        return OpusEncoder(bitrate)
    return G711Encoder(codec)


class _VideoEncoder:
    """Shared by the video codecs: I420 numpy in, one encoded frame out, keyframe on request."""

    codec_name = ""

    def __init__(self, width: int, height: int, fps: int, bitrate: int,
                 options: dict[str, str]) -> None:
        self.width, self.height = width, height
        self._codec = av.CodecContext.create(self.codec_name, "w")
        self._codec.width = width
        self._codec.height = height
        self._codec.pix_fmt = "yuv420p"
        self._codec.time_base = Fraction(1, 90000)
        self._codec.framerate = Fraction(fps, 1)
        self._codec.bit_rate = bitrate
        self._codec.options = options
        # One thread per encoder: libvpx's own threads spin on a busy 2-core node and burned
        # 41.7 ms CPU per 720p VP8 frame against 5.8 ms single-threaded (x264: 3.3 vs 3.0 ms);
        # a node runs many encoders at once, so parallelism comes from there, not from inside.
        self._codec.thread_count = 1
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
        return EncodedFrame(b"".join(bytes(p) for p in packets),
                            any(p.is_keyframe for p in packets))


class Vp8Encoder(_VideoEncoder):
    """Realtime libvpx VP8; a keyframe on request (a new viewer, a PLI from any viewer)."""

    codec_name = "libvpx"

    def __init__(self, width: int, height: int, fps: int = 15,
                 bitrate: int = 1_200_000) -> None:
        # No look-ahead (latency), error resilience for lossy networks, fastest realtime preset.
        super().__init__(width, height, fps, bitrate, {
            "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
            "error-resilient": "1", "kf-max-dist": str(fps * 10)})


class H264Encoder(_VideoEncoder):
    """x264, Constrained Baseline (42e01f, what every WebRTC and SIP endpoint decodes), zero
    latency; the output is Annex B, which aiortc's H.264 packetizer splits into NAL units."""

    codec_name = "libx264"

    def __init__(self, width: int, height: int, fps: int = 15,
                 bitrate: int = 1_200_000) -> None:
        super().__init__(width, height, fps, bitrate, {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "level": "3.1",
            "x264-params": f"keyint={fps * 10}:repeat-headers=1"})


def video_encoder(codec: str, width: int, height: int, fps: int,
                  bitrate: int) -> Vp8Encoder | H264Encoder:
    """One encoder for a negotiated video codec name (VP8 or H264)."""
    if codec.lower() == "h264":
        return H264Encoder(width, height, fps, bitrate)
    return Vp8Encoder(width, height, fps, bitrate)
