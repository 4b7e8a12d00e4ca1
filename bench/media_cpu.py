"""Node CPU per call-second for the three room shapes that matter, plus join time and added latency.

A real ``confnode serve`` process (HTTP on loopback) serves aiortc bots that run in this process;
the node's own CPU is read from /proc/<pid>/stat, so the bots' CPU does not count. Each scenario
runs its bots for a warm-up, then measures for ``--seconds``.

    .venv/bin/python bench/media_cpu.py --seconds 20

Prints one line per scenario: calls, node CPU-seconds per call-second, and the node's own
join-time and added-latency histograms (p50/p95 from /metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from baresip import Baresip
from bots import MediaBot
from clientapi import ClientParticipant, join
from nodeprocess import NodeProcess, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def histogram_quantiles(metrics: str, name: str, labels: str) -> tuple[float, float] | None:
    """p50/p95 upper bounds from a Prometheus histogram's buckets, for the given labels."""
    wanted = set(labels.split(","))
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if not line.startswith(f"{name}_bucket{{"):
            continue
        label_text, value = line[len(name) + 8:].rsplit("}", 1)
        pairs = set(label_text.split(","))
        le = next(p for p in pairs if p.startswith("le="))[4:-1]
        if wanted <= pairs:
            buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]

    def quantile(q: float) -> float:
        return next(le for le, count in buckets if count >= q * total)

    return quantile(0.5), quantile(0.95)


def node_cpu_counters(metrics: str) -> tuple[float, dict[str, float]]:
    """The node's own accounting: CPU-seconds while carrying calls, call-seconds per type."""
    cpu, seconds = 0.0, {}
    for line in metrics.splitlines():
        if line.startswith("confnode_cpu_seconds_in_calls_total "):
            cpu = float(line.split()[1])
        elif line.startswith('confnode_call_seconds_total{call_type="'):
            label, value = line[len('confnode_call_seconds_total{call_type="'):].split('"} ')
            seconds[label] = float(value)
    return cpu, seconds


async def node_own_figure(node: NodeProcess, before: str) -> str:
    """The node's own CPU-s per call-second over the same window as the /proc figure."""
    after = await metrics_text(node)
    (cpu0, s0), (cpu1, s1) = node_cpu_counters(before), node_cpu_counters(after)
    types = {k: v - s0.get(k, 0.0) for k, v in s1.items() if v - s0.get(k, 0.0) > 0}
    total = sum(types.values())
    if not total:
        return "; node's own figure: no call-seconds"
    shown = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(types.items()))
    return (f"; node's own figure (confnode_cpu_seconds_in_calls_total / "
            f"confnode_call_seconds_total): {(cpu1 - cpu0) / total:.4f} ({shown})")


async def metrics_text(node: NodeProcess) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        return (await http.get(f"{node.url}/metrics")).text


async def scenario(node: NodeProcess, name: str, parties: int, *, video: bool,
                   seconds: float) -> str:
    async with httpx.AsyncClient(base_url=node.url, timeout=30, verify=False) as http:
        booked = (await http.post("/api/v1/meetings",
                                  headers={"Authorization": f"Bearer {node.token}"},
                                  json={"subject": name, "meeting_type": "instant",
                                        "guests_wait_for_host": False})).json()
        alias = booked["guest_link"].rsplit("/", 1)[1]
        people: list[ClientParticipant] = []
        try:
            for i in range(parties):
                person = await join(http, alias, f"bot{i}")
                bot = MediaBot(f"bot{i}", tone=300 + 150 * i, luma=40 + 50 * i if video else None)
                response = await person.call(bot)
                assert response.status_code == 200, response.text
                people.append(person)
            await asyncio.sleep(5)  # warm-up: ICE, DTLS, first keyframes
            assert node.process is not None
            before = await metrics_text(node)
            start_cpu, start = cpu_seconds(node.process.pid), time.monotonic()
            await asyncio.sleep(seconds)
            used, elapsed = cpu_seconds(node.process.pid) - start_cpu, time.monotonic() - start
            own = await node_own_figure(node, before)
            received = sum(len(p.bot.received.audio) for p in people if p.bot)
        finally:
            for person in people:
                await person.post("release_token", {})
                await person.close()
    per_call_second = used / (parties * elapsed)
    return (f"{name}: {parties} calls, node {used:.2f} CPU-s in {elapsed:.1f} s = "
            f"{per_call_second:.4f} CPU-s per call-second "
            f"({1 / per_call_second:.0f} such calls per core); bots received {received} audio "
            f"frames{own}")


