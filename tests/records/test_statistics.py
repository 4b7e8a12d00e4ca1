from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confnode.errors import InvalidInput
from confnode.records import (
    CallLegRecord,
    MeetingClass,
    MeetingRecord,
    classify,
    daily_peak_concurrency,
    monthly_statistics,
    to_csv,
    to_dict,
)

CPH = ZoneInfo("Europe/Copenhagen")


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def meeting(
    meeting_id: str,
    org_id: str,
    region: str,
    started_at: datetime,
    ended_at: datetime | None,
    *,
    endpoints: int,
    booked: bool = True,
    instant: bool = False,
    room_kind: str = "scheduled",
) -> MeetingRecord:
    return MeetingRecord(
        meeting_id=meeting_id,
        org_id=org_id,
        region=region,
        room_kind=room_kind,
        booked=booked,
        instant=instant,
        started_at=started_at,
        ended_at=ended_at,
        endpoint_count=endpoints,
        peak_participants=endpoints,
    )


def leg(
    leg_id: str,
    meeting_id: str,
    org_id: str,
    region: str,
    started_at: datetime,
    ended_at: datetime | None,
    *,
    endpoint_type: str = "webrtc",
    licence_kind: str | None = "port",
    room_kind: str = "scheduled",
) -> CallLegRecord:
    protocol = {"webrtc": "webrtc", "app": "webrtc", "sip": "sip", "phone": "sip"}.get(
        endpoint_type, "http"
    )
    return CallLegRecord(
        leg_id=leg_id,
        meeting_id=meeting_id,
        org_id=org_id,
        region=region,
        room_kind=room_kind,
        endpoint_type=endpoint_type,
        protocol=protocol,
        codec=None if licence_kind is None else ("opus" if licence_kind == "audio" else "vp8"),
        licence_kind=licence_kind,
        started_at=started_at,
        ended_at=ended_at,
    )


# --- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints", "booked", "expected"),
    [
        (2, True, MeetingClass.CONSULTATION),  # one booked endpoint to exactly one other
        (2, False, MeetingClass.CONFERENCE),  # unbooked, e.g. a doctor's permanent room
        (3, True, MeetingClass.CONFERENCE),  # more than two endpoints: a relative joined
        (5, False, MeetingClass.CONFERENCE),
        (1, True, MeetingClass.UNANSWERED),  # the patient never came
        (0, True, MeetingClass.UNANSWERED),
        (1, False, MeetingClass.UNANSWERED),
    ],
)
def test_classify_follows_the_medcom_pilot(
    endpoints: int, booked: bool, expected: MeetingClass
) -> None:
    record = meeting(
        "m", "org", "reg", utc(3, 2, 8), utc(3, 2, 9), endpoints=endpoints, booked=booked
    )
    assert classify(record) is expected


# --- daily peaks --------------------------------------------------------------------------------


def test_a_leg_ending_as_another_starts_does_not_overlap() -> None:
    legs = [
        leg("l1", "m", "o", "r", utc(3, 2, 8, 0), utc(3, 2, 8, 10)),
        leg("l2", "m", "o", "r", utc(3, 2, 8, 10), utc(3, 2, 8, 20)),
    ]
    assert daily_peak_concurrency(legs, CPH) == {date(2026, 3, 2): 1}


def test_overlapping_media_legs_count_and_control_legs_do_not() -> None:
    legs = [
        leg("l1", "m", "o", "r", utc(3, 2, 8, 0), utc(3, 2, 8, 30)),
        leg("l2", "m", "o", "r", utc(3, 2, 8, 5), utc(3, 2, 8, 20), licence_kind="audio"),
        leg(
            "l3",
            "m",
            "o",
            "r",
            utc(3, 2, 8, 6),
            utc(3, 2, 8, 7),
            endpoint_type="api",
            licence_kind=None,
        ),
    ]
    assert daily_peak_concurrency(legs, CPH) == {date(2026, 3, 2): 2}


def test_days_are_calendar_days_in_the_given_zone() -> None:
    # 23:30 UTC on 2 March is 00:30 on 3 March in Copenhagen (CET, UTC+1).
    one = [leg("l1", "m", "o", "r", utc(3, 2, 23, 30), utc(3, 2, 23, 45))]
    assert daily_peak_concurrency(one, CPH) == {date(2026, 3, 3): 1}
    assert daily_peak_concurrency(one, UTC) == {date(2026, 3, 2): 1}


