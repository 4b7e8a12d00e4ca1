"""The CPR guard: shape + real birth date, never the checksum, never echoing the value."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.dk import cpr as stdnum_cpr

from confnode.errors import PersonalDataRefused
from confnode.security.personal_data import (
    ensure_no_cpr,
    ensure_no_cpr_in,
    find_cpr_like,
    redact_cpr_like,
)


@pytest.mark.parametrize("text", [
    "010203-1234",
    "0102031234",
    "010203 1234",
    "010203 - 1234",
    "010203\u20131234",  # en dash, as word processors write it
    "010203\u00a01234",  # no-break space
    "311299-0001",
    "patient 010203-1234 called",
    "Konsultation (0102031234)",
    "cpr:0102031234",
    "CPR-nr. 010203-1234.",
    "first line\n010203-1234\nthird line",
])
def test_finds_cpr_shaped_numbers(text: str) -> None:
    assert find_cpr_like(text) is True


@pytest.mark.parametrize("text", [
    "",
    "Konsultation om knæ",
    "320199-1234",  # day 32
    "000199-1234",  # day 0
    "011399-1234",  # month 13
    "010003-1234",  # month 0
    "310403-1234",  # 31 April
    "123456789012",  # a 12-digit number is not a CPR number
    "10102031234",  # 11 digits
    "01020312345",  # 11 digits the other way
    "order 0102031234567",
    "010203--1234",
    "01020-31234",
    "abc0102031234",  # glued to letters: deliberately not a candidate (hex/base64 ids)
    "123e4567-e89b-12d3-a456-426614174000",
    "meeting at 2026-11-22 10:00, room 4711",
])
def test_ignores_what_is_not_a_cpr_number(text: str) -> None:
    assert find_cpr_like(text) is False


@pytest.mark.parametrize(("century_digit", "leap"), [
    # stdnum's table: 0-3 -> 1900s; 4 and 9 -> 2000s below year 37; 5-8 -> 2000s below year 58.
    # So 29 Feb "00" existed (2000) or not (1900) depending on the first sequence digit.
    ("0", False), ("1", False), ("2", False), ("3", False),
    ("4", True), ("5", True), ("6", True), ("7", True), ("8", True), ("9", True),
])
def test_29_february_00_depends_on_the_century_digit(century_digit: str, leap: bool) -> None:
    assert find_cpr_like(f"290200-{century_digit}123") is leap


@pytest.mark.parametrize(("text", "expected"), [
    ("290296-0123", True),  # 1996 is a leap year
    ("290297-0123", False),  # 1997 is not
    ("290204-4123", True),  # 2004
    ("290258-5123", False),  # 1858
    ("290260-5123", True),  # 1860
    ("290257-5123", False),  # 2057: 5 with a year below 58 is the 2000s
    ("290256-5123", True),  # 2056
])
def test_29_february_in_leap_and_non_leap_years(text: str, expected: bool) -> None:
    assert find_cpr_like(text) is expected


def test_a_number_failing_modulus_11_is_still_detected() -> None:
    # Since 2007 CPR numbers need not satisfy the old checksum.
    assert stdnum_cpr.checksum("2110625629") == 0
    assert stdnum_cpr.checksum("2110625628") != 0
    assert find_cpr_like("211062-5628") is True


def test_a_birth_date_in_the_future_still_counts() -> None:
    # 4 with year 36 decodes to 2036; stdnum.validate would call it "not born yet" depending on
    # today's date, the guard does not consult the clock.
    assert stdnum_cpr.get_birth_date("0101364123") == date(2036, 1, 1)
    assert find_cpr_like("010136-4123") is True


def test_an_invalid_candidate_does_not_hide_a_valid_one() -> None:
    assert find_cpr_like("320199-1234 0102031234") is True
    assert find_cpr_like("320199-1234 and 330199-1234") is False


def test_redact_replaces_each_number_and_keeps_the_rest() -> None:
    text = "a 010203-1234, b 3201991234, c 020304 5678."
    assert redact_cpr_like(text) == "a [redacted], b 3201991234, c [redacted]."
    assert redact_cpr_like("nothing here") == "nothing here"


def test_ensure_no_cpr_returns_clean_values_unchanged() -> None:
    assert ensure_no_cpr("Kontrol af blodtryk", "subject") == "Kontrol af blodtryk"


def test_refusal_names_the_field_and_never_the_value() -> None:
    value = "Samtale med 010203-1234"
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr(value, "description")
    error = caught.value
    assert error.code == "personal_data_refused"
    assert error.details == {"field": "description"}
    assert "'description'" in error.message
    for rendering in (str(error), repr(error), error.message, repr(error.details),
                      repr(error.args)):
        assert "010203" not in rendering
        assert "1234" not in rendering
        assert "Samtale" not in rendering
    assert error.__cause__ is None


def test_walks_a_json_body_and_reports_the_path() -> None:
    body = {
        "subject": "Konsultation",
        "attendees": [{"name": "A"}, {"name": "B", "note": "ring 0102031234"}],
        "labels": ["x"],
    }
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr_in(body)
    assert caught.value.details == {"field": "body.attendees[1].note"}
    assert "0102031234" not in repr(caught.value)


def test_reports_the_first_offending_field_in_document_order() -> None:
    body = {"a": ["ok", "010203-1234"], "b": "020304-5678"}
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr_in(body, root="request")
    assert caught.value.details == {"field": "request.a[1]"}


def test_a_key_holding_a_cpr_number_is_reported_as_key() -> None:
    body = {"notes": {"010203-1234": "x"}}
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr_in(body)
    assert caught.value.details == {"field": "body.notes.<key>"}
    assert "010203" not in str(caught.value)


def test_integers_and_dataclasses_are_walked_other_scalars_skipped() -> None:
    @dataclass
    class Note:
        text: str

    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr_in({"n": 1012031234})
    assert caught.value.details == {"field": "body.n"}
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr_in([Note(text="0102031234")])
    assert caught.value.details == {"field": "body[0].text"}
    clean = {"ok": True, "n": 3.5, "none": None, "count": 42, "tags": ("a", "b")}
    assert ensure_no_cpr_in(clean) is clean


def test_deeply_nested_bodies_do_not_exhaust_the_stack() -> None:
    body: object = "0102031234"
    for _ in range(20_000):
        body = [body]
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr_in(body)
    assert caught.value.details["field"].endswith("[0][0]")


@st.composite
def cpr_numbers(draw: st.DrawFn) -> str:
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2036, 12, 31)))
    # Pick a century digit that stdnum decodes to the century ``born`` lies in.
    century_digit = draw(st.sampled_from("0123" if born.year < 2000 else "4"))
    rest = draw(st.text(alphabet=string.digits, min_size=3, max_size=3))
    separator = draw(st.sampled_from(["", "-", " ", " - ", "\u2013"]))
    return f"{born:%d%m%y}{separator}{century_digit}{rest}"


@given(number=cpr_numbers(), before=st.text(alphabet=" .,:;()abc\n"),
       after=st.text(alphabet=" .,:;()abc\n"))
def test_every_valid_date_is_found_wherever_it_stands(number: str, before: str,
                                                      after: str) -> None:
    # A letter right next to the number would glue it into a word; separate it then.
    if before and before[-1].isalpha():
        before += " "
    if after and after[0].isalpha():
        after = " " + after
    text = f"{before}{number}{after}"
    assert find_cpr_like(text) is True
    with pytest.raises(PersonalDataRefused) as caught:
        ensure_no_cpr(text, "field")
    assert number not in str(caught.value)
    assert number not in redact_cpr_like(text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",))))
def test_text_without_digits_is_never_refused(text: str) -> None:
    assert find_cpr_like(text) is False
    assert ensure_no_cpr(text, "f") == text