async def sip_scenario(node: NodeProcess, sip_port: int, seconds: float,
                       codec: str = "pcmu") -> str:
    """baresip (``codec``, SDES-SRTP over TLS) and an Opus browser bot: a transcoded call."""
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        booked = (await http.post("/api/v1/meetings",
                                  headers={"Authorization": f"Bearer {node.token}"},
                                  json={"subject": "sip", "meeting_type": "instant",
                                        "guests_wait_for_host": False})).json()
        person = await join(http, booked["guest_link"].rsplit("/", 1)[1], "browser")
        # baresip's aufile source plays at the file's rate: G.722 wants a 16 kHz file.
        rate = 16000 if codec.startswith("g722") else 8000
        phone = Baresip(node.data_dir.parent / f"baresip-{codec.split('/')[0]}",
                        ca_file=Path(node.cert), codecs=codec, tone_rate=rate)
        try:
            assert (await person.call(MediaBot("browser", tone=660))).status_code == 200
            phone.dial(f"sip:{booked['alias']}@127.0.0.1:{sip_port};transport=tls",
                       seconds=int(seconds) + 10)
            await asyncio.sleep(5)
            assert node.process is not None
            before = await metrics_text(node)
            start_cpu, start = cpu_seconds(node.process.pid), time.monotonic()
            await asyncio.sleep(seconds)
            used, elapsed = cpu_seconds(node.process.pid) - start_cpu, time.monotonic() - start
            own = await node_own_figure(node, before)
        finally:
            phone.stop()
            await person.post("release_token", {})
            await person.close()
    per_call_second = used / (2 * elapsed)
    name = codec.split("/")[0].upper()
    return (f"SIP audio (baresip {name}/SRTP) <-> WebRTC Opus: 2 calls, node "
            f"{used:.2f} CPU-s in {elapsed:.1f} s = {per_call_second:.4f} CPU-s per call-second "
            f"({1 / per_call_second:.0f} such calls per core){own}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sip_port = free_port()
        node = NodeProcess(Path(tmp) / "data", CONFNODE_HTTP__TLS="false",
                           CONFNODE_LOG_LEVEL="WARNING", CONFNODE_SIP__PORT=str(sip_port),
                           CONFNODE_RATE_LIMIT_PER_MINUTE="0").start()
        try:
            lines = [
                await scenario(node, "1:1 passthrough (VP8+Opus)", 2, video=True,
                               seconds=args.seconds),
                await scenario(node, "4-party mixed audio (Opus)", 4, video=False,
                               seconds=args.seconds),
                await scenario(node, "4-party composed 720p (VP8+Opus)", 4, video=True,
                               seconds=args.seconds),
                await sip_scenario(node, sip_port, args.seconds),
                # baresip registers G.722 as G722/16000/1; plain "g722" would not match it.
                await sip_scenario(node, sip_port, args.seconds, codec="g722/16000/1"),
            ]
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{node.url}/metrics")).text
        finally:
            node.stop()
    for line in lines:
        print(line)
    for direction in ("received", "sent"):
        q = histogram_quantiles(metrics, "confnode_join_seconds", f'direction="{direction}"')
        if q:
            print(f"join: request_token -> first media {direction}: p50 <= {q[0]} s, "
                  f"p95 <= {q[1]} s")
    for kind, path in (("audio", "passthrough"), ("video", "passthrough"), ("audio", "mixed"),
                       ("video", "mixed")):
        q = histogram_quantiles(metrics, "confnode_media_added_latency_seconds",
                                f'kind="{kind}",path="{path}"')
        if q:
            print(f"added latency {kind} {path}: p50 <= {q[0] * 1000:g} ms, "
                  f"p95 <= {q[1] * 1000:g} ms")


if __name__ == "__main__":
    asyncio.run(main())
