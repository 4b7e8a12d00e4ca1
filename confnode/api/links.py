"""``/j/<token>``: what a join link answers before, during and after its window.

A patient clicking early is told when the room opens (403 with ``opens_at`` and ``Retry-After``);
after the window the link is gone (410). Inside the window the answer describes the room and where
the client API is; browsers get the join page (``confnode.api.join_page``). Unknown tokens are
404 — the same for a guessed token as for a purged one, so probing reveals nothing.
"""

from __future__ import annotations

import html
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from confnode.api.auth import node_of
from confnode.api.errors import error_response
from confnode.api.join_page import join_page
from confnode.errors import ConfnodeError, RoomNotOpenYet

router = APIRouter(tags=["join links"])


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _page(title: str, text: str, status: int, headers: dict[str, str] | None = None) -> Response:
    body = (f"<!doctype html><html lang=\"da\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\">"
            f"<title>{html.escape(title)}</title></head><body>"
            f"<main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></main></body></html>")
    return HTMLResponse(body, status_code=status, headers=headers)


@router.get("/j/{token}", summary="A meeting's join link")
async def join_link(token: str, request: Request) -> Response:
    node = node_of(request)
    now = node.now()
    try:
        resolved = await node.bookings.resolve_link(token, now)
    except ConfnodeError as exc:
        response = error_response(exc)
        if isinstance(exc, RoomNotOpenYet):
            wait = max(1, math.ceil((exc.opens_at - now).total_seconds()))
            response.headers["Retry-After"] = str(wait)
            if _wants_html(request):
                local = exc.opens_at.astimezone(node.settings.tz).strftime("%d-%m-%Y %H:%M")
                return _page("Mødet er ikke åbent endnu",
                             f"The meeting is not open yet. It opens at {local}.", 403,
                             {"Retry-After": str(wait)})
        elif _wants_html(request):
            return _page("Linket virker ikke", exc.message, response.status_code)
        return response
    meeting, role = resolved.meeting, resolved.role
    body: dict[str, Any] = {
        "status": meeting.status_at(now, live=node.rooms.is_live(meeting.id)).value,
        "role": role.value,
        "alias": meeting.alias,
        "opens_at": meeting.opens_at.isoformat() if meeting.opens_at else None,
        "closes_at": meeting.closes_at.isoformat() if meeting.closes_at else None,
        "pin_required": (meeting.host_pin_digest is not None if role.value == "host"
                         else meeting.guest_pin_digest is not None),
        "client_api": f"/api/client/v2/conferences/{token}",
    }
    if _wants_html(request):
        return join_page()
    return JSONResponse(body)