def test_a_leg_crossing_midnight_counts_on_both_days_but_not_one_ending_at_midnight() -> None:
    legs = [
        # 23:00-00:00 local: ends exactly at midnight, so not on 21 March.
        leg("l1", "m", "o", "r", utc(3, 20, 22, 0), utc(3, 20, 23, 0)),
        # 23:50-00:10 local: on both days.
        leg("l2", "m", "o", "r", utc(3, 20, 22, 50), utc(3, 20, 23, 10)),
    ]
    assert daily_peak_concurrency(legs, CPH) == {date(2026, 3, 20): 2, date(2026, 3, 21): 1}


def test_a_long_leg_counts_on_every_day_it_spans() -> None:
    legs = [
        leg("l1", "m", "o", "r", utc(3, 1, 12), utc(3, 4, 12)),
        leg("l2", "m", "o", "r", utc(3, 3, 12), utc(3, 3, 13)),
    ]
    assert daily_peak_concurrency(legs, CPH) == {
        date(2026, 3, 1): 1,
        date(2026, 3, 2): 1,
        date(2026, 3, 3): 2,
        date(2026, 3, 4): 1,
    }


def test_open_legs_count_until_until_and_are_left_out_without_it() -> None:
    legs = [
        leg("l1", "m", "o", "r", utc(3, 31, 19), None),
        leg("l2", "m", "o", "r", utc(3, 31, 20), utc(3, 31, 20, 30)),
    ]
    assert daily_peak_concurrency(legs, CPH) == {date(2026, 3, 31): 1}
    # Until 10:00 UTC on 1 April: open across local midnight (22:00 UTC, CEST) into 1 April.
    assert daily_peak_concurrency(legs, CPH, until=utc(4, 1, 10)) == {
        date(2026, 3, 31): 2,
        date(2026, 4, 1): 1,
    }
    # An open leg that starts at or after ``until`` has no extent yet.
    assert daily_peak_concurrency(legs[:1], CPH, until=utc(3, 31, 19)) == {}


def test_the_dst_night_is_still_one_day() -> None:
    # 29 March 2026 02:00 CET -> 03:00 CEST. 00:30 UTC is 01:30 CET, 01:30 UTC is 03:30 CEST.
    legs = [leg("l1", "m", "o", "r", utc(3, 29, 0, 30), utc(3, 29, 1, 30))]
    assert daily_peak_concurrency(legs, CPH) == {date(2026, 3, 29): 1}


_instants = st.integers(0, 4 * 24 * 4).map(lambda q: utc(3, 28, 0) + timedelta(minutes=15 * q))


@given(st.lists(st.tuples(_instants, _instants), max_size=12))
def test_sweep_line_matches_brute_force(spans: list[tuple[datetime, datetime]]) -> None:
    legs = [leg(f"l{i}", "m", "o", "r", min(a, b), max(a, b)) for i, (a, b) in enumerate(spans)]
    expected: dict[date, int] = {}
    # The concurrency can only rise at a leg start or a midnight; check every such instant.
    days = {(utc(3, 27, 12) + timedelta(days=n)).astimezone(CPH).date() for n in range(7)}
    midnights = [datetime.combine(d, datetime.min.time(), tzinfo=CPH) for d in days]
    for instant in [lg.started_at for lg in legs] + midnights:
        open_now = sum(1 for lg in legs if lg.started_at <= instant < lg.ended_at)
        day = instant.astimezone(CPH).date()
        if open_now:
            expected[day] = max(expected.get(day, 0), open_now)
    assert daily_peak_concurrency(legs, CPH) == expected


# --- a scripted month ---------------------------------------------------------------------------
#
# March 2026 in Europe/Copenhagen: CET (UTC+1) until 29 March 02:00, then CEST (UTC+2). The month
# runs from 28 Feb 23:00 UTC to 31 Mar 22:00 UTC. Four practices in two regions:
#   region-h: org-a, org-b        region-m: org-c, org-d
# Times below are UTC in the code, local in the comments.

