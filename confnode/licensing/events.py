"""What the licence ledger tells its caller, drained with ``LicenceLedger.next_event()``.

The ledger is sans-IO: it never writes to the store or pages an operator itself. It queues these
frozen records instead, and the shell around it persists holds and peaks, raises alerts and
counts refusals. Events carry no personal data: a ``call_id`` is an opaque media-connection id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the ledger module imports this one, so a runtime import would be a
    # cycle. ``from __future__ import annotations`` keeps the names unevaluated.
    from confnode.licensing.ledger import LicenceGrant, LicenceKind


class RefusalReason(StrEnum):
    """Why a licence was refused, so an operator can tell "buy licences" from "grace ran out"."""

    NO_GRACE = "no_grace"  # the pool is full and no grace overdraft is configured for it
    GRACE_FULL = "grace_full"  # capacity plus the whole grace allowance is in use
    GRACE_EXHAUSTED = "grace_exhausted"  # allowance left, but today's overdraft time is used up


@dataclass(frozen=True)
class LicenceEvent:
    """Base of every ledger event, so callers can annotate and ``isinstance`` one type."""


@dataclass(frozen=True)
class LicenceAcquired(LicenceEvent):
    """A call now holds a licence; the store persists the grant so a restart can restore it."""

    grant: LicenceGrant


@dataclass(frozen=True)
class LicenceReleased(LicenceEvent):
    """A hold ended (hang-up, or reconciled away after a crash); the store deletes it."""

    grant: LicenceGrant
    at: datetime


@dataclass(frozen=True)
class GraceEntered(LicenceEvent):
    """The pool just went beyond its licensed capacity: an alert that licences are short.

    Raised each time the pool crosses from ``<= capacity`` to ``> capacity``, not for every call
    admitted while it stays above.
    """

    kind: LicenceKind
    in_use: int
    capacity: int
    at: datetime


@dataclass(frozen=True)
class GraceExhausted(LicenceEvent):
    """Today's overdraft time for the pool is used up: calls beyond capacity are now refused.

    Calls already admitted keep their licence; ``at`` is the instant the budget ran out, which
    may be earlier than the ledger call that noticed it.
    """

    kind: LicenceKind
    at: datetime


@dataclass(frozen=True)
class LicenceRefusedEvent(LicenceEvent):
    """A call was turned away; queued so refusals are counted even if the caller drops the error."""

    kind: LicenceKind
    in_use: int
    capacity: int
    grace_allowance: int
    reason: RefusalReason
    at: datetime


@dataclass(frozen=True)
class PeakRaised(LicenceEvent):
    """A new highest concurrency for the pool on ``day`` (local calendar day); the store keeps it.

    Peaks per day are what the MedCom monitoring reports and what licence sizing is based on. The
    store should keep the maximum of what it has and ``peak``: after a restart the ledger only
    knows the peaks it was given in ``restore``.
    """

    kind: LicenceKind
    day: date
    peak: int
