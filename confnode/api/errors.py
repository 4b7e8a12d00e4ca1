"""The one table that turns domain errors into HTTP answers.

Bodies are JSON ``{"error": code, "message": ..., **details}``. A 422 never echoes the offending
input: FastAPI's default validation body repeats it, which would put a CPR number typed into a
subject straight back on the wire and into any log that records responses.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from confnode import errors

STATUS: list[tuple[type[errors.ConfnodeError], int]] = [
    (errors.PersonalDataRefused, 422),
    (errors.InvalidInput, 422),
    (errors.Unauthenticated, 401),
    (errors.PinRequired, 403),
    (errors.PinInvalid, 403),
    (errors.PinLockedOut, 429),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.RoomNotOpenYet, 403),
    (errors.RoomClosed, 410),
    (errors.QueueClosed, 409),
    (errors.Conflict, 409),
    (errors.CapacityRefused, 503),
]


# Declared on every operation in the OpenAPI document, so clients (and schemathesis) know each
# status this table can produce; the 422 of request validation is FastAPI's own entry.
_ERROR_BODY = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": "Error", **_ERROR_BODY}
    for status in sorted({400, 405, *(status for _, status in STATUS)} - {422})}


def status_for(error: errors.ConfnodeError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 400


def error_response(error: errors.ConfnodeError) -> JSONResponse:
    status = status_for(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, errors.CapacityRefused):
        headers["Retry-After"] = "30"
    body: dict[str, Any] = {"error": error.code, "message": error.message, **error.details}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and what kind of problem: never the input value, never pydantic's ``ctx``.
    return [{"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", ""),
             "type": e.get("type", "")} for e in exc.errors()]


def _allowed_methods(app: FastAPI, path: str) -> set[str]:
    """Every method the API documents for ``path`` (its OpenAPI paths are the route table)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in operations}
    return methods


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ConfnodeError)
        return error_response(exc)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = _validation_problems(exc)
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return JSONResponse({"error": "invalid_input", "message": f"{where}: {first['msg']}",
                             "problems": problems}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by several
            # routes (GET and POST /api/v1/templates) allows all of theirs (RFC 9110 §15.5.6).
            headers["Allow"] = ", ".join(sorted(_allowed_methods(app, request.url.path)))
        return JSONResponse({"error": code, "message": str(exc.detail)},
                            status_code=exc.status_code, headers=headers)

    app.add_exception_handler(errors.ConfnodeError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