H, M = "region-h", "region-m"

# fmt: off
MEETINGS = [
    # org-a
    # 2 Mar 09:00-09:14, booked, 2 endpoints -> consultation, 14 min.
    meeting("m-a1", "org-a", H, utc(3, 2, 8, 0), utc(3, 2, 8, 14), endpoints=2),
    # 2 Mar 09:14-09:24:30, instant, booked, 2 endpoints -> consultation, 10.5 min, instant.
    meeting("m-a2", "org-a", H, utc(3, 2, 8, 14), utc(3, 2, 8, 24, 30), endpoints=2,
            instant=True, room_kind="instant"),
    # 3 Mar 13:00-13:08, booked, 3 endpoints (a relative joined) -> conference, 8 min.
    meeting("m-a3", "org-a", H, utc(3, 3, 12, 0), utc(3, 3, 12, 8), endpoints=3),
    # 4 Mar 09:00-09:15, only the doctor came -> unanswered.
    meeting("m-a4", "org-a", H, utc(3, 4, 8, 0), utc(3, 4, 8, 15), endpoints=1),
    # org-b
    # 3 Mar 11:00-11:06, permanent room, unbooked, 2 endpoints -> conference, 6 min.
    meeting("m-b1", "org-b", H, utc(3, 3, 10, 0), utc(3, 3, 10, 6), endpoints=2, booked=False,
            room_kind="permanent"),
    # 10 Mar 14:00-14:20:20, booked, 2 endpoints -> consultation, 20 1/3 min.
    meeting("m-b2", "org-b", H, utc(3, 10, 13, 0), utc(3, 10, 13, 20, 20), endpoints=2),
    # 31 Mar 21:00 CEST, instant, still running -> consultation, counted, no minutes.
    meeting("m-b3", "org-b", H, utc(3, 31, 19, 0), None, endpoints=2, instant=True,
            room_kind="instant"),
    # org-c
    # 28 Feb 23:50 - 1 Mar 00:05: started in February -> not in March at all.
    meeting("m-c0", "org-c", M, utc(2, 28, 22, 50), utc(2, 28, 23, 5), endpoints=2),
    # 1 Mar 00:30-00:45 (28 Feb in UTC!) -> March consultation, 15 min.
    meeting("m-c1", "org-c", M, utc(2, 28, 23, 30), utc(2, 28, 23, 45), endpoints=2),
    # 20 Mar 23:50 - 21 Mar 00:10 -> consultation, 20 min (belongs to the 20th).
    meeting("m-c2", "org-c", M, utc(3, 20, 22, 50), utc(3, 20, 23, 10), endpoints=2),
    # 20 Mar 23:00-00:00, instant, one endpoint -> unanswered, instant.
    meeting("m-c3", "org-c", M, utc(3, 20, 22, 0), utc(3, 20, 23, 0), endpoints=1,
            instant=True, room_kind="instant"),
    # org-d
    # 20 Mar 23:30-23:58, one endpoint -> unanswered. org-d is therefore not "active".
    meeting("m-d1", "org-d", M, utc(3, 20, 22, 30), utc(3, 20, 22, 58), endpoints=1),
]

