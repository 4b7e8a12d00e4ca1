"""Media bots for tests: aiortc peers that send a known tone and numbered video, and analyse
what they receive (FFT peaks, decoded frame counts)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

SAMPLE_RATE = 48000


def peak_frequencies(audio: list[np.ndarray], last_seconds: float = 1.0,
                     count: int = 3) -> list[float]:
    """The strongest frequencies in the last ``last_seconds`` of 48 kHz mono ``audio``."""
    samples = np.concatenate(audio)[-int(SAMPLE_RATE * last_seconds):]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    peaks: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - p) > 40 for p in peaks):
            peaks.append(float(freqs[index]))
        if len(peaks) == count:
            break
    return peaks


def energy_at(audio: list[np.ndarray], frequency: float, last_seconds: float = 1.0) -> float:
    """Relative energy near ``frequency`` in 48 kHz mono ``audio`` (0 when there is too little)."""
    if not audio:
        return 0.0
    samples = np.concatenate(audio)[-int(SAMPLE_RATE * last_seconds):]
    if len(samples) < 4800:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    band = (freqs > frequency - 15) & (freqs < frequency + 15)
    return float(spectrum[band].max() / (len(samples) / 2))


def moving_bar(plane: np.ndarray, height: int, index: int) -> None:
    """Draw a bright bar that moves 8 px per frame: motion, so encoders and decoders do real
    work (a flat picture costs them next to nothing)."""
    width = plane.shape[1]
    left = (index * 8) % width
    plane[:height, left:left + width // 20] = 235


class ToneTrack(AudioStreamTrack):
    """A continuous sine at ``frequency`` Hz, 20 ms frames, paced in real time."""

    def __init__(self, frequency: float, amplitude: int = 8000) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._sample = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        samples = 960
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._sample / SAMPLE_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(samples) + self._sample) / SAMPLE_RATE
        tone = (np.sin(2 * np.pi * self.frequency * t) * self.amplitude).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._sample += samples
        return frame


class PatternTrack(VideoStreamTrack):
    """Small frames with a flat luma level per bot, so a receiver can tell whose picture it got."""

    def __init__(self, luma: int, width: int = 320, height: int = 240,
                 moving: bool = False) -> None:
        super().__init__()
        self.luma = luma
        self.width, self.height = width, height
        self.moving = moving
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        plane = np.full((self.height * 3 // 2, self.width), 128, dtype=np.uint8)
        plane[: self.height] = self.luma
        if self.moving:
            moving_bar(plane, self.height, self._index)
            self._index += 1
        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class Received:
    audio: list[np.ndarray] = field(default_factory=list)
    video_frames: int = 0
    video_luma: list[float] = field(default_factory=list)


class MediaBot:
    def __init__(self, name: str, *, tone: float | None = None, luma: int | None = None,
                 audio_codec: str | None = None, video_codec: str | None = None,
                 video_size: tuple[int, int] = (320, 240), moving: bool = False) -> None:
        """``audio_codec``/``video_codec`` (e.g. "PCMU", "H264") restrict what the bot offers,
        to play an endpoint that has only that codec. ``video_size`` and ``moving`` shape the
        picture it sends (a moving bar makes the codecs work as with a camera)."""
        self.name = name
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = Received()
        self._readers: list[asyncio.Task[None]] = []
        if tone is not None:
            self.pc.addTrack(ToneTrack(tone))
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        if luma is not None:
            self.pc.addTrack(PatternTrack(luma, *video_size, moving=moving))
        for transceiver in self.pc.getTransceivers():
            wanted = audio_codec if transceiver.kind == "audio" else video_codec
            if wanted:
                capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
                transceiver.setCodecPreferences(
                    [c for c in capabilities if c.mimeType.split("/")[1].lower()
                     in (wanted.lower(), "rtx")])
        self.pc.on("track", self._on_track)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def _on_track(self, track) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track) -> None:
        # Everything is analysed at 48 kHz mono, whatever codec (G.711 decodes at 8 kHz).
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    for resampled in resampler.resample(frame):
                        data = resampled.to_ndarray().reshape(-1)
                        self.received.audio.append(data.astype(np.float64))
                else:
                    self.received.video_frames += 1
                    plane = frame.to_ndarray(format="yuv420p")
                    self.received.video_luma.append(float(plane[: frame.height].mean()))

    def peak_frequencies(self, last_seconds: float = 1.0, count: int = 3) -> list[float]:
        """The strongest frequencies in the last ``last_seconds`` of received audio."""
        return peak_frequencies(self.received.audio, last_seconds, count)

    def energy_at(self, frequency: float, last_seconds: float = 1.0) -> float:
        """Relative energy near ``frequency`` in the received audio (0 when nothing received)."""
        return energy_at(self.received.audio, frequency, last_seconds)

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await self.pc.close()
