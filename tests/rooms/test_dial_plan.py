"""The dial plan: gateway numbers to room aliases, first rule wins, bad rules refused up front."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confnode.rooms.dial_plan import (
    MAX_DIALLED,
    DialPlan,
    DialRule,
    InvalidDialRule,
    Routed,
    normalise,
)

PSTN = DialRule(r"\+45(\d{8})", r"\1")  # a Danish number through a PSTN gateway
PBX = DialRule(r"9(\d{8})", r"\1")  # a hospital PBX's outside-line prefix
NAMED = DialRule(r"\+46(?P<room>\d{6})", r"77\g<room>")  # digits around a named group


@pytest.mark.parametrize(("dialled", "normalised"), [
    ("+4570000123", "+4570000123"),
    ("004570000123", "+4570000123"),  # the international prefix, written the other way
    ("00 45 (70) 00-01-23", "+4570000123"),
    ("+45.70.00.01.23;phone-context=+45", "+4570000123"),
    ("1234567890", "1234567890"),
    ("0701", "0701"),  # one leading zero is a number, not the international prefix
    ("Ab-x_9.y", "Ab-x_9.y"),  # a link token is matched as received: its '-' and '.' stay
    ("-123", "-123"),  # not a number: a number starts with a digit or '+'
    ("", ""),
])
def test_normalise(dialled: str, normalised: str) -> None:
    assert normalise(dialled) == normalised


@pytest.mark.parametrize(("dialled", "routed"), [
    ("+4570000123", Routed("70000123", 0)),
    ("0045 70 00 01 23", Routed("70000123", 0)),
    ("970000123", Routed("70000123", 1)),
    ("+46123456", Routed("77123456", 2)),
    ("+4570000123;phone-context=example.org", Routed("70000123", 0)),
    # No rule matches the whole number: the user part goes on exactly as dialled.
    ("+457000012", Routed("+457000012", None)),
    ("1234567890", Routed("1234567890", None)),
    ("97000012345", Routed("97000012345", None)),
    ("45-70-00", Routed("45-70-00", None)),
    ("tok-en_AbC", Routed("tok-en_AbC", None)),
])
def test_rules_route_whole_numbers_in_order(dialled: str, routed: Routed) -> None:
    assert DialPlan([PSTN, PBX, NAMED]).route(dialled) == routed


def test_first_match_wins() -> None:
    catch_all = DialRule(r"\+?(\d+)", r"\1")
    assert DialPlan([PSTN, catch_all]).route("+4570000123") == Routed("70000123", 0)
    assert DialPlan([catch_all, PSTN]).route("+4570000123") == Routed("4570000123", 0)
    assert DialPlan([catch_all]).route("+1 (555) 010-0199") == Routed("15550100199", 0)


def test_a_fixed_number_for_one_room() -> None:
    plan = DialPlan([DialRule(r"\+4533112200", "1234567890")])
    assert plan.route("+45 33 11 22 00") == Routed("1234567890", 0)
    assert plan.route("+4533112201") == Routed("+4533112201", None)


def test_a_match_whose_groups_are_not_digits_falls_through() -> None:
    loose = DialRule(r"room-(.*)", r"\1")
    plan = DialPlan([loose, DialRule(r"room-(\w+)", "1111")])
    assert plan.route("room-42") == Routed("42", 0)
    assert plan.route("room-x") == Routed("1111", 1)  # "x" is no alias: the next rule
    assert plan.route("room-") == Routed("room-", None)  # empty is no alias either


def test_an_empty_plan_is_todays_routing() -> None:
    assert DialPlan().route("+4570000123") == Routed("+4570000123", None)


def test_long_dialled_strings_match_no_rule() -> None:
    plan = DialPlan([DialRule(r"\d+", "1234")])
    long = "1" * (MAX_DIALLED + 1)
    assert plan.route(long) == Routed(long, None)
    assert plan.route(long[:MAX_DIALLED]) == Routed("1234", 0)


@pytest.mark.parametrize(("pattern", "alias", "message"), [
    (r"\+45(\d{8}", r"\1", "not a regular expression"),
    (r"*45", "1", "not a regular expression"),
    (r"\+45(\d{8})", r"room\1", "digits only"),
    (r"\+45(\d{8})", r"\1#", "digits only"),
    (r"\+45(\d{8})", "", "must not be empty"),
    (r"\+45(\d{8})", r"\2", "does not have"),
    (r"\+45(\d{8})", r"\g<room>", "does not have"),
    (r"\+45(\d{8})", r"\g<5>", "does not have"),
    (r"\+45(\d{8})", r"\0", "digits only"),
])
def test_bad_rules_are_refused_when_made(pattern: str, alias: str, message: str) -> None:
    with pytest.raises(InvalidDialRule, match=message):
        DialRule(pattern, alias)


@given(st.text(max_size=80), st.lists(st.sampled_from([PSTN, PBX, NAMED,
                                                       DialRule(r"(.*)", r"\1"),
                                                       DialRule(r"\D*(\d*)\D*", r"4\1")]),
                                      max_size=4))
def test_routing_never_raises_and_gives_an_alias_or_the_dialled_string(
        dialled: str, rules: list[DialRule]) -> None:
    routed = DialPlan(rules).route(dialled)
    if routed.rule is None:
        assert routed.address == dialled
    else:
        assert routed.address.isascii() and routed.address.isdigit()
        assert len(dialled) <= MAX_DIALLED
