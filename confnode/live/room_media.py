"""The media of one live room: forward between two, mix and compose for more.

This is the shell around the pure media cores (``confnode.media``): it owns the endpoints of the
room's calls, follows the router's decision, and runs the two clocks of a mixing room — a 20 ms
audio tick and a video tick at the composition frame rate. Encodes are shared: one encode per
distinct mix and codec (everyone who is not speaking hears the same full mix), one video encode
per distinct picture and video target (the codec, and for H.264 the receiver's level and
packetization mode: a level-limited SIP room system gets the picture scaled to fit).

Who takes part follows the room: only CONNECTED participants are heard and seen; a participant in
the lobby hears silence and receives no picture; muted participants are not heard but still hear.
A participant whose endpoint put the call on hold is neither heard nor seen (music-on-hold
endpoints keep sending their hold music and picture) and is sent nothing: its endpoint drops
what the negotiated direction does not allow, and nothing it sends is decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from av import AudioFrame, AudioResampler, VideoFrame

from confnode.config import MediaSettings
from confnode.media.compositor import Compositor, ViewSpec
from confnode.media.layouts import stage_order
from confnode.media.mixer import AudioMixer
from confnode.media.routing import KeyframeNeeded, MediaRouter, RouteMode
from confnode.media.speaker import ActiveSpeaker
from confnode.transport.encoders import (
    AudioEncoder,
    H264Encoder,
    VideoTarget,
    Vp8Encoder,
    audio_encoder,
    video_encoder,
)
from confnode.transport.webrtc.endpoint import WebRtcEndpoint
from confnode.transport.webrtc.tracks import OutboundTrack

log = logging.getLogger(__name__)

AUDIO_TICK = 0.020
LatencyObserver = Callable[[str, str, float], None]  # (kind, path, seconds)


@dataclass
class Member:
    participant_id: str
    endpoint: WebRtcEndpoint
    connected: bool
    muted: bool
    on_hold: bool = False
    audio_codec: str = "opus"
    # The receiver's video target; ``video_codec`` is its route name (the codec, with any H.264
    # limits folded in), which keys the shared encoders and the router's comparison.
    video_target: VideoTarget = field(default_factory=VideoTarget)
    video_codec: str = "vp8"
    latest_video: np.ndarray | None = None
    # Inbound audio at another rate or layout (G.711 is 8 kHz, Opus decodes to stereo) is
    # resampled to the mixer's 48 kHz mono and cut into 20 ms frames.
    resampler: Any = None
    pending_audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    ingress: dict[str, float] = field(default_factory=dict)  # kind -> monotonic arrival


@dataclass
class MediaCounters:
    audio_ticks: int = 0
    audio_encodes: int = 0
    video_frames_composed: int = 0
    video_encodes: int = 0


class RoomMedia:
    def __init__(self, room_id: str, settings: MediaSettings,
                 on_latency: LatencyObserver | None = None) -> None:
        self.room_id = room_id
        self.settings = settings
        self.layout = settings.layout
        self.members: dict[str, Member] = {}
        self.router = MediaRouter()
        self.mixer = AudioMixer()
        self.speaker = ActiveSpeaker()
        self.compositor = Compositor()
        self.counters = MediaCounters()
        # One encoder per distinct output and codec: (mix key, codec) and (view key, codec).
        self._audio_encoders: dict[tuple[Any, str], AudioEncoder] = {}
        self._video_encoders: dict[tuple[Any, str], Vp8Encoder | H264Encoder] = {}
        self._view_of: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._on_latency = on_latency

    @property
    def route(self) -> RouteMode:
        return self.router.route

    # Membership (called by the gateway on call start/end and by room events)

    def attach(self, endpoint: WebRtcEndpoint, *, connected: bool, muted: bool) -> None:
        pid = endpoint.participant_id
        codecs = {kind: name.lower() for kind, name in endpoint.negotiated_codecs().items()}
        target = endpoint.video_target() or VideoTarget()
        self.members[pid] = Member(pid, endpoint, connected, muted,
                                   audio_codec=codecs.get("audio", "opus"),
                                   video_target=target, video_codec=target.route_name)
        self.mixer.add(pid, muted=muted, in_lobby=not connected)
        endpoint.on_keyframe_request(lambda: self._keyframe_wanted_by(pid))
        if self._on_latency is not None:
            endpoint.on_egress = self._on_latency
        self._update_router()

    def detach(self, participant_id: str) -> None:
        member = self.members.pop(participant_id, None)
        if member is None:
            return
        self.mixer.remove(participant_id)
        self.speaker.remove(participant_id)
        self._view_of.pop(participant_id, None)
        self._update_router()

    def set_connected(self, participant_id: str, connected: bool) -> None:
        member = self.members.get(participant_id)
        if member is None or member.connected == connected:
            return
        member.connected = connected
        self.mixer.set_in_lobby(participant_id, not connected)
        self._update_router()

    def set_muted(self, participant_id: str, muted: bool) -> None:
        member = self.members.get(participant_id)
        if member is None or member.muted == muted:
            return
        member.muted = muted
        self.mixer.set_muted(participant_id, muted or member.on_hold)
        self._wire()

    def set_on_hold(self, participant_id: str, on_hold: bool) -> None:
        member = self.members.get(participant_id)
        if member is None or member.on_hold == on_hold:
            return
        member.on_hold = on_hold
        self.mixer.set_muted(participant_id, member.muted or on_hold)
        if on_hold:
            member.latest_video = None  # the tile goes blank instead of freezing
        self._wire()
        if not on_hold:
            # Its decoder restarts mid-stream, and it needs a picture of its own from us.
            self._spawn(member.endpoint.request_keyframe())
            self._keyframe_wanted_by(participant_id)

    def renegotiated(self, participant_id: str) -> None:
        """The endpoint's codecs changed (a SIP re-INVITE): encode for the new ones, re-decide
        passthrough against mixing, and restart the pictures both ways."""
        member = self.members.get(participant_id)
        if member is None:
            return
        codecs = {kind: name.lower() for kind, name in member.endpoint.negotiated_codecs().items()}
        member.audio_codec = codecs.get("audio", "opus")
        # The target, not just the codec name: H.264 level and packetization mode may have
        # changed too, and the router compares the folded name (as at attach).
        member.video_target = member.endpoint.video_target() or VideoTarget()
        member.video_codec = member.video_target.route_name
        member.resampler = None  # another codec may decode at another rate
        member.pending_audio = np.zeros(0, dtype=np.int16)
        member.latest_video = None
        if participant_id in self.router.participant_ids:
            self.router.update(participant_id, audio_codecs=_listed(codecs.get("audio")),
                               video_codecs=_listed(member.video_codec
                                                    if "video" in codecs else None))
        self._update_router()
        self._spawn(member.endpoint.request_keyframe())
        self._keyframe_wanted_by(participant_id)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # Routing

    def _update_router(self) -> None:
        active = {pid: m for pid, m in self.members.items() if m.connected}
        for pid in list(self.router.participant_ids):
            if pid not in active:
                self.router.leave(pid)
        for pid, member in active.items():
            if pid not in self.router.participant_ids:
                codecs = member.endpoint.negotiated_codecs()
                self.router.join(pid, audio_codecs=_listed(codecs.get("audio")),
                                 video_codecs=_listed(member.video_codec
                                                      if "video" in codecs else None))
        keyframes: set[str] = set()
        while (event := self.router.next_event()) is not None:
            if isinstance(event, KeyframeNeeded):
                keyframes.add(event.participant_id)
        self._wire()
        for pid in keyframes:
            member = self.members.get(pid)
            if member is not None:
                self._spawn(member.endpoint.request_keyframe())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _wire(self) -> None:
        """Point every inbound tap at its destination for the current route."""
        passthrough = self.router.route is RouteMode.PASSTHROUGH
        pair = [m for m in self.members.values() if m.connected]
        mixing = not passthrough and len(pair) >= 2
        for member in self.members.values():
            # Decode only what will be mixed: nobody else to mix for, or a lobby participant
            # (never heard or seen), costs no decode.
            member.endpoint.set_decoding(mixing and member.connected and not member.on_hold)
            for kind in ("audio", "video"):
                member.endpoint.set_forwarder(kind, None)
                if isinstance(member.endpoint, WebRtcEndpoint):
                    member.endpoint.set_relay(kind, None)
        if passthrough and len(pair) == 2:
            a, b = pair
            for src, dst in ((a, b), (b, a)):
                for kind in ("audio", "video"):
                    if src.on_hold or (kind == "audio" and src.muted):
                        continue
                    # Browser to browser: relay RTP packets. Otherwise (a SIP leg) forward
                    # encoded frames through the destination's outbound track.
                    if (isinstance(src.endpoint, WebRtcEndpoint)
                            and isinstance(dst.endpoint, WebRtcEndpoint)
                            and src.endpoint.set_relay(kind, dst.endpoint)):
                        continue
                    track = dst.endpoint.outbound.get(kind)
                    if track is not None:
                        src.endpoint.set_forwarder(kind, self._forwarder(src, track, kind))
            self._stop_ticks()
        elif mixing:
            self._start_ticks()
        else:
            self._stop_ticks()

    def _forwarder(self, src: Member, track: Any, kind: str) -> Callable[..., None]:
        def forward(_codec: Any, frame: Any) -> None:
            track.push(frame.data, frame.timestamp, src, ingress=time.monotonic(),
                       path="passthrough")
        return forward

    def _keyframe_wanted_by(self, participant_id: str) -> None:
        """A viewer lost picture: ask the source (passthrough) or our encoder (composed)."""
        if self.router.route is RouteMode.PASSTHROUGH:
            for pid, member in self.members.items():
                if pid != participant_id and member.connected:
                    self._spawn(member.endpoint.request_keyframe())
        else:
            member = self.members.get(participant_id)
            key = self._view_of.get(participant_id)
            encoder = self._video_encoders.get((key, member.video_codec)) if member else None
            if encoder is not None:
                encoder.request_keyframe()

    # Mixing path

    def on_frame(self, participant_id: str, kind: str, frame: AudioFrame | VideoFrame) -> None:
        member = self.members.get(participant_id)
        if member is None or member.on_hold:
            return
        if kind == "audio":
            member.ingress.setdefault(kind, time.monotonic())
            assert isinstance(frame, AudioFrame)
            for chunk in _mixer_frames(member, frame):
                self.mixer.push(participant_id, chunk)
        else:
            assert isinstance(frame, VideoFrame)
            member.ingress[kind] = time.monotonic()
            member.latest_video = frame.to_ndarray(format="yuv420p")

    def _start_ticks(self) -> None:
        if self._tasks:
            return
        self._tasks = [asyncio.ensure_future(self._audio_loop()),
                       asyncio.ensure_future(self._video_loop())]

    def _stop_ticks(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _audio_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += AUDIO_TICK
            await self.audio_tick()
            delay = next_tick - loop.time()
            if delay < -0.2:  # fell far behind (paused process): do not burst to catch up
                next_tick = loop.time()
            await asyncio.sleep(max(0.0, delay))

    async def audio_tick(self) -> None:
        result = self.mixer.tick()
        self.counters.audio_ticks += 1
        self.speaker.update(result.levels)
        wanted = {(key, self.members[pid].audio_codec) for pid, key in result.assignment.items()
                  if pid in self.members}
        encoded: dict[tuple[Any, str], bytes | None] = {}
        for key, codec in wanted:
            encoder = self._audio_encoders.get((key, codec))
            if encoder is None:
                encoder = self._audio_encoders[(key, codec)] = audio_encoder(
                    codec, self.settings.audio_bitrate)
            encoded[(key, codec)] = encoder.encode(result.outputs[key])
            self.counters.audio_encodes += 1
        for stale in [k for k in self._audio_encoders if k not in wanted]:
            del self._audio_encoders[stale]
        # Ingress of the oldest frame mixed this tick: what the mix adds to a speaker's delay.
        ingress = min((self.members[p].ingress["audio"] for p in result.speakers
                       if p in self.members and "audio" in self.members[p].ingress),
                      default=None)
        for pid, key in result.assignment.items():
            member = self.members.get(pid)
            if member is None:
                continue
            data = encoded.get((key, member.audio_codec))
            track = member.endpoint.outbound.get("audio")
            if track is None or data is None:
                continue
            if isinstance(track, OutboundTrack) and track.stream is not None:
                await track.send_now(data, ingress=ingress)  # a browser: straight to its RTP
            else:
                track.push(data, 0, self, ingress=ingress)
        for member in self.members.values():
            member.ingress.pop("audio", None)

    async def _video_loop(self) -> None:
        period = 1.0 / self.settings.fps
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += period
            await self.video_tick()
            delay = next_tick - loop.time()
            if delay < -1.0:
                next_tick = loop.time()
            await asyncio.sleep(max(0.0, delay))

    async def video_tick(self) -> None:
        views = self._views()
        if not views:
            return
        pictures = {pid: m.latest_video for pid, m in self.members.items() if m.connected}
        frames, assignment = self.compositor.compose_views(views, pictures)
        self.counters.video_frames_composed += len(frames)
        loop = asyncio.get_running_loop()
        targets = {self.members[pid].video_codec: self.members[pid].video_target
                   for pid in assignment if pid in self.members}
        wanted = {(key, self.members[pid].video_codec) for pid, key in assignment.items()
                  if pid in self.members}
        encoded = {}
        for key, codec in wanted:
            encoder = self._video_encoders.get((key, codec))
            if encoder is None:
                encoder = self._video_encoders[(key, codec)] = video_encoder(
                    targets[codec], self.settings.width, self.settings.height, self.settings.fps,
                    self.settings.video_bitrate)
            encoded[(key, codec)] = await loop.run_in_executor(None, encoder.encode,
                                                               frames[key])
            self.counters.video_encodes += 1
        for stale in [k for k in self._video_encoders if k not in wanted]:
            del self._video_encoders[stale]
        for pid, key in assignment.items():
            member = self.members.get(pid)
            if member is None:
                continue
            encoder_key = (key, member.video_codec)
            if self._view_of.get(pid) != key and encoder_key in self._video_encoders:
                self._video_encoders[encoder_key].request_keyframe()  # joined this picture
            self._view_of[pid] = key
            result = encoded.get(encoder_key)
            track = member.endpoint.outbound.get("video")
            if result is not None and track is not None:
                newest = max((self.members[p].ingress.get("video", 0.0)
                              for p in key.participants if p in self.members), default=0.0)
                track.push(result.data, self.counters.video_frames_composed * 6000, self,
                           keyframe=result.keyframe, ingress=newest or None)

    def _views(self) -> dict[str, ViewSpec]:
        """Each viewer's picture (``stage_order``: never themselves on stage); lobby participants
        get none. Viewers who get the same order share one composition and one encode."""
        connected = [pid for pid, m in self.members.items() if m.connected]
        views: dict[str, ViewSpec] = {}
        for pid in connected:
            if "video" not in self.members[pid].endpoint.outbound:
                continue
            order = stage_order(pid, connected, self.layout, speaker=self.speaker.current,
                                previous_speaker=self.speaker.previous)
            if order:
                views[pid] = ViewSpec(self.layout, self.settings.width, self.settings.height,
                                      order)
        return views


def _listed(codec: str | None) -> tuple[str, ...]:
    return (codec.lower(),) if codec else ()


MIXER_RATE = 48000
MIXER_FRAME = 960


def _mixer_frames(member: Member, frame: AudioFrame) -> list[np.ndarray]:
    """The frame as 48 kHz mono int16, in whole 20 ms frames (a remainder waits for more)."""
    if frame.sample_rate == MIXER_RATE and frame.format.name == "s16":
        data = frame.to_ndarray().reshape(-1)
        if len(frame.layout.channels) == 2:
            data = data.reshape(-1, 2).mean(axis=1).astype(np.int16)
    else:
        if member.resampler is None:
            member.resampler = AudioResampler(format="s16", layout="mono", rate=MIXER_RATE)
        parts = [f.to_ndarray().reshape(-1) for f in member.resampler.resample(frame)]
        data = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    buffered = np.concatenate([member.pending_audio, data]) if member.pending_audio.size \
        else data
    whole = buffered.size // MIXER_FRAME * MIXER_FRAME
    member.pending_audio = buffered[whole:].copy()
    return [buffered[i:i + MIXER_FRAME] for i in range(0, whole, MIXER_FRAME)]
