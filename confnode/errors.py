"""Typed domain errors.

Domain code raises these and never thinks about HTTP or SIP; the edges translate them through one
table each (``confnode/api/errors.py`` for HTTP, the SIP core later). Every error carries a stable
machine-readable ``code`` so clients can react without parsing prose, and a human ``message`` that
must never contain secrets or personal data (it is returned to callers and may be logged).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class ConfnodeError(Exception):
    """Base of every error the node reports to a caller."""

    code: str = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(ConfnodeError):
    code = "invalid_input"


class PersonalDataRefused(InvalidInput):
    """A free-text field looked like it held a CPR number; the value is deliberately not kept."""

    code = "personal_data_refused"


class NotFound(ConfnodeError):
    code = "not_found"


class PermissionDenied(ConfnodeError):
    code = "permission_denied"


class Unauthenticated(ConfnodeError):
    code = "unauthenticated"


class Conflict(ConfnodeError):
    """The request is well-formed but not allowed in the object's current state."""

    code = "conflict"


class RoomNotOpenYet(ConfnodeError):
    code = "not_open_yet"

    def __init__(self, opens_at: datetime) -> None:
        super().__init__(f"The meeting room is not open yet; it opens at {opens_at.isoformat()}.",
                         opens_at=opens_at.isoformat())
        self.opens_at = opens_at


class RoomClosed(ConfnodeError):
    """The room's window has passed, it was ended, or the booking was cancelled (HTTP 410)."""

    code = "room_closed"


class PinRequired(ConfnodeError):
    code = "pin_required"


class PinInvalid(ConfnodeError):
    code = "pin_invalid"


class PinLockedOut(ConfnodeError):
    """Too many wrong PINs: refused even when the next PIN is right, until the lockout expires."""

    code = "pin_locked_out"


class QueueClosed(Conflict):
    code = "queue_closed"


class CapacityRefused(ConfnodeError):
    """The node cannot take this call now (HTTP 503, SIP 486/503). Nothing else is disturbed."""

    code = "capacity_refused"


class LicenceRefused(CapacityRefused):
    code = "licence_refused"
