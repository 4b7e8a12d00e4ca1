"""Pexip's response envelope and error vocabulary.

Every client API answer is ``{"status": "success"|"failed", "result": …}`` with a Content-Type of
exactly ``application/json`` (Pexip's SDK checks both), and errors are the strings the SDK maps
to its error codes (``Invalid PIN`` → #pex101, ``Insufficient licenses`` → #pex195, …).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from confnode import errors

VERSION = {"version_id": "36", "pseudo_version": "confnode"}


def ok(result: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "result": result}, media_type="application/json")


def failed(status: int, result: Any, *, envelope_status: str = "failed") -> JSONResponse:
    return JSONResponse({"status": envelope_status, "result": result}, status_code=status,
                        media_type="application/json")


def error_answer(exc: errors.ConfnodeError) -> JSONResponse:
    """The domain error table, in Pexip's words."""
    if isinstance(exc, errors.PinLockedOut):
        return failed(403, "Participant exceeded PIN entry retries")
    if isinstance(exc, errors.PinInvalid):
        return failed(403, "Invalid PIN")
    if isinstance(exc, errors.LicenceRefused):
        return failed(503, "Insufficient licenses")
    if isinstance(exc, errors.CapacityRefused):
        return failed(503, "Participant limit reached")
    if isinstance(exc, errors.Unauthenticated):
        return failed(403, "Invalid token")
    if isinstance(exc, errors.PermissionDenied):
        return failed(403, "Invalid role")
    if isinstance(exc, errors.RoomNotOpenYet):
        return failed(403, f"The meeting opens at {exc.opens_at.isoformat()}")
    if isinstance(exc, errors.RoomClosed):
        return failed(404, "Neither conference nor gateway found")
    if isinstance(exc, errors.NotFound):
        return failed(404, "Neither conference nor gateway found")
    if isinstance(exc, errors.InvalidInput):
        return failed(400, exc.message)
    return failed(403, exc.message)
