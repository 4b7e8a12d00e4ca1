"""One participant's WebRTC media connection (aiortc answerer), as the room media sees it.

The endpoint answers the browser's offer, sends whatever the room gives its outbound tracks, and
reports inbound media three ways: RTP packets relayed to another WebRTC endpoint's outgoing stream
(passthrough between two browsers), encoded frames to a forwarder (passthrough to another kind of
endpoint) and, while the room mixes, decoded frames to the engine. It never decides routing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp
from av.frame import Frame

from confnode.transport.encoders import VideoTarget
from confnode.transport.webrtc.rtp_stream import OutboundRtpStream
from confnode.transport.webrtc.taps import DecodeGate, install_gate, request_keyframe
from confnode.transport.webrtc.tracks import OutboundTrack

log = logging.getLogger(__name__)

FrameSink = Callable[[str, str, Frame], None]  # (participant_id, kind, frame)
StateSink = Callable[[str], Awaitable[None]]


def _answer_one_codec(transceiver: Any) -> None:
    """Answer with exactly one codec per m-line (the offerer's first that we support, RFC 3264
    order) plus its RTX. Pexip's SDK rewrites the answer it receives to prefer H.264; with a
    single codec there is nothing left to reorder, and the node always knows what will arrive
    (the passthrough router forwards only between legs on the same codec)."""
    codecs = getattr(transceiver, "_codecs", None)
    if not codecs:
        return
    chosen = next((c for c in codecs if not is_rtx(c)), None)
    if chosen is None:
        return
    transceiver._codecs = [chosen, *(c for c in codecs if is_rtx(c)
                                     and c.parameters.get("apt") == chosen.payloadType)]


@dataclass
class Inbound:
    kind: str
    receiver: RTCRtpReceiver
    gate: DecodeGate
    track: MediaStreamTrack | None = None
    reader: asyncio.Task[None] | None = None


@dataclass
class Timings:
    """Monotonic instants for join-time metrics (token → first media)."""

    created: float = field(default_factory=time.monotonic)
    connected: float | None = None
    first_packet_sent: float | None = None
    first_frame_received: float | None = None


class WebRtcEndpoint:
    def __init__(self, call_id: str, participant_id: str, *, ice: RTCConfiguration,
                 on_state: StateSink, on_frame: FrameSink) -> None:
        self.call_id = call_id
        self.participant_id = participant_id
        self.pc = RTCPeerConnection(ice)
        self.outbound: dict[str, OutboundTrack] = {}
        self.senders: dict[str, RTCRtpSender] = {}
        self.streams: dict[str, OutboundRtpStream] = {}
        self.inbound: dict[str, Inbound] = {}
        self.timings = Timings()
        self._on_state = on_state
        self._on_frame = on_frame
        self._closed = False
        # Join-time instrumentation: called once with "received", once with "sent".
        self.on_first_media: Callable[[str], None] | None = None
        self.on_egress: Callable[[str, str, float], None] | None = None
        self.pc.on("connectionstatechange", self._state_changed)

    @property
    def kinds(self) -> set[str]:
        return set(self.inbound)

    def negotiated_codecs(self) -> dict[str, str]:
        codecs: dict[str, str] = {}
        for transceiver in self.pc.getTransceivers():
            chosen = getattr(transceiver, "_codecs", None)
            if chosen:
                codecs[transceiver.kind] = chosen[0].mimeType.split("/", 1)[1]
        return codecs

    def video_target(self) -> VideoTarget | None:
        """What the room encodes for this browser: its codec at the node's defaults (libwebrtc
        decodes any level the node produces, and aiortc packetizes)."""
        codec = self.negotiated_codecs().get("video")
        return VideoTarget(codec.lower()) if codec is not None else None

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in self.pc.getTransceivers():
            _answer_one_codec(transceiver)
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            if kind not in ("audio", "video") or kind in self.inbound:
                continue
            gate = install_gate(transceiver.receiver)
            gate.on_first_frame = self._first_received
            gate.on_relayed = self._relayed
            if kind == "audio":
                gate.on_decoded = self._decoded_audio
            inbound = self.inbound[kind] = Inbound(kind, transceiver.receiver, gate)
            # aiortc fires "track" inside setRemoteDescription, before this loop: read the
            # receiver's track directly instead.
            inbound.track = transceiver.receiver.track
            inbound.reader = asyncio.ensure_future(self._read(inbound, inbound.track))
            track = OutboundTrack(kind)
            track.on_first_packet = self._first_sent
            track.on_egress = self._egress
            self.outbound[kind] = track
            sender = self.senders[kind] = self.pc.addTrack(track)
            stream = self.streams[kind] = OutboundRtpStream.install(sender)
            stream.on_first_relayed = self._first_sent
            track.stream = stream
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription.sdp

    async def renegotiate(self, offer_sdp: str) -> str:
        """An ``update`` from the client (codec change, added video): answer it on the same pc."""
        return await self.answer(offer_sdp)

    async def add_candidate(self, candidate: str, mid: str | None) -> None:
        if not candidate:
            return  # end of candidates
        sdp = candidate.removeprefix("candidate:")
        parsed = candidate_from_sdp(sdp)
        parsed.sdpMid = mid
        await self.pc.addIceCandidate(parsed)

    def set_forwarder(self, kind: str, forward: Callable[..., None] | None) -> None:
        inbound = self.inbound.get(kind)
        if inbound is not None:
            inbound.gate.forward = forward

    def set_relay(self, kind: str, target: WebRtcEndpoint | None) -> bool:
        """Relay inbound ``kind`` packets into ``target``'s outgoing stream (None: stop).

        False when either side has no such stream; the caller then forwards frames instead.
        """
        inbound = self.inbound.get(kind)
        stream = target.streams.get(kind) if target is not None else None
        if inbound is None:
            return False
        inbound.gate.relay = stream
        return stream is not None

    def set_decoding(self, decode: bool) -> None:
        for inbound in self.inbound.values():
            inbound.gate.decode = decode

    async def request_keyframe(self) -> None:
        inbound = self.inbound.get("video")
        if inbound is not None:
            await request_keyframe(inbound.receiver)

    def on_keyframe_request(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the browser asks us for a keyframe (PLI/FIR on our sender)."""
        sender = self.senders.get("video")
        if sender is None:
            return
        original = sender._send_keyframe

        def forward_keyframe_request() -> None:
            original()
            callback()

        sender._send_keyframe = forward_keyframe_request  # type: ignore[method-assign]

    def frames_decoded(self) -> int:
        return sum(i.gate.frames_decoded for i in self.inbound.values())

    def frames_forwarded(self) -> int:
        return sum(i.gate.frames_forwarded for i in self.inbound.values())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for inbound in self.inbound.values():
            if inbound.reader is not None:
                inbound.reader.cancel()
        for track in self.outbound.values():
            track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()

    def _first_received(self) -> None:
        if self.timings.first_frame_received is None:
            self.timings.first_frame_received = time.monotonic()
            if self.on_first_media is not None:
                self.on_first_media("received")

    def _first_sent(self) -> None:
        if self.timings.first_packet_sent is None:
            self.timings.first_packet_sent = time.monotonic()
            if self.on_first_media is not None:
                self.on_first_media("sent")

    def _relayed(self, kind: str, seconds: float) -> None:
        self._egress(kind, "passthrough", seconds)

    def _egress(self, kind: str, path: str, seconds: float) -> None:
        if self.on_egress is not None:
            self.on_egress(kind, path, seconds)

    def _decoded_audio(self, frame: Frame) -> None:
        self._on_frame(self.participant_id, "audio", frame)

    async def _read(self, inbound: Inbound, track: MediaStreamTrack) -> None:
        """Decoded video arrives only while the gate lets frames through to the decoder (audio
        is decoded by the gate itself and never comes this way)."""
        try:
            while True:
                frame = await track.recv()
                self._on_frame(self.participant_id, inbound.kind, frame)
        except (MediaStreamError, asyncio.CancelledError):
            return

    async def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.timings.connected is None:
            self.timings.connected = time.monotonic()
        log.debug("call %s: connection %s", self.call_id, state)
        await self._on_state(state)
