"""A Pexip Infinity Client REST API v2 compatible surface, under ``/api/client/v2``.

Existing Pexip-based apps (and Pexip's own SDK) point at a confnode node unchanged. The shapes are
those Pexip's SDK validates (docs/pexip-client-api.md). The conference ``alias`` in the path is a
room's numeric alias or one of its link tokens. Errors use Pexip's envelope and vocabulary, so this
is a separate ASGI app with its own error handlers, mounted into the node's app.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from confnode import errors
from confnode.api.client.envelope import VERSION, error_answer, failed, ok
from confnode.api.client.participant_json import participant_json
from confnode.live.sessions import ClientSession
from confnode.media.layouts import available_layouts
from confnode.rooms import (
    EndpointType,
    MediaKind,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    ParticipantUpdated,
    ParticipantView,
    Role,
    RoomEnded,
    RoomEvent,
    RoomUpdated,
)

if TYPE_CHECKING:
    from confnode.node import Node

SSE_KEEPALIVE_SECONDS = 15.0

# Pexip's words for why a participant was removed (the SDK maps them to its error codes).
LEAVE_REASONS = {
    "disconnected": "Disconnected by another participant",
    "host_timeout": "Timeout waiting for conference host to join or permit access to locked "
                    "conference",
    "guests_only_timeout": "All conference hosts departed hosted conference",
    "ended": "Conference terminated by another participant",
    "window_closed": "API initiated conference termination",
    "node_shutdown": "System in maintenance mode",
    "cancelled": "API initiated conference termination",
    "token_expired": "Timer expired awaiting token refresh",
}


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    display_name: str = Field(min_length=1, max_length=250)


class CallRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    call_type: str = "WEBRTC"
    sdp: str = Field(min_length=10, max_length=200_000)
    media_type: str | None = None


class CandidateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    candidate: str = Field("", max_length=2000)
    mid: str | None = Field("0", max_length=64)


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sdp: str | None = Field(None, max_length=200_000)


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str


def _node(request: Request) -> Node:
    return request.app.state.node  # type: ignore[no-any-return]


async def _session(request: Request, alias: str,
                   token: Annotated[str | None, Header()] = None,
                   token_query: Annotated[str | None, Query(alias="token")] = None
                   ) -> ClientSession:
    node = _node(request)
    session = node.sessions.get(token or token_query, node.now())
    if node.rooms.get(session.meeting_id) is None:
        raise errors.Unauthenticated("Invalid token")
    return session


Session = Annotated[ClientSession, Depends(_session)]


def _view_json(node: Node, session_or_meeting: str, view: ParticipantView) -> dict[str, Any]:
    live = node.rooms.get(session_or_meeting)
    alias = live.meeting.alias if live else ""
    call = next((c for c in node.webrtc.calls.values()
                 if c.participant_id == view.participant_id), None)
    audio_only = call is not None and "video" not in call.endpoint.kinds
    return participant_json(view, alias, has_media=call is not None, audio_only=audio_only)


def _conference_status(node: Node, meeting_id: str) -> dict[str, Any]:
    live = node.rooms.get(meeting_id)
    locked = bool(live and live.room.locked)
    guests_muted = bool(live and live.room.guests_muted)
    closes = live.meeting.closes_at if live else None
    status: dict[str, Any] = {"locked": locked, "guests_muted": guests_muted,
                              "started": bool(live and live.room.host_present),
                              "all_muted": False, "presentation_allowed": False,
                              "direct_media": False, "live_captions_available": False,
                              "breakout_rooms": False, "guests_can_unmute": True,
                              "guests_can_present": False}
    if closes is not None:
        status["end_time"] = int(closes.timestamp())
    return status


def create_client_app(node: Node) -> FastAPI:
    app = FastAPI(title="confnode client API (Pexip Infinity v2 compatible)",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.node = node
    base = "/conferences/{alias}"

    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ConfnodeError)
        return error_answer(exc)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return failed(400, f"Invalid request: {where} {first.get('msg', '')}".strip())

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return failed(exc.status_code, "404 Not Found" if exc.status_code == 404
                      else str(exc.detail))

    app.add_exception_handler(errors.ConfnodeError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)

    # Tokens

    @app.post(base + "/request_token")
    async def request_token(alias: str, body: TokenRequest, request: Request,
                            pin: Annotated[str | None, Header()] = None) -> Response:
        node = _node(request)
        now = node.now()
        meeting, link_role = await node.admission.locate(alias, now)
        source = request.client.host if request.client else "unknown"
        try:
            role = node.admission.role_for(meeting, link_role, pin, source, now)
        except errors.PinRequired:
            return failed(403, {
                "pin": "required" if meeting.host_pin_digest else "none",
                "guest_pin": "required" if meeting.guest_pin_digest else "none",
                "version": VERSION}, envelope_status="success")
        admitted = await node.admission.join(meeting, role, display_name=body.display_name,
                                             endpoint_type=EndpointType.WEBRTC,
                                             protocol="webrtc",
                                             media=[MediaKind.AUDIO, MediaKind.VIDEO], now=now)
        view = admitted.participant
        token, _session_record = node.sessions.issue(meeting.id, view.participant_id, view.role,
                                             view.display_name, now)
        node.metrics.join_started(view.participant_id)
        return ok({
            "token": token, "expires": str(int(node.sessions.lifetime.total_seconds())),
            "participant_uuid": view.participant_id, "display_name": view.display_name,
            "role": "HOST" if view.role is Role.HOST else "GUEST",
            "current_service_type": ("waiting_room" if view.state is ParticipantState.WAITING
                                     else "conference"),
            "service_type": "conference", "call_type": "video",
            "conference_name": meeting.alias, "version": VERSION, "chat_enabled": False,
            "guests_can_present": False, "direct_media": False, "vp9_enabled": False,
            **_ice_servers(node),
        })

    @app.post(base + "/refresh_token")
    async def refresh_token(alias: str, request: Request, session: Session,
                            token: Annotated[str | None, Header()] = None) -> Response:
        node = _node(request)
        fresh, refreshed = node.sessions.refresh(token or "", node.now())
        return ok({"token": fresh, "expires": str(int(node.sessions.lifetime.total_seconds())),
                   "role": "HOST" if refreshed.role is Role.HOST else "GUEST"})

    @app.post(base + "/release_token")
    async def release_token(alias: str, request: Request,
                            token: Annotated[str | None, Header()] = None,
                            token_query: Annotated[str | None, Query(alias="token")] = None
                            ) -> Response:
        node = _node(request)
        session = node.sessions.release(token or token_query or "")
        if session is None:
            return failed(403, "Invalid token")
        await node.rooms.leave(session.meeting_id, session.participant_id, node.now())
        return ok(True)

    @app.get(base + "/theme/")
    async def theme(alias: str, session: Session) -> Response:
        return Response(status_code=204)

    # Event stream

    @app.get(base + "/events")
    async def events(alias: str, request: Request, session: Session) -> StreamingResponse:
        node = _node(request)
        meeting_id, me = session.meeting_id, session.participant_id
        queue = node.rooms.subscribe(meeting_id)
        live = node.rooms.get(meeting_id)
        assert live is not None
        opening = [("conference_update", _conference_status(node, meeting_id)),
                   ("participant_sync_begin", None),
                   *[("participant_create", _view_json(node, meeting_id, p))
                     for p in live.room.participants()],
                   ("participant_sync_end", None)]

        async def stream() -> AsyncIterator[bytes]:
            try:
                for name, data in opening:
                    yield _sse(name, data)
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                    for name, data in _translate(node, meeting_id, me, event):
                        yield _sse(name, data)
                        if name == "disconnect":
                            return
            finally:
                node.rooms.unsubscribe(meeting_id, queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    # Conference

    @app.get(base + "/participants")
    async def participants(alias: str, request: Request, session: Session) -> Response:
        node = _node(request)
        live = node.rooms.act(session.meeting_id)
        return ok([_view_json(node, session.meeting_id, p) for p in live.room.participants()])

    @app.get(base + "/conference_status")
    async def conference_status(alias: str, request: Request, session: Session) -> Response:
        return ok(_conference_status(_node(request), session.meeting_id))

    @app.get(base + "/available_layouts")
    async def layouts(alias: str, session: Session) -> Response:
        return ok(list(available_layouts()))

    async def room_action(request: Request, session: Session, action: str, *args: Any) -> None:
        node = _node(request)
        now = node.now()
        live = node.rooms.act(session.meeting_id)
        getattr(live.room, action)(*args, session.participant_id, now)
        await node.rooms.settle(live, now)

    # Room actions that Pexip answers with ``true``: one route each, the room decides who may.
    def conference_action(path: str, action: str) -> None:
        async def endpoint(alias: str, request: Request, session: Session) -> Response:
            await room_action(request, session, action)
            return ok(True)

        app.post(base + path, name=action)(endpoint)

    def participant_action(path: str, action: str) -> None:
        async def endpoint(alias: str, participant_id: str, request: Request,
                           session: Session) -> Response:
            await room_action(request, session, action, participant_id)
            return ok(True)

        app.post(base + "/participants/{participant_id}" + path, name=action)(endpoint)

    for path, action in (("/lock", "lock"), ("/unlock", "unlock"),
                         ("/muteguests", "mute_guests"), ("/unmuteguests", "unmute_guests"),
                         ("/disconnect", "end")):
        conference_action(path, action)
    for path, action in (("/unlock", "admit"), ("/mute", "mute"), ("/unmute", "unmute")):
        participant_action(path, action)

    @app.post(base + "/transform_layout")
    async def transform_layout(alias: str, request: Request, session: Session,
                               body: Annotated[dict[str, Any], Body()]) -> Response:
        node = _node(request)
        live = node.rooms.act(session.meeting_id)
        if session.role is not Role.HOST:
            raise errors.PermissionDenied("Only a host changes the layout.")
        layout = (body.get("transforms") or {}).get("layout")
        if layout is not None:
            if layout not in available_layouts():
                raise errors.InvalidInput(f"Unknown layout {layout!r}.")
            node.webrtc.set_layout(live.meeting.id, layout)
        return ok(True)

    # Participants

    @app.post(base + "/participants/{participant_id}/role")
    async def set_role(alias: str, participant_id: str, body: RoleRequest, request: Request,
                       session: Session) -> Response:
        if body.role not in ("chair", "guest"):
            return failed(403, "Invalid role")
        role = Role.HOST if body.role == "chair" else Role.GUEST
        await room_action(request, session, "set_role", participant_id, role)
        return ok(True)

    @app.post(base + "/participants/{participant_id}/disconnect")
    async def kick(alias: str, participant_id: str, request: Request,
                   session: Session) -> Response:
        await room_action(request, session, "disconnect", participant_id)
        return ok(None)

    # Calls

    @app.post(base + "/participants/{participant_id}/calls")
    async def start_call(alias: str, participant_id: str, body: CallRequest, request: Request,
                         session: Session) -> Response:
        node = _node(request)
        _own(session, participant_id)
        live = node.rooms.act(session.meeting_id)
        view = live.room.participant(participant_id)
        call_id, answer = await node.webrtc.start(live.meeting, view, body.sdp, node.now())
        node.metrics.call_started(participant_id, node.webrtc.calls[call_id].endpoint)
        return ok({"call_uuid": call_id, "sdp": answer})

    @app.post(base + "/participants/{participant_id}/calls/{call_id}/ack")
    async def ack(alias: str, participant_id: str, call_id: str, request: Request,
                  session: Session) -> Response:
        _own(session, participant_id)
        _node(request).webrtc.call(call_id, participant_id)
        return ok(True)

    @app.post(base + "/participants/{participant_id}/calls/{call_id}/new_candidate")
    async def new_candidate(alias: str, participant_id: str, call_id: str,
                            body: CandidateRequest, request: Request,
                            session: Session) -> Response:
        _own(session, participant_id)
        await _node(request).webrtc.add_candidate(call_id, participant_id, body.candidate,
                                                  body.mid)
        return ok(None)

    @app.post(base + "/participants/{participant_id}/calls/{call_id}/update")
    async def update(alias: str, participant_id: str, call_id: str, body: UpdateRequest,
                     request: Request, session: Session) -> Response:
        _own(session, participant_id)
        if not body.sdp:
            return ok("")
        answer = await _node(request).webrtc.update(call_id, participant_id, body.sdp)
        return ok(answer)

    @app.post(base + "/participants/{participant_id}/calls/{call_id}/disconnect")
    async def hang_up(alias: str, participant_id: str, call_id: str, request: Request,
                      session: Session) -> Response:
        _own(session, participant_id)
        await _node(request).webrtc.end(call_id, participant_id)
        return ok(None)

    return app


def _ice_servers(node: Node) -> dict[str, Any]:
    """The operator's STUN/TURN servers in Pexip's shape; absent keys when there are none (an
    empty ``stun`` list breaks the browser's RTCPeerConnection)."""
    webrtc = node.settings.webrtc
    stun = [{"url": u} for u in webrtc.ice_servers if u.startswith("stun:")]
    turn = [u for u in webrtc.ice_servers if u.startswith(("turn:", "turns:"))]
    servers: dict[str, Any] = {}
    if stun:
        servers["stun"] = stun
    if turn:
        servers["turn"] = [{"urls": turn, "username": webrtc.turn_username or "",
                            "credential": webrtc.turn_credential or ""}]
    return servers


def _own(session: ClientSession, participant_id: str) -> None:
    if session.participant_id != participant_id:
        raise errors.PermissionDenied("A participant may only manage their own calls.")


def _sse(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _translate(node: Node, meeting_id: str, me: str,
               event: RoomEvent) -> list[tuple[str, Any]]:
    if isinstance(event, ParticipantJoined):
        return [("participant_create", _view_json(node, meeting_id, event.view))]
    if isinstance(event, ParticipantUpdated):
        return [("participant_update", _view_json(node, meeting_id, event.view))]
    if isinstance(event, ParticipantLeft):
        if event.participant_id == me:
            return [("disconnect", {"reason": LEAVE_REASONS.get(event.reason,
                                                                "Disconnected")})]
        return [("participant_delete", {"uuid": event.participant_id})]
    if isinstance(event, RoomUpdated):
        return [("conference_update", _conference_status(node, meeting_id))]
    if isinstance(event, RoomEnded):
        return [("disconnect", {"reason": LEAVE_REASONS.get(event.reason, "Disconnected")})]
    return []
