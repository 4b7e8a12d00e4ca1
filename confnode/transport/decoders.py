"""Audio decoders for what the node mixes, run inline on the receive path.

Audio is decoded where it arrives, on the event loop: one Opus frame is tens of microseconds of
libopus, far less than handing it to a decoder thread and the decoded frame back through two
queues and a task switch (aiortc's receiver does that, and it was the largest share of a mixed
audio call's Python work). Opus is decoded straight to mono: the mixer works in 48 kHz mono, and
aiortc's decoder produces stereo that the mix would have to fold down again, frame by frame.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame, CodecContext, Packet

log = logging.getLogger(__name__)

OPUS_RATE = 48000
OPUS_TIME_BASE = Fraction(1, OPUS_RATE)


class MonoOpusDecoder:
    """libopus decoding to 48 kHz mono s16 -- the mixer's own format, so nothing is converted.

    Stereo Opus decodes to mono inside libopus (RFC 6716 §2.1.2 lets a decoder downmix)."""

    def __init__(self) -> None:
        self._codec = CodecContext.create("libopus", "r")
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._codec.sample_rate = OPUS_RATE

    def decode(self, encoded: JitterFrame) -> list[AudioFrame]:
        packet = Packet(encoded.data)
        packet.pts = encoded.timestamp
        packet.time_base = OPUS_TIME_BASE
        return self._codec.decode(packet)  # type: ignore[return-value]


def audio_decoder(codec: RTCRtpCodecParameters) -> Any:
    """A decoder for a negotiated audio codec: mono Opus, aiortc's decoder for the rest
    (G.711 and G.722 are mono already)."""
    if codec.name.lower() == "opus":
        return MonoOpusDecoder()
    return get_decoder(codec)


def decode_audio(decoder: Any, frame: JitterFrame, codec_name: str) -> list[AudioFrame]:
    """Decode one frame from the network; a corrupt one is skipped (the decoder keeps its state).

    Both receive paths (WebRTC and SIP legs) call this on the event loop, inside a datagram
    callback: an exception there would end the leg's transport, so a single bad packet from a
    peer must cost that frame only."""
    try:
        return decoder.decode(frame)  # type: ignore[no-any-return]
    except av.FFmpegError as exc:
        log.warning("failed to decode %s frame: %s", codec_name, exc)
        return []
