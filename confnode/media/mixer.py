"""The audio mixer: mix-minus for a room, one 20 ms tick at a time (sans-IO).

Audio is 48 kHz mono signed 16-bit PCM in 20 ms frames (960 samples), what the Opus decoder gives
after the shell resamples to mono. Every tick the mixer sums what each *contributing* participant
said and hands everyone the sum minus their own contribution (mix-minus), so nobody hears their
own voice come back a network round trip late.

Who contributes: a participant who is neither muted nor in the lobby *and* is speaking, i.e. their
frame is at or above ``speech_threshold_dbov`` or was within the last ``hangover_ticks`` ticks (so
quiet word endings are not chopped). Everyone else is gated out entirely. The gate is what makes
shared encodes possible: a participant who contributed nothing hears exactly the *full* mix, the
same samples as every other non-speaker, so the shell encodes that once and sends the packets to
all of them. Only active speakers (in a consultation: one or two people at a time) need their own
mix-minus encode. The gate also keeps fifty open microphones' background hiss out of the mix.

Lobby participants hear silence; muted participants hear everything but add nothing.

Jitter: each participant has a FIFO of at most ``max_queued_frames`` (default 3, i.e. 60 ms)
frames, and a tick takes one. Decoded frames reach the shell at network-arrival times, so two
often land between two ticks and none before the next; keeping only the newest would throw away
a frame every time that happens (an audible click), while the short queue absorbs it. When the
queue is full the oldest frame is dropped, so a sender whose clock runs fast (or a burst after a
stall) can never add more than 60 ms of delay. An empty queue counts as silence for that tick.

Arithmetic: frames are stacked into one float32 array per tick and summed; sums of int16 values
are exact in float32 (50 x 32768 is far below 2**24), so a mix-minus contains not even rounding
residue of the listener's own voice. The result goes back to int16 through a soft clipper that is
the identity up to a knee at 75 % of full scale (-2.5 dBFS) and a rational curve above it that
meets the line with the same slope and approaches full scale asymptotically: a single talker passes
bit-exact, and several loud talkers at once are compressed instead of wrapping or hard-clipping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from confnode.errors import Conflict, InvalidInput, NotFound

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz, one Opus frame

# RFC 6464 reports audio levels down to -127 dBov; used here for "nothing at all".
SILENCE_DBOV = -127.0
# dBov is relative to the overload point: a full-scale square wave is 0 dBov, a full-scale sine -3.
_OVERLOAD = 32768.0
_FULL_SCALE = 32767.0
_KNEE = 0.75

Samples = NDArray[np.int16]


class OutputKind(StrEnum):
    FULL_MIX = "full_mix"  # every contributor: what all non-speakers hear
    MIX_MINUS = "mix_minus"  # the full mix without one active speaker
    SILENCE = "silence"  # what the lobby hears


@dataclass(frozen=True, slots=True)
class OutputKey:
    """Names one distinct output of a tick; the shell keeps one encoder per key."""

    kind: OutputKind
    participant_id: str | None = None  # the speaker left out, for MIX_MINUS

    @classmethod
    def mix_minus(cls, participant_id: str) -> OutputKey:
        return cls(OutputKind.MIX_MINUS, participant_id)


FULL_MIX = OutputKey(OutputKind.FULL_MIX)
SILENCE = OutputKey(OutputKind.SILENCE)


@dataclass(frozen=True, slots=True)
class MixResult:
    """One tick's outputs, grouped so each distinct signal is encoded once.

    ``outputs`` holds only keys somebody is assigned to; its arrays are read-only because several
    participants share them.
    """

    outputs: Mapping[OutputKey, Samples]
    assignment: Mapping[str, OutputKey]
    levels: Mapping[str, float]  # dBov of each one's frame; the floor if muted, lobby or absent
    speakers: frozenset[str]  # contributed this tick (each has a MIX_MINUS output)

    def output_for(self, participant_id: str) -> Samples:
        try:
            return self.outputs[self.assignment[participant_id]]
        except KeyError:
            raise NotFound("No such participant in the mixer.",
                           participant_id=participant_id) from None


@dataclass(slots=True)
class _Participant:
    muted: bool
    in_lobby: bool
    queue: deque[Samples]
    own_key: OutputKey  # built once: a tick must not allocate per participant
    hangover: int = 0

    @property
    def may_speak(self) -> bool:
        return not self.muted and not self.in_lobby


class _Workspace:
    def __init__(self, rows: int, samples: int) -> None:
        self.rows = rows
        self.block = np.empty((rows, samples), dtype=np.float32)  # this tick's frames
        self.signals = np.empty((rows, samples), dtype=np.float32)  # full mix + mix-minuses
        self.excess = np.empty((rows, samples), dtype=np.float32)  # soft clipper work space
        self.scratch = np.empty((rows, samples), dtype=np.float32)


@dataclass(slots=True)
class AudioMixer:
    """Mix-minus with shared outputs for non-speakers; see the module docstring."""

    frame_samples: int = FRAME_SAMPLES
    speech_threshold_dbov: float = -50.0
    hangover_ticks: int = 10  # 200 ms: a speaker stays in the mix through short pauses
    max_queued_frames: int = 3
    max_speakers: int | None = None  # only the loudest N speakers are mixed; None = no limit
    _participants: dict[str, _Participant] = field(default_factory=dict, init=False)
    _silence: Samples = field(init=False)
    _work: _Workspace | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.frame_samples <= 0 or self.max_queued_frames <= 0:
            raise InvalidInput("Frame size and queue depth must be positive.")
        if self.max_speakers is not None and self.max_speakers <= 0:
            raise InvalidInput("max_speakers must be positive when set.")
        self._silence = np.zeros(self.frame_samples, dtype=np.int16)
        self._silence.flags.writeable = False

    @property
    def participant_ids(self) -> tuple[str, ...]:
        return tuple(self._participants)

    def add(self, participant_id: str, *, muted: bool = False, in_lobby: bool = False) -> None:
        if participant_id in self._participants:
            raise Conflict("Participant already in the mixer.", participant_id=participant_id)
        self._participants[participant_id] = _Participant(
            muted, in_lobby, deque(maxlen=self.max_queued_frames),
            OutputKey.mix_minus(participant_id))

    def remove(self, participant_id: str) -> None:
        self._get(participant_id)
        del self._participants[participant_id]

    def set_muted(self, participant_id: str, muted: bool) -> None:
        participant = self._get(participant_id)
        participant.muted = muted
        self._on_gate_change(participant)

    def set_in_lobby(self, participant_id: str, in_lobby: bool) -> None:
        participant = self._get(participant_id)
        participant.in_lobby = in_lobby
        self._on_gate_change(participant)

    def push(self, participant_id: str, samples: NDArray[np.int16]) -> None:
        """Queue one decoded frame for the coming ticks (oldest dropped beyond the queue depth).

        Accepts ``(n,)`` or PyAV's ``(1, n)`` packed-mono shape. Frames from muted or lobby
        participants are dropped on arrival: nobody may hear them, and stale audio must not
        burst out when the participant is unmuted or admitted.
        """
        participant = self._get(participant_id)
        frame = np.asarray(samples)
        if frame.dtype != np.int16 or frame.size != self.frame_samples or (
                frame.ndim != 1 and frame.shape != (1, self.frame_samples)):
            raise InvalidInput(f"An audio frame must be {self.frame_samples} int16 mono samples.",
                               shape=list(frame.shape), dtype=str(frame.dtype))
        if participant.may_speak:
            participant.queue.append(frame.reshape(-1).copy())

    def tick(self) -> MixResult:
        """Take one frame per participant and mix; call every ``frame_samples`` of real time."""
        participants = self._participants
        ids: list[str] = []
        frames: list[Samples] = []
        for participant_id, participant in participants.items():
            if participant.queue:
                ids.append(participant_id)
                frames.append(participant.queue.popleft())
            elif participant.hangover > 0:
                participant.hangover -= 1  # a lost or DTX frame still uses up hangover time
        levels = dict.fromkeys(participants, SILENCE_DBOV)
        rows: list[int] = []
        work = self._workspace(len(frames) + 1)
        if frames:
            block = np.stack(frames, out=work.block[:len(frames)])
            row_levels = _dbov(block).tolist()
            for row, participant_id in enumerate(ids):
                level = levels[participant_id] = row_levels[row]
                if self._gate_open(participants[participant_id], level):
                    rows.append(row)
            if self.max_speakers is not None and len(rows) > self.max_speakers:
                rows = sorted(sorted(rows, key=lambda r: -row_levels[r])[:self.max_speakers])
        speakers = [ids[row] for row in rows]

        # Row 0 is the full mix, row 1 + i the mix-minus of speaker i.
        signals = work.signals[:1 + len(rows)]
        contributions = signals[1:]
        np.take(work.block, np.asarray(rows, dtype=np.intp), axis=0, out=contributions)
        np.sum(contributions, axis=0, out=signals[0])
        np.subtract(signals[0], contributions, out=contributions)
        mixed = _soft_clip(signals, work.excess[:len(signals)], work.scratch[:len(signals)])
        mixed.flags.writeable = False
        return self._assign(mixed, speakers, levels)

    def _assign(self, mixed: NDArray[np.int16], speaker_ids: list[str],
                levels: dict[str, float]) -> MixResult:
        participants = self._participants
        assignment = {participant_id: SILENCE if participant.in_lobby else FULL_MIX
                      for participant_id, participant in participants.items()}
        outputs: dict[OutputKey, Samples] = {}
        for row, participant_id in enumerate(speaker_ids, start=1):
            key = participants[participant_id].own_key
            assignment[participant_id] = key
            outputs[key] = mixed[row]
        # A speaker whose frame is late this tick (jitter) keeps their own output, which then
        # equals the full mix: switching them to the shared FULL_MIX stream and back would hand
        # their decoder packets from another encoder mid-stream, an audible click.
        for participant_id, participant in participants.items():
            if participant_id not in assignment or participant.hangover <= 0:
                continue
            if assignment[participant_id] is FULL_MIX and not participant.in_lobby:
                assignment[participant_id] = participant.own_key
                outputs[participant.own_key] = mixed[0]
        wanted = set(assignment.values())
        if FULL_MIX in wanted:
            outputs[FULL_MIX] = mixed[0]
        if SILENCE in wanted:
            outputs[SILENCE] = self._silence
        return MixResult(outputs, assignment, levels, frozenset(speaker_ids))

    def _workspace(self, rows: int) -> _Workspace:
        # Reused float32 buffers: a tick that allocates several arrays of this size each time
        # makes the allocator hand pages back and fault them in again, which costs more than
        # the arithmetic (measured: ~0.3 ms of a 50-speaker tick).
        if self._work is None or self._work.rows < rows:
            self._work = _Workspace(max(rows, 2 * (self._work.rows if self._work else 4)),
                                    self.frame_samples)
        return self._work

    def _gate_open(self, participant: _Participant, level: float) -> bool:
        if level >= self.speech_threshold_dbov:
            participant.hangover = self.hangover_ticks
            return True
        if participant.hangover > 0:
            participant.hangover -= 1
            return True
        return False

    def _on_gate_change(self, participant: _Participant) -> None:
        if not participant.may_speak:
            participant.queue.clear()
            participant.hangover = 0

    def _get(self, participant_id: str) -> _Participant:
        try:
            return self._participants[participant_id]
        except KeyError:
            raise NotFound("No such participant in the mixer.",
                           participant_id=participant_id) from None


def _dbov(block: NDArray[np.float32]) -> NDArray[np.float64]:
    power = np.einsum("ij,ij->i", block, block, dtype=np.float64) / block.shape[1]
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power / (_OVERLOAD * _OVERLOAD))
    return np.maximum(levels, SILENCE_DBOV)


def _soft_clip(signals: NDArray[np.float32], excess: NDArray[np.float32],
               scratch: NDArray[np.float32]) -> Samples:
    # Above the knee the excess e is compressed to headroom * e / (headroom + e): the same value
    # and slope as the identity at the knee, approaching full scale but never reaching it. A
    # rational curve rather than tanh because it costs one division instead of a transcendental
    # per sample, which matters when fifty loud talkers clip at once. Below the knee the
    # reduction is exactly zero, so unclipped samples pass bit-exact. ``excess`` and ``scratch``
    # are work buffers shaped like ``signals``.
    knee = _KNEE * _FULL_SCALE
    headroom = _FULL_SCALE - knee
    np.abs(signals, out=excess)
    if excess.max(initial=0.0) > knee:
        np.subtract(excess, knee, out=excess)
        np.maximum(excess, 0.0, out=excess)
        # excess - headroom * excess / (headroom + excess) == excess**2 / (headroom + excess)
        np.add(excess, headroom, out=scratch)
        np.square(excess, out=excess)
        np.divide(excess, scratch, out=excess)
        np.copysign(excess, signals, out=excess)
        np.subtract(signals, excess, out=signals)
        np.rint(signals, out=signals)
    return signals.astype(np.int16)
