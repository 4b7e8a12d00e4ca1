"""The dial plan: which room a dialled number reaches when it is not the room's alias itself.

Calls need no registration: a SIP INVITE's request-URI user part names the room. Gateways in
front of the node often dial something else — a PSTN gateway passes the caller's ``+45 70 00 01
23``, a hospital PBX keeps its outside-line prefix ``9`` — so an operator lists rules, each a
regular expression that must match the *whole* dialled number and a template giving the room's
numeric alias (``\\1`` … ``\\9`` or ``\\g<name>`` for the pattern's groups, digits for the rest).
The first rule that matches and yields an alias wins; without one the user part is used as dialled
(a room's own alias, or a join link's token), exactly as without a dial plan.

What the rules see, so that one rule covers the ways a number is written (RFC 3966 §5.1.1):
a *telephone-number-shaped* user part (digits, an optional leading ``+``, visual separators
``-`` ``.`` ``(`` ``)`` and spaces, and ``;`` parameters such as ``phone-context``) loses its
separators and parameters, and a leading ``00`` international prefix becomes ``+``. So
``00 45 (70) 00-01-23`` and ``+4570000123`` are both matched as ``+4570000123``; rules never see
``00``. Anything else (a link token, a name) is matched as received. Dialled strings longer than
:data:`MAX_DIALLED` are matched by no rule, so an operator's pattern can never be made to
backtrack for long over attacker-sized input.

Sans-IO and total: :meth:`DialPlan.route` never raises; a bad rule is refused when the plan is
built (from settings, at start-up), with an error naming the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: E.164 numbers have at most 15 digits; aliases have 10. Room to spare for separators.
MAX_DIALLED = 64
#: A routed alias is a room's numeric alias: digits only, and short.
MAX_ALIAS = 32

_PHONE_SHAPED = re.compile(r"\+?[0-9][0-9\-.() ]*(;.*)?", re.DOTALL)
_SEPARATORS = re.compile(r"[\-.() ]")
# The template language: literal digits and group references, nothing else.
_TEMPLATE_PART = re.compile(r"(?P<digits>[0-9]+)|\\(?P<number>[1-9])|\\g<(?P<name>\w+)>")


class InvalidDialRule(ValueError):
    """A dial-plan rule that cannot work; raised when the plan is built, never when routing."""


def normalise(dialled: str) -> str:
    """The form the rules match: see the module docstring for what is normalised."""
    if not _PHONE_SHAPED.fullmatch(dialled):
        return dialled
    number = _SEPARATORS.sub("", dialled.partition(";")[0])
    if number.startswith("00"):
        number = "+" + number[2:]
    return number


@dataclass(frozen=True)
class _Group:
    key: int | str


@dataclass(frozen=True)
class DialRule:
    """One rule: ``pattern`` must match the whole normalised number; ``alias`` is the template."""

    pattern: str
    alias: str
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _parts: tuple[str | _Group, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Refused when the rule is made (settings load), never when a call arrives.
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise InvalidDialRule(f"dial-plan pattern {self.pattern!r} is not a regular "
                                  f"expression: {exc}") from None
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_parts", self._template(compiled))

    def _template(self, compiled: re.Pattern[str]) -> tuple[str | _Group, ...]:
        """The template as literal digits and group references, checked against the pattern."""
        parts: list[str | _Group] = []
        position = 0
        while position < len(self.alias):
            token = _TEMPLATE_PART.match(self.alias, position)
            if token is None:
                raise InvalidDialRule(
                    f"dial-plan alias {self.alias!r} must be digits and group references "
                    "(\\1 to \\9, \\g<name>): a room's numeric alias is digits only")
            if token["digits"] is not None:
                parts.append(token["digits"])
            else:
                key: int | str = (int(token["number"]) if token["number"] is not None
                                  else int(token["name"]) if token["name"].isdigit()
                                  else token["name"])
                known = (0 <= key <= compiled.groups if isinstance(key, int)
                         else key in compiled.groupindex)
                if not known:
                    raise InvalidDialRule(f"dial-plan alias {self.alias!r} refers to group "
                                          f"{key!r}, which pattern {self.pattern!r} does not have")
                parts.append(_Group(key))
            position = token.end()
        if not parts:
            raise InvalidDialRule("dial-plan alias must not be empty")
        return tuple(parts)

    def apply(self, number: str) -> str | None:
        """The alias this rule gives ``number`` (already normalised), or None: no full match, or
        the groups captured something that is not digits."""
        match = self._compiled.fullmatch(number)
        if match is None:
            return None
        alias = "".join(part if isinstance(part, str) else match.group(part.key) or ""
                        for part in self._parts)
        if not alias.isascii() or not alias.isdigit() or len(alias) > MAX_ALIAS:
            return None
        return alias


@dataclass(frozen=True)
class Routed:
    """Where a dialled user part goes: ``address`` for the room lookup, and the rule (its index in
    the plan) that produced it, None when the user part is used as dialled."""

    address: str
    rule: int | None


class DialPlan:
    def __init__(self, rules: Iterable[DialRule] = ()) -> None:
        self.rules = tuple(rules)

    def route(self, dialled: str) -> Routed:
        """First matching rule wins; no match, the user part unchanged. Never raises."""
        if len(dialled) <= MAX_DIALLED:
            number = normalise(dialled)
            for index, rule in enumerate(self.rules):
                alias = rule.apply(number)
                if alias is not None:
                    return Routed(alias, index)
        return Routed(dialled, None)
