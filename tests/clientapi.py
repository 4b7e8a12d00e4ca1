"""A Pexip client API v2 client for tests: what a browser app does, over HTTP, with an aiortc bot
for media."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from bots import MediaBot

if TYPE_CHECKING:
    from conftest import ServedNode


@dataclass
class ClientParticipant:
    http: httpx.AsyncClient
    alias: str
    token: str
    uuid: str
    role: str
    service_type: str
    bot: MediaBot | None = None
    call_uuid: str | None = None
    events: list[tuple[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"/api/client/v2/conferences/{self.alias}"

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.http.post(f"{self.base}/{path}", headers={"token": self.token},
                                    json=body)

    async def start_events(self) -> None:
        opened = asyncio.Event()

        async def read() -> None:
            async with self.http.stream("GET", f"{self.base}/events",
                                        params={"token": self.token}) as response:
                opened.set()
                name = None
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        self.events.append((name, json.loads(line[6:])))
                        name = None

        self._reader = asyncio.ensure_future(read())
        await asyncio.wait_for(opened.wait(), 5)

    async def call(self, bot: MediaBot) -> httpx.Response:
        self.bot = bot
        response = await self.post(f"participants/{self.uuid}/calls",
                                   {"call_type": "WEBRTC", "sdp": await bot.offer(),
                                    "media_type": "video"})
        if response.status_code == 200:
            result = response.json()["result"]
            self.call_uuid = result["call_uuid"]
            await bot.accept(result["sdp"])
            ack = await self.post(f"participants/{self.uuid}/calls/{self.call_uuid}/ack", {})
            assert ack.json() == {"status": "success", "result": True}
        return response

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.bot is not None:
            await self.bot.close()


async def request_token(http: httpx.AsyncClient, alias: str, name: str,
                        pin: str | None = None) -> httpx.Response:
    headers = {"pin": pin} if pin else {}
    return await http.post(f"/api/client/v2/conferences/{alias}/request_token",
                           json={"display_name": name, "chosen_idp": "none",
                                 "direct_media": True, "sso_token": "none"}, headers=headers)


async def join(http: httpx.AsyncClient, alias: str, name: str,
               pin: str | None = None) -> ClientParticipant:
    response = await request_token(http, alias, name, pin)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    return ClientParticipant(http, alias, result["token"], result["participant_uuid"],
                             result["role"], result["current_service_type"])


async def book(served: ServedNode, **extra: Any) -> dict[str, Any]:
    """An instant meeting booked through the API by the node's admin."""
    async with served.http() as http:
        response = await http.post("/api/v1/meetings", headers=served.admin.headers,
                                   json={"subject": "Konsultation", "meeting_type": "instant",
                                         **extra})
    assert response.status_code == 201, response.text
    return response.json()


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


async def wait_for(condition: Callable[[], object], message: str = "condition not met in time",
                   seconds: float = 10.0) -> None:
    """Poll ``condition`` every 50 ms, at most ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(message)
