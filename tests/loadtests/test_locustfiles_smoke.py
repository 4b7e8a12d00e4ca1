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
    """Every room mix in one short headless run (targets off: two cores running a node and
    twelve bots measure the machine, not the node): each mix's events reach the CSV, the summary
    prints its PASS/FAIL table, and the exit code is the one the targets imply (0 when off)."""
    sip_port = free_port()
    node = NodeProcess(tmp_path / "data", CONFNODE_LOG_LEVEL="WARNING",
                       CONFNODE_RATE_LIMIT_PER_MINUTE="0",
                       CONFNODE_SIP__PORT=str(sip_port)).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOADTESTS / "media_calls.py"),
             *MEDIA_MIXES, "--headless", "-u", "4", "-r", "4", "-t", "15s", "--host", node.url,
             "--csv", str(tmp_path / "media"), "--only-summary", "--stop-timeout", "10"],
            env={**os.environ, "CONFNODE_API_TOKEN": node.token, "TARGETS": "off",
                 "CALIBRATION_SECONDS": "3",
                 "CONFNODE_SIP_PORT": str(sip_port), "CONFNODE_CA": node.cert},
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        node.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "media load: targets" in output and "node CPU:" in output
    with (tmp_path / "media_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    for mix in ("1:1", "SIP-WebRTC", "4-party audio", "4-party video"):
        for name in ("join", "added-latency audio", "audio frame"):
            row = rows.get(f"{mix}: {name}", {"Request Count": "0"})
            assert int(row["Request Count"]) > 0, (mix, name, output[-3000:])
        assert int(rows[f"{mix}: join"]["Failure Count"]) == 0
    for mix in ("1:1", "4-party video"):
        assert int(rows[f"{mix}: added-latency video"]["Request Count"]) > 0, output[-3000:]