LEGS = [
    # org-a, 2 Mar: m-a1's legs end at 08:14 exactly as m-a2's start -> peak 2, not 4.
    leg("l1", "m-a1", "org-a", H, utc(3, 2, 8, 0), utc(3, 2, 8, 14)),
    leg("l2", "m-a1", "org-a", H, utc(3, 2, 8, 1), utc(3, 2, 8, 14), endpoint_type="app"),
    leg("l3", "m-a2", "org-a", H, utc(3, 2, 8, 14), utc(3, 2, 8, 24, 30)),
    leg("l4", "m-a2", "org-a", H, utc(3, 2, 8, 14), utc(3, 2, 8, 24, 30), endpoint_type="phone",
        licence_kind="audio"),
    # control-only API leg: no licence, not concurrency.
    leg("l5", "m-a2", "org-a", H, utc(3, 2, 8, 14), utc(3, 2, 8, 24, 30), endpoint_type="api",
        licence_kind=None),
    # org-a, 3 Mar: three legs open together 12:02-12:05 -> peak 3.
    leg("l6", "m-a3", "org-a", H, utc(3, 3, 12, 0), utc(3, 3, 12, 8)),
    leg("l7", "m-a3", "org-a", H, utc(3, 3, 12, 1), utc(3, 3, 12, 8), endpoint_type="sip"),
    leg("l8", "m-a3", "org-a", H, utc(3, 3, 12, 2), utc(3, 3, 12, 5), endpoint_type="app"),
    # org-a, 4 Mar: the lonely doctor -> peak 1.
    leg("l9", "m-a4", "org-a", H, utc(3, 4, 8, 0), utc(3, 4, 8, 15)),
    # org-b, 3 Mar 10:00-10:06 -> peak 2, two hours before org-a's peak of 3 (region-h: 3, not 5).
    leg("l10", "m-b1", "org-b", H, utc(3, 3, 10, 0), utc(3, 3, 10, 6), endpoint_type="sip",
        room_kind="permanent"),
    leg("l11", "m-b1", "org-b", H, utc(3, 3, 10, 0), utc(3, 3, 10, 6), endpoint_type="phone",
        licence_kind="audio", room_kind="permanent"),
    # org-b, 10 Mar -> peak 2.
    leg("l12", "m-b2", "org-b", H, utc(3, 10, 13, 0), utc(3, 10, 13, 20, 20), endpoint_type="app"),
    leg("l13", "m-b2", "org-b", H, utc(3, 10, 13, 0), utc(3, 10, 13, 20, 20)),
    # org-b, 31 Mar from 21:00 CEST, still open: count until ``until`` (1 Apr 12:00 CEST);
    # 31 Mar -> 2, 1 April is outside the month.
    leg("l14", "m-b3", "org-b", H, utc(3, 31, 19, 0), None, endpoint_type="app"),
    leg("l15", "m-b3", "org-b", H, utc(3, 31, 19, 0), None),
    # org-c, February's meeting runs past local midnight: its legs count on 1 March (peak 2)
    # although the meeting and its app call belong to February.
    leg("l16", "m-c0", "org-c", M, utc(2, 28, 22, 50), utc(2, 28, 23, 5)),
    leg("l17", "m-c0", "org-c", M, utc(2, 28, 22, 50), utc(2, 28, 23, 5), endpoint_type="app"),
    # org-c, 1 Mar 00:30 local: the app call is March's.
    leg("l18", "m-c1", "org-c", M, utc(2, 28, 23, 30), utc(2, 28, 23, 45), endpoint_type="app"),
    leg("l19", "m-c1", "org-c", M, utc(2, 28, 23, 30), utc(2, 28, 23, 45), endpoint_type="sip"),
    # org-c, 20/21 Mar: l22 22:00-23:00 (ends at local midnight), l20 22:50-23:10, l21 22:55-23:10
    # -> 20 Mar peak 3 (22:55-23:00), 21 Mar peak 2 (l22 gone at midnight).
    leg("l20", "m-c2", "org-c", M, utc(3, 20, 22, 50), utc(3, 20, 23, 10)),
    leg("l21", "m-c2", "org-c", M, utc(3, 20, 22, 55), utc(3, 20, 23, 10), endpoint_type="phone",
        licence_kind="audio"),
    leg("l22", "m-c3", "org-c", M, utc(3, 20, 22, 0), utc(3, 20, 23, 0), room_kind="instant"),
    # org-d, 20 Mar 22:30-22:58 -> peak 1; with org-c region-m has 4 open 22:55-22:58.
    leg("l23", "m-d1", "org-d", M, utc(3, 20, 22, 30), utc(3, 20, 22, 58)),
]

# fmt: on

UNTIL = utc(4, 1, 10)


def d(day: int) -> date:
    return date(2026, 3, day)


