"""The same WebRTC workload against confnode and against Janus, in one run: CPU per participant.

Both servers run on this host as child processes (confnode: ``confnode serve``, HTTP on
127.0.0.1; Janus: the Debian package's ``/usr/bin/janus`` with only its HTTP transport and the
AudioBridge and EchoTest plugins, see ``janus_client.py``). The same aiortc bots
(``tests/bots.py``: an Opus sine each, plus 320x240 VP8 where video is on) run in this process
and join each server in turn. After a warm-up the server's CPU (user + system, every thread) is
read from ``/proc/<pid>/stat`` over the same wall-clock window, so the bots' own CPU never counts.

    .venv/bin/python bench/janus_side_by_side.py --seconds 15 [--rounds 2]

Scenarios, each first on confnode, then on Janus:

* ``audio-4``, ``audio-16``: one audio room with 4 / 16 talking participants. confnode: an
  instant meeting, joined through the Pexip client API (mixing room: decode, mix-minus, shared
  Opus encodes). Janus: an AudioBridge room at 48 kHz (decode, mix, minus own, one Opus encode
  per participant).
* ``forward-1:1``: two participants sending Opus + VP8. confnode: a two-party meeting, which it
  forwards without decoding (passthrough). Janus: EchoTest, one handle per participant, which
  relays each participant's RTP back to them. Per participant that is the same per-packet work as
  confnode's 1:1 (one peer connection, every packet SRTP-unprotected, rewritten, re-protected and
  sent once) with the same number of peer connections; VideoRoom would need a publisher and a
  subscriber connection per participant (four for a 1:1), which measures Janus's fan-out rather
  than forwarding.

How fair the workloads are (what differs besides the server's own efficiency):

* Every bot sends a continuous tone, so every participant is an active speaker: confnode's
  shared encodes do not help (each participant gets its own mix-minus encode, as in Janus) and
  both servers decode every participant and encode one mix per participant. Both mix at 48 kHz
  mono (the AudioBridge room is created with ``sampling_rate`` 48000; its sample config uses 16
  kHz) and both leave the listener's own voice out.
* Opus encoder settings differ by default: confnode encodes at libopus complexity 10, 32 kbit/s;
  AudioBridge at complexity ("quality") 4 with libopus choosing the bitrate. ``--match-encoder``
  joins AudioBridge with confnode's settings instead.
* AudioBridge pre-buffers 6 packets per participant before mixing, confnode queues at most 3
  frames; the bots' own CPU, on the same two cores, is the same for both servers.
* ICE: confnode is reached on 127.0.0.1; Janus never gathers on a loopback interface, so it is
  restricted to one local address of this host, which the kernel also delivers through ``lo``.

Prints, per scenario, CPU-seconds per participant-second for each server, how many frames the
bots received (the work actually done), the ratio confnode / Janus, and for the audio mixes
whether the target (confnode's CPU per mixed participant at most Janus AudioBridge's) is met in
this run. A server whose bots got under 90 % of the 50 audio frames per second did less work
than asked, so its lower CPU figure is no win: confnode falling behind is a FAIL, Janus falling
behind makes the verdict INCONCLUSIVE.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from bots import MediaBot
from clientapi import ClientParticipant, join
from janus_client import JanusProcess, JanusSession, local_ice_address
from media_cpu import cpu_seconds
from nodeprocess import NodeProcess, free_port

from confnode.transport.webrtc.ice import offer_loopback_candidates


@dataclass(frozen=True)
class Scenario:
    name: str
    participants: int
    video: bool
    mixed: bool  # the audio target applies (CPU per mixed participant)


SCENARIOS = {
    "audio-4": Scenario("4-party audio mix", 4, video=False, mixed=True),
    "audio-16": Scenario("16-party audio mix", 16, video=False, mixed=True),
    "forward-1:1": Scenario("1:1 forwarding (VP8+Opus)", 2, video=True, mixed=False),
}


#: Opus frames per second a bot receives when a server keeps up (20 ms frames).
AUDIO_FRAMES_PER_SECOND = 50
#: Below this share of that, a server did less work than asked and its CPU figure flatters it.
MIN_DELIVERY = 0.9


@dataclass(frozen=True)
class Measurement:
    cpu_seconds: float
    elapsed: float
    participants: int
    audio_frames_received: int
    video_frames_received: int

    @property
    def per_participant_second(self) -> float:
        return self.cpu_seconds / (self.participants * self.elapsed)

    @property
    def delivery(self) -> float:
        """Audio frames the bots received, as a share of what a server that keeps up sends."""
        return self.audio_frames_received / (
            self.participants * self.elapsed * AUDIO_FRAMES_PER_SECOND)

    def __add__(self, other: Measurement) -> Measurement:
        """Two rounds of the same scenario as one longer window."""
        return Measurement(self.cpu_seconds + other.cpu_seconds, self.elapsed + other.elapsed,
                           self.participants,
                           self.audio_frames_received + other.audio_frames_received,
                           self.video_frames_received + other.video_frames_received)


def make_bot(scenario: Scenario, i: int) -> MediaBot:
    return MediaBot(f"bot{i}", tone=300 + 37 * i, luma=40 + 50 * i if scenario.video else None)


async def measure(pid: int, bots: list[MediaBot], warmup: float, seconds: float) -> Measurement:
    """Wait out the warm-up (ICE, DTLS, jitter buffers fill), then CPU over ``seconds``."""
    await asyncio.sleep(warmup)
    audio = sum(len(b.received.audio) for b in bots)
    video = sum(b.received.video_frames for b in bots)
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - start_cpu, time.monotonic() - start
    return Measurement(used, elapsed, len(bots),
                       sum(len(b.received.audio) for b in bots) - audio,
                       sum(b.received.video_frames for b in bots) - video)


async def on_confnode(node: NodeProcess, scenario: Scenario, warmup: float,
                      seconds: float) -> Measurement:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        booked = await http.post("/api/v1/meetings",
                                 headers={"Authorization": f"Bearer {node.token}"},
                                 json={"subject": scenario.name, "meeting_type": "instant",
                                       "guests_wait_for_host": False})
        assert booked.status_code == 201, booked.text
        alias = booked.json()["guest_link"].rsplit("/", 1)[1]
        people: list[ClientParticipant] = []
        try:
            for i in range(scenario.participants):
                person = await join(http, alias, f"bot{i}")
                people.append(person)
                response = await person.call(make_bot(scenario, i))
                assert response.status_code == 200, response.text
            assert node.process is not None
            return await measure(node.process.pid, [p.bot for p in people if p.bot],
                                 warmup, seconds)
        finally:
            for person in people:
                await person.post("release_token", {})
                await person.close()


#: confnode's mix encoder (``OpusEncoder``): libopus through libav at its default complexity 10,
#: 32 kbit/s. AudioBridge defaults to complexity ("quality") 4 and lets libopus pick the bitrate.
CONFNODE_OPUS = {"quality": 10, "bitrate": 32000}


async def on_janus(janus: JanusProcess, scenario: Scenario, warmup: float,
                   seconds: float, match_encoder: bool = False) -> Measurement:
    async with httpx.AsyncClient(timeout=30) as http:
        sessions: list[JanusSession] = []
        bots: list[MediaBot] = []
        admin = await JanusSession(http, janus.url).create()
        bridge, room = None, None
        try:
            if scenario.mixed:
                bridge = await admin.attach("janus.plugin.audiobridge")
                created = await bridge.request({"request": "create", "sampling_rate": 48000,
                                                "description": scenario.name})
                room = created["room"]
            for i in range(scenario.participants):
                session = await JanusSession(http, janus.url).create()
                sessions.append(session)
                bot = make_bot(scenario, i)
                bots.append(bot)
                if scenario.mixed:
                    handle = await session.attach("janus.plugin.audiobridge")
                    join = {"request": "join", "room": room, "display": bot.name,
                            **(CONFNODE_OPUS if match_encoder else {})}
                    event = await handle.message(join, await bot.offer())
                else:
                    handle = await session.attach("janus.plugin.echotest")
                    event = await handle.message({"audio": True, "video": True},
                                                 await bot.offer())
                await bot.accept(event["jsep"]["sdp"])
            return await measure(janus.pid, bots, warmup, seconds)
        finally:
            for bot in bots:
                await bot.close()
            for session in sessions:
                await session.destroy()
            if bridge is not None and room is not None:
                await bridge.request({"request": "destroy", "room": room})
            await admin.destroy()


def target_outcome(ratio: float, ours: Measurement, theirs: Measurement) -> str:
    """PASS/FAIL on the CPU ratio, but only when both servers delivered the mixes.

    A server that falls behind (starved on a shared host, or simply too slow) sends fewer
    frames and so spends less CPU per participant-second; its lower figure is not a win."""
    if ours.delivery < MIN_DELIVERY:
        return f"FAIL (confnode delivered only {ours.delivery:.0%} of the audio frames)"
    if theirs.delivery < MIN_DELIVERY:
        return f"INCONCLUSIVE (Janus delivered only {theirs.delivery:.0%} of the audio frames)"
    return "PASS" if ratio <= 1.0 else "FAIL"


def describe(label: str, m: Measurement) -> str:
    return (f"  {label:<9} {m.per_participant_second:.4f} CPU-s per participant-second "
            f"({m.cpu_seconds:.2f} CPU-s, {m.participants} x {m.elapsed:.1f} s; bots received "
            f"{m.audio_frames_received / (m.participants * m.elapsed):.0f} audio frames"
            + (f", {m.video_frames_received / (m.participants * m.elapsed):.0f} video frames"
               if m.video_frames_received else "")
            + " per participant-second)")


async def run(names: list[str], warmup: float, seconds: float, rounds: int, work: Path,
              match_encoder: bool = False) -> bool:
    """Run the scenarios; True when every audio-mix scenario meets the target."""
    offer_loopback_candidates(True)  # the bots reach confnode on 127.0.0.1, as in media_cpu
    node = NodeProcess(work / "confnode", CONFNODE_HTTP__TLS="false",
                       CONFNODE_LOG_LEVEL="WARNING", CONFNODE_RATE_LIMIT_PER_MINUTE="0")
    janus = JanusProcess(work / "janus", free_port(), local_ice_address())
    (work / "janus").mkdir(parents=True)
    node.start()
    try:
        janus.start()
        start = time.monotonic()
        assert node.process is not None
        before = {"confnode": cpu_seconds(node.process.pid), "janus": cpu_seconds(janus.pid)}
        await asyncio.sleep(min(2.0, seconds))
        elapsed = time.monotonic() - start
        idle = {"confnode": (cpu_seconds(node.process.pid) - before["confnode"]) / elapsed,
                "janus": (cpu_seconds(janus.pid) - before["janus"]) / elapsed}
        print(f"idle: confnode {idle['confnode']:.4f} CPU-s/s, Janus {idle['janus']:.4f} CPU-s/s "
              "(included in the figures below)")
        met = True
        runners: list[tuple[str, Callable[..., Awaitable[Measurement]], object]] = [
            ("confnode", on_confnode, node),
            ("Janus", functools.partial(on_janus, match_encoder=match_encoder), janus)]
        if match_encoder:
            print("Janus AudioBridge joins with confnode's Opus settings: " + ", ".join(
                f"{k}={v}" for k, v in CONFNODE_OPUS.items()))
        for name in names:
            scenario = SCENARIOS[name]
            results: dict[str, Measurement] = {}
            for round_number in range(rounds):
                # Alternate who goes first, so a load change on a shared host hits both sides.
                for label, runner, server in runners[::1 if round_number % 2 == 0 else -1]:
                    measured = await runner(server, scenario, warmup, seconds)
                    results[label] = results[label] + measured if label in results else measured
                    await asyncio.sleep(1.0)  # let the server settle after the hang-ups
            ours, theirs = results["confnode"], results["Janus"]
            ratio = ours.per_participant_second / theirs.per_participant_second
            print(f"{scenario.name}: {scenario.participants} participants"
                  + (f", {rounds} rounds" if rounds > 1 else ""))
            print(describe("confnode", ours))
            print(describe("Janus", theirs))
            verdict = ""
            if scenario.mixed:
                outcome = target_outcome(ratio, ours, theirs)
                met = met and outcome == "PASS"
                verdict = f"  target confnode <= Janus AudioBridge: {outcome}"
            print(f"  ratio confnode/Janus = {ratio:.2f}{verdict}", flush=True)
        return met
    finally:
        janus.stop()
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15,
                        help="measured window per scenario and server (default 15)")
    parser.add_argument("--warmup", type=float, default=5,
                        help="seconds after the last join before measuring (default 5)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat each scenario, alternating which server goes first, and "
                             "sum the windows (default 1)")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                        help="run only these (repeatable; default all)")
    parser.add_argument("--match-encoder", action="store_true",
                        help="join AudioBridge with confnode's Opus complexity and bitrate "
                             "instead of Janus's defaults")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when an audio-mix scenario misses the target")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        met = asyncio.run(run(args.scenario or list(SCENARIOS), args.warmup, args.seconds,
                              max(1, args.rounds), Path(tmp), args.match_encoder))
    if args.check and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
