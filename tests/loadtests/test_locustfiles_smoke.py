"""Every locustfile runs (briefly, targets off) against a real node, so none can rot."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nodeprocess import NodeProcess

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
