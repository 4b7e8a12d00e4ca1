"""A booking answered 201 survives ``kill -9`` of the node (SQLite WAL, synchronous=FULL)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from nodeprocess import NodeProcess

pytestmark = pytest.mark.subprocess

WRITERS = 4
MAX_REQUESTS_PER_WRITER = 150
KILL_AFTER_SECONDS = 1.5


def test_bookings_answered_201_survive_kill_9(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data", CONFNODE_RATE_LIMIT_PER_MINUTE="0").start()
    confirmed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        with node.client() as client:
            for i in range(MAX_REQUESTS_PER_WRITER):
                if stop.is_set():
                    return
                try:
                    response = client.post("/api/v1/meetings", json={
                        "subject": f"Durability {n}-{i}", "meeting_type": "instant"})
                except httpx.HTTPError:
                    return  # the node died mid-request: that booking was never confirmed
                if response.status_code == 201:
                    with lock:
                        confirmed.append(response.json()["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(KILL_AFTER_SECONDS)
    node.kill9()  # while the writers are still booking
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(confirmed) >= 10, "too few bookings before the kill to prove anything"

    restarted = NodeProcess(tmp_path / "data", port=node.port,
                            CONFNODE_RATE_LIMIT_PER_MINUTE="0").start()
    try:
        with restarted.client() as client:
            stored = {m["id"] for offset in range(0, 2000, 500) for m in client.get(
                "/api/v1/meetings", params={"limit": 500, "offset": offset}).json()}
        assert set(confirmed) <= stored
        db = sqlite3.connect(tmp_path / "data" / "confnode.db")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
    finally:
        assert restarted.stop() == 0