def test_practice_rows_of_the_scripted_month() -> None:
    stats = monthly_statistics(MEETINGS, LEGS, 2026, 3, CPH, until=UNTIL)
    assert stats.month == "2026-03"
    assert stats.timezone == "Europe/Copenhagen"
    assert [(r.region, r.org_id) for r in stats.organisations] == [
        (H, "org-a"),
        (H, "org-b"),
        (M, "org-c"),
        (M, "org-d"),
    ]
    a, b, c, dd = stats.organisations

    # org-a: consultations m-a1 (14) + m-a2 (10.5) = 24.5 min, mean 12.25; conference m-a3 8 min;
    # m-a4 unanswered; instant m-a2; app legs l2, l8; peaks 2 / 3 / 1.
    assert (a.consultations, a.consultation_minutes, a.mean_consultation_minutes) == (
        2,
        24.5,
        12.25,
    )
    assert (a.conferences, a.conference_minutes, a.mean_conference_minutes) == (1, 8.0, 8.0)
    assert (a.unanswered, a.instant_meetings, a.app_calls) == (1, 1, 2)
    assert a.daily_peaks == {d(2): 2, d(3): 3, d(4): 1}
    assert a.peak_concurrent_calls == 3

    # org-b: consultations m-b2 (20 1/3 min) + m-b3 (running: counted, no minutes), so the mean
    # is over the one ended consultation; conference m-b1 (unbooked, 2 endpoints) 6 min;
    # instant m-b3; app legs l12, l14; peaks 3 Mar 2, 10 Mar 2, 31 Mar 2 (open legs).
    assert (b.consultations, b.consultation_minutes, b.mean_consultation_minutes) == (
        2,
        61 / 3,
        61 / 3,
    )
    assert (b.conferences, b.conference_minutes, b.mean_conference_minutes) == (1, 6.0, 6.0)
    assert (b.unanswered, b.instant_meetings, b.app_calls) == (0, 1, 2)
    assert b.daily_peaks == {d(3): 2, d(10): 2, d(31): 2}
    assert b.peak_concurrent_calls == 2

    # org-c: m-c0 is February's; consultations m-c1 (15) + m-c2 (20) = 35, mean 17.5; no
    # conference, so no mean; m-c3 unanswered and instant; app leg l18 only (l17 is February's).
    assert (c.consultations, c.consultation_minutes, c.mean_consultation_minutes) == (2, 35.0, 17.5)
    assert (c.conferences, c.conference_minutes, c.mean_conference_minutes) == (0, 0.0, None)
    assert (c.unanswered, c.instant_meetings, c.app_calls) == (1, 1, 1)
    assert c.daily_peaks == {d(1): 2, d(20): 3, d(21): 2}
    assert c.peak_concurrent_calls == 3

    # org-d: one no-show.
    assert (dd.consultations, dd.conferences, dd.unanswered, dd.instant_meetings) == (0, 0, 1, 0)
    assert (dd.consultation_minutes, dd.mean_consultation_minutes) == (0.0, None)
    assert dd.daily_peaks == {d(20): 1}
    assert dd.peak_concurrent_calls == 1


def test_region_rollups_and_node_totals_of_the_scripted_month() -> None:
    stats = monthly_statistics(MEETINGS, LEGS, 2026, 3, CPH, until=UNTIL)
    h, m = stats.regions
    # region-h: org-a + org-b. Consultation minutes 24.5 + 61/3 = 269/6 over 3 ended -> 269/18.
    # Peaks from the region's own legs: 3 Mar is max(3 at 13:02, 2 at 11:00) = 3, not 5.
    assert (h.region, h.month, h.organisations, h.active_organisations) == (H, "2026-03", 2, 2)
    assert (h.consultations, h.consultation_minutes, h.mean_consultation_minutes) == (
        4,
        269 / 6,
        269 / 18,
    )
    assert (h.conferences, h.conference_minutes, h.mean_conference_minutes) == (2, 14.0, 7.0)
    assert (h.unanswered, h.instant_meetings, h.app_calls) == (1, 2, 4)
    assert h.daily_peaks == {d(2): 2, d(3): 3, d(4): 1, d(10): 2, d(31): 2}
    assert h.peak_concurrent_calls == 3

    # region-m: org-c + org-d (not active). 20 Mar 22:55-22:58 UTC: l20, l21, l22, l23 -> 4.
    assert (m.region, m.organisations, m.active_organisations) == (M, 2, 1)
    assert (m.consultations, m.consultation_minutes, m.mean_consultation_minutes) == (2, 35.0, 17.5)
    assert (m.conferences, m.conference_minutes, m.mean_conference_minutes) == (0, 0.0, None)
    assert (m.unanswered, m.instant_meetings, m.app_calls) == (2, 1, 1)
    assert m.daily_peaks == {d(1): 2, d(20): 4, d(21): 2}
    assert m.peak_concurrent_calls == 4

    # Node: 269/6 + 35 = 479/6 consultation minutes over 5 ended -> 479/30.
    assert stats.active_organisations == 3
    assert (stats.consultations, stats.consultation_minutes, stats.mean_consultation_minutes) == (
        6,
        479 / 6,
        479 / 30,
    )
    assert (stats.conferences, stats.conference_minutes, stats.mean_conference_minutes) == (
        2,
        14.0,
        7.0,
    )
    assert (stats.unanswered, stats.instant_meetings, stats.app_calls) == (3, 3, 5)
    assert stats.daily_peaks == {
        d(1): 2,
        d(2): 2,
        d(3): 3,
        d(4): 1,
        d(10): 2,
        d(20): 4,
        d(21): 2,
        d(31): 2,
    }
    assert stats.peak_concurrent_calls == 4


