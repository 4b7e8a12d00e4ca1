"""What kind of call a media connection is, for capacity and CPU accounting (pure).

The kind follows what the node does for the call, not what the licence says: a 1:1 video call
whose peers share codecs is *forwarded* (passthrough) and costs a fraction of the same call once
a third person joins and the node starts composing. A composed call's cost is set by the picture
the node encodes for it (``media.width``/``media.height``), not by what the client sends.

``HD_UNITS`` is Pexip Infinity's capacity unit (REFERENCES.md §2: a 720p call is 1, Full HD 2,
SD 0.5, audio-only 1/16); Pexip's nodes estimate their capacity in these units and so do we when
one measured figure must be spread over call types. Pexip has no unit for passthrough (its direct
media never reaches the node's media engine); ours forwards every packet through the node, and
bench/media_cpu.py measured it at the cost of a mixed audio call (0.030 vs 0.041 CPU-s per
call-second), so it is priced like audio-only, and so is a call that only waits (alone in the
room or in the lobby: its packets are received and dropped). SIP audio is an audio call (G.711
also runs a resampler, which Pexip does not distinguish).
"""

from __future__ import annotations

from enum import StrEnum


class CallType(StrEnum):
    AUDIO = "audio"  # WebRTC audio-only, mixed (Opus decode, mix-minus, encode)
    SIP_AUDIO = "sip_audio"  # SIP audio-only (G.711 or Opus over SRTP), mixed
    PASSTHROUGH = "passthrough"  # 1:1 direct media: forwarded, never decoded
    SD = "sd"  # composed and encoded below 720 lines
    HD = "hd"  # composed and encoded at 720 lines (up to, not including, 1080)
    FULL_HD = "full_hd"  # composed and encoded at 1080 lines
    WAITING = "waiting"  # alone in the room or in the lobby: received, nothing decoded or sent


HD_UNITS: dict[CallType, float] = {
    CallType.AUDIO: 1 / 16,
    CallType.SIP_AUDIO: 1 / 16,
    CallType.PASSTHROUGH: 1 / 16,
    CallType.SD: 0.5,
    CallType.HD: 1.0,
    CallType.FULL_HD: 2.0,
    CallType.WAITING: 1 / 16,
}

HD_LINES = 720
FULL_HD_LINES = 1080


def video_call_type(height: int) -> CallType:
    """The call type of a composed call whose picture has ``height`` lines."""
    if height >= FULL_HD_LINES:
        return CallType.FULL_HD
    if height >= HD_LINES:
        return CallType.HD
    return CallType.SD


def classify_call(*, sip: bool, video: bool, passthrough: bool, mixed: bool,
                  height: int) -> CallType:
    """One call's type: ``video`` is whether it carries video (its licence is a port licence),
    ``passthrough`` whether its room forwards it to one peer, ``mixed`` whether the room mixes
    it with others, ``height`` the composed picture's lines."""
    if passthrough:
        return CallType.PASSTHROUGH
    if not mixed:
        return CallType.WAITING
    if not video:
        return CallType.SIP_AUDIO if sip else CallType.AUDIO
    return video_call_type(height)
