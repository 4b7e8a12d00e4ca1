"""Latency markers carried in the media itself (sans-IO): audio tone bursts at known send times,
pictures that carry their sender and frame counter, and a playout clock for late/lost frames.

A load test cannot read the node's internal timestamps from outside, and RTP timestamps do not
survive a mixing node (it re-times every output), so the markers live in the content: what a
listener hears and a viewer sees. Sender and receiver run in one process on loopback and share
``time.monotonic()``, so end-to-end latency is receive time minus send time.

Audio: every ``period`` frames a sender plays a ``burst`` of a sine at its own frequency and
silence otherwise. The frequencies are multiples of 200 Hz and the detector averages over 10 ms
(480 samples at 48 kHz), whose boxcar response is zero at every multiple of 100 Hz, so in a mix
of several senders each detector hears only its own sender; the bursts' edges are ramped so
their onsets do not splatter into the neighbours' slots. All frequencies are below G.711's
3.4 kHz band edge, so markers survive a SIP leg. The detector reports the sample where the
envelope crosses a quarter of the burst amplitude: a fixed few milliseconds after the true
onset (the averaging window and the burst's ramp, plus the codecs' own), the same in a
calibration call as through the node, so it cancels when the calibration is subtracted.

Video: the luma plane is a 4 x 6 grid of black (16) or white (235) cells; 12 cells carry a frame
counter (mod 256) and the sender (1..14), the other 12 the same bits inverted, so no uniform
area, holding picture or rectangle straddling tiles and background decodes. Cells are read at
their centre half only and must all be clearly black or white, so a picture scaled into a
composition tile still decodes and a torn or blurred one does not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
MARKER_FREQUENCIES = (600.0, 1000.0, 1400.0, 1800.0, 2200.0, 2600.0)  # one per sender slot
_DETECTOR_WINDOW = 480  # 10 ms: nulls at every multiple of 100 Hz
_RAMP = 120  # 2.5 ms raised-cosine edges: a hard-edged burst splatters into other slots


@dataclass(frozen=True, slots=True)
class AudioMarkerSchedule:
    """Which 20 ms frames carry a burst: the first ``burst`` of every ``period`` frames."""

    period: int = 20  # 400 ms: longer than any latency worth measuring, so matches are unique
    burst: int = 2
    amplitude: float = 12000.0

    def is_marker_start(self, index: int) -> bool:
        return index % self.period == 0

    def frame(self, frequency: float, index: int,
              noise: np.random.Generator | None = None) -> NDArray[np.int16]:
        """Frame ``index`` of a sender's marker signal (48 kHz mono int16). With ``noise``, a
        faint hiss (-50 dBFS) under it makes every encoded packet unique (digital silence
        encodes to the same few bytes for every sender, and for the node's mixer too), so
        packets can be recognised by their payload."""
        position = index % self.period
        signal = np.zeros(FRAME_SAMPLES)
        if position < self.burst:
            n = np.arange(FRAME_SAMPLES) + position * FRAME_SAMPLES
            edge = np.minimum(n, self.burst * FRAME_SAMPLES - 1 - n)
            ramp = np.where(edge < _RAMP, 0.5 - 0.5 * np.cos(np.pi * edge / _RAMP), 1.0)
            signal = np.sin(2 * np.pi * frequency * n / SAMPLE_RATE) * self.amplitude * ramp
        if noise is not None:
            signal = signal + noise.normal(0, 100, FRAME_SAMPLES)
        return signal.astype(np.int16)


@dataclass
class AudioMarkerDetector:
    """Finds burst onsets per marker frequency in a stream of 48 kHz samples fed in chunks."""

    frequencies: Sequence[float]
    threshold: float = 3000.0  # envelope amplitude; a burst is 12000 before any mixer gain
    _position: int = field(default=0, init=False)
    _tail: NDArray[np.complex128] | None = field(default=None, init=False)
    _armed: NDArray[np.bool_] | None = field(default=None, init=False)

    def feed(self, samples: NDArray[np.floating] | NDArray[np.integer]) -> list[tuple[int, int]]:
        """Onsets in this chunk, as (frequency slot, sample offset in the chunk); the offset can
        be negative when the crossing needed the next chunk's samples to show."""
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        freqs = np.asarray(self.frequencies, dtype=np.float64)
        n = np.arange(self._position, self._position + len(x))
        self._position += len(x)
        mixed = x[None, :] * np.exp(-2j * np.pi * freqs[:, None] * n[None, :] / SAMPLE_RATE)
        window = _DETECTOR_WINDOW
        if self._tail is None:
            self._tail = np.zeros((len(freqs), window - 1), dtype=np.complex128)
            self._armed = np.ones(len(freqs), dtype=bool)
        assert self._armed is not None
        joined = np.concatenate([self._tail, mixed], axis=1)
        self._tail = joined[:, -(window - 1):]
        cumulative = np.cumsum(np.concatenate(
            [np.zeros((len(freqs), 1)), joined], axis=1), axis=1)
        envelope = 2 * np.abs(cumulative[:, window:] - cumulative[:, :-window]) / window
        onsets: list[tuple[int, int]] = []
        for slot in range(len(freqs)):
            above = envelope[slot] > self.threshold
            below = envelope[slot] < self.threshold / 2
            index = 0
            while index < len(x):
                if self._armed[slot]:
                    hits = np.flatnonzero(above[index:])
                    if not len(hits):
                        break
                    index += int(hits[0])
                    # The envelope at sample i averages the window ending at i: the crossing is
                    # about half a window after the onset.
                    onsets.append((slot, index - window // 2))
                    self._armed[slot] = False
                else:
                    quiet = np.flatnonzero(below[index:])
                    if not len(quiet):
                        break
                    index += int(quiet[0])
                    self._armed[slot] = True
        return onsets


@dataclass
class MarkerLedger:
    """Send times of one sender's markers, matched to arrivals by recency."""

    sent: list[float] = field(default_factory=list)
    keep: int = 64

    def mark(self, now: float) -> None:
        self.sent.append(now)
        del self.sent[:-self.keep]

    def latency(self, arrived: float) -> float | None:
        """Seconds since the latest marker sent at or before ``arrived``; None before any."""
        for sent in reversed(self.sent):
            if sent <= arrived:
                return arrived - sent
        return None


@dataclass
class PlayoutClock:
    """Late and lost frames of one received audio stream, from RTP-derived pts and arrival times.

    A frame is due at the arrival time the least-delayed frame of the last ``window`` seconds
    implies for its media time (arrival minus media time, minimised), as for a jitter buffer
    that re-centres after a stall instead of staying behind for the rest of the call; a frame
    more than ``late_after`` seconds behind that is late. A jump in pts of more than one frame
    counts the frames in between as lost.
    """

    clock_rate: int
    late_after: float = 0.06
    window: float = 5.0
    _offsets: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _first_pts: int | None = field(default=None, init=False)
    _last_pts: int | None = field(default=None, init=False)
    _frame: int | None = field(default=None, init=False)

    def observe(self, pts: int, samples: int, arrived: float) -> tuple[float, int]:
        """(seconds behind due, frames lost just before this one)."""
        if self._first_pts is None:
            self._first_pts = pts
        offset = arrived - (pts - self._first_pts) / self.clock_rate
        # A monotonic deque: its head is the smallest offset within the window.
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()
        self._offsets.append((arrived, offset))
        while self._offsets[0][0] < arrived - self.window:
            self._offsets.popleft()
        lost = 0
        if self._last_pts is not None and self._frame:
            gap = pts - self._last_pts
            if gap > self._frame:
                lost = round(gap / self._frame) - 1
        if self._last_pts is None or pts > self._last_pts:
            self._last_pts = pts
        self._frame = samples
        return offset - self._offsets[0][1], lost


CODE_ROWS, CODE_COLUMNS = 4, 6
COUNTER_BITS = 8
DATA_BITS = COUNTER_BITS + 4
BLACK, WHITE = 16, 235


def draw_code(width: int, height: int, sender: int, counter: int) -> NDArray[np.uint8]:
    """An I420 picture (packed, as PyAV takes it) carrying ``sender`` and ``counter``."""
    if not 1 <= sender <= 14:
        raise ValueError("sender must be 1..14")
    data = (counter % (1 << COUNTER_BITS)) | (sender << COUNTER_BITS)
    bits = data | (~data & ((1 << DATA_BITS) - 1)) << DATA_BITS
    plane = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    for cell in range(CODE_ROWS * CODE_COLUMNS):
        row, column = divmod(cell, CODE_COLUMNS)
        y0, y1 = row * height // CODE_ROWS, (row + 1) * height // CODE_ROWS
        x0, x1 = column * width // CODE_COLUMNS, (column + 1) * width // CODE_COLUMNS
        plane[y0:y1, x0:x1] = WHITE if bits >> cell & 1 else BLACK
    return plane


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


def read_code(luma: NDArray[np.uint8], rect: Rect) -> tuple[int, int] | None:
    """(sender, counter) from the picture inside ``rect`` of a luma plane, or None when the
    rectangle does not hold a clean code."""
    if rect.w < CODE_COLUMNS * 4 or rect.h < CODE_ROWS * 4:
        return None
    bits = 0
    for cell in range(CODE_ROWS * CODE_COLUMNS):
        row, column = divmod(cell, CODE_COLUMNS)
        ch, cw = rect.h / CODE_ROWS, rect.w / CODE_COLUMNS
        y0, x0 = rect.y + int(row * ch + ch / 4), rect.x + int(column * cw + cw / 4)
        area = luma[y0:y0 + max(1, int(ch / 2)), x0:x0 + max(1, int(cw / 2))]
        if not area.size:
            return None
        level = float(area.mean())
        if abs(level - (BLACK + WHITE) / 2) < 60:
            return None
        bits |= (level > (BLACK + WHITE) / 2) << cell
    data, check = bits & ((1 << DATA_BITS) - 1), bits >> DATA_BITS
    sender = data >> COUNTER_BITS
    if check != ~data & ((1 << DATA_BITS) - 1) or not 1 <= sender <= 14:
        return None
    return sender, data & ((1 << COUNTER_BITS) - 1)


def composition_rects(width: int, height: int, source: tuple[int, int],
                      max_tiles: int = 4) -> list[Rect]:
    """Where a ``source``-sized picture can sit in a ``width`` x ``height`` composition: every
    fitted tile of every node layout for up to ``max_tiles`` participants, plus the whole frame
    (a forwarded picture)."""
    from confnode.media.layouts import LayoutName, fit, layout

    rects = {Rect(0, 0, width, height)}
    for name in LayoutName:
        for count in range(1, max_tiles + 1):
            for tile in layout(name.value, count, width, height):
                placed = fit(source[0], source[1], tile)
                rects.add(Rect(placed.x, placed.y, placed.w, placed.h))
    return sorted(rects, key=lambda r: -r.w * r.h)


def read_codes(luma: NDArray[np.uint8], rects: Iterable[Rect]) -> dict[int, int]:
    """Every sender's counter found in the picture (the first rectangle that decodes wins)."""
    found: dict[int, int] = {}
    for rect in rects:
        code = read_code(luma, rect)
        if code is not None and code[0] not in found:
            found[code[0]] = code[1]
    return found


@dataclass
class RoomMarkers:
    """The send side of every marker in one room, by sender slot (1..14), shared by the bots of
    that room (all in one process, so the send times are on the receivers' clock)."""

    audio: dict[int, MarkerLedger] = field(default_factory=dict)
    video: dict[int, dict[int, float]] = field(default_factory=dict)
    # RTP payload -> (kind, send time): a forwarding node passes payloads through unchanged, so
    # a packet is recognised on the far side by its payload bytes alone.
    packets: dict[bytes, tuple[str, float]] = field(default_factory=dict)

    def audio_sent(self, slot: int, now: float) -> None:
        self.audio.setdefault(slot, MarkerLedger()).mark(now)

    def video_sent(self, slot: int, counter: int, now: float) -> None:
        sent = self.video.setdefault(slot, {})
        sent[counter % (1 << COUNTER_BITS)] = now
        if len(sent) > 256:
            del sent[next(iter(sent))]

    def packet_sent(self, kind: str, payload: bytes, now: float) -> None:
        if payload in self.packets:  # sent twice and not yet arrived: ambiguous, never matched
            self.packets[payload] = ("", now)
            return
        self.packets[payload] = (kind, now)
        if len(self.packets) > 2048:
            del self.packets[next(iter(self.packets))]

    def packet_latency(self, payload: bytes, arrived: float) -> tuple[str, float] | None:
        """(kind, seconds) for a payload some sender in the room sent, once; None otherwise."""
        sent = self.packets.pop(payload, None)
        return None if sent is None or not sent[0] else (sent[0], arrived - sent[1])


@dataclass
class MarkerReceiver:
    """What one participant receives, turned into measurements: ``report(metric, seconds,
    failed)`` with metric ``audio latency`` (per marker and sender), ``video latency`` (per new
    frame counter and sender), ``audio frame`` (seconds behind due; failed when late or after a
    loss) and ``first media`` (once, with the arrival time)."""

    slot: int
    markers: RoomMarkers
    report: Callable[[str, float, bool], None]
    late_after: float = 0.06
    _detector: AudioMarkerDetector = field(init=False)
    _clock: PlayoutClock | None = field(default=None, init=False)
    _seen_video: dict[int, int] = field(default_factory=dict, init=False)
    _rects: list[Rect] = field(default_factory=list, init=False)
    _good_rects: list[Rect] = field(default_factory=list, init=False)
    _frames: int = field(default=0, init=False)
    _first: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self._detector = AudioMarkerDetector(MARKER_FREQUENCIES)

    def _emit(self, metric: str, seconds: float, failed: bool = False) -> None:
        self.report(metric, seconds, failed)

    def audio(self, samples_48k: NDArray[np.floating], pts: int | None, clock_rate: int,
              samples: int, arrived: float) -> None:
        if self._first:
            self._first = False
            self._emit("first media", arrived)
        if pts is not None:
            if self._clock is None:
                self._clock = PlayoutClock(clock_rate, self.late_after)
            behind, lost = self._clock.observe(pts, samples, arrived)
            for _ in range(lost):
                self._emit("audio frame", 0.0, True)
            self._emit("audio frame", behind, behind > self.late_after)
        for slot_index, offset in self._detector.feed(samples_48k):
            sender = slot_index + 1
            if sender == self.slot or sender not in self.markers.audio:
                continue
            at = arrived + offset / SAMPLE_RATE
            latency = self.markers.audio[sender].latency(at)
            if latency is not None:
                self._emit("audio latency", latency)

    def video(self, plane: NDArray[np.uint8], width: int, height: int, arrived: float,
              source: tuple[int, int] = (320, 240)) -> None:
        luma = plane[:height]
        self._frames += 1
        codes = read_codes(luma, self._good_rects)
        if not codes or self._frames % 15 == 0:
            if not self._rects:
                self._rects = composition_rects(width, height, source)
            codes = {}
            self._good_rects = []
            for rect in self._rects:
                code = read_code(luma, rect)
                if code is not None and code[0] not in codes:
                    codes[code[0]] = code[1]
                    self._good_rects.append(rect)
        for sender, counter in codes.items():
            if sender == self.slot or self._seen_video.get(sender) == counter:
                continue
            self._seen_video[sender] = counter
            sent = self.markers.video.get(sender, {}).get(counter)
            if sent is not None:
                self._emit("video latency", arrived - sent)
