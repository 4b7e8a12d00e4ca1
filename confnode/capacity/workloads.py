"""Synthetic calls through the node's own media engine, timed in CPU-seconds per call-second.

Each workload prepares what the far end would send (Opus and VP8 streams, SRTP packets) without
timing it, then runs the node's side of the work as fast as it can, timing only that with
``time.process_time`` (every thread of the process, libvpx's included):

* passthrough — per forwarded packet: SRTP unprotect, RTP parse, SSRC/sequence rewrite,
  serialize, SRTP protect (pylibsrtp, aiortc's ``RtpPacket``), at a 720p call's packet rate;
* audio-only — a room of ``ROOM`` speakers: Opus decode (aiortc's decoder), mix-minus
  (``AudioMixer``), one Opus encode per distinct mix (``OpusEncoder``), a packet in and out each;
* SD / HD / Full-HD — the same room composed: VP8 decode of each participant's picture, the
  ``Compositor``'s views, one VP8 encode per distinct picture (``Vp8Encoder``), packets in and
  out; a video call's cost adds the audio-only call's (it carries audio too).

What is *not* here is the asyncio and aiortc plumbing around each packet; ``estimate.HEADROOM``
leaves room for it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from aiortc.codecs.opus import OpusDecoder
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from confnode.config import MediaSettings
from confnode.media.compositor import Compositor, ViewSpec
from confnode.media.layouts import stage_order
from confnode.media.mixer import AudioMixer
from confnode.transport.encoders import FRAME_SAMPLES, OpusEncoder, Vp8Encoder

ROOM = 4  # participants per synthetic room: every viewer's picture and mix differ (1:7)
AUDIO_PACKETS_PER_SECOND = 50  # one Opus packet per 20 ms
RTP_PAYLOAD = 1100  # bytes of video per RTP packet (below a 1200-byte MTU with headers)
WARM_UP_STEPS = 1  # the first step opens the codecs and encodes the keyframes
SPEAKING_TURN = 50  # mixer ticks (1 s) each participant speaks before the next takes over
SRTP_KEY_LENGTH = 30  # AES_CM_128_HMAC_SHA1_80: 16-byte key + 14-byte salt


class Workload(Protocol):
    def prepare_next(self) -> None:
        """Make what the far ends send for the next step (not timed)."""

    def tick(self) -> float:
        """Do one step of the node's work (timed); returns the media seconds it covered."""


@dataclass(frozen=True)
class Measurement:
    cpu_seconds: float
    call_seconds: float

    @property
    def per_call_second(self) -> float:
        return self.cpu_seconds / self.call_seconds


def measure(workload: Workload, calls: int, seconds: float,
            on_progress: Callable[[float], None] | None = None) -> Measurement:
    """Step ``workload`` until ``seconds`` of wall time have gone (at least one step), after
    ``WARM_UP_STEPS`` untimed ones: codec set-up and the first keyframes are a join's cost,
    not a call-second's."""
    for _ in range(WARM_UP_STEPS):
        workload.tick()
        workload.prepare_next()
    cpu = media = 0.0
    start = time.monotonic()
    while True:
        before = time.process_time()
        covered = workload.tick()
        cpu += time.process_time() - before
        workload.prepare_next()
        media += covered
        elapsed = time.monotonic() - start
        if on_progress is not None:
            on_progress(min(elapsed, seconds))
        if elapsed >= seconds:
            return Measurement(cpu, media * calls)


def video_packets_per_second(bitrate: int, fps: int) -> int:
    """RTP packets a video stream of ``bitrate`` needs at ``fps`` (each frame in whole packets)."""
    return math.ceil(bitrate / 8 / fps / RTP_PAYLOAD) * fps


