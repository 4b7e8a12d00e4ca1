"""Per-source rate limits on the endpoints that spend secrets or resources: booking, client
tokens (PIN guessing) and patient queue tickets.

A token bucket per (source address, endpoint class): ``burst`` requests at once, refilled at
``per_minute``. Pure (``now`` is a parameter) and bounded in memory: idle buckets are forgotten.
The ASGI shell answers 429 with ``Retry-After`` before the request reaches any handler.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_BUCKETS = 50_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def allow(self, source: str, kind: str, now: float) -> float:
        """0.0 if the request may pass (and is counted), else seconds until it would."""
        key = (source, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()


def limited_kind(method: str, path: str) -> str | None:
    """Which limit a request counts against, if any."""
    if method == "POST" and path.endswith("/request_token"):
        return "token"
    if method == "POST" and (path == "/api/v1/meetings" or path == "/api/v1/permanent-rooms"):
        return "booking"
    if method == "POST" and path.startswith("/q/") and path.endswith("/tickets"):
        return "ticket"
    return None


class RateLimit:
    """ASGI middleware around a ``RateLimiter``; a limiter of ``None`` lets everything pass."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limiter = limiter
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = (limited_kind(scope["method"], scope["path"])
                if scope["type"] == "http" and self.limiter is not None else None)
        if kind is not None:
            assert self.limiter is not None
            client = scope.get("client")
            wait = self.limiter.allow(client[0] if client else "unknown", kind, self.clock())
            if wait > 0:
                body = json.dumps({"error": "rate_limited",
                                   "message": "Too many requests from this address; "
                                              "try again shortly."}).encode()
                await send({"type": "http.response.start", "status": 429, "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(math.ceil(wait)).encode()),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
