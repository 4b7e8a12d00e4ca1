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

from confnode.transport.h264 import H264SendLimits

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
G711_RATE = 8000
G722_RATE = 16000


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


class _DecimatingEncoder:
    """A telephony codec below the mixer's 48 kHz: low-pass, decimate (keeping filter state
    across frames so there is no click every 20 ms), then libav's encoder at ``rate``."""

    def __init__(self, codec_name: str, rate: int, passband_hz: float) -> None:
        self._codec = av.CodecContext.create(codec_name, "w")
        self._codec.sample_rate = rate
        self._codec.layout = "mono"
        self._codec.format = "s16"
        self._rate = rate
        self._decimation = SAMPLE_RATE // rate
        self._taps = _lowpass_taps(passband_hz / SAMPLE_RATE)
        self._history = np.zeros(len(self._taps) - 1, dtype=np.float32)
        self._pts = 0
        self.frames_encoded = 0

    def encode(self, samples: np.ndarray) -> bytes | None:
        signal = np.concatenate([self._history, samples.astype(np.float32).reshape(-1)])
        self._history = signal[-(len(self._taps) - 1):]
        filtered = np.convolve(signal, self._taps, mode="valid")[::self._decimation]
        pcm = np.clip(filtered, -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += pcm.shape[-1]
        packets = self._codec.encode(frame)
        self.frames_encoded += 1
        return b"".join(bytes(p) for p in packets) or None


class G711Encoder(_DecimatingEncoder):
    """PCMU or PCMA: 8 kHz, the telephone band (300-3400 Hz)."""

    def __init__(self, codec: str) -> None:
        name = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}[codec.lower()]
        super().__init__(name, G711_RATE, 3400)


class G722Encoder(_DecimatingEncoder):
    """G.722 (sub-band ADPCM, 64 kbit/s): 16 kHz sampling, a 50-7000 Hz band -- wideband
    speech at G.711's bit rate. One 20 ms frame is 320 samples and 160 bytes; its RTP
    timestamp still advances 160 because RFC 3551 §4.5.2 fixes G.722's RTP clock at 8000 Hz
    (see :class:`confnode.transport.rtp.endpoint.OutboundRtp`)."""

    def __init__(self) -> None:
        super().__init__("g722", G722_RATE, 7000)


AudioEncoder = OpusEncoder | G711Encoder | G722Encoder


def audio_encoder(codec: str, bitrate: int) -> AudioEncoder:
    """One encoder for a negotiated audio codec name (as in SDP: opus, G722, PCMU, PCMA)."""
    name = codec.lower()
    if name == "opus":
        return OpusEncoder(bitrate)
    if name == "g722":
        return G722Encoder()
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
        if (frame.width, frame.height) != (self.width, self.height):
            # A receiver whose level cannot take the room's picture gets it scaled down.
            frame = frame.reformat(width=self.width, height=self.height)
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
    """x264, Constrained Baseline (what every WebRTC and SIP endpoint decodes, whatever profile
    it offered), zero latency; the output is Annex B, which the packetizers split into NAL
    units. ``level`` is what the SPS declares (x264 spelling, "3.1" or "1b"); ``max_nal_size``
    caps every slice in bytes for single NAL unit packetization (RFC 6184 mode 0), costing a
    little compression for the extra slice headers."""

    codec_name = "libx264"

    def __init__(self, width: int, height: int, fps: int = 15, bitrate: int = 1_200_000, *,
                 level: str = "3.1", max_nal_size: int | None = None) -> None:
        params = f"keyint={fps * 10}:repeat-headers=1"
        if max_nal_size is not None:
            params += f":slice-max-size={max_nal_size}"
        super().__init__(width, height, fps, bitrate, {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "level": level,
            "x264-params": params})


@dataclass(frozen=True)
class VideoTarget:
    """What one receiver can take: the codec and, for H.264, its negotiated limits. Receivers
    with equal targets share one encode of the same picture."""

    codec: str = "vp8"
    h264: H264SendLimits | None = None

    @property
    def route_name(self) -> str:
        """The name the media router compares: limits folded in, so a constrained H.264 leg
        is never forwarded a stream its level or packetization mode cannot carry."""
        if self.h264 is None:
            return self.codec
        return f"{self.codec}/{self.h264.level}/{self.h264.max_fs}/{self.h264.max_mbps}/" \
            f"{self.h264.packetization_mode}"


def video_encoder(target: VideoTarget | str, width: int, height: int, fps: int,
                  bitrate: int) -> Vp8Encoder | H264Encoder:
    """One encoder for a negotiated video codec (VP8 or H264), fitted to the receiver's
    H.264 limits when it has any."""
    if isinstance(target, str):
        target = VideoTarget(target.lower())
    if target.codec.lower() != "h264":
        return Vp8Encoder(width, height, fps, bitrate)
    if target.h264 is None:
        return H264Encoder(width, height, fps, bitrate)
    fit_width, fit_height = target.h264.fit(width, height, fps)
    scale = fit_width * fit_height / (width * height)
    return H264Encoder(fit_width, fit_height, fps, max(64_000, int(bitrate * scale)),
                       level=target.h264.x264_level, max_nal_size=target.h264.max_nal_size)
