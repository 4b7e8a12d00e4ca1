"""The CPR guard: confnode refuses to store or log anything that looks like a Danish CPR number.

The booking system is meant to carry no personal data (the link is tied to the patient in the
practice system, not in confnode), yet free-text fields such as a meeting subject invite a
secretary to type "Konsultation 010203-1234". Detection is deliberately by shape and date only:
a CPR number is DDMMYY-SSSS and since 2007 numbers need not pass the modulus-11 check (the
sequence numbers ran out), so a checksum test would let real numbers through. The date and the
century digit (the first sequence digit) are decoded by ``stdnum.dk.cpr.get_birth_date``, which
knows the century table and therefore whether 29 February existed that year.

We do not call ``stdnum.dk.cpr.validate``: it does not check mod-11 either (python-stdnum 2.x),
but it refuses birth dates after ``date.today()`` -- a hidden clock read that would make the guard
change its mind over time. A future birth date still has the shape of a CPR number, and refusing
one too many is the safe side of this guard.

Candidates must stand alone as a "word": not glued to other letters or digits. Not to digits,
because a 12-digit order number is not a CPR number; not to letters, because hexadecimal and
base64 identifiers (UUIDs, digests, capability tokens) contain ten-digit runs between letters
often enough (roughly one in a few thousand identifiers) that the guard would refuse ordinary
requests and blank out ordinary log lines. The cost is that "cpr0102031234" typed without any
separator is not caught; "CPR 010203-1234", "cpr:0102031234" and "(0102031234)" are.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import TypeVar

from stdnum.dk import cpr as stdnum_cpr
from stdnum.exceptions import ValidationError

from confnode.errors import PersonalDataRefused

_T = TypeVar("_T")

# Between the date and the sequence people type nothing, a hyphen, a space, or a hyphen with
# spaces around it -- and word processors and phones turn the hyphen into a hyphen, non-breaking
# hyphen, en dash or minus sign and the space into a no-break space. The lookbehind/lookahead
# keep a match from starting or ending inside a longer run of letters or digits; ``[^\W_]`` is
# "a letter or a digit" in any script. The whole pattern is a lookahead so overlapping
# candidates are all tried (a rejected invalid date must not hide a valid one next to it).
_SPACE = "[ \u00a0]"
_DASH = "[-\u2010\u2011\u2013\u2212]"
_CPR_CANDIDATE = re.compile(
    rf"(?<![^\W_])(?=(?P<number>(?P<date>[0-9]{{6}}){_SPACE}?{_DASH}?{_SPACE}?"
    rf"(?P<sequence>[0-9]{{4}}))(?![^\W_]))"
)

_KEY_PLACEHOLDER = "<key>"


def _has_cpr_date(digits: str) -> bool:
    """Whether ten digits decode to a real birth date under the CPR century rules."""
    try:
        stdnum_cpr.get_birth_date(digits)
    except ValidationError:
        return False
    return True


def _cpr_spans(text: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of every CPR-like number in ``text``, left to right, not overlapping."""
    covered_until = 0
    for candidate in _CPR_CANDIDATE.finditer(text):
        start = candidate.start()
        if start < covered_until:
            continue
        if not _has_cpr_date(candidate["date"] + candidate["sequence"]):
            continue
        covered_until = candidate.end("number")
        yield start, covered_until


def find_cpr_like(text: str) -> bool:
    """Whether ``text`` contains something shaped like a CPR number with a real birth date."""
    return next(_cpr_spans(text), None) is not None


def redact_cpr_like(text: str, replacement: str = "[redacted]") -> str:
    """Replace every CPR-like number in ``text``; used by the log filter, which must not refuse."""
    pieces: list[str] = []
    position = 0
    for start, end in _cpr_spans(text):
        pieces.append(text[position:start])
        pieces.append(replacement)
        position = end
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def _refuse(field: str) -> PersonalDataRefused:
    # The message and details name the field only: the error travels to the caller and into
    # logs, and echoing the value would leak exactly what we refused to keep.
    return PersonalDataRefused(
        f"The field '{field}' looks like it contains a CPR number; "
        "confnode does not accept personal data.",
        field=field,
    )


def ensure_no_cpr(value: str, field: str) -> str:
    """Return ``value`` unchanged, or raise ``PersonalDataRefused`` naming only ``field``."""
    if find_cpr_like(value):
        raise _refuse(field) from None
    return value


def ensure_no_cpr_in(value: _T, root: str = "body") -> _T:
    """Walk a decoded JSON body (or any nest of mappings, sequences and dataclasses) for CPRs.

    Returns ``value`` unchanged, or raises ``PersonalDataRefused`` for the first offending
    field in document order, e.g. ``body.attendees[1].note``. Keys are checked as well as
    values, because a client controls the keys of a JSON object; a key that itself holds a
    CPR-like number is reported as ``<key>``, since the path would otherwise carry the value
    into the error. Integers are checked through their decimal form (a JSON number loses a
    leading zero, so this only catches days 10-31, but costs nothing); other scalars (floats,
    booleans, None, datetimes) cannot carry a ten-digit free-text number and are skipped.

    The walk is iterative, so a deeply nested hostile body cannot exhaust the stack.
    """
    stack: list[tuple[str, object]] = [(root, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            ensure_no_cpr(item, path)
        elif isinstance(item, int) and not isinstance(item, bool):
            ensure_no_cpr(str(item), path)
        elif isinstance(item, Mapping):
            children: list[tuple[str, object]] = []
            for key, child in item.items():
                key_text = str(key)
                if find_cpr_like(key_text):
                    raise _refuse(f"{path}.{_KEY_PLACEHOLDER}") from None
                children.append((f"{path}.{key_text}", child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([(f"{path}[{index}]", child)
                                   for index, child in enumerate(item)]))
        elif isinstance(item, set | frozenset):
            # Sets have no order or index; the path names the set, which is enough to fix it.
            stack.extend((path, child) for child in item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(reversed([(f"{path}.{f.name}", getattr(item, f.name))
                                   for f in dataclasses.fields(item)]))
    return value