def test_without_until_running_legs_are_left_out_of_peaks_only() -> None:
    stats = monthly_statistics(MEETINGS, LEGS, 2026, 3)
    b = stats.organisations[1]
    assert b.org_id == "org-b"
    assert b.daily_peaks == {d(3): 2, d(10): 2}
    assert (b.consultations, b.app_calls) == (2, 2)


def test_csv_of_the_scripted_month() -> None:
    csv_text = to_csv(monthly_statistics(MEETINGS, LEGS, 2026, 3, CPH, until=UNTIL))
    assert csv_text == (
        "org_id,region,month,consultations,consultation_minutes,mean_consultation_minutes,"
        "conferences,conference_minutes,mean_conference_minutes,unanswered,instant_meetings,"
        "app_calls,peak_concurrent_calls\r\n"
        "org-a,region-h,2026-03,2,24.50,12.25,1,8.00,8.00,1,1,2,3\r\n"
        "org-b,region-h,2026-03,2,20.33,20.33,1,6.00,6.00,0,1,2,2\r\n"
        "org-c,region-m,2026-03,2,35.00,17.50,0,0.00,,1,1,1,3\r\n"
        "org-d,region-m,2026-03,0,0.00,,0,0.00,,1,0,0,1\r\n"
    )


def test_dict_of_the_scripted_month_is_json_ready() -> None:
    data = to_dict(monthly_statistics(MEETINGS, LEGS, 2026, 3, CPH, until=UNTIL))
    assert json.loads(json.dumps(data)) == data
    assert data["month"] == "2026-03"
    assert data["timezone"] == "Europe/Copenhagen"
    assert data["totals"] == {
        "active_organisations": 3,
        "consultations": 6,
        "consultation_minutes": 79.83,  # 479/6 = 79.8333...
        "mean_consultation_minutes": 15.97,  # 479/30 = 15.9666...
        "conferences": 2,
        "conference_minutes": 14.0,
        "mean_conference_minutes": 7.0,
        "unanswered": 3,
        "instant_meetings": 3,
        "app_calls": 5,
        "peak_concurrent_calls": 4,
        "daily_peaks": {
            "2026-03-01": 2,
            "2026-03-02": 2,
            "2026-03-03": 3,
            "2026-03-04": 1,
            "2026-03-10": 2,
            "2026-03-20": 4,
            "2026-03-21": 2,
            "2026-03-31": 2,
        },
    }
    assert data["regions"][0]["region"] == H
    assert data["regions"][0]["organisations"] == 2
    assert data["regions"][0]["consultation_minutes"] == 44.83  # 269/6
    assert data["regions"][0]["mean_consultation_minutes"] == 14.94  # 269/18 = 14.944...
    assert data["regions"][1]["mean_conference_minutes"] is None
    assert [row["org_id"] for row in data["organisations"]] == ["org-a", "org-b", "org-c", "org-d"]
    assert data["organisations"][1]["consultation_minutes"] == 20.33
    assert data["organisations"][2]["daily_peaks"] == {
        "2026-03-01": 2,
        "2026-03-20": 3,
        "2026-03-21": 2,
    }


