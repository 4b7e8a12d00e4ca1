"""Active-speaker detection: who is on stage, decided per mixer tick with hysteresis (sans-IO).

The compositor puts the active speaker in the big tile, so a wrong or jittery choice is what the
whole room sees: the picture must not flip on a cough, a laugh, or two people saying "ja" at once.
Three rules keep it calm:

* The speaker on stage is protected by a peak envelope of their level that jumps up at once and
  falls by ``decay_db_per_tick`` (default 1.5 dB per 20 ms tick): the gaps between their syllables
  do not open the stage to anyone else.
* A challenger must *this tick* be at or above the speech threshold and at least ``margin_db``
  above the speaker's envelope, and collect ``hold_ticks`` such ticks (default 15 = 300 ms)
  before taking the stage. Their own syllable gaps are forgiven up to ``max_gap_ticks`` in a row
  (default 5 = 100 ms); a longer pause, or someone else being louder after it, starts the count
  again. A cough or a "ja" never collects enough.
* Silence changes nothing: the last speaker stays on stage until someone else talks. Only leaving
  (``remove``) empties the stage.

Levels are dBov per participant, as :class:`confnode.media.mixer.MixResult` reports them (muted
and lobby participants at the floor, so they never take the stage). Participants missing from a
tick's levels count as silent. Changes are reported as :class:`SpeakerChanged` events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from confnode.errors import InvalidInput
from confnode.media.mixer import SILENCE_DBOV


@dataclass(frozen=True, slots=True)
class SpeakerChanged:
    previous: str | None
    current: str | None


@dataclass(slots=True)
class ActiveSpeaker:
    threshold_dbov: float = -50.0
    margin_db: float = 6.0
    hold_ticks: int = 15
    decay_db_per_tick: float = 1.5
    max_gap_ticks: int = 5
    _envelopes: dict[str, float] = field(default_factory=dict, init=False)
    _current: str | None = field(default=None, init=False)
    _previous: str | None = field(default=None, init=False)
    _challenger: str | None = field(default=None, init=False)
    _evidence: int = field(default=0, init=False)
    _misses: int = field(default=0, init=False)
    _events: deque[SpeakerChanged] = field(default_factory=deque, init=False)

    def __post_init__(self) -> None:
        if (self.hold_ticks < 1 or self.margin_db < 0 or self.decay_db_per_tick <= 0
                or self.max_gap_ticks < 0):
            raise InvalidInput("hold_ticks >= 1, margin_db >= 0, max_gap_ticks >= 0 and a "
                               "positive decay are needed.")

    @property
    def current(self) -> str | None:
        return self._current

    @property
    def previous(self) -> str | None:
        """Who held the stage before the current speaker: what the current speaker sees."""
        return self._previous

    def update(self, levels: Mapping[str, float]) -> str | None:
        """Feed one tick's levels; returns the speaker on stage after this tick."""
        for participant_id in levels.keys() - self._envelopes.keys():
            self._envelopes[participant_id] = SILENCE_DBOV
        for participant_id, envelope in self._envelopes.items():
            level = levels.get(participant_id, SILENCE_DBOV)
            self._envelopes[participant_id] = max(level, envelope - self.decay_db_per_tick,
                                                  SILENCE_DBOV)
        on_stage = SILENCE_DBOV if self._current is None else self._envelopes[self._current]
        needed = max(self.threshold_dbov, on_stage + self.margin_db)
        contenders = {participant_id: level for participant_id, level in levels.items()
                      if participant_id != self._current and level >= needed}
        if self._challenger is not None and self._challenger in contenders:
            self._evidence += 1
            self._misses = 0
        else:
            self._misses += 1
            if self._challenger is None or self._misses > self.max_gap_ticks:
                # Ties go to whoever comes first in ``levels``; max() keeps the first.
                self._challenger = (max(contenders, key=contenders.__getitem__)
                                    if contenders else None)
                self._evidence = 1 if contenders else 0
                self._misses = 0
        if self._challenger is not None and self._evidence >= self.hold_ticks:
            self._switch_to(self._challenger)
        return self._current

    def remove(self, participant_id: str) -> None:
        """Forget a participant who left; the stage empties if it was theirs."""
        self._envelopes.pop(participant_id, None)
        if self._challenger == participant_id:
            self._reset_challenger()
        if self._previous == participant_id:
            self._previous = None
        if self._current == participant_id:
            self._current = None
            self._events.append(SpeakerChanged(participant_id, None))

    def next_event(self) -> SpeakerChanged | None:
        return self._events.popleft() if self._events else None

    def _switch_to(self, participant_id: str) -> None:
        self._events.append(SpeakerChanged(self._current, participant_id))
        if self._current is not None:
            self._previous = self._current
        self._current = participant_id
        self._reset_challenger()

    def _reset_challenger(self) -> None:
        self._challenger, self._evidence, self._misses = None, 0, 0
