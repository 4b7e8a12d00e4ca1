"""The clinic's virtual waiting room over HTTP (the "Min Læge" patient queue).

Clinic side (API token, own organisation): open, close keeping or flushing the queue, see who is
waiting (numbers only), start the next or a chosen patient. Patient side (capability links only, no
account): take a number through the clinic's queue link, watch the position (JSON or Server-Sent
Events) and receive the join link when called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from confnode.api.auth import CurrentPrincipal, node_of
from confnode.api.schemas import (
    BookingOut,
    QueueClose,
    QueueStart,
    TicketCreate,
    TicketUpdate,
)
from confnode.rooms.waiting_room import CloseMode

router = APIRouter(tags=["waiting room"])

SSE_KEEPALIVE_SECONDS = 15.0


def _queue_view(request: Request, org_id: str) -> dict[str, Any]:
    node = node_of(request)
    queue = node.queues.queue(org_id)
    return {"state": queue.state.value,
            "waiting": [{"number": t.number, "position": i + 1, "taken_at": t.taken_at,
                         "call_when_ready": t.call_when_ready}
                        for i, t in enumerate(node.queues.waiting(org_id))]}


@router.get("/api/v1/queue", summary="The clinic's queue as the clinic sees it")
async def clinic_queue(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    return _queue_view(request, principal.org_id)


@router.post("/api/v1/queue/open", summary="Open the queue to patients")
async def open_queue(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    node_of(request).queues.open(principal.org_id, node_of(request).now())
    return _queue_view(request, principal.org_id)


@router.post("/api/v1/queue/close", summary="Close the queue, keeping or removing who waits")
async def close_queue(body: QueueClose, request: Request,
                      principal: CurrentPrincipal) -> dict[str, Any]:
    node_of(request).queues.close(principal.org_id, CloseMode(body.mode), node_of(request).now())
    return _queue_view(request, principal.org_id)


@router.post("/api/v1/queue/start", response_model=BookingOut,
             summary="Start a consultation with the next (or a chosen) patient")
async def start_consultation(body: QueueStart, request: Request,
                             principal: CurrentPrincipal) -> BookingOut:
    node = node_of(request)
    started = await node.queues.start(principal, node.now(), body.number)
    booking = started.booking
    return BookingOut.of_booking(booking, booking.meeting.status_at(node.now()))


@router.post("/api/v1/queue/link", summary="Issue the clinic's patient queue link (revokes "
             "the previous one)")
async def new_queue_link(request: Request, principal: CurrentPrincipal) -> dict[str, str]:
    principal.ensure_admin()
    return {"queue_link": await node_of(request).queues.new_queue_link(principal.org_id)}


@router.post("/q/{queue_token}/tickets", status_code=201,
             summary="A patient takes a number in the clinic's queue")
async def take_ticket(queue_token: str, body: TicketCreate, request: Request) -> dict[str, Any]:
    node = node_of(request)
    org_id = await node.queues.org_for_link(queue_token)
    token, ticket = node.queues.take_place(org_id, node.now(),
                                           call_when_ready=body.call_when_ready)
    return {"ticket": token, "status_url": f"/q/tickets/{token}", **ticket.status()}


@router.get("/q/tickets/{ticket_token}", summary="A patient's place in the queue")
async def ticket_status(ticket_token: str, request: Request) -> dict[str, Any]:
    return node_of(request).queues.ticket(ticket_token).status()


@router.patch("/q/tickets/{ticket_token}", summary="Switch to or from 'call me when ready'")
async def update_ticket(ticket_token: str, body: TicketUpdate,
                        request: Request) -> dict[str, Any]:
    node = node_of(request)
    return node.queues.set_call_when_ready(ticket_token, node.now(),
                                           body.call_when_ready).status()


@router.delete("/q/tickets/{ticket_token}", summary="Leave the queue")
async def leave_queue(ticket_token: str, request: Request) -> dict[str, Any]:
    node = node_of(request)
    node.queues.leave(ticket_token, node.now())
    return node.queues.ticket(ticket_token).status()


@router.get("/q/tickets/{ticket_token}/events", summary="Position updates as Server-Sent Events")
async def ticket_events(ticket_token: str, request: Request) -> StreamingResponse:
    queues = node_of(request).queues
    watcher = queues.watch(ticket_token)

    async def stream() -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    status = await asyncio.wait_for(watcher.get(), SSE_KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield f"event: ticket\ndata: {json.dumps(status)}\n\n".encode()
                if status["state"] != "waiting":
                    return
        finally:
            queues.unwatch(ticket_token, watcher)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