# --- smaller rules ----------------------------------------------------------------------------


def test_minutes_round_half_up_only_on_output() -> None:
    # 14 min 7.5 s = 14.125 min: Python's round() would give 14.12.
    record = meeting(
        "m", "org", "reg", utc(3, 5, 8), utc(3, 5, 8, 14) + timedelta(seconds=7.5), endpoints=2
    )
    stats = monthly_statistics([record], [], 2026, 3)
    assert stats.consultation_minutes == 14.125
    assert to_dict(stats)["totals"]["consultation_minutes"] == 14.13
    assert to_csv(stats).splitlines()[1] == "org,reg,2026-03,1,14.13,14.13,0,0.00,,0,0,0,0"


def test_an_empty_month_has_a_header_and_no_rows() -> None:
    stats = monthly_statistics([], [], 2026, 2)
    assert stats.organisations == () and stats.regions == ()
    assert stats.peak_concurrent_calls == 0 and stats.daily_peaks == {}
    assert to_csv(stats).count("\r\n") == 1


def test_a_practice_with_only_a_carried_over_call_gets_a_row() -> None:
    legs = [leg("l1", "m", "org-x", "reg", utc(2, 28, 22, 50), utc(2, 28, 23, 10))]
    (row,) = monthly_statistics([], legs, 2026, 3).organisations
    assert (row.org_id, row.consultations, row.daily_peaks) == ("org-x", 0, {d(1): 1})


def test_csv_cells_cannot_become_spreadsheet_formulas() -> None:
    record = meeting("m", "=HYPERLINK(1)", "reg", utc(3, 5, 8), utc(3, 5, 8, 10), endpoints=2)
    line = to_csv(monthly_statistics([record], [], 2026, 3)).splitlines()[1]
    assert line.startswith("'=HYPERLINK(1),reg,")


@pytest.mark.parametrize(("year", "month"), [(2026, 0), (2026, 13), (0, 1)])
def test_no_such_month(year: int, month: int) -> None:
    with pytest.raises(InvalidInput):
        monthly_statistics([], [], year, month)


# --- the records themselves (call_records.py) --------------------------------------------------


def test_leg_duration_and_media() -> None:
    closed = leg("l", "m", "o", "r", utc(3, 2, 8), utc(3, 2, 8, 14, 30))
    assert closed.duration == timedelta(minutes=14, seconds=30)
    assert closed.carries_media
    running = leg("l", "m", "o", "r", utc(3, 2, 8), None, endpoint_type="api", licence_kind=None)
    assert running.duration is None
    assert not running.carries_media


@pytest.mark.parametrize(
    "change",
    [
        {"endpoint_type": "h323"},
        {"licence_kind": "video"},
        {"room_kind": "lobby"},
        {"org_id": ""},
        {"leg_id": "a\nb"},
        {"ended_at": utc(3, 2, 7)},
        {"started_at": datetime(2026, 3, 2, 8)},  # naive on purpose
    ],
)
def test_malformed_legs_are_refused(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "leg_id": "l",
        "meeting_id": "m",
        "org_id": "o",
        "region": "r",
        "room_kind": "scheduled",
        "endpoint_type": "webrtc",
        "protocol": "webrtc",
        "codec": "vp8",
        "licence_kind": "port",
        "started_at": utc(3, 2, 8),
        "ended_at": utc(3, 2, 9),
    }
    fields.update(change)
    with pytest.raises(InvalidInput):
        CallLegRecord(**fields)  # type: ignore[arg-type]


def test_malformed_meetings_are_refused() -> None:
    with pytest.raises(InvalidInput):
        meeting("m", "o", "r", utc(3, 2, 8), utc(3, 2, 8), endpoints=-1)
    with pytest.raises(InvalidInput):
        meeting("m", "o", "r", utc(3, 2, 8), utc(3, 2, 7), endpoints=2)
    with pytest.raises(InvalidInput):
        meeting("m", "o", "r", utc(3, 2, 8), None, endpoints=2, room_kind="vmr")
    assert meeting("m", "o", "r", utc(3, 2, 8), None, endpoints=2).duration is None
