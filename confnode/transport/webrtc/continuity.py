"""One outgoing RTP stream's numbering while its source changes (sans-IO).

A participant's outgoing stream (one SSRC) is fed by different sources over a call: packets relayed
from the other participant's browser (passthrough), frames the node packetizes itself (a mix or a
composition), or a new SSRC after the far side restarted. The receiver must see one stream: sequence
numbers that keep counting and timestamps that keep advancing with the wall clock. Within one
source the offsets stay fixed, so a gap upstream stays a gap (the receiver's loss detection and
NACKs keep working) and a retransmission maps to the number the original would have had.
"""

from __future__ import annotations

from collections.abc import Hashable

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
HALF_SEQ = SEQ_MOD // 2


class StreamContinuity:
    def __init__(self, clock_rate: int, first_sequence: int, first_timestamp: int) -> None:
        self.clock_rate = clock_rate
        self._source: Hashable | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        # The newest packet sent: where the next source continues from.
        self._last_seq = (first_sequence - 1) % SEQ_MOD
        self._last_ts = first_timestamp % TS_MOD
        self._last_time: float | None = None

    def map(self, source: Hashable, sequence: int, timestamp: int, now: float) -> tuple[int, int]:
        """The (sequence number, timestamp) a source's packet gets on this stream."""
        if source != self._source:
            self._switch(source, sequence, timestamp, now)
        seq = (sequence + self._seq_offset) % SEQ_MOD
        ts = (timestamp + self._ts_offset) % TS_MOD
        if (seq - self._last_seq) % SEQ_MOD < HALF_SEQ:  # newer, not a retransmission
            self._last_seq = seq
            self._last_ts = ts
            self._last_time = now
        return seq, ts

    def _switch(self, source: Hashable, sequence: int, timestamp: int, now: float) -> None:
        # The first packet of a new source follows the newest one sent, one sequence number on
        # and as many clock ticks later as wall time has passed (at least one, so the receiver
        # never sees a new frame with the previous frame's timestamp).
        elapsed = 0.0 if self._last_time is None else max(0.0, now - self._last_time)
        step = max(1, round(elapsed * self.clock_rate)) if self._last_time is not None else 0
        self._source = source
        self._seq_offset = (self._last_seq + 1 - sequence) % SEQ_MOD
        self._ts_offset = (self._last_ts + step - timestamp) % TS_MOD
