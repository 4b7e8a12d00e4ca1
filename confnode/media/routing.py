"""Media routing for a room: forward encoded media between two peers, or mix (sans-IO).

Pexip's "direct media": a one-to-one call whose two endpoints share codecs needs no decoding,
mixing or re-encoding at all; the node forwards RTP payloads from one leg to the other
(re-encrypting per leg: DTLS-SRTP on WebRTC, SDES or plain RTP on SIP). That is an order of
magnitude cheaper than transcoding (REFERENCES.md §5: a 720p VP8 encode alone is a core's worth
of work per few participants) and it is the common case in general practice: a GP and a
patient. A third media participant, a codec mismatch, or a lone participant (who must see a
holding picture from the node) means the room is MIXED: decode, mix and compose, encode.

The router decides which, from who has media in the room and the codecs each leg negotiated,
and reports transitions:

* :class:`RouteChanged` whenever the mode flips, e.g. when a third person joins a passthrough call
  and again when they leave.
* :class:`KeyframeNeeded` for a participant whose media path (re)starts: for everyone present
  when the route changes, and for the newcomer on a join that keeps the route. A decoder that
  starts mid-stream (the mixer's, or the other peer's after a switch to forwarding) shows garbage
  until the next keyframe, and libvpx's default keyframe interval is minutes, so the shell sends
  a PLI (RFC 4585 §6.3.1) to that participant's sender, and in MIXED also forces a keyframe on
  the node's encoder that now feeds them.

Codecs are compared case-insensitively as the names the SDP layer hands over; where parameters
decide interoperability (H.264 ``profile-level-id`` and ``packetization-mode``) the SDP layer
must fold them into the name (e.g. ``H264/42e01f/1``). Participants in the lobby or waiting room
are not media participants: join them here when they are admitted to the room's media.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from confnode.errors import Conflict, NotFound


class RouteMode(StrEnum):
    PASSTHROUGH = "passthrough"  # forward encoded media between exactly two peers
    MIXED = "mixed"  # decode, mix/compose, encode per output


class RouteReason(StrEnum):
    TWO_COMPATIBLE = "two_compatible"  # the two peers share an audio and (if any) video codec
    MORE_THAN_TWO = "more_than_two"
    FEWER_THAN_TWO = "fewer_than_two"  # alone (or empty): the node shows a holding picture
    NO_COMMON_CODEC = "no_common_codec"  # two peers whose codecs or media kinds do not match


class KeyframeReason(StrEnum):
    ROUTE_CHANGED = "route_changed"
    JOINED = "joined"
    CODECS_CHANGED = "codecs_changed"  # a passthrough leg renegotiated to another codec


@dataclass(frozen=True, slots=True)
class CodecPair:
    """The codecs a passthrough call forwards; ``video`` is None for an audio-only call."""

    audio: str
    video: str | None


@dataclass(frozen=True, kw_only=True)
class RouteEvent:
    pass


@dataclass(frozen=True, kw_only=True)
class RouteChanged(RouteEvent):
    old: RouteMode
    new: RouteMode
    reason: RouteReason


@dataclass(frozen=True, kw_only=True)
class KeyframeNeeded(RouteEvent):
    participant_id: str
    reason: KeyframeReason


@dataclass(frozen=True, slots=True)
class _Leg:
    audio: tuple[str, ...]  # casefolded, in the participant's preference order
    video: tuple[str, ...]


@dataclass(slots=True)
class MediaRouter:
    """The passthrough-or-mix decision for one room; starts MIXED and empty."""

    _legs: dict[str, _Leg] = field(default_factory=dict, init=False)
    _route: RouteMode = field(default=RouteMode.MIXED, init=False)
    _reason: RouteReason = field(default=RouteReason.FEWER_THAN_TWO, init=False)
    _codecs: CodecPair | None = field(default=None, init=False)
    _events: deque[RouteEvent] = field(default_factory=deque, init=False)

    @property
    def route(self) -> RouteMode:
        return self._route

    @property
    def reason(self) -> RouteReason:
        return self._reason

    @property
    def passthrough_codecs(self) -> CodecPair | None:
        """What to forward while PASSTHROUGH (the first joiner's preference wins); else None."""
        return self._codecs

    @property
    def participant_ids(self) -> tuple[str, ...]:
        return tuple(self._legs)

    def join(self, participant_id: str, audio_codecs: Sequence[str],
             video_codecs: Sequence[str] = ()) -> None:
        if participant_id in self._legs:
            raise Conflict("Participant already has media in this room.",
                           participant_id=participant_id)
        self._legs[participant_id] = _leg(audio_codecs, video_codecs)
        if not self._reevaluate():
            self._events.append(KeyframeNeeded(participant_id=participant_id,
                                               reason=KeyframeReason.JOINED))

    def update(self, participant_id: str, audio_codecs: Sequence[str],
               video_codecs: Sequence[str] = ()) -> None:
        """A leg renegotiated (re-INVITE, WebRTC renegotiation): its codecs may have changed."""
        self._require(participant_id)
        self._legs[participant_id] = _leg(audio_codecs, video_codecs)
        self._reevaluate()

    def leave(self, participant_id: str) -> None:
        self._require(participant_id)
        del self._legs[participant_id]
        self._reevaluate()

    def next_event(self) -> RouteEvent | None:
        return self._events.popleft() if self._events else None

    def _reevaluate(self) -> bool:
        """Recompute the route; True (and events queued) when the mode changed."""
        route, reason, codecs = self._decide()
        old_codecs = self._codecs
        self._reason, self._codecs = reason, codecs
        if route is self._route:
            if route is RouteMode.PASSTHROUGH and codecs != old_codecs:
                self._events.extend(KeyframeNeeded(participant_id=participant_id,
                                                   reason=KeyframeReason.CODECS_CHANGED)
                                    for participant_id in self._legs)
            return False
        self._events.append(RouteChanged(old=self._route, new=route, reason=reason))
        self._route = route
        self._events.extend(KeyframeNeeded(participant_id=participant_id,
                                           reason=KeyframeReason.ROUTE_CHANGED)
                            for participant_id in self._legs)
        return True

    def _decide(self) -> tuple[RouteMode, RouteReason, CodecPair | None]:
        if len(self._legs) > 2:
            return RouteMode.MIXED, RouteReason.MORE_THAN_TWO, None
        if len(self._legs) < 2:
            return RouteMode.MIXED, RouteReason.FEWER_THAN_TWO, None
        first, second = self._legs.values()
        audio = _common(first.audio, second.audio)
        # Video must match when either side has it: forwarding one side's video to a peer that
        # cannot decode it (or has none to send back) leaves a black picture the mixer would fill.
        video = _common(first.video, second.video)
        video_ok = video is not None or (not first.video and not second.video)
        if audio is None or not video_ok:
            return RouteMode.MIXED, RouteReason.NO_COMMON_CODEC, None
        return RouteMode.PASSTHROUGH, RouteReason.TWO_COMPATIBLE, CodecPair(audio, video)

    def _require(self, participant_id: str) -> None:
        if participant_id not in self._legs:
            raise NotFound("Participant has no media in this room.",
                           participant_id=participant_id)


def _leg(audio_codecs: Sequence[str], video_codecs: Sequence[str]) -> _Leg:
    return _Leg(tuple(codec.casefold() for codec in audio_codecs),
                tuple(codec.casefold() for codec in video_codecs))


def _common(preferred: tuple[str, ...], other: tuple[str, ...]) -> str | None:
    return next((codec for codec in preferred if codec in other), None)
