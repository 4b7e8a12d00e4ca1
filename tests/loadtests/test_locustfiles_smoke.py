"""Every locustfile runs (briefly, targets off) against a real node, so none can rot."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nodeprocess import NodeProcess, free_port

pytestmark = pytest.mark.subprocess

LOADTESTS = Path(__file__).parents[2] / "loadtests"


def test_booking_api_locustfile_smoke(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data", CONFNODE_LOG_LEVEL="WARNING",
                       CONFNODE_RATE_LIMIT_PER_MINUTE="0").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOADTESTS / "booking_api.py"),
             "--headless", "-u", "5", "-r", "5", "-t", "5s", "--host", node.url,
             "--csv", str(tmp_path / "booking"), "--only-summary"],
            env={**os.environ, "CONFNODE_API_TOKEN": node.token, "TARGETS": "off"},
            capture_output=True, text=True, timeout=90, check=False)
    finally:
        node.stop()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "booking API:" in result.stdout + result.stderr
    with (tmp_path / "booking_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert int(rows["Aggregated"]["Request Count"]) > 20
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert "POST /meetings" in rows


MEDIA_MIXES = ("OneToOneCall", "SipWebRtcCall", "FourPartyAudio", "FourPartyVideo")


def test_media_calls_locustfile_smoke(tmp_path: Path) -> None:
    """Every room mix in one short headless run with its targets on: each mix's events reach
    the CSV, the summary prints a PASS/FAIL row per target with the CSV's own p95, and the exit
    code is the one the table implies (2 when any target is missed, else 0). Whether the targets
    are met is not asserted: two busy cores running a node and twelve bots measure the machine."""
    sip_port = free_port()
    node = NodeProcess(tmp_path / "data", CONFNODE_LOG_LEVEL="WARNING",
                       CONFNODE_RATE_LIMIT_PER_MINUTE="0",
                       CONFNODE_SIP__PORT=str(sip_port)).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOADTESTS / "media_calls.py"),
             *MEDIA_MIXES, "--headless", "-u", "4", "-r", "4", "-t", "15s", "--host", node.url,
             "--csv", str(tmp_path / "media"), "--only-summary", "--stop-timeout", "10"],
            env={**os.environ, "CONFNODE_API_TOKEN": node.token, "CALIBRATION_SECONDS": "3",
                 "CONFNODE_SIP_PORT": str(sip_port), "CONFNODE_CA": node.cert},
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        node.stop()
    output = result.stdout + result.stderr
    table = [line.strip() for line in output.splitlines() if line.endswith(("PASS", "FAIL"))]
    assert table and "node CPU:" in output, output[-3000:]
    with (tmp_path / "media_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    join_failed = any(int(row["Failure Count"]) for name, row in rows.items()
                      if name.endswith(": join"))
    expected = 2 if any(row.endswith("FAIL") for row in table) else 1 if join_failed else 0
    assert result.returncode == expected, (result.returncode, output[-3000:])
    for mix in ("1:1", "SIP-WebRTC", "4-party audio", "4-party video"):
        for name in ("join", "added-latency audio", "audio frame"):
            row = rows.get(f"{mix}: {name}", {"Request Count": "0"})
            assert int(row["Request Count"]) > 0, (mix, name, output[-3000:])
        # At least one room of each mix joined (a loaded machine can time a join out; that
        # shows in the exit code, checked above).
        joins, failed = (int(rows[f"{mix}: join"][c]) for c in ("Request Count", "Failure Count"))
        assert joins > failed, output[-3000:]
        join_row = next(r for r in table if r.startswith(mix) and "join p95" in r)
        assert float(join_row.split()[-5]) == float(rows[f"{mix}: join"]["95%"]), join_row
    for mix in ("1:1", "4-party video"):
        assert int(rows[f"{mix}: added-latency video"]["Request Count"]) > 0, output[-3000:]
    assert int(rows["1:1: added-latency audio packets"]["Request Count"]) > 0, output[-3000:]
