"""Node CPU per call-second for the three room shapes that matter, plus join time and added latency.

A real ``confnode serve`` process (HTTP on loopback) serves aiortc bots that run in this process;
the node's own CPU is read from /proc/<pid>/stat, so the bots' CPU does not count. Each scenario
runs its bots for a warm-up, then measures for ``--seconds``.

    .venv/bin/python bench/media_cpu.py --seconds 20 [--only sip-video ...]

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
from sipsystem import ScriptedSipSystem

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


def metric_value(metrics: str, name: str, labels: str) -> float:
    """A counter's value for exactly these labels (``kind="video",path="mixed"``), 0 if absent."""
    wanted = set(labels.split(","))
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{"):
            label_text, value = line[len(name) + 1:].rsplit("}", 1)
            if set(label_text.split(",")) == wanted:
                return float(value)
    return 0.0


async def book_instant(http: httpx.AsyncClient, node: NodeProcess, subject: str) -> dict:
    """An instant room whose guests need no host: every scenario's room."""
    response = await http.post("/api/v1/meetings",
                               headers={"Authorization": f"Bearer {node.token}"},
                               json={"subject": subject, "meeting_type": "instant",
                                     "guests_wait_for_host": False})
    return response.json()  # type: ignore[no-any-return]


async def scenario(node: NodeProcess, name: str, parties: int, *, video: bool,
                   seconds: float) -> str:
    async with httpx.AsyncClient(base_url=node.url, timeout=30, verify=False) as http:
        booked = await book_instant(http, node, name)
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
        booked = await book_instant(http, node, "sip")
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


async def sip_video_scenario(node: NodeProcess, sip_port: int, seconds: float) -> str:
    """A SIP video system sending 1280x720 H.264 at 30 fps (scripted, SIP/TLS + SDES-SRTP) and
    a WebRTC bot sending 1280x720 VP8 at ~30 fps, both with a moving bar so the codecs work as
    with a camera: the node decodes both, composes two pictures and encodes one in each codec."""
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        booked = await book_instant(http, node, "sip video")
        person = await join(http, booked["guest_link"].rsplit("/", 1)[1], "browser")
        bot = MediaBot("browser", tone=660, luma=40, video_size=(1280, 720), moving=True)
        system = ScriptedSipSystem(video_size=(1280, 720), fps=30, luma=200, moving=True)
        try:
            assert (await person.call(bot)).status_code == 200
            answer = await system.dial(sip_port, Path(node.cert), booked["alias"])
            assert answer.status == 200, answer.status
            system.start_sending()
            await asyncio.sleep(5)
            assert node.process is not None

            async def pictures_sent() -> float:
                # Every composed picture the node pushes to a viewer is one latency sample.
                metrics = (await http.get("/metrics")).text
                return metric_value(metrics, "confnode_media_added_latency_seconds_count",
                                    'kind="video",path="mixed"')

            sent_before = await pictures_sent()
            start_cpu, start = cpu_seconds(node.process.pid), time.monotonic()
            pictures = (system.pictures_decoded, bot.received.video_frames)
            await asyncio.sleep(seconds)
            used, elapsed = cpu_seconds(node.process.pid) - start_cpu, time.monotonic() - start
            pictures = (system.pictures_decoded - pictures[0],
                        bot.received.video_frames - pictures[1])
            sent_rate = (await pictures_sent() - sent_before) / (2 * elapsed)
        finally:
            await system.close()
            await person.post("release_token", {})
            await person.close()
    per_call_second = used / (2 * elapsed)
    return (f"SIP 720p H.264 <-> WebRTC 720p VP8, transcoded: 2 calls, node {used:.2f} CPU-s in "
            f"{elapsed:.1f} s = {per_call_second:.4f} CPU-s per call-second "
            f"({1 / per_call_second:.1f} such calls per core; target >= 6: "
            f"{'pass' if per_call_second <= 1 / 6 else 'MISS'}); node sent {sent_rate:.1f} "
            f"pictures/s per viewer (composes at 15); decoded in the window: SIP system "
            f"{pictures[0]}, browser bot {pictures[1]}")


def sip_video_engine_floor(seconds: float = 4.0) -> str:
    """The node's media work for the same call at nominal rates, timed in this process with
    ``time.process_time`` (CPU time, so a loaded machine slows it but does not shrink it): decode
    720p30 H.264 and 720p30 VP8 with the decoders the node uses (aiortc's), turn each picture into
    numpy as ``RoomMedia.on_frame`` does, compose both viewers' pictures at 15 fps and encode one
    VP8 and one H.264 picture per tick. RTP, SRTP/DTLS, jitter buffers and audio are left out: a
    floor under the live figure, not a replacement for it."""
    import numpy as np
    from aiortc.codecs import get_decoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from bots import moving_bar

    from confnode.config import MediaSettings
    from confnode.media.compositor import Compositor, ViewSpec
    from confnode.transport.encoders import H264Encoder, Vp8Encoder

    width, height, fps, composed_fps = 1280, 720, 30, MediaSettings().fps
    frames = int(seconds * fps)
    sources = {"sip": H264Encoder(width, height, fps), "web": Vp8Encoder(width, height, fps)}
    streams: dict[str, list[bytes]] = {name: [] for name in sources}
    for i in range(frames):  # the senders' work, not timed
        for name, encoder in sources.items():
            plane = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
            plane[:height] = 200 if name == "sip" else 40
            moving_bar(plane, height, i)
            encoded = encoder.encode(plane)
            streams[name].append(encoded.data if encoded else b"")
    decoders = {
        "sip": get_decoder(RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000,
                                                 payloadType=97)),
        "web": get_decoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000,
                                                 payloadType=96)),
    }
    compositor = Compositor()
    outputs = {"sip": H264Encoder(width, height, composed_fps),
               "web": Vp8Encoder(width, height, composed_fps)}
    views = {viewer: ViewSpec("1:7", width, height, (other,))
             for viewer, other in (("sip", "web"), ("web", "sip"))}
    pictures: dict[str, np.ndarray | None] = {"sip": None, "web": None}
    start = time.process_time()
    for i in range(frames):
        for name, decoder in decoders.items():
            for frame in decoder.decode(JitterFrame(streams[name][i], i * 3000)):
                pictures[name] = frame.to_ndarray(format="yuv420p")
        if i % (fps // composed_fps) == 0:
            composed, assignment = compositor.compose_views(views, pictures)
            for viewer, key in assignment.items():
                outputs[viewer].encode(composed[key])
    used = time.process_time() - start
    per_call_second = used / (2 * seconds)
    return (f"SIP 720p H.264 <-> WebRTC 720p VP8, media engine only (decode 2 x 720p30, compose "
            f"and encode 2 x 720p{composed_fps}): {used:.2f} CPU-s for {seconds:.0f} s of the "
            f"call = {per_call_second:.4f} CPU-s per call-second")


SCENARIOS = ("passthrough", "mixed-audio", "composed", "sip-audio", "sip-g722", "sip-video",
             "sip-video-engine")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--only", choices=SCENARIOS, action="append",
                        help="run only these scenarios (repeatable); all by default")
    args = parser.parse_args()
    wanted = set(args.only or SCENARIOS)
    with tempfile.TemporaryDirectory() as tmp:
        sip_port = free_port()
        node = NodeProcess(Path(tmp) / "data", CONFNODE_HTTP__TLS="false",
                           CONFNODE_LOG_LEVEL="WARNING", CONFNODE_SIP__PORT=str(sip_port),
                           CONFNODE_RATE_LIMIT_PER_MINUTE="0").start()
        try:
            lines = []
            if "passthrough" in wanted:
                lines.append(await scenario(node, "1:1 passthrough (VP8+Opus)", 2, video=True,
                                            seconds=args.seconds))
            if "mixed-audio" in wanted:
                lines.append(await scenario(node, "4-party mixed audio (Opus)", 4, video=False,
                                            seconds=args.seconds))
            if "composed" in wanted:
                lines.append(await scenario(node, "4-party composed 720p (VP8+Opus)", 4,
                                            video=True, seconds=args.seconds))
            if "sip-audio" in wanted:
                lines.append(await sip_scenario(node, sip_port, args.seconds))
            if "sip-g722" in wanted:
                # baresip registers G.722 as G722/16000/1; plain "g722" would not match it.
                lines.append(await sip_scenario(node, sip_port, args.seconds,
                                                codec="g722/16000/1"))
            if "sip-video" in wanted:
                lines.append(await sip_video_scenario(node, sip_port, args.seconds))
            if "sip-video-engine" in wanted:
                lines.append(sip_video_engine_floor())
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
