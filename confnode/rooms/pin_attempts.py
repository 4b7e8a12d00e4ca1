"""Counting wrong PINs for one room, so guessing a PIN cannot succeed.

A 4-digit PIN has 10,000 values. Two limits, both over a sliding window:

* per source (an IP address, a SIP From URI — whatever the shell can tell apart): at most
  ``per_source_limit`` failures; this stops a person or a naive script after a few tries.
* per room: after ``room_limit`` failures from *all* sources together the whole room refuses PIN
  entry, even the right PIN. Sources are cheap to change (a botnet, IPv6 addresses), so this is
  the limit that actually bounds an attacker: with the defaults, 20 guesses per 10 minutes is about
  2,900 a day, against a booked room that exists for about an hour.

Refusing the right PIN during a lockout is deliberate: otherwise the lockout would itself become an
oracle ("refused as locked out" vs "accepted"). The lockout lifts by itself as failures age out of
the window; a success clears only its own source, so an attacker cannot launder their failures by
interleaving a legitimate user's correct PIN.

One ``PinAttempts`` per room; pure — ``now`` is always passed in.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from confnode.errors import InvalidInput, PinLockedOut
from confnode.rooms.window import require_aware

DEFAULT_PER_SOURCE_LIMIT = 5
DEFAULT_ROOM_LIMIT = 20
DEFAULT_ROOM_WINDOW = timedelta(minutes=10)


class PinAttempts:
    def __init__(
        self,
        per_source_limit: int = DEFAULT_PER_SOURCE_LIMIT,
        room_limit: int = DEFAULT_ROOM_LIMIT,
        room_window: timedelta = DEFAULT_ROOM_WINDOW,
    ) -> None:
        if per_source_limit < 1 or room_limit < 1:
            raise InvalidInput("PIN attempt limits must be at least 1.")
        if room_window <= timedelta(0):
            raise InvalidInput("The PIN attempt window must be positive.")
        self.per_source_limit = per_source_limit
        self.room_limit = room_limit
        # The same sliding window serves both limits: a source that mistyped five times may try
        # again once its oldest failure is this old.
        self.window = room_window
        # Only the newest `limit` failures can decide a lockout, so the deques are bounded even if
        # a caller keeps recording failures during one.
        self._room_failures: deque[datetime] = deque(maxlen=room_limit)
        self._source_failures: dict[str, deque[datetime]] = {}

    def check(self, source: str, now: datetime) -> None:
        """Call before comparing a PIN; raises ``PinLockedOut`` if no PIN may be tried now."""
        require_aware(now)
        self._expire(now)
        if len(self._room_failures) >= self.room_limit:
            raise PinLockedOut(
                "Too many wrong PINs for this meeting; PIN entry is paused.",
                retry_at=(self._room_failures[0] + self.window).isoformat(),
            )
        failures = self._source_failures.get(source)
        if failures is not None and len(failures) >= self.per_source_limit:
            raise PinLockedOut(
                "Too many wrong PINs; please wait before trying again.",
                retry_at=(failures[0] + self.window).isoformat(),
            )

    def record_failure(self, source: str, now: datetime) -> None:
        require_aware(now)
        self._expire(now)
        self._room_failures.append(now)
        failures = self._source_failures.get(source)
        if failures is None:
            failures = self._source_failures[source] = deque(maxlen=self.per_source_limit)
        failures.append(now)

    def record_success(self, source: str, now: datetime) -> None:
        """Clear this source's failures; the room-wide count stays (see module docstring)."""
        require_aware(now)
        self._source_failures.pop(source, None)
        self._expire(now)

    def locked_out(self, now: datetime) -> bool:
        """Whether the whole room refuses PIN entry at ``now``."""
        require_aware(now)
        self._expire(now)
        return len(self._room_failures) >= self.room_limit

    def _expire(self, now: datetime) -> None:
        # A failure at t counts while now < t + window: at t + window exactly it has expired.
        horizon = now - self.window
        while self._room_failures and self._room_failures[0] <= horizon:
            self._room_failures.popleft()
        for source in list(self._source_failures):
            failures = self._source_failures[source]
            while failures and failures[0] <= horizon:
                failures.popleft()
            if not failures:
                del self._source_failures[source]
