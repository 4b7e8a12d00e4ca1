"""The licence ledger: which call holds which licence, and whether the next call may come in.

Modelled on Pexip Infinity's licensing. There are two pools: *port* licences for calls with video
and *audio* licences for audio-only calls. Every media connection holds one licence for as long as
it lasts (a gateway call has two legs and so takes two), and the node asks for one at every join.

A licensed capacity is a hard number, but refusing participant 251 of a 250-licence deployment in
the middle of a consultation morning is worse than briefly going over. So a *grace overdraft* lets
``ceil(capacity * fraction)`` extra calls in, for at most ``max_seconds_per_day`` of overdraft time
per local calendar day. When that time is used up, new calls beyond capacity are refused, but calls
already admitted are never cut: dropping a patient mid-consultation is never the right trade.

The ledger is sans-IO. Time is always a parameter: overdraft time is accumulated between the
``now`` values of consecutive calls, split at local midnights (``tz``), and ``get_timer`` says when
to call ``handle_timer`` so the budget's end is noticed on time. Results go out as events
(:mod:`confnode.licensing.events`) drained with ``next_event``.

Time never runs backwards inside the ledger: a ``now`` earlier than one already seen (two
transports racing, a wall-clock step) is treated as the latest ``now`` seen, so overdraft time is
never counted twice or negatively and grants carry that instant.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from confnode.errors import Conflict, InvalidInput, LicenceRefused
from confnode.licensing.events import (
    GraceEntered,
    GraceExhausted,
    LicenceAcquired,
    LicenceEvent,
    LicenceRefusedEvent,
    LicenceReleased,
    PeakRaised,
    RefusalReason,
)

# Overdraft seconds are floats summed from microsecond timedeltas; this slack (well under one
# microsecond) makes "the budget ran out at the timer we asked for" hold despite rounding.
_BUDGET_SLACK_SECONDS = 1e-7
_SECONDS_PER_DAY = 24 * 3600


class LicenceKind(StrEnum):
    PORT = "port"  # a call with video
    AUDIO = "audio"  # an audio-only call


@dataclass(frozen=True)
class GracePolicy:
    """How far, and for how long per day, a pool may be overdrawn."""

    fraction: float = 0.10
    max_seconds_per_day: float = 4 * 3600

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and self.fraction >= 0):
            raise InvalidInput("Grace fraction must be a finite number >= 0.",
                               fraction=self.fraction)
        # A budget longer than a day could never run out; refusing it keeps get_timer's look-ahead
        # bounded (no two consecutive 23-hour days exist).
        if not (math.isfinite(self.max_seconds_per_day)
                and 0 <= self.max_seconds_per_day <= _SECONDS_PER_DAY):
            raise InvalidInput("Grace max_seconds_per_day must be between 0 and 86400.",
                               max_seconds_per_day=self.max_seconds_per_day)

    def allowance(self, capacity: int) -> int:
        """Extra calls allowed beyond ``capacity``; at least one whenever grace is on at all."""
        if capacity <= 0 or self.fraction <= 0:
            return 0
        # Decimal(str(...)) so 0.07 of 100 is 7, not ceil(7.000000000000001) == 8.
        return max(1, math.ceil(Decimal(str(self.fraction)) * capacity))


_DEFAULT_GRACE = GracePolicy()
_COPENHAGEN = ZoneInfo("Europe/Copenhagen")


@dataclass(frozen=True)
class LicenceGrant:
    """One call's hold on one licence; persisted by the store and handed back to ``restore``.

    ``kind`` is the pool actually drawn, ``requested`` what the call asked for: an audio-only call
    may sit on a port licence when the audio pool is full, as Pexip does.
    """

    call_id: str
    kind: LicenceKind
    requested: LicenceKind
    in_grace: bool
    acquired_at: datetime

    def __post_init__(self) -> None:
        # The store reads kinds back as plain strings; accept those, keep the enum.
        object.__setattr__(self, "kind", _licence_kind(self.kind))
        object.__setattr__(self, "requested", _licence_kind(self.requested))
        if not isinstance(self.call_id, str) or not self.call_id:
            raise InvalidInput("A licence grant needs a non-empty call id.")
        if self.requested is LicenceKind.PORT and self.kind is LicenceKind.AUDIO:
            raise InvalidInput("A call with video cannot hold an audio licence.",
                               call_id=self.call_id)
        _require_aware(self.acquired_at)


@dataclass(frozen=True)
class PoolUsage:
    """A snapshot of one pool, for the status API and metrics."""

    kind: LicenceKind
    in_use: int
    capacity: int
    grace_allowance: int
    # Overdraft time counted so far today (local day). It keeps growing past the budget while
    # admitted calls keep the pool overdrawn, so it reports what really happened.
    grace_seconds_used_today: float
    in_grace: bool  # in_use > capacity
    grace_exhausted: bool  # today's budget is spent: nothing more is admitted beyond capacity


class LicenceLedger:
    """Counts licence holds per pool and decides admission; see the module docstring."""

    def __init__(
        self,
        capacity: Mapping[LicenceKind, int],
        grace: GracePolicy = _DEFAULT_GRACE,
        tz: tzinfo = _COPENHAGEN,
    ) -> None:
        self._capacity: dict[LicenceKind, int] = dict.fromkeys(LicenceKind, 0)
        for kind, value in capacity.items():
            self._capacity[_licence_kind(kind)] = _check_capacity(value)
        self._grace = grace
        self._tz = tz
        self._holds: dict[str, LicenceGrant] = {}  # insertion order = acquisition order
        self._in_use: dict[LicenceKind, int] = dict.fromkeys(LicenceKind, 0)
        self._clock: datetime | None = None  # the latest `now` accounted for (UTC)
        self._day: date | None = None  # the local day of _clock
        self._grace_used: dict[LicenceKind, float] = dict.fromkeys(LicenceKind, 0.0)
        self._exhaustion_announced: set[LicenceKind] = set()  # today
        self._peaks: dict[date, dict[LicenceKind, int]] = {}
        self._events: deque[LicenceEvent] = deque()

    # -- holds ------------------------------------------------------------------------------

    def acquire(self, call_id: str, kind: LicenceKind, now: datetime) -> LicenceGrant:
        """Give ``call_id`` a licence of ``kind`` or raise :class:`LicenceRefused`.

        An already-held ``call_id`` gets its existing grant back, because transports retry; asking
        again for a *different* kind is a caller bug and raises :class:`Conflict`. A refusal
        changes no hold; it only queues a :class:`LicenceRefusedEvent`.
        """
        _check_call_id(call_id)
        kind = _licence_kind(kind)
        now = self._advance_to(now)
        held = self._holds.get(call_id)
        if held is not None:
            if held.requested is not kind:
                raise Conflict(f"Call already holds a licence requested as {held.requested}.",
                               call_id=call_id, requested=held.requested.value,
                               asked=kind.value)
            return held
        pool, in_grace = self._choose_pool(kind, now)
        grant = LicenceGrant(call_id=call_id, kind=pool, requested=kind, in_grace=in_grace,
                             acquired_at=now)
        self._events.append(LicenceAcquired(grant))  # before the alert and peak it causes
        self._add_holds([grant], now)
        return grant

    def release(self, call_id: str, now: datetime) -> LicenceGrant | None:
        """End ``call_id``'s hold; an unknown or already released id is fine and returns None.

        Idempotent because hang-ups arrive from several directions (BYE, ICE failure, room end).
        """
        now = self._advance_to(now)
        return self._remove_hold(call_id, now)

    def restore(
        self,
        grants: Iterable[LicenceGrant],
        now: datetime,
        *,
        peaks: Mapping[date, Mapping[LicenceKind, int]] | None = None,
    ) -> None:
        """Re-load holds persisted before a restart; never refuses, even beyond capacity + grace.

        The calls are already up, so the licences were granted; cutting them now would be the
        worst outcome. No :class:`LicenceAcquired` is queued (the store already has these), but a
        :class:`GraceEntered` is when the pool comes back overdrawn. Overdraft time during the
        downtime is unknown and not counted; counting restarts at ``now``. ``peaks`` seeds the daily
        peaks the store already has, so no lower :class:`PeakRaised` is queued for them. A
        ``call_id`` already held is skipped.
        """
        grants = list(grants)
        for grant in grants:
            if not isinstance(grant, LicenceGrant):
                raise InvalidInput("restore() takes LicenceGrant objects.")
        seeded = {day: {_licence_kind(k): _check_capacity(v) for k, v in levels.items()}
                  for day, levels in (peaks or {}).items()}
        now = self._advance_to(now)
        for day, levels in seeded.items():
            known = self._peaks.setdefault(day, dict.fromkeys(LicenceKind, 0))
            for kind, level in levels.items():
                known[kind] = max(known[kind], level)
        fresh: dict[str, LicenceGrant] = {}
        for grant in grants:
            if grant.call_id not in self._holds:
                fresh.setdefault(grant.call_id, grant)
        self._add_holds(list(fresh.values()), now)
        self._announce_exhaustion(now)

    def reconcile(self, live_call_ids: Iterable[str], now: datetime) -> list[LicenceGrant]:
        """Release every hold whose call is not live; the safety net after a crash or lost BYE."""
        if isinstance(live_call_ids, str):
            # A bare string would be iterated as characters and release nearly everything.
            raise InvalidInput("reconcile() takes a collection of call ids, not one string.")
        live = set(live_call_ids)
        now = self._advance_to(now)
        stale = [call_id for call_id in self._holds if call_id not in live]
        released = []
        for call_id in stale:
            grant = self._remove_hold(call_id, now)
            if grant is not None:
                released.append(grant)
        return released

    def set_capacity(self, kind: LicenceKind, capacity: int, now: datetime) -> None:
        """Apply a new licensed capacity (licences bought or expired) without cutting any call.

        Lowering it below the holds puts the pool into overdraft at once, with a
        :class:`GraceEntered` alert, and overdraft time counts from ``now``.
        """
        kind = _licence_kind(kind)
        capacity = _check_capacity(capacity)
        now = self._advance_to(now)
        was_over = self._in_use[kind] > self._capacity[kind]
        self._capacity[kind] = capacity
        if not was_over and self._in_use[kind] > capacity:
            self._events.append(GraceEntered(kind=kind, in_use=self._in_use[kind],
                                             capacity=capacity, at=now))
        self._announce_exhaustion(now)

    # -- queries ----------------------------------------------------------------------------

    def holds(self) -> list[LicenceGrant]:
        """Current holds, oldest first."""
        return list(self._holds.values())

    def in_use(self, kind: LicenceKind) -> int:
        return self._in_use[_licence_kind(kind)]

    def capacity(self, kind: LicenceKind) -> int:
        return self._capacity[_licence_kind(kind)]

    def grace_allowance(self, kind: LicenceKind) -> int:
        return self._grace.allowance(self._capacity[_licence_kind(kind)])

    def usage(self, now: datetime) -> dict[LicenceKind, PoolUsage]:
        """A snapshot per pool as of ``now``; accounts overdraft time up to ``now`` first."""
        self._advance_to(now)
        return {
            kind: PoolUsage(
                kind=kind,
                in_use=self._in_use[kind],
                capacity=self._capacity[kind],
                grace_allowance=self.grace_allowance(kind),
                grace_seconds_used_today=self._grace_used[kind],
                in_grace=self._in_use[kind] > self._capacity[kind],
                grace_exhausted=self._budget_spent(kind),
            )
            for kind in LicenceKind
        }

    def daily_peaks(self) -> dict[date, dict[LicenceKind, int]]:
        """Highest concurrent holds per local calendar day (``tz``) and pool.

        How days are found, since the ledger has no clock of its own: a day appears once any
        ledger call that takes ``now`` (even ``usage`` or ``advance``) falls in it. Calls held
        across midnight count on the new day at their level from 00:00, recorded (and
        :class:`PeakRaised` queued) by that first call; a day in which no ledger call happened
        but holds lasted through it also appears, at the carried level, once a later call
        reveals it. A day with no holds and no ledger call does not appear. A pool idle on a
        listed day shows 0. A shell that wants a new day's carried peak at 00:00 sharp calls
        ``advance`` at local midnight.
        """
        return {day: dict(levels) for day, levels in sorted(self._peaks.items())}

    def monthly_peaks(self) -> dict[str, dict[LicenceKind, int]]:
        """Highest concurrent holds per month (``"YYYY-MM"``, local time) and pool."""
        months: dict[str, dict[LicenceKind, int]] = {}
        for day, levels in sorted(self._peaks.items()):
            month = months.setdefault(f"{day.year:04d}-{day.month:02d}",
                                      dict.fromkeys(LicenceKind, 0))
            for kind, level in levels.items():
                month[kind] = max(month[kind], level)
        return months

    # -- time -------------------------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        """Account overdraft time up to ``now``; queues :class:`GraceExhausted` if it ran out."""
        self._advance_to(now)

    def get_timer(self) -> datetime | None:
        """When an overdrawn pool's grace budget will run out, or None if no pool is overdrawn.

        Looks past midnight: a budget that would run out tomorrow is reset at 00:00 first, so the
        timer is then the new day's exhaustion time.
        """
        if self._clock is None:
            return None
        budget = self._grace.max_seconds_per_day
        due: datetime | None = None
        for kind in LicenceKind:
            if self._in_use[kind] <= self._capacity[kind]:
                continue
            start = self._clock
            used = self._grace_used[kind]
            announced = kind in self._exhaustion_announced
            # Three days always suffice: budgets are at most 24 h and a day is at least 23 h.
            for _ in range(3):
                midnight = self._next_midnight(start)
                if not announced:
                    at = start + _ceil_timedelta(max(0.0, budget - used))
                    if at <= midnight:
                        due = at if due is None else min(due, at)
                        break
                start, used, announced = midnight, 0.0, False
        return due

    def handle_timer(self, now: datetime) -> None:
        self._advance_to(now)

    def next_event(self) -> LicenceEvent | None:
        return self._events.popleft() if self._events else None

    # -- internals --------------------------------------------------------------------------

    def _choose_pool(self, kind: LicenceKind, now: datetime) -> tuple[LicenceKind, bool]:
        """The pool to draw from and whether that is grace; queues and raises a refusal."""
        if self._in_use[kind] < self._capacity[kind]:
            return kind, False
        # Pexip lets an audio-only call take a free port licence before any audio overdraft:
        # licences already paid for are better than grace time.
        port = LicenceKind.PORT
        if kind is LicenceKind.AUDIO and self._in_use[port] < self._capacity[port]:
            return port, False
        reason = self._grace_refusal(kind)
        if reason is None:
            return kind, True
        raise self._refusal(kind, reason, now)

    def _grace_refusal(self, kind: LicenceKind) -> RefusalReason | None:
        allowance = self.grace_allowance(kind)
        if allowance == 0 or self._grace.max_seconds_per_day == 0:
            return RefusalReason.NO_GRACE
        if self._in_use[kind] >= self._capacity[kind] + allowance:
            return RefusalReason.GRACE_FULL
        if self._budget_spent(kind):
            return RefusalReason.GRACE_EXHAUSTED
        return None

    def _refusal(self, kind: LicenceKind, reason: RefusalReason, now: datetime) -> LicenceRefused:
        in_use = self._in_use[kind]
        capacity = self._capacity[kind]
        allowance = self.grace_allowance(kind)
        grace = f"+{allowance} grace" if reason is not RefusalReason.NO_GRACE else "no grace"
        message = f"No {kind} licence available: {in_use} in use of {capacity} ({grace})"
        if reason is RefusalReason.GRACE_EXHAUSTED:
            message += (f"; today's {self._grace.max_seconds_per_day:g} s of grace time"
                        " is used up")
        if kind is LicenceKind.AUDIO:
            message += "; no port licence free either"
        self._events.append(LicenceRefusedEvent(kind=kind, in_use=in_use, capacity=capacity,
                                                grace_allowance=allowance, reason=reason, at=now))
        return LicenceRefused(message, kind=kind.value, in_use=in_use, capacity=capacity,
                              grace_allowance=allowance, reason=reason.value)

    def _budget_spent(self, kind: LicenceKind) -> bool:
        budget = self._grace.max_seconds_per_day
        return self._grace_used[kind] + _BUDGET_SLACK_SECONDS >= budget

    def _add_holds(self, grants: list[LicenceGrant], now: datetime) -> None:
        was_over = {kind: self._in_use[kind] > self._capacity[kind] for kind in LicenceKind}
        for grant in grants:
            self._holds[grant.call_id] = grant
            self._in_use[grant.kind] += 1
        for kind in LicenceKind:
            if not was_over[kind] and self._in_use[kind] > self._capacity[kind]:
                self._events.append(GraceEntered(kind=kind, in_use=self._in_use[kind],
                                                 capacity=self._capacity[kind], at=now))
        self._record_levels()

    def _remove_hold(self, call_id: str, now: datetime) -> LicenceGrant | None:
        grant = self._holds.pop(call_id, None)
        if grant is None:
            return None
        self._in_use[grant.kind] -= 1
        self._events.append(LicenceReleased(grant=grant, at=now))
        return grant

    def _advance_to(self, now: datetime) -> datetime:
        """Account everything between the last ``now`` and this one; returns the effective now."""
        now = _require_aware(now).astimezone(UTC)
        if self._clock is None:
            self._clock = now
            self._begin_day(self._local_day(now), touched=True)
            return now
        if now > self._clock:
            today = self._local_day(now)
            start = self._clock
            while True:
                midnight = self._next_midnight(start)
                if now < midnight:
                    self._accrue(start, now)
                    break
                self._accrue(start, midnight)
                day = self._local_day(midnight)
                self._begin_day(day, touched=day == today)
                start = midnight
                if not self._holds and day != today:
                    # Nothing is carried through the idle days between: jump to today.
                    self._begin_day(today, touched=True)
                    break
            self._clock = now
        self._announce_exhaustion(self._clock)
        return self._clock

    def _accrue(self, start: datetime, end: datetime) -> None:
        """Add [start, end) — within one local day — to each overdrawn pool's grace time."""
        seconds = (end - start).total_seconds()
        budget = self._grace.max_seconds_per_day
        for kind in LicenceKind:
            if self._in_use[kind] <= self._capacity[kind]:
                continue
            before = self._grace_used[kind]
            self._grace_used[kind] = before + seconds
            if kind not in self._exhaustion_announced and self._budget_spent(kind):
                at = min(end, start + _ceil_timedelta(max(0.0, budget - before)))
                self._exhaustion_announced.add(kind)
                self._events.append(GraceExhausted(kind=kind, at=at))

    def _announce_exhaustion(self, now: datetime) -> None:
        # Catches a pool that is overdrawn with an already spent budget without time passing
        # (restored or re-capacitated into overdraft, or a zero budget).
        self._accrue(now, now)

    def _begin_day(self, day: date, *, touched: bool) -> None:
        self._day = day
        self._grace_used = dict.fromkeys(LicenceKind, 0.0)
        self._exhaustion_announced = set()
        if touched or any(self._in_use.values()):
            self._record_levels()

    def _record_levels(self) -> None:
        assert self._day is not None  # set by the first _advance_to
        peaks = self._peaks.setdefault(self._day, dict.fromkeys(LicenceKind, 0))
        for kind in LicenceKind:
            if self._in_use[kind] > peaks[kind]:
                peaks[kind] = self._in_use[kind]
                self._events.append(PeakRaised(kind=kind, day=self._day, peak=peaks[kind]))

    def _local_day(self, instant: datetime) -> date:
        return instant.astimezone(self._tz).date()

    def _next_midnight(self, instant: datetime) -> datetime:
        """The first local midnight after ``instant``, in UTC."""
        tomorrow = self._local_day(instant) + timedelta(days=1)
        return datetime.combine(tomorrow, time(0), tzinfo=self._tz).astimezone(UTC)


def _licence_kind(value: object) -> LicenceKind:
    try:
        return LicenceKind(value)
    except ValueError:
        raise InvalidInput(f"Unknown licence kind {value!r}.") from None


def _check_capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("A licence count must be a whole number >= 0.", value=repr(value))
    return value


def _check_call_id(call_id: object) -> None:
    if not isinstance(call_id, str) or not call_id:
        raise InvalidInput("A call id must be a non-empty string.")


def _require_aware(instant: datetime) -> datetime:
    if not isinstance(instant, datetime) or instant.utcoffset() is None:
        raise InvalidInput("Times given to the licence ledger must be timezone-aware datetimes.")
    return instant


def _ceil_timedelta(seconds: float) -> timedelta:
    """``seconds`` rounded *up* to whole microseconds, so a timer is never due too early."""
    return timedelta(microseconds=math.ceil(round(seconds * 1_000_000, 3)))
