"""The booking API in-process (ASGI, SQLite): what one booking costs the node, without sockets.

Run: .venv/bin/pytest bench --benchmark-only
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from confnode.config import HttpSettings, Settings
from confnode.node import Node


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient,
                                               dict[str, str]]]:
    loop = asyncio.new_event_loop()
    # Rate limiting off: a benchmark sends thousands of requests from one address, and a 429
    # would be measured instead of a booking.
    node = Node(Settings(data_dir=tmp_path, http=HttpSettings(tls=False),
                         rate_limit_per_minute=0))
    loop.run_until_complete(node.start())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=node.app),
                               base_url="http://bench")
    headers = {"Authorization": f"Bearer {node.admin_token_path.read_text().strip()}"}
    yield loop, client, headers
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(node.stop())
    loop.close()


def test_book_instant_meeting(benchmark: BenchmarkFixture, running: tuple) -> None:  # type: ignore[type-arg]
    loop, client, headers = running

    def book() -> int:
        response = loop.run_until_complete(client.post(
            "/api/v1/meetings", headers=headers,
            json={"subject": "Bench", "meeting_type": "instant"}))
        return response.status_code

    assert benchmark(book) == 201


def test_resolve_join_link(benchmark: BenchmarkFixture, running: tuple) -> None:  # type: ignore[type-arg]
    loop, client, headers = running
    booked = loop.run_until_complete(client.post(
        "/api/v1/meetings", headers=headers, json={"subject": "Bench", "meeting_type": "instant"}))
    path = "/" + booked.json()["guest_link"].split("/", 3)[3]

    def resolve() -> int:
        return loop.run_until_complete(client.get(path)).status_code

    assert benchmark(resolve) == 200
