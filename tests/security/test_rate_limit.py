"""Per-source rate limits: the core exactly, and the node answering 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from confnode.node import Node
from confnode.security.rate_limit import RateLimiter, limited_kind


def test_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(per_minute=60, burst=3)
    assert [limiter.allow("10.0.0.1", "token", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow("10.0.0.1", "token", 0.0) == 1.0  # one per second from now on
    assert limiter.allow("10.0.0.2", "token", 0.0) == 0.0  # other sources are not affected
    assert limiter.allow("10.0.0.1", "booking", 0.0) == 0.0  # nor other endpoint classes
    assert limiter.allow("10.0.0.1", "token", 0.5) == 0.5
    assert limiter.allow("10.0.0.1", "token", 1.0) == 0.0


def test_which_requests_are_limited() -> None:
    assert limited_kind("POST", "/api/client/v2/conferences/123/request_token") == "token"
    assert limited_kind("POST", "/api/v1/meetings") == "booking"
    assert limited_kind("POST", "/q/abc/tickets") == "ticket"
    assert limited_kind("GET", "/api/v1/meetings") is None
    assert limited_kind("POST", "/api/client/v2/conferences/1/participants/p/calls") is None


async def test_node_answers_429_past_the_limit(settings_factory: Callable[..., Any]) -> None:
    async with Node(settings_factory(rate_limit_per_minute=6, rate_limit_burst=2)) as node:
        token = node.admin_token_path.read_text().strip()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=node.app),
                                     base_url="http://t") as http:
            statuses = [(await http.post(
                "/api/v1/meetings", headers={"Authorization": f"Bearer {token}"},
                json={"subject": "x", "meeting_type": "instant"})).status_code
                for _ in range(3)]
            assert statuses == [201, 201, 429]
            tries = [await http.post("/api/client/v2/conferences/000/request_token",
                                     json={"display_name": "guess"}) for _ in range(3)]
            assert [t.status_code for t in tries] == [404, 404, 429]
            assert int(tries[-1].headers["retry-after"]) >= 1
            assert (await http.get("/api/v1/meetings", headers={
                "Authorization": f"Bearer {token}"})).status_code == 200  # reads unaffected
