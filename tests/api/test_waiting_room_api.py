"""The clinic's virtual waiting room over HTTP, including the 'call me when ready' webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import Staff, link_path

from confnode.node import Node


async def take_number(client: httpx.AsyncClient, queue_link: str,
                      call_when_ready: bool = False) -> dict[str, Any]:
    response = await client.post(f"{link_path(queue_link)}/tickets",
                                 json={"call_when_ready": call_when_ready})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def queue_link(client: httpx.AsyncClient, admin: Staff) -> str:
    response = await client.post("/api/v1/queue/link", headers=admin.headers)
    assert response.status_code == 200
    return str(response.json()["queue_link"])


class WebhookReceiver:
    """A real HTTP server on loopback standing in for the practice system."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = await reader.readexactly(length)
        await self.received.put(json.loads(body))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/called"


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    yield receiver
    receiver.server.close()
    await receiver.server.wait_closed()


async def test_closed_queue_refuses_patients(client: httpx.AsyncClient, queue_link: str) -> None:
    response = await client.post(f"{link_path(queue_link)}/tickets", json={})
    assert response.status_code == 409 and response.json()["error"] == "queue_closed"


async def test_positions_start_next_and_notification(client: httpx.AsyncClient, admin: Staff,
                                                     queue_link: str) -> None:
    assert (await client.post("/api/v1/queue/open", headers=admin.headers)).json()["state"] == \
        "open"
    first = await take_number(client, queue_link)
    second = await take_number(client, queue_link)
    third = await take_number(client, queue_link)
    assert [t["position"] for t in (first, second, third)] == [1, 2, 3]
    assert [t["number"] for t in (first, second, third)] == [1, 2, 3]

    clinic = (await client.get("/api/v1/queue", headers=admin.headers)).json()
    assert [(w["number"], w["position"]) for w in clinic["waiting"]] == [(1, 1), (2, 2), (3, 3)]

    started = await client.post("/api/v1/queue/start", headers=admin.headers, json={})
    assert started.status_code == 200, started.text
    booking = started.json()
    assert booking["meeting_type"] == "waiting_room" and booking["status"] == "open"

    called = (await client.get(first["status_url"])).json()
    assert called["state"] == "called" and called["join_link"] == booking["guest_link"]
    # The join link really opens the new room, as a guest.
    joined = await client.get(link_path(called["join_link"]))
    assert joined.status_code == 200 and joined.json()["role"] == "guest"
    assert (await client.get(second["status_url"])).json()["position"] == 1
    assert (await client.get(third["status_url"])).json()["position"] == 2

    # A chosen patient (number 3) before number 2.
    chosen = await client.post("/api/v1/queue/start", headers=admin.headers, json={"number": 3})
    assert chosen.status_code == 200
    assert (await client.get(third["status_url"])).json()["state"] == "called"
    assert (await client.get(second["status_url"])).json()["position"] == 1
    assert chosen.json()["alias"] != booking["alias"]  # a new room for every consultation


async def test_close_keep_and_flush(client: httpx.AsyncClient, admin: Staff,
                                    queue_link: str) -> None:
    await client.post("/api/v1/queue/open", headers=admin.headers)
    a = await take_number(client, queue_link)
    b = await take_number(client, queue_link)
    kept = await client.post("/api/v1/queue/close", headers=admin.headers, json={"mode": "keep"})
    assert kept.json()["state"] == "closed" and len(kept.json()["waiting"]) == 2
    refused = await client.post(f"{link_path(queue_link)}/tickets", json={})
    assert refused.status_code == 409
    # The clinic still works through who is waiting.
    assert (await client.post("/api/v1/queue/start", headers=admin.headers,
                              json={})).status_code == 200
    flushed = await client.post("/api/v1/queue/close", headers=admin.headers,
                                json={"mode": "flush"})
    assert flushed.json()["waiting"] == []
    assert (await client.get(a["status_url"])).json()["state"] == "called"
    assert (await client.get(b["status_url"])).json()["state"] == "removed"
    empty = await client.post("/api/v1/queue/start", headers=admin.headers, json={})
    assert empty.status_code == 409


async def test_patient_leaves_and_positions_move(client: httpx.AsyncClient, admin: Staff,
                                                 queue_link: str) -> None:
    await client.post("/api/v1/queue/open", headers=admin.headers)
    a = await take_number(client, queue_link)
    b = await take_number(client, queue_link)
    left = await client.delete(a["status_url"])
    assert left.json()["state"] == "removed"
    assert (await client.get(b["status_url"])).json()["position"] == 1


async def test_position_updates_stream_as_server_sent_events(
        client: httpx.AsyncClient, admin: Staff, queue_link: str) -> None:
    await client.post("/api/v1/queue/open", headers=admin.headers)
    await take_number(client, queue_link)
    watched = await take_number(client, queue_link)
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async with client.stream("GET", f"{watched['status_url']}/events") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))

    watcher = asyncio.create_task(watch())
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.01)
    await client.post("/api/v1/queue/start", headers=admin.headers, json={})
    await client.post("/api/v1/queue/start", headers=admin.headers, json={})
    await asyncio.wait_for(watcher, 5)
    assert [(s["state"], s["position"]) for s in seen] == [
        ("waiting", 2), ("waiting", 1), ("called", None)]
    assert seen[-1]["join_link"].startswith("http")


async def test_call_when_ready_sends_the_webhook(client: httpx.AsyncClient, admin: Staff,
                                                 queue_link: str,
                                                 webhook: WebhookReceiver) -> None:
    assert (await client.put("/api/v1/webhook", headers=admin.headers,
                             json={"url": webhook.url})).status_code == 200
    await client.post("/api/v1/queue/open", headers=admin.headers)
    ticket = await take_number(client, queue_link, call_when_ready=True)
    started = (await client.post("/api/v1/queue/start", headers=admin.headers, json={})).json()
    payload = await asyncio.wait_for(webhook.received.get(), 5)
    assert payload == {"event": "patient_called", "ticket_number": ticket["number"],
                       "join_link": started["guest_link"]}


async def test_queue_links_are_capabilities(client: httpx.AsyncClient, admin: Staff,
                                            node: Node, queue_link: str) -> None:
    assert (await client.post("/q/AAAAAAAAAAAAAAAAAAAAAA/tickets", json={})).status_code == 404
    renewed = (await client.post("/api/v1/queue/link", headers=admin.headers)).json()
    await client.post("/api/v1/queue/open", headers=admin.headers)
    assert (await client.post(f"{link_path(queue_link)}/tickets", json={})).status_code == 404
    assert (await client.post(f"{link_path(renewed['queue_link'])}/tickets",
                              json={})).status_code == 201