class PacketForwarding:
    """The per-packet work of forwarding between two SRTP legs; the far ends' protect is
    prepared ahead, untimed."""

    def __init__(self) -> None:
        inbound_key, outbound_key = os.urandom(SRTP_KEY_LENGTH), os.urandom(SRTP_KEY_LENGTH)
        self._far_end = Session(Policy(inbound_key, Policy.SSRC_ANY_OUTBOUND))
        self._receive = Session(Policy(inbound_key, Policy.SSRC_ANY_INBOUND))
        self._send = Session(Policy(outbound_key, Policy.SSRC_ANY_OUTBOUND))
        self._sequence = 0
        self._out_sequence = 0

    def far_end_packets(self, sizes: list[int]) -> list[bytes]:
        packets = []
        for size in sizes:
            self._sequence += 1
            packet = RtpPacket(payload_type=96, sequence_number=self._sequence & 0xFFFF,
                               timestamp=self._sequence * 3000, ssrc=0x1234,
                               payload=os.urandom(size))
            packets.append(self._far_end.protect(packet.serialize()))
        return packets

    def forward(self, packets: list[bytes]) -> None:
        for data in packets:
            packet = RtpPacket.parse(self._receive.unprotect(data))
            self._out_sequence = (self._out_sequence + 1) & 0xFFFF
            packet.ssrc, packet.sequence_number = 0x5678, self._out_sequence
            self._send.protect(packet.serialize())


class PassthroughCall:
    """One 720p call forwarded to its peer: a second of its audio and video packets per tick."""

    def __init__(self, settings: MediaSettings) -> None:
        self._forwarding = PacketForwarding()
        video = video_packets_per_second(settings.video_bitrate, settings.fps)
        self._sizes = [120] * AUDIO_PACKETS_PER_SECOND + [RTP_PAYLOAD] * video
        self._next: list[bytes] = []
        self.prepare_next()

    def prepare_next(self) -> None:
        self._next = self._forwarding.far_end_packets(self._sizes)

    def tick(self) -> float:
        self._forwarding.forward(self._next)
        return 1.0


