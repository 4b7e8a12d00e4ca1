"""Media bots for tests: aiortc peers that send a known tone and numbered video, and analyse
what they receive (FFT peaks, decoded frame counts)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from aiortc.rtp import RtpPacket, is_rtcp
from latency_markers import (
    MARKER_FREQUENCIES,
    AudioMarkerSchedule,
    MarkerReceiver,
    RoomMarkers,
    draw_code,
)

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
                 video_size: tuple[int, int] = (320, 240), moving: bool = False,
                 audio: MediaStreamTrack | None = None,
                 video: MediaStreamTrack | None = None) -> None:
        """``audio_codec``/``video_codec`` (e.g. "PCMU", "H264") restrict what the bot offers,
        to play an endpoint that has only that codec. ``video_size`` and ``moving`` shape the
        picture it sends (a moving bar makes the codecs work as with a camera); ``audio``/``video``
        send those tracks instead of a tone or a flat picture."""
        self.name = name
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = Received()
        self._readers: list[asyncio.Task[None]] = []
        if audio is None and tone is not None:
            audio = ToneTrack(tone)
        if audio is not None:
            self.pc.addTrack(audio)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        if video is None and luma is not None:
            video = PatternTrack(luma, *video_size, moving=moving)
        if video is not None:
            self.pc.addTrack(video)
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


class MarkerAudioTrack(AudioStreamTrack):
    """Silence with a tone burst at the sender's marker frequency every marker period (see
    latency_markers), each burst's send time noted in the room's markers as the frame leaves."""

    def __init__(self, slot: int, markers: RoomMarkers,
                 schedule: AudioMarkerSchedule | None = None) -> None:
        super().__init__()
        self.slot, self.markers = slot, markers
        self.schedule = schedule or AudioMarkerSchedule()
        self._noise = np.random.default_rng()
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._index * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = self.schedule.frame(MARKER_FREQUENCIES[self.slot - 1], self._index,
                                      self._noise)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._index * len(samples)
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        if self.schedule.is_marker_start(self._index):
            self.markers.audio_sent(self.slot, time.monotonic())
        self._index += 1
        return frame


class MarkerVideoTrack(VideoStreamTrack):
    """Pictures carrying the sender's slot and a frame counter (see latency_markers), each
    frame's send time noted in the room's markers."""

    def __init__(self, slot: int, markers: RoomMarkers, width: int = 320,
                 height: int = 240) -> None:
        super().__init__()
        self.slot, self.markers = slot, markers
        self.width, self.height = width, height
        self._counter = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._counter += 1
        frame = av.VideoFrame.from_ndarray(
            draw_code(self.width, self.height, self.slot, self._counter), format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        self.markers.video_sent(self.slot, self._counter, time.monotonic())
        return frame


class MarkerBot(MediaBot):
    """A bot that sends latency markers and measures what it receives (nothing is kept, so
    it can run for a long load test): measurements go to ``report`` as they happen."""

    def __init__(self, name: str, slot: int, markers: RoomMarkers,
                 report: Callable[[str, float, bool], None], *, video: bool,
                 audio_codec: str | None = None, video_codec: str | None = None) -> None:
        super().__init__(name, audio_codec=audio_codec, video_codec=video_codec,
                         audio=MarkerAudioTrack(slot, markers),
                         video=MarkerVideoTrack(slot, markers) if video else None)
        self.receiver = MarkerReceiver(slot, markers, report)
        self.markers, self.report = markers, report

    async def offer(self) -> str:
        sdp = await super().offer()
        self.tap_rtp()
        return sdp

    def tap_rtp(self) -> None:
        """Note each RTP packet's payload and time as it leaves (before SRTP) and as it arrives
        (after SRTP), so a forwarded packet's path through the node is timed on its own, without
        the codec and jitter buffer. Wraps aiortc's private transport methods (aiortc 1.16)."""
        kinds = {sender._ssrc: sender.kind for sender in self.pc.getSenders()}
        transports = {id(t.sender.transport): t.sender.transport
                      for t in self.pc.getTransceivers() if t.sender.transport is not None}
        for transport in transports.values():
            send, handle = transport._send_rtp, transport._handle_rtp_data

            async def tapped_send(data: bytes, send=send) -> None:
                if not is_rtcp(data):
                    packet = RtpPacket.parse(data)
                    kind = kinds.get(packet.ssrc)
                    if kind is not None and packet.payload:
                        self.markers.packet_sent(kind, packet.payload, time.monotonic())
                await send(data)

            async def tapped_handle(data: bytes, arrival_time_ms: int, handle=handle) -> None:
                arrived = time.monotonic()
                with contextlib.suppress(ValueError):
                    found = self.markers.packet_latency(RtpPacket.parse(data).payload, arrived)
                    if found is not None:
                        self.report(f"{found[0]} packet latency", found[1], False)
                await handle(data, arrival_time_ms)

            transport._send_rtp = tapped_send
            transport._handle_rtp_data = tapped_handle

    async def _read(self, track) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                arrived = time.monotonic()
                if track.kind == "audio":
                    samples = np.concatenate([r.to_ndarray().reshape(-1)
                                              for r in resampler.resample(frame)] or [[]])
                    self.receiver.audio(samples, frame.pts, frame.sample_rate, frame.samples,
                                        arrived)
                else:
                    self.receiver.video(frame.to_ndarray(format="yuv420p"), frame.width,
                                        frame.height, arrived)
