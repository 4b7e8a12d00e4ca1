"""Booking API load: practice systems and secretaries booking, listing, extending, cancelling.

Target (the measurement issue): >= 1,000 req/s with p99 <= 50 ms on SQLite. The run exits non-zero
when it misses the target (or any request fails), so QA gets pass/fail plus the numbers.

The node must run with its per-source booking rate limit off (``CONFNODE_RATE_LIMIT_PER_MINUTE=0``):
the limit (60/min per address) exists to stop abuse and would otherwise answer most of the load 429.

    CONFNODE_API_TOKEN=$(cat .confnode/admin-token) .venv/bin/locust -f loadtests/booking_api.py \
        --headless -u 40 -r 20 -t 60s --host https://127.0.0.1:8443 --csv results/booking

Environment: CONFNODE_API_TOKEN (required); CONFNODE_CA (certificate to trust; default the node's
self-signed one in .confnode/tls); TARGET_RPS (1000), TARGET_P99_MS (50); TARGETS=off for a smoke
run that only checks the file works.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

from locust import FastHttpUser, between, events, task
from locust.env import Environment

TOKEN = os.environ.get("CONFNODE_API_TOKEN", "")
TARGET_RPS = float(os.environ.get("TARGET_RPS", "1000"))
TARGET_P99_MS = float(os.environ.get("TARGET_P99_MS", "50"))
TARGETS_ON = os.environ.get("TARGETS", "on") != "off"


def _slot() -> tuple[str, str]:
    start = datetime.now(UTC) + timedelta(days=random.randint(1, 30),
                                          minutes=15 * random.randint(0, 40))
    return start.isoformat(), (start + timedelta(minutes=15)).isoformat()


class PracticeSystem(FastHttpUser):
    """A practice system: mostly reads (the day's list), some bookings, few changes."""

    wait_time = between(0.0, 0.05)
    insecure = True  # the embedded node's certificate is self-signed; this is loopback load

    def on_start(self) -> None:
        if not TOKEN:
            raise RuntimeError("set CONFNODE_API_TOKEN")
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.mine: list[str] = []

    @task(5)
    def list_meetings(self) -> None:
        self.client.get("/api/v1/meetings?limit=20", headers=self.headers,
                        name="GET /api/v1/meetings")

    @task(3)
    def book(self) -> None:
        start, end = _slot()
        with self.client.post("/api/v1/meetings", headers=self.headers, name="POST /meetings",
                              json={"subject": "Videokonsultation", "start_time": start,
                                    "end_time": end}, catch_response=True) as response:
            if response.status_code == 201:
                self.mine.append(response.json()["id"])
                response.success()
            else:
                response.failure(f"{response.status_code}")

    @task(2)
    def get_one(self) -> None:
        if self.mine:
            self.client.get(f"/api/v1/meetings/{random.choice(self.mine)}", headers=self.headers,
                            name="GET /meetings/{id}")

    @task(1)
    def book_instant(self) -> None:
        self.client.post("/api/v1/meetings", headers=self.headers, name="POST /meetings instant",
                         json={"subject": "Straks", "meeting_type": "instant"})

    @task(1)
    def move_subject(self) -> None:
        if self.mine:
            self.client.patch(f"/api/v1/meetings/{random.choice(self.mine)}",
                              headers=self.headers, json={"subject": "Opfølgning"},
                              name="PATCH /meetings/{id}")

    @task(1)
    def cancel(self) -> None:
        if self.mine:
            meeting = self.mine.pop(random.randrange(len(self.mine)))
            self.client.delete(f"/api/v1/meetings/{meeting}", headers=self.headers,
                               name="DELETE /meetings/{id}")


@events.quitting.add_listener
def _check_target(environment: Environment, **_kwargs: object) -> None:
    total = environment.stats.total
    p99 = total.get_response_time_percentile(0.99) or 0
    print(f"booking API: {total.num_requests} requests, {total.total_rps:.0f} req/s, "
          f"p50 {total.get_response_time_percentile(0.5):.0f} ms, p95 "
          f"{total.get_response_time_percentile(0.95):.0f} ms, p99 {p99:.0f} ms, "
          f"{total.num_failures} failures")
    if total.num_failures:
        environment.process_exit_code = 1
    elif TARGETS_ON and (total.total_rps < TARGET_RPS or p99 > TARGET_P99_MS):
        print(f"TARGET MISSED: want >= {TARGET_RPS:.0f} req/s and p99 <= {TARGET_P99_MS:.0f} ms")
        environment.process_exit_code = 2
