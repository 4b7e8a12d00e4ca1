"""Keypad PIN entry for callers without a screen (SIP video systems, phones): the IVR's core.

Digits arrive one at a time (RFC 4733 or SIP INFO); ``#`` submits, ``*`` starts over. A caller
gets ``max_attempts`` wrong PINs before being disconnected (Pexip: 3), and the whole entry has a
deadline so a silent caller does not hold a licence forever. Pure: digits and ``now`` in, outcomes
out; whether a PIN is right is decided by the node (PINs are stored hashed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_PIN_DIGITS = 20


class EntryState(StrEnum):
    COLLECTING = "collecting"
    CHECKING = "checking"  # a submitted PIN awaits the node's verdict
    ACCEPTED = "accepted"
    FAILED = "failed"  # attempts used up or timed out: disconnect


@dataclass(frozen=True)
class Submitted:
    """The caller pressed ``#``: check this PIN (empty means "no PIN", e.g. a guest where only a
    host PIN exists)."""

    pin: str


@dataclass(frozen=True)
class Rejected:
    attempts_left: int


@dataclass(frozen=True)
class GaveUp:
    reason: str  # "attempts" | "timeout"


Outcome = Submitted | Rejected | GaveUp


class PinEntry:
    def __init__(self, now: datetime, *, max_attempts: int = 3,
                 timeout: timedelta = timedelta(seconds=120)) -> None:
        self.state = EntryState.COLLECTING
        self.attempts_left = max_attempts
        self._digits: list[str] = []
        self._deadline = now + timeout

    def press(self, digit: str, now: datetime) -> Outcome | None:
        if self.state is not EntryState.COLLECTING:
            return None
        if now >= self._deadline:
            return self._give_up("timeout")
        if digit == "#":
            self.state = EntryState.CHECKING
            pin, self._digits = "".join(self._digits), []
            return Submitted(pin)
        if digit == "*":
            self._digits = []
        elif digit.isdigit() and len(self._digits) < MAX_PIN_DIGITS:
            self._digits.append(digit)
        return None

    def verdict(self, accepted: bool) -> Outcome | None:
        """The node checked the submitted PIN."""
        if self.state is not EntryState.CHECKING:
            return None
        if accepted:
            self.state = EntryState.ACCEPTED
            return None
        self.attempts_left -= 1
        if self.attempts_left <= 0:
            return self._give_up("attempts")
        self.state = EntryState.COLLECTING
        return Rejected(self.attempts_left)

    def get_timer(self) -> datetime | None:
        return self._deadline if self.state is EntryState.COLLECTING else None

    def handle_timer(self, now: datetime) -> Outcome | None:
        if self.state is EntryState.COLLECTING and now >= self._deadline:
            return self._give_up("timeout")
        return None

    def _give_up(self, reason: str) -> GaveUp:
        self.state = EntryState.FAILED
        return GaveUp(reason)
