"""The licence ledger: literal scenarios with a fake clock, then stateful properties.

All times are UTC. Copenhagen is UTC+1 in January (local midnight = 23:00 UTC) and UTC+2 in July
(local midnight = 22:00 UTC); the tests state the local time beside each instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from confnode.errors import Conflict, InvalidInput, LicenceRefused
from confnode.licensing import (
    GraceEntered,
    GraceExhausted,
    GracePolicy,
    LicenceAcquired,
    LicenceEvent,
    LicenceGrant,
    LicenceKind,
    LicenceLedger,
    LicenceRefusedEvent,
    LicenceReleased,
    PeakRaised,
    RefusalReason,
)

PORT = LicenceKind.PORT
AUDIO = LicenceKind.AUDIO
CPH = ZoneInfo("Europe/Copenhagen")


def utc(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 1) -> datetime:
    return datetime(2025, month, day, hour, minute, second, tzinfo=UTC)


def drain(ledger: LicenceLedger) -> list[LicenceEvent]:
    events = []
    while (event := ledger.next_event()) is not None:
        events.append(event)
    return events


def of_type(events: list[LicenceEvent], kind: type) -> list[LicenceEvent]:
    return [event for event in events if isinstance(event, kind)]


# -- capacity and grace -----------------------------------------------------------------------


def test_calls_up_to_capacity_take_licences_without_grace() -> None:
    ledger = LicenceLedger({PORT: 250})
    grants = [ledger.acquire(f"c{i}", PORT, utc(15, 9)) for i in range(250)]
    assert ledger.in_use(PORT) == 250
    assert not any(grant.in_grace for grant in grants)
    assert {grant.kind for grant in grants} == {PORT}
    events = drain(ledger)
    assert len(of_type(events, LicenceAcquired)) == 250
    assert of_type(events, GraceEntered) == []
    usage = ledger.usage(utc(15, 9))[PORT]
    assert (usage.in_use, usage.capacity, usage.grace_allowance, usage.in_grace) == (
        250, 250, 25, False)


def test_call_251_is_admitted_in_grace_and_raises_the_alert() -> None:
    ledger = LicenceLedger({PORT: 250})
    for i in range(250):
        ledger.acquire(f"c{i}", PORT, utc(15, 9))
    drain(ledger)
    grant = ledger.acquire("c250", PORT, utc(15, 9, 5))
    assert grant == LicenceGrant("c250", PORT, PORT, True, utc(15, 9, 5))
    assert drain(ledger) == [
        LicenceAcquired(grant),
        GraceEntered(kind=PORT, in_use=251, capacity=250, at=utc(15, 9, 5)),
        PeakRaised(kind=PORT, day=date(2025, 1, 15), peak=251),
    ]
    assert ledger.usage(utc(15, 9, 5))[PORT].in_grace is True
    # Staying above capacity does not repeat the alert.
    ledger.acquire("c251", PORT, utc(15, 9, 6))
    assert of_type(drain(ledger), GraceEntered) == []


def test_grace_entered_is_raised_again_after_dropping_back_to_capacity() -> None:
    ledger = LicenceLedger({PORT: 2}, GracePolicy(fraction=0.5))
    for call_id in ("a", "b", "c"):
        ledger.acquire(call_id, PORT, utc(15, 9))
    ledger.release("c", utc(15, 9, 10))
    drain(ledger)
    ledger.acquire("d", PORT, utc(15, 9, 20))
    assert of_type(drain(ledger), GraceEntered) == [
        GraceEntered(kind=PORT, in_use=3, capacity=2, at=utc(15, 9, 20))]


def test_beyond_the_grace_allowance_is_refused_and_nothing_changes() -> None:
    ledger = LicenceLedger({PORT: 250})
    for i in range(275):
        ledger.acquire(f"c{i}", PORT, utc(15, 9))
    drain(ledger)
    holds_before = ledger.holds()
    usage_before = ledger.usage(utc(15, 9, 1))
    with pytest.raises(LicenceRefused) as refused:
        ledger.acquire("c275", PORT, utc(15, 9, 1))
    assert refused.value.message == "No port licence available: 275 in use of 250 (+25 grace)"
    assert refused.value.code == "licence_refused"
    assert refused.value.details == {"kind": "port", "in_use": 275, "capacity": 250,
                                     "grace_allowance": 25, "reason": "grace_full"}
    assert ledger.holds() == holds_before
    assert ledger.in_use(PORT) == 275
    assert ledger.usage(utc(15, 9, 1)) == usage_before
    assert drain(ledger) == [LicenceRefusedEvent(
        kind=PORT, in_use=275, capacity=250, grace_allowance=25,
        reason=RefusalReason.GRACE_FULL, at=utc(15, 9, 1))]


def test_without_grace_a_full_pool_refuses_at_capacity() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=0.0))
    ledger.acquire("a", PORT, utc(15, 9))
    with pytest.raises(LicenceRefused, match=r"1 in use of 1 \(no grace\)") as refused:
        ledger.acquire("b", PORT, utc(15, 9))
    assert refused.value.details["reason"] == "no_grace"
    assert [grant.call_id for grant in ledger.holds()] == ["a"]


@pytest.mark.parametrize(("fraction", "capacity", "allowance"), [
    (0.10, 250, 25),
    (0.07, 100, 7),  # not 8: 0.07 * 100 is 7.000000000000001 in binary floating point
    (0.10, 11, 2),
    (0.10, 5, 1),  # at least one whenever grace is on
    (0.10, 0, 0),
    (0.0, 250, 0),
])
def test_grace_allowance_rounds_up_with_a_floor_of_one(
        fraction: float, capacity: int, allowance: int) -> None:
    assert GracePolicy(fraction=fraction).allowance(capacity) == allowance


@pytest.mark.parametrize("policy", [
    {"fraction": -0.1}, {"fraction": float("nan")},
    {"max_seconds_per_day": -1}, {"max_seconds_per_day": 86401},
])
def test_nonsense_grace_policies_are_rejected(policy: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        GracePolicy(**policy)


def test_bad_inputs_are_rejected_before_anything_changes() -> None:
    with pytest.raises(InvalidInput):
        LicenceLedger({PORT: -1})
    ledger = LicenceLedger({PORT: 1})
    with pytest.raises(InvalidInput):
        ledger.acquire("a", PORT, datetime(2025, 1, 15, 9))  # naive: ambiguous day boundaries
    with pytest.raises(InvalidInput):
        ledger.acquire("", PORT, utc(15, 9))
    with pytest.raises(InvalidInput):
        ledger.acquire("a", "video", utc(15, 9))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ledger.reconcile("a", utc(15, 9))
    assert ledger.holds() == []
    assert drain(ledger) == []


# -- audio ------------------------------------------------------------------------------------


def test_audio_call_falls_back_to_a_free_port_licence_before_audio_grace() -> None:
    ledger = LicenceLedger({PORT: 1, AUDIO: 1}, GracePolicy(fraction=0.1))
    first = ledger.acquire("a1", AUDIO, utc(15, 9))
    second = ledger.acquire("a2", AUDIO, utc(15, 9))
    third = ledger.acquire("a3", AUDIO, utc(15, 9))
    assert (first.kind, first.requested, first.in_grace) == (AUDIO, AUDIO, False)
    assert (second.kind, second.requested, second.in_grace) == (PORT, AUDIO, False)
    assert (third.kind, third.requested, third.in_grace) == (AUDIO, AUDIO, True)
    assert (ledger.in_use(AUDIO), ledger.in_use(PORT)) == (2, 1)
    with pytest.raises(LicenceRefused) as refused:
        ledger.acquire("a4", AUDIO, utc(15, 9))
    assert refused.value.message == ("No audio licence available: 2 in use of 1 (+1 grace); "
                                     "no port licence free either")
    # The audio call on the port licence leaves video calls only the port grace.
    video = ledger.acquire("v1", PORT, utc(15, 9))
    assert (video.kind, video.in_grace) == (PORT, True)


def test_audio_call_with_no_audio_licences_uses_a_port_licence() -> None:
    ledger = LicenceLedger({PORT: 2})
    grant = ledger.acquire("a", AUDIO, utc(15, 9))
    assert (grant.kind, grant.requested) == (PORT, AUDIO)
    assert ledger.in_use(PORT) == 1
    assert ledger.in_use(AUDIO) == 0


def test_gateway_call_takes_one_licence_per_leg() -> None:
    ledger = LicenceLedger({PORT: 10})
    ledger.acquire("gw-1/sip-leg", PORT, utc(15, 9))
    ledger.acquire("gw-1/webrtc-leg", PORT, utc(15, 9))
    assert ledger.in_use(PORT) == 2


# -- grace time budget ------------------------------------------------------------------------


def test_grace_budget_runs_out_then_refuses_but_never_cuts_and_resets_next_day() -> None:
    ledger = LicenceLedger({PORT: 2}, GracePolicy(fraction=0.5, max_seconds_per_day=3600))
    ledger.acquire("a", PORT, utc(15, 7))  # 08:00 local
    ledger.acquire("b", PORT, utc(15, 7))
    ledger.acquire("c", PORT, utc(15, 7))  # in grace from 08:00
    drain(ledger)
    assert ledger.get_timer() == utc(15, 8)  # 09:00 local
    ledger.advance(utc(15, 7, 59, 59))
    assert of_type(drain(ledger), GraceExhausted) == []
    assert ledger.usage(utc(15, 7, 59, 59))[PORT].grace_seconds_used_today == 3599
    ledger.handle_timer(utc(15, 8))
    assert drain(ledger) == [GraceExhausted(kind=PORT, at=utc(15, 8))]
    assert ledger.in_use(PORT) == 3  # admitted calls keep their licence
    ledger.release("c", utc(15, 8, 10))
    with pytest.raises(LicenceRefused, match="grace time is used up") as refused:
        ledger.acquire("d", PORT, utc(15, 8, 20))
    assert refused.value.details["reason"] == "grace_exhausted"
    assert ledger.in_use(PORT) == 2
    usage = ledger.usage(utc(15, 8, 20))[PORT]
    assert (usage.grace_seconds_used_today, usage.grace_exhausted) == (3600 + 600, True)
    # The next local day has a fresh budget.
    grant = ledger.acquire("e", PORT, utc(16, 7))
    assert grant.in_grace is True
    assert ledger.usage(utc(16, 7))[PORT].grace_seconds_used_today == 0


def test_overdraft_time_adds_up_over_separate_episodes() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=1.0, max_seconds_per_day=3600))
    ledger.acquire("a", PORT, utc(15, 8))
    ledger.acquire("b", PORT, utc(15, 8))  # overdraft 09:00-09:20 local
    ledger.release("b", utc(15, 8, 20))
    assert ledger.get_timer() is None  # not overdrawn: nothing to wait for
    ledger.acquire("c", PORT, utc(15, 10))  # overdraft again from 11:00 local
    assert ledger.get_timer() == utc(15, 10, 40)
    ledger.handle_timer(utc(15, 10, 40))
    assert of_type(drain(ledger), GraceExhausted) == [GraceExhausted(kind=PORT, at=utc(15, 10, 40))]


def test_late_ledger_call_reports_when_the_budget_really_ran_out() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=1.0, max_seconds_per_day=1800))
    ledger.acquire("a", PORT, utc(15, 8))
    ledger.acquire("b", PORT, utc(15, 8))
    drain(ledger)
    ledger.advance(utc(15, 9))  # nobody called at 08:30; the event still says 08:30
    assert drain(ledger) == [GraceExhausted(kind=PORT, at=utc(15, 8, 30))]


def test_overdraft_is_split_at_local_midnight() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=1.0, max_seconds_per_day=3600))
    ledger.acquire("a", PORT, utc(15, 22, 30))
    ledger.acquire("b", PORT, utc(15, 22, 30))  # overdraft from 23:30 local
    assert ledger.usage(utc(15, 22, 59))[PORT].grace_seconds_used_today == 29 * 60
    # Unsplit, 90 minutes of overdraft would have exhausted a 60-minute budget at 00:30 local.
    usage = ledger.usage(utc(16, 0, 0))  # 01:00 local
    assert usage[PORT].grace_seconds_used_today == 3600
    assert usage[PORT].grace_exhausted is True
    events = of_type(drain(ledger), GraceExhausted)
    assert events == [GraceExhausted(kind=PORT, at=utc(16, 0, 0))]


def test_timer_looks_past_midnight_when_the_budget_resets_first() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=1.0, max_seconds_per_day=3600))
    ledger.acquire("a", PORT, utc(15, 22, 50))
    ledger.acquire("b", PORT, utc(15, 22, 50))  # 23:50 local, a whole hour left today
    assert ledger.get_timer() == utc(16, 0)  # 01:00 local: the budget restarts at 00:00
    ledger.handle_timer(utc(16, 0))
    assert of_type(drain(ledger), GraceExhausted) == [GraceExhausted(kind=PORT, at=utc(16, 0))]
    # Still overdrawn after exhaustion: the next timer is tomorrow's exhaustion.
    assert ledger.get_timer() == utc(17, 0)


def test_midnight_follows_summer_time() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=1.0, max_seconds_per_day=3600))
    ledger.acquire("a", PORT, utc(15, 21, 30, month=7))
    ledger.acquire("b", PORT, utc(15, 21, 30, month=7))  # 23:30 local (UTC+2)
    usage = ledger.usage(utc(15, 22, 15, month=7))  # 00:15 local on the 16th
    assert usage[PORT].grace_seconds_used_today == 15 * 60
    assert date(2025, 7, 16) in ledger.daily_peaks()


def test_zero_budget_means_no_grace() -> None:
    ledger = LicenceLedger({PORT: 1}, GracePolicy(fraction=0.5, max_seconds_per_day=0))
    ledger.acquire("a", PORT, utc(15, 9))
    with pytest.raises(LicenceRefused) as refused:
        ledger.acquire("b", PORT, utc(15, 9))
    assert refused.value.details["reason"] == "no_grace"


# -- idempotence, reconcile, restore ------------------------------------------------------------


def test_acquire_is_idempotent_for_a_held_call() -> None:
    ledger = LicenceLedger({PORT: 5})
    first = ledger.acquire("a", PORT, utc(15, 9))
    again = ledger.acquire("a", PORT, utc(15, 9, 1))
    assert again == first
    assert again.acquired_at == utc(15, 9)
    assert ledger.in_use(PORT) == 1
    assert len(of_type(drain(ledger), LicenceAcquired)) == 1
    with pytest.raises(Conflict):
        ledger.acquire("a", AUDIO, utc(15, 9, 2))
    assert ledger.holds() == [first]


def test_release_is_idempotent() -> None:
    ledger = LicenceLedger({PORT: 5})
    grant = ledger.acquire("a", PORT, utc(15, 9))
    assert ledger.release("a", utc(15, 9, 14)) == grant
    assert ledger.release("a", utc(15, 9, 15)) is None
    assert ledger.release("never-held", utc(15, 9, 15)) is None
    assert ledger.in_use(PORT) == 0
    assert of_type(drain(ledger), LicenceReleased) == [LicenceReleased(grant, utc(15, 9, 14))]


def test_time_never_runs_backwards() -> None:
    ledger = LicenceLedger({PORT: 5})
    ledger.acquire("a", PORT, utc(15, 10))
    late = ledger.acquire("b", PORT, utc(15, 9))  # a racing transport with an older `now`
    assert late.acquired_at == utc(15, 10)


def test_reconcile_releases_holds_of_calls_that_are_gone() -> None:
    ledger = LicenceLedger({PORT: 5, AUDIO: 5})
    a = ledger.acquire("a", PORT, utc(15, 9))
    ledger.acquire("b", AUDIO, utc(15, 9))
    c = ledger.acquire("c", PORT, utc(15, 9))
    drain(ledger)
    released = ledger.reconcile(["b", "unknown"], utc(15, 9, 30))
    assert released == [a, c]
    assert [grant.call_id for grant in ledger.holds()] == ["b"]
    assert (ledger.in_use(PORT), ledger.in_use(AUDIO)) == (0, 1)
    assert drain(ledger) == [LicenceReleased(a, utc(15, 9, 30)), LicenceReleased(c, utc(15, 9, 30))]
    assert ledger.reconcile(["b"], utc(15, 9, 31)) == []


def test_restore_reloads_holds_beyond_capacity_without_refusing() -> None:
    persisted = [LicenceGrant(f"c{i}", PORT, PORT, i >= 2, utc(15, 8)) for i in range(4)]
    ledger = LicenceLedger({PORT: 2}, GracePolicy(fraction=0.5, max_seconds_per_day=3600))
    ledger.restore(persisted, utc(15, 9))
    assert ledger.holds() == persisted
    assert ledger.in_use(PORT) == 4  # capacity 2 + allowance 1 exceeded: restored anyway
    assert drain(ledger) == [
        GraceEntered(kind=PORT, in_use=4, capacity=2, at=utc(15, 9)),
        PeakRaised(kind=PORT, day=date(2025, 1, 15), peak=4),
    ]
    with pytest.raises(LicenceRefused):
        ledger.acquire("new", PORT, utc(15, 9, 1))
    # Overdraft time counts from the restart, not from when the calls began.
    assert ledger.get_timer() == utc(15, 10)
    # Restoring again (a second replay of the store) adds nothing.
    ledger.restore(persisted, utc(15, 9, 2))
    assert ledger.in_use(PORT) == 4


def test_restore_accepts_kinds_read_back_as_strings_and_seeds_known_peaks() -> None:
    ledger = LicenceLedger({PORT: 5})
    grant = LicenceGrant("a", "port", "audio", False, utc(15, 8))  # type: ignore[arg-type]
    assert (grant.kind, grant.requested) == (PORT, AUDIO)
    ledger.restore([grant], utc(15, 9), peaks={date(2025, 1, 15): {PORT: 3}})
    assert of_type(drain(ledger), PeakRaised) == []  # 1 is below the 3 the store already has
    assert ledger.daily_peaks() == {date(2025, 1, 15): {PORT: 3, AUDIO: 0}}


def test_a_grant_cannot_put_a_video_call_on_an_audio_licence() -> None:
    with pytest.raises(InvalidInput):
        LicenceGrant("a", AUDIO, PORT, False, utc(15, 8))


def test_lowering_capacity_never_cuts_calls_and_raises_the_alert() -> None:
    ledger = LicenceLedger({PORT: 3})
    for call_id in ("a", "b", "c"):
        ledger.acquire(call_id, PORT, utc(15, 9))
    drain(ledger)
    ledger.set_capacity(PORT, 2, utc(15, 10))
    assert ledger.in_use(PORT) == 3
    assert drain(ledger) == [GraceEntered(kind=PORT, in_use=3, capacity=2, at=utc(15, 10))]
    assert ledger.get_timer() == utc(15, 14)  # the default 4 h budget


# -- peaks ------------------------------------------------------------------------------------


def test_daily_and_monthly_peaks() -> None:
    ledger = LicenceLedger({PORT: 10, AUDIO: 10})
    for call_id in ("a", "b", "c"):
        ledger.acquire(call_id, PORT, utc(14, 9))
    ledger.release("a", utc(14, 9, 30))
    ledger.release("b", utc(14, 9, 30))
    ledger.acquire("tel", AUDIO, utc(14, 10))
    ledger.release("tel", utc(14, 10, 5))
    # "c" spans midnight (local) and is counted on the 15th from 00:00 ...
    ledger.acquire("d", PORT, utc(15, 8))
    ledger.release("c", utc(15, 9))
    ledger.release("d", utc(15, 9))
    # ... a day with no calls and no holds does not appear (the 16th) ...
    ledger.acquire("e", PORT, utc(17, 8))
    # ... but one a hold lasted through does (the 18th), at the carried level.
    ledger.acquire("f", PORT, utc(19, 8))
    ledger.acquire("g", PORT, utc(1, 8, month=2))
    assert ledger.daily_peaks() == {
        date(2025, 1, 14): {PORT: 3, AUDIO: 1},
        date(2025, 1, 15): {PORT: 2, AUDIO: 0},
        date(2025, 1, 17): {PORT: 1, AUDIO: 0},
        date(2025, 1, 18): {PORT: 1, AUDIO: 0},
        date(2025, 1, 19): {PORT: 2, AUDIO: 0},
        date(2025, 1, 20): {PORT: 2, AUDIO: 0},
        **{date(2025, 1, d): {PORT: 2, AUDIO: 0} for d in range(21, 32)},
        date(2025, 2, 1): {PORT: 3, AUDIO: 0},
    }
    assert ledger.monthly_peaks() == {"2025-01": {PORT: 3, AUDIO: 1},
                                      "2025-02": {PORT: 3, AUDIO: 0}}


def test_peak_raised_is_queued_for_the_new_day_at_the_carried_level() -> None:
    ledger = LicenceLedger({PORT: 10})
    ledger.acquire("a", PORT, utc(14, 20))
    ledger.acquire("b", PORT, utc(14, 20))
    drain(ledger)
    ledger.advance(utc(15, 7))  # 08:00 local on the 15th, both calls still up
    assert drain(ledger) == [PeakRaised(kind=PORT, day=date(2025, 1, 15), peak=2)]


def test_local_days_not_utc_days_bound_the_peaks() -> None:
    ledger = LicenceLedger({PORT: 10})
    ledger.acquire("a", PORT, utc(14, 23, 30))  # 00:30 local on the 15th
    assert list(ledger.daily_peaks()) == [date(2025, 1, 15)]


# -- properties -------------------------------------------------------------------------------

CALL_IDS = [f"call-{i}" for i in range(8)]
QUANTUM = timedelta(minutes=15)  # Copenhagen midnights are whole quarter-hours in UTC
STARTS = [
    datetime(2025, 1, 15, 21, 0, tzinfo=UTC),
    datetime(2025, 3, 29, 20, 0, tzinfo=UTC),  # the night before the 23-hour day
    datetime(2025, 10, 25, 20, 0, tzinfo=UTC),  # the night before the 25-hour day
]


class LedgerMachine(RuleBasedStateMachine):
    """Random call traffic against a ledger and an independent model of it.

    Time moves in whole quarter-hours, so the model can count overdraft time tick by tick, each
    tick on the local day it starts in, without sharing the ledger's midnight-splitting code.
    """

    @initialize(
        start=st.sampled_from(STARTS),
        # Weighted toward grace being on, where the interesting states are; zero capacity, no
        # grace and a zero budget still come up.
        port=st.sampled_from([0, 1, 2, 2, 3, 4]),
        audio=st.sampled_from([0, 1, 1, 2, 3]),
        fraction=st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.0]),
        budget_ticks=st.sampled_from([0, 2, 2, 4, 16]),
    )
    def setup(self, start: datetime, port: int, audio: int, fraction: float,
              budget_ticks: int) -> None:
        self.capacity = {PORT: port, AUDIO: audio}
        self.policy = GracePolicy(fraction=fraction,
                                  max_seconds_per_day=budget_ticks * QUANTUM.total_seconds())
        self.ledger = LicenceLedger(self.capacity, self.policy)
        self.now = start
        self.model: dict[str, LicenceGrant] = {}
        self.used: dict[tuple[date, LicenceKind], float] = {}
        # After a restart a pool may legitimately sit above capacity + allowance (never by
        # admitting anyone); this is the level it may not exceed until it drops back.
        self.restored_ceiling = {PORT: 0, AUDIO: 0}

    def count(self, kind: LicenceKind) -> int:
        return sum(1 for grant in self.model.values() if grant.kind is kind)

    def bound(self, kind: LicenceKind) -> int:
        return self.capacity[kind] + self.policy.allowance(self.capacity[kind])

    def tick(self, quanta: int) -> None:
        for _ in range(quanta):
            day = self.now.astimezone(CPH).date()
            for kind in LicenceKind:
                if self.count(kind) > self.capacity[kind]:
                    self.used[day, kind] = self.used.get((day, kind), 0.0) + QUANTUM.total_seconds()
            self.now += QUANTUM

    def used_today(self, kind: LicenceKind) -> float:
        return self.used.get((self.now.astimezone(CPH).date(), kind), 0.0)

    @rule(call_id=st.sampled_from(CALL_IDS), kind=st.sampled_from(LicenceKind),
          quanta=st.integers(0, 8))
    def acquire(self, call_id: str, kind: LicenceKind, quanta: int) -> None:
        self.tick(quanta)
        self.check_acquire(call_id, kind)

    @rule(joins=st.lists(st.tuples(st.sampled_from(CALL_IDS), st.sampled_from(LicenceKind)),
                         min_size=2, max_size=6),
          quanta=st.integers(0, 8))
    def rush(self, joins: list[tuple[str, LicenceKind]], quanta: int) -> None:
        """Several participants join at the same instant, as at the top of a consultation hour."""
        self.tick(quanta)
        for call_id, kind in joins:
            self.check_acquire(call_id, kind)

    def check_acquire(self, call_id: str, kind: LicenceKind) -> None:
        before = self.ledger.holds()
        held = self.model.get(call_id)
        try:
            grant = self.ledger.acquire(call_id, kind, self.now)
        except Conflict:
            assert held is not None and held.requested is not kind
            assert self.ledger.holds() == before
            return
        except LicenceRefused as refused:
            assert held is None
            assert self.ledger.holds() == before
            events = drain(self.ledger)
            assert isinstance(events[-1], LicenceRefusedEvent)
            # A refusal must be justified: the pool (and for audio the port pool) is full, and
            # grace is off, at its limit or out of time.
            assert self.count(kind) >= self.capacity[kind]
            if kind is AUDIO:
                assert self.count(PORT) >= self.capacity[PORT]
            assert (self.policy.allowance(self.capacity[kind]) == 0
                    or self.policy.max_seconds_per_day == 0
                    or self.count(kind) >= self.bound(kind)
                    or self.used_today(kind) >= self.policy.max_seconds_per_day)
            assert refused.details["in_use"] == self.count(kind)
            event(f"refused: {refused.details['reason']}")
            return
        if held is not None:
            assert grant == held
            return
        assert grant.requested is kind
        if self.count(kind) < self.capacity[kind]:
            assert (grant.kind, grant.in_grace) == (kind, False)
        elif kind is AUDIO and self.count(PORT) < self.capacity[PORT]:
            assert (grant.kind, grant.in_grace) == (PORT, False)
        else:
            assert (grant.kind, grant.in_grace) == (kind, True)
            assert self.count(kind) < self.bound(kind)
            assert self.used_today(kind) < self.policy.max_seconds_per_day
            event("admitted in grace")
        self.model[call_id] = grant

    @rule(call_id=st.sampled_from(CALL_IDS), quanta=st.integers(0, 8))
    def release(self, call_id: str, quanta: int) -> None:
        self.tick(quanta)
        assert self.ledger.release(call_id, self.now) == self.model.pop(call_id, None)

    @rule(data=st.data(), quanta=st.integers(0, 8))
    def crash(self, data: st.DataObject, quanta: int) -> None:
        """The transports lost some calls: only a random subset is still live."""
        self.tick(quanta)
        live = data.draw(st.sets(st.sampled_from(CALL_IDS)))
        released = self.ledger.reconcile(live, self.now)
        gone = [call_id for call_id in self.model if call_id not in live]
        assert [grant.call_id for grant in released] == gone
        for call_id in gone:
            del self.model[call_id]

    @rule(port=st.integers(0, 4), audio=st.integers(0, 3), quanta=st.integers(0, 8))
    def restart(self, port: int, audio: int, quanta: int) -> None:
        """A new process, maybe with a new licence file, restores the persisted holds."""
        self.tick(quanta)
        self.capacity = {PORT: port, AUDIO: audio}
        self.ledger = LicenceLedger(self.capacity, self.policy)
        self.ledger.restore(list(self.model.values()), self.now)
        # The new process knows nothing of overdraft time before the restart.
        today = self.now.astimezone(CPH).date()
        for kind in LicenceKind:
            self.used.pop((today, kind), None)
            self.restored_ceiling[kind] = self.count(kind)
        assert self.ledger.holds() == list(self.model.values())

    @rule(quanta=st.integers(1, 40))
    def advance(self, quanta: int) -> None:
        self.tick(quanta)
        self.ledger.advance(self.now)

    @rule()
    def timer(self) -> None:
        # No precondition: hypothesis would retry draws; an idle timer rule is just a no-op.
        due = self.ledger.get_timer()
        if due is None:
            return
        assert due >= self.now
        quanta, remainder = divmod(due - self.now, QUANTUM)
        assert remainder == timedelta(0)
        drain(self.ledger)
        self.tick(quanta)
        self.ledger.handle_timer(self.now)
        kinds = {type(event) for event in drain(self.ledger)}
        assert GraceExhausted in kinds
        event("grace budget ran out on a timer")
        assert kinds <= {GraceExhausted, PeakRaised}

    @rule(quanta=st.integers(0, 8))
    def everyone_hangs_up(self, quanta: int) -> None:
        self.tick(quanta)
        for call_id in list(self.model):
            self.ledger.release(call_id, self.now)
        self.model.clear()
        assert self.ledger.holds() == []
        assert (self.ledger.in_use(PORT), self.ledger.in_use(AUDIO)) == (0, 0)

    @invariant()
    def counts_match_the_model(self) -> None:
        for kind in LicenceKind:
            in_use = self.ledger.in_use(kind)
            assert in_use == self.count(kind) >= 0
            if in_use <= self.bound(kind):
                self.restored_ceiling[kind] = 0
            assert in_use <= max(self.bound(kind), self.restored_ceiling[kind])
        assert {grant.call_id for grant in self.ledger.holds()} == set(self.model)

    @invariant()
    def overdraft_time_matches_the_model(self) -> None:
        usage = self.ledger.usage(self.now)
        for kind in LicenceKind:
            assert usage[kind].grace_seconds_used_today == self.used_today(kind)

    @invariant()
    def an_overdrawn_pool_always_has_a_timer(self) -> None:
        # Budgets are at most a day, so an overdraft always runs out again within three days.
        overdrawn = any(self.count(kind) > self.capacity[kind] for kind in LicenceKind)
        assert (self.ledger.get_timer() is not None) == overdrawn

    def teardown(self) -> None:
        # Whatever happened, once every call ends nothing is held.
        if hasattr(self, "ledger"):
            for call_id in CALL_IDS:
                self.ledger.release(call_id, self.now)
            assert (self.ledger.in_use(PORT), self.ledger.in_use(AUDIO)) == (0, 0)


LedgerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
