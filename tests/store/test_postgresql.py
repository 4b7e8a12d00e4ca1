"""The same node on PostgreSQL (asyncpg): migrations, bookings, links, records, peaks, statistics.

A private PostgreSQL cluster is started on 127.0.0.1 for this module (the test command installs
the Debian package). Without PostgreSQL the module is skipped on a developer machine and fails
under CI=true.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import ManualClock
from nodeprocess import free_port

from confnode.config import Settings
from confnode.licensing import LicenceKind
from confnode.node import Node
from confnode.rooms import EndpointType, MediaKind, Role
from confnode.store.records import month_statistics


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root; CI runs as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed (scripts/test.sh installs it)")
        pytest.skip("PostgreSQL is not installed")
    base = tmp_path_factory.mktemp("pg")
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        base.chmod(0o755)
        for parent in base.parents:  # let postgres reach its directory
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
    port = free_port()
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "confnode",
                                 "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True, timeout=120)
    subprocess.run(_as_postgres([
        str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(base / "log"),
        "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=on", "start"]),
        check=True, capture_output=True, timeout=120)
    try:
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "confnode", "confnode"], check=True, capture_output=True, timeout=60)
        yield f"postgresql+asyncpg://confnode@127.0.0.1:{port}/confnode"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "stop"]), capture_output=True, timeout=60, check=False)


@pytest.fixture
async def pg_node(postgres_url: str, settings_factory: Callable[..., Settings],
                  clock: ManualClock):
    async with Node(settings_factory(database_url=postgres_url), clock=clock) as node:
        yield node


async def test_booking_join_records_and_statistics_on_postgresql(
        pg_node: Node, clock: ManualClock) -> None:
    node = pg_node
    token = node.admin_token_path.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=node.app),
                                 base_url="http://testserver") as client:
        booked = await client.post("/api/v1/meetings", headers=headers, json={
            "subject": "PG", "meeting_type": "instant", "guest_pin_required": True})
        assert booked.status_code == 201, booked.text
        b = booked.json()
        link = "/" + b["guest_link"].split("/", 3)[3]
        assert (await client.get(link)).status_code == 200
        listed = (await client.get("/api/v1/meetings", headers=headers)).json()
        assert b["id"] in [m["id"] for m in listed]
        meeting = await node.meetings.get(b["id"])
        assert meeting.created_at.tzinfo is not None
        for pid, role in (("d", Role.HOST), ("p", Role.GUEST)):
            await node.rooms.join(meeting, participant_id=pid, display_name=pid, role=role,
                                  endpoint_type=EndpointType.WEBRTC, protocol="webrtc",
                                  media=[MediaKind.AUDIO, MediaKind.VIDEO], now=clock.now)
            await node.calls.start(meeting, pid, endpoint_type="webrtc", protocol="webrtc",
                                   codec="VP8", licence=LicenceKind.PORT, now=clock.now)
        clock.advance(minutes=12)
        await node.rooms.leave(meeting.id, "p", clock.now)
        await node.rooms.leave(meeting.id, "d", clock.now)
        # Peaks keep the maximum (ON CONFLICT … GREATEST on PostgreSQL).
        await node.records.raise_peak("2026-11-23", LicenceKind.PORT, 1)
        assert ("2026-11-23", "port", 2) in await node.records.peaks()
        stats = await month_statistics(node.records, 2026, 11, node.settings.tz,
                                       clock.now + timedelta(minutes=1))
        assert stats.consultations >= 1
        assert any(o.consultation_minutes == 12.0 for o in stats.organisations)
        assert await node.records.holds() == []
