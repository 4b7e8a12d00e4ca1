"""``confnode capacity --quick``: the media engine really runs, and the answer is sane."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

KINDS = ("passthrough", "audio", "sd", "hd", "full_hd")


def capacity(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confnode.cli", "capacity", "--quick",
         "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True, text=True, timeout=120, check=False)


def test_prints_five_estimates_and_a_progress_bar(tmp_path: Path) -> None:
    done = capacity(tmp_path, "--seconds", "1.2")  # only the shape matters here
    assert done.returncode == 0, done.stderr
    rows = {}
    for name in ("passthrough 1:1", "audio-only", "SD 448p", "HD 720p", "Full-HD 1080p"):
        match = re.search(rf"^{re.escape(name)}\s+(\d+)\s", done.stdout, re.MULTILINE)
        assert match, (name, done.stdout)
        rows[name] = int(match.group(1))
    assert all(calls > 0 for calls in rows.values()), rows
    assert "] 100%" in done.stderr and "#" in done.stderr


def test_json_shape_and_cost_ordering(tmp_path: Path) -> None:
    done = capacity(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"cores", "headroom", "call_types", "fps", "codec", "room_size",
                           "measured_seconds"}
    assert report["cores"] >= 1 and 0 < report["headroom"] <= 1
    types = report["call_types"]
    assert set(types) == set(KINDS)
    for kind in KINDS:
        entry = types[kind]
        assert set(entry) == {"cpu_seconds_per_call_second", "calls_per_core", "max_calls",
                              "hd_units", "measured_hd_units"}
        assert isinstance(entry["max_calls"], int) and entry["max_calls"] > 0
        assert entry["cpu_seconds_per_call_second"] > 0
    cost = {kind: types[kind]["cpu_seconds_per_call_second"] for kind in KINDS}
    # Each picture size is a composed picture plus the smaller one's work, and audio is codec
    # work on 20 ms frames: far below any video.
    assert cost["full_hd"] > cost["hd"] > cost["sd"] > cost["audio"] > cost["passthrough"]
    assert types["hd"]["measured_hd_units"] == 1.0


def test_bad_seconds_is_a_usage_error(tmp_path: Path) -> None:
    done = capacity(tmp_path, "--seconds", "-1")
    assert done.returncode == 2 and "--seconds" in done.stderr