def tone(hz: float, seconds: float, rate: int = 48000, level: float = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def opus_stream(hz: float, frames: int) -> list[bytes]:
    """What a speaking participant sends: ``frames`` 20 ms Opus packets of a tone."""
    encoder, samples = OpusEncoder(), tone(hz, frames * FRAME_SAMPLES / 48000)
    packets = []
    for i in range(frames):
        data = encoder.encode(samples[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
        if data:
            packets.append(data)
    return packets


def moving_picture(width: int, height: int, frame: int, seed: int) -> np.ndarray:
    """An I420 frame with motion and texture, so the encoders do a camera's work, not a still's."""
    y_axis, x_axis = np.mgrid[0:height, 0:width]
    luma = (128 + 60 * np.sin((x_axis + 6 * frame + seed * 40) / 23.0)
            * np.cos((y_axis - 3 * frame) / 31.0)).astype(np.uint8)
    box = (frame * 8 + seed * 50) % max(width - width // 4, 1)
    luma[height // 3:height // 3 + height // 4, box:box + width // 4] = 230
    # No per-frame random noise: it is incompressible, and a camera's is mostly filtered out
    # before the encoder; with it, libvpx spends ~8x a real camera's time per frame.
    chroma = np.full((height // 2, width), 128 + 10 * seed, dtype=np.uint8)
    return np.concatenate([luma.astype(np.uint8), chroma])


def vp8_stream(width: int, height: int, frames: int, fps: int, bitrate: int,
               seed: int) -> list[bytes]:
    """What a participant's camera sends: ``frames`` VP8 frames, a keyframe first."""
    encoder = Vp8Encoder(width, height, fps, bitrate)
    out = []
    for i in range(frames):
        result = encoder.encode(moving_picture(width, height, i, seed))
        if result is not None:
            out.append(result.data)
    return out


class AudioRoom:
    """``ROOM`` participants in conversation, one speaking at a time in turns: everyone is
    decoded (the mixer must hear who starts talking), the speaker hears the others' mix-minus
    and the listeners share one mix, so two encodes per tick, as in a consultation."""

    def __init__(self, settings: MediaSettings, frames: int = 50) -> None:
        self.ids = [f"p{i}" for i in range(ROOM)]
        self._voices = {pid: opus_stream(300 + 170 * i, frames) for i, pid in
                        enumerate(self.ids)}
        self._silence = opus_stream(0, frames)
        self._decoders = {pid: OpusDecoder() for pid in self.ids}
        self._mixer = AudioMixer()
        for pid in self.ids:
            self._mixer.add(pid)
        self._bitrate = settings.audio_bitrate
        self._encoders: dict[object, OpusEncoder] = {}
        self._forwarding = PacketForwarding()
        self._next: list[bytes] = []
        self._step = 0
        self.prepare_next()

    def prepare_next(self) -> None:
        self._next = self._forwarding.far_end_packets([120] * ROOM)

    def tick(self) -> float:
        """One 20 ms mixer tick for the whole room."""
        self._forwarding.forward(self._next)  # a packet in and out per participant
        speaker = self.ids[self._step // SPEAKING_TURN % ROOM]
        for pid in self.ids:
            stream = self._voices[pid] if pid == speaker else self._silence
            data = stream[self._step % len(stream)]
            for frame in self._decoders[pid].decode(JitterFrame(data, self._step * 960)):
                stereo = frame.to_ndarray().reshape(-1, 2)  # aiortc decodes Opus to stereo
                self._mixer.push(pid, stereo.mean(axis=1).astype(np.int16))
        result = self._mixer.tick()
        for key in set(result.assignment.values()):
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = self._encoders[key] = OpusEncoder(self._bitrate)
            encoder.encode(result.outputs[key])
        self._step += 1
        return FRAME_SAMPLES / 48000


class VideoRoom:
    """``ROOM`` cameras composed: decode each, compose each viewer's picture (nobody sees
    themselves), one VP8 encode per distinct picture."""

    def __init__(self, settings: MediaSettings, width: int, height: int, frames: int) -> None:
        self.ids = [f"p{i}" for i in range(ROOM)]
        self._fps = settings.fps
        # One camera stream for all (each still has its own decoder): preparing a stream per
        # participant would cost more than measuring them.
        stream = vp8_stream(width, height, frames, settings.fps, settings.video_bitrate, 1)
        self._streams = dict.fromkeys(self.ids, stream)
        self._decoders = {pid: Vp8Decoder() for pid in self.ids}
        self._compositor = Compositor()
        self._views = {viewer: ViewSpec(settings.layout, width, height,
                                        stage_order(viewer, self.ids, settings.layout,
                                                    speaker=self.ids[0]))
                       for viewer in self.ids}
        self._encoders = {viewer: Vp8Encoder(width, height, settings.fps,
                                             settings.video_bitrate) for viewer in self.ids}
        self._forwarding = PacketForwarding()
        self._step = 0
        self._next: list[bytes] = []
        self.prepare_next()

    def prepare_next(self) -> None:
        """The far ends' packets of the next frame (untimed)."""
        sizes = []
        for pid in self.ids:
            stream = self._streams[pid]
            size = len(stream[self._step % len(stream)])
            sizes += [RTP_PAYLOAD] * math.ceil(size / RTP_PAYLOAD)
        self._next = self._forwarding.far_end_packets(sizes * 2)  # in, and out again

    def tick(self) -> float:
        """One composed frame for the whole room."""
        self._forwarding.forward(self._next)
        pictures = {}
        for pid in self.ids:
            stream = self._streams[pid]
            data = stream[self._step % len(stream)]
            for frame in self._decoders[pid].decode(JitterFrame(data, self._step * 6000)):
                pictures[pid] = frame.to_ndarray(format="yuv420p")
        frames, assignment = self._compositor.compose_views(self._views, pictures)
        for viewer, key in assignment.items():
            self._encoders[viewer].encode(frames[key])
        self._step += 1
        return 1.0 / self._fps
