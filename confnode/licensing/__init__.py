"""Licence counting: port and audio pools with a time-limited grace overdraft (sans-IO)."""

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
from confnode.licensing.ledger import (
    GracePolicy,
    LicenceGrant,
    LicenceKind,
    LicenceLedger,
    PoolUsage,
)

__all__ = [
    "GraceEntered",
    "GraceExhausted",
    "GracePolicy",
    "LicenceAcquired",
    "LicenceEvent",
    "LicenceGrant",
    "LicenceKind",
    "LicenceLedger",
    "LicenceRefusedEvent",
    "LicenceReleased",
    "PeakRaised",
    "PoolUsage",
    "RefusalReason",
]
