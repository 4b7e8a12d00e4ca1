"""Shared fixtures: a node on a temporary data directory with a hand-driven clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from confnode.booking.principal import StaffRole
from confnode.config import Settings
from confnode.node import Node


class ManualClock:
    """The node's clock, moved only by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when


@dataclass
class Staff:
    token: str
    user_id: str
    org_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        # No per-source rate limit by default: every test client is 127.0.0.1 (the limit has
        # its own tests).
        base: dict[str, Any] = {"data_dir": tmp_path / "node", "http": {"tls": False},
                                "rate_limit_per_minute": 0}
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
async def node(settings_factory: Callable[..., Settings],
               clock: ManualClock) -> AsyncIterator[Node]:
    async with Node(settings_factory(), clock=clock) as started:
        yield started


@pytest.fixture
async def client(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=node.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def admin(node: Node) -> Staff:
    token = node.admin_token_path.read_text().strip()
    return Staff(token, "", "default")


@pytest.fixture
def make_staff(node: Node) -> Callable[..., Any]:
    """Create an organisation (if new) and a user with a role; return their API credentials."""

    async def make(email: str, role: StaffRole = StaffRole.USER, org_id: str = "default",
                   region: str = "Hovedstaden") -> Staff:
        now = node.now()
        try:
            await node.directory.organisation(org_id)
        except Exception:
            await node.directory.create_organisation(org_id, org_id, region, now)
        user = await node.directory.create_user(org_id, email, role, now)
        issued = await node.directory.issue_token(user.user_id, "test", now)
        return Staff(issued.token, user.user_id, org_id)

    return make


def link_path(link: str) -> str:
    """The path of a join link (the test client talks to the app, not the public URL)."""
    return "/" + link.split("/", 3)[3]


@dataclass
class ServedNode:
    node: Node
    url: str
    admin: Staff

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20)


#: What ``served`` overrides: plain HTTP on a free port, a small composed picture.
SERVED_SETTINGS: dict[str, Any] = {"http": {"tls": False, "port": 0},
                                   "media": {"width": 640, "height": 360, "fps": 15}}


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[ServedNode]:
    """A node serving real HTTP on 127.0.0.1 in this event loop, real clock; for a test that
    needs settings the ``served`` fixture does not have (build them from SERVED_SETTINGS)."""
    import asyncio

    from confnode.transport.https import HttpsListener

    node = Node(settings)
    await node.start()
    listener = HttpsListener(node)
    task = asyncio.ensure_future(listener.serve())
    for _ in range(200):
        if listener.bound_port:
            break
        await asyncio.sleep(0.02)
    token = node.admin_token_path.read_text().strip()
    try:
        yield ServedNode(node, f"http://127.0.0.1:{listener.bound_port}", Staff(token, "",
                                                                                 "default"))
    finally:
        listener.stop()
        await asyncio.wait_for(task, 10)
        await node.stop()


@pytest.fixture
async def served(settings_factory: Callable[..., Settings]) -> AsyncIterator[ServedNode]:
    """A node serving real HTTP on 127.0.0.1 (a free port) in this event loop, real clock."""
    async with serving(settings_factory(**SERVED_SETTINGS)) as node:
        yield node
