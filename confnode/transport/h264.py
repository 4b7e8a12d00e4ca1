"""What sending H.264 to a SIP endpoint needs beyond aiortc: the level limits a negotiated
``profile-level-id`` (plus ``max-fs``/``max-mbps``) puts on our pictures, fitting the room's
picture into them, and single NAL unit packetization (RFC 6184 packetization-mode 0).

Pure functions of the negotiated parameters and the bitstream: no sockets, no codec contexts.
Decoding is not constrained here: whatever the endpoint sends, libavcodec decodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: An IPv4 UDP payload that fits a 1500-byte Ethernet MTU with room for SRTP's tag and a VPN or
#: tunnel header; RTP's 12-byte header comes off it to give the largest NAL unit we emit.
RTP_PAYLOAD_MTU = 1200
RTP_HEADER_SIZE = 12
#: Single NAL unit mode cannot fragment: the encoder must cut slices no larger than this.
MAX_SINGLE_NAL_SIZE = RTP_PAYLOAD_MTU - RTP_HEADER_SIZE
#: Level 1b has no level_idc of its own; like :mod:`confnode.transport.sip.negotiation`, 0.
LEVEL_1B = 0

# ITU-T H.264 Table A-1: level_idc -> (MaxMBPS macroblocks/s, MaxFS macroblocks).
LEVEL_LIMITS: Mapping[int, tuple[int, int]] = MappingProxyType({
    10: (1485, 99), LEVEL_1B: (1485, 99), 11: (3000, 396), 12: (6000, 396), 13: (11880, 396),
    20: (11880, 396), 21: (19800, 792), 22: (20250, 1620), 30: (40500, 1620),
    31: (108000, 3600), 32: (216000, 5120), 40: (245760, 8192), 41: (245760, 8192),
    42: (522240, 8704), 50: (589824, 22080), 51: (983040, 36864), 52: (2073600, 36864),
})

#: What the node's H.264 encoder declares by default: level 3.1 (1280x720 at 30 fps).
DEFAULT_LEVEL = 31


@dataclass(frozen=True, slots=True)
class H264SendLimits:
    """What the receiver accepts from us: a level, widened by ``max-fs``/``max-mbps`` (RFC 6184
    §8.1 lets a receiver declare more than its level in those two), and the packetization mode.
    """

    level: int = DEFAULT_LEVEL
    max_fs: int = LEVEL_LIMITS[DEFAULT_LEVEL][1]
    max_mbps: int = LEVEL_LIMITS[DEFAULT_LEVEL][0]
    packetization_mode: int = 1

    @classmethod
    def negotiated(cls, send_level: int, packetization_mode: int,
                   remote_fmtp: Mapping[str, str]) -> H264SendLimits:
        mbps, fs = LEVEL_LIMITS[send_level]
        # A value below the level's own is a protocol error on their side: the level stands.
        fs = max(fs, _positive(remote_fmtp.get("max-fs")))
        mbps = max(mbps, _positive(remote_fmtp.get("max-mbps")))
        return cls(send_level, fs, mbps, packetization_mode)

    @property
    def takes_default_stream(self) -> bool:
        """True when the node's default H.264 (mode 1, level 3.1: 720p30) suits this receiver
        as is, so it may share that encode -- or a browser's forwarded stream -- unchanged."""
        return (self.packetization_mode == 1 and self.level != LEVEL_1B
                and self.level >= DEFAULT_LEVEL and self.max_fs >= LEVEL_LIMITS[DEFAULT_LEVEL][1]
                and self.max_mbps >= LEVEL_LIMITS[DEFAULT_LEVEL][0])

    @property
    def max_nal_size(self) -> int | None:
        """The largest NAL unit the encoder may produce (only mode 0 bounds it)."""
        return MAX_SINGLE_NAL_SIZE if self.packetization_mode == 0 else None

    @property
    def x264_level(self) -> str:
        return "1b" if self.level == LEVEL_1B else f"{self.level // 10}.{self.level % 10}"

    def fit(self, width: int, height: int, fps: int) -> tuple[int, int]:
        """The largest picture of the same aspect as ``width`` x ``height``, in whole
        macroblocks, within MaxFS, MaxMBPS at ``fps``, and the level's side-length limit
        (H.264 A.3.1: each side at most sqrt(8 * MaxFS) macroblocks).

        The frame rate is the room's; a smaller picture, not fewer frames, meets MaxMBPS.
        """
        budget = min(self.max_fs, self.max_mbps // max(1, fps))
        side = math.isqrt(8 * self.max_fs)
        mb_w, mb_h = math.ceil(width / 16), math.ceil(height / 16)
        if mb_w * mb_h <= budget and mb_w <= side and mb_h <= side:
            return width, height
        scale = min(math.sqrt(budget / (mb_w * mb_h)), side / mb_w, side / mb_h)
        fit_w, fit_h = max(1, int(mb_w * scale)), max(1, int(mb_h * scale))
        while fit_w * fit_h > budget:  # rounding can leave one row too many
            fit_h -= 1
        return fit_w * 16, max(1, fit_h) * 16


def _positive(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() else 0


def packetize_single_nal(nal_units: Iterable[bytes]) -> list[bytes]:
    """RFC 6184 §5.6 single NAL unit packets: each payload is exactly one NAL unit of type 1-23
    (never STAP-A 24 or FU-A 28, which a mode 0 receiver need not understand).

    Nothing is fragmented: the node's own encoder keeps slices within
    :data:`MAX_SINGLE_NAL_SIZE` (x264 ``slice-max-size``); a forwarded mode 0 stream already
    fits its sender's MTU. Types 24-31 cannot occur in an Annex B stream and are dropped.
    """
    return [unit for unit in nal_units if unit and 1 <= unit[0] & 0x1F <= 23]
