"""ASGI middleware: refuse any request that carries a CPR number, before anything parses it.

Running ahead of FastAPI's validation matters: a CPR number must be refused with 422 whatever else
is wrong with the request, and it must never be echoed, stored or logged. The value is looked for in
JSON keys and values and in query parameters; the answer names only where it was found.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confnode.api.errors import error_response
from confnode.errors import PersonalDataRefused
from confnode.security.personal_data import ensure_no_cpr, ensure_no_cpr_in

MAX_BODY_BYTES = 64 * 1024


class PersonalDataGuard:
    """``exempt`` path prefixes carry machine data (SDP offers are full of 10-digit session and
    SSRC numbers that can look like CPR numbers); their free-text fields are checked where they
    are used (a display name in ``Admission.join``)."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES,
                 exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        try:
            for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
                ensure_no_cpr(key, "query")
                ensure_no_cpr(value, f"query.{key}" if key.isidentifier() else "query")
        except PersonalDataRefused as exc:
            await error_response(exc)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body, too_large = await self._read_body(receive)
        if too_large:
            await _send_json(send, 413, {"error": "too_large",
                                         "message": f"Request body over {self.max_body} bytes."})
            return
        if body and _is_json(scope):
            try:
                document: Any = json.loads(body)
            except ValueError:
                document = None  # FastAPI answers malformed JSON with its own (sanitised) 422
            if document is not None:
                try:
                    ensure_no_cpr_in(document)
                except PersonalDataRefused as exc:
                    await error_response(exc)(scope, receive, send)
                    return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def _replay(body: bytes, receive_more: Receive) -> Receive:
    """Hand the buffered body to the app once, then pass through (e.g. a later disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive_more()

    return receive


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
