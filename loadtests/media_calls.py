"""Media load: real calls through the node, with latency markers in the media, as Locust users.

Each Locust user is one room: it books an instant meeting through the API, joins its parties
(real aiortc WebRTC peers, or a scripted SIP phone: PCMU over SDES-SRTP, signalling over TLS,
built from the node's own RtpEndpoint) and holds the call for CALL_SECONDS, then hangs up and
books the next. Pick the room mix by user class:

    OneToOneCall     1:1 same codec (VP8 + Opus): the node forwards (passthrough)
    SipWebRtcCall    1:1 SIP phone (PCMU) <-> WebRTC (Opus only): the node transcodes (mixed)
    FourPartyAudio   4 WebRTC parties, audio only: the node mixes (mix-minus)
    FourPartyVideo   4 WebRTC parties, VP8 + Opus: the node mixes and composes

    CONFNODE_API_TOKEN=$(cat .confnode/admin-token) CONFNODE_SIP_PORT=5061 \\
    .venv/bin/locust -f loadtests/media_calls.py OneToOneCall --headless -u 3 -r 1 -t 60s \\
        --host https://127.0.0.1:8443 --csv results/media-1to1

Targets (the measurement issue; "proposed" ones are this file's, the issue names none), per mix,
checked when Locust quits; a miss sets exit code 2, a failed join exit code 1:

    mix              added audio p95                  added video p95     join p95  late+lost
    OneToOneCall     <= 2 ms packets, <= 30 ms markers <= 100 ms (proposed) <= 1 s   < 1 %
    SipWebRtcCall    <= 30 ms markers                 -                    <= 1 s   < 1 %
    FourPartyAudio   <= 30 ms markers                 -                    <= 1 s   < 1 %
    FourPartyVideo   <= 30 ms markers                 <= 100 ms (proposed) <= 1 s   < 1 %

Measurements (request_type "media", names prefixed with the mix, so the CSV has p50/p95/p99):

* ``join``: request_token sent (INVITE for the SIP phone) -> first decoded audio frame received.
* ``added-latency audio``: each party plays a tone burst at its own frequency every 400 ms and
  notes the send time; every other party detects the burst in its decoded audio (after the
  node's forwarding or mixing and both codecs). End-to-end = detection time - send time on one
  monotonic clock (all bots of a room are in this process). Node-added = end-to-end minus the
  bots' own pipeline (encoder, aiortc's 4-frame audio jitter buffer, decoder, detector bias),
  measured once per process by a calibration call: the same bots connected directly,
  aiortc <-> aiortc (and phone <-> phone, RtpEndpoint to RtpEndpoint, for the SIP mix). The
  median of the calibration is subtracted. For the SIP mix each direction has one aiortc and
  one phone pipeline, which cannot be separated, so the mean of the two calibrations is
  subtracted: exact for the average of the two directions, not per direction. Values below
  zero (calibration jitter) are reported as 0. The calibration's own p95-p50 spread is printed:
  it is the resolution of this method, and a 2 ms target is at the edge of it.
* ``added-latency video``: pictures carry the sender and a frame counter in black/white cells;
  receivers decode them (in every tile of a composition) and report each new counter's
  arrival - send time, minus the calibration call's median.
* ``added-latency audio packets`` / ``video packets`` (forwarding rooms only): every RTP payload
  a bot sends is noted (before SRTP) with its send time, and recognised by its bytes when it
  arrives at another bot (after SRTP): the node's forwarding path timed per packet, without
  codecs or jitter buffers, minus the calibration call's median (about the two SRTP passes and
  loopback UDP). A faint hiss under the markers makes every audio payload unique. A mixing
  node re-encodes, so no payload matches there and these have no samples; the node forwards
  video as frames it packetizes again (new VP8 descriptors), so video packets match nowhere
  yet and are reported only if they do.
* ``audio frame``: every received audio frame, response time = how far behind its due time
  (due = media time from RTP, relative to the least-delayed frame of the last 5 s, as a
  jitter buffer that re-centres after a stall would play it); a failure when more than
  LATE_MS (60) behind, or for each frame missing in the RTP timestamps. Failure % = late+lost %.

The node's CPU per call-second (one call = one party's media leg) comes from its /metrics
``process_cpu_seconds_total`` between test start and quit, divided by the call-seconds held.

Why the asyncio loop is not in an OS thread of its own: Locust monkey-patches ``threading``, so
the threads aiortc starts (its decoder worker, asyncio's default executor for video encoding)
are greenlets of whichever OS thread starts them. With the asyncio loop blocking in a real
epoll in its own OS thread, they would run only when something in that thread happens to yield
to its gevent hub (a trial call worked, but not by design). Here the asyncio loop runs on
gevent's selector in a greenlet of Locust's own thread: aiortc, httpx and the SIP client run on
it unchanged, aiortc's "threads" run whenever the loop waits, Locust's greenlets hand
coroutines over with ``run_coroutine_threadsafe``, and the bots' reports fire Locust events
from the thread that owns the stats. The cost is one core per Locust process for all its bots
(VP8 encoding included). ``--processes N`` would spread the bots, but the call-seconds behind
the node-CPU line live in each process: that line is only right for a single-process run (not
tried with --processes).

Environment: CONFNODE_API_TOKEN (required); CONFNODE_SIP_PORT (SipWebRtcCall); CONFNODE_CA
(CA for SIP TLS; default .confnode/tls/node-cert.pem); CALL_SECONDS (30); LATE_MS (60);
CALIBRATION_SECONDS (6); TARGETS=off for a smoke run that only checks the file works.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import gevent
import gevent.lock
import httpx
from gevent.selectors import GeventSelector
from locust import User, constant, events, task
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from aiortc import RTCSessionDescription
from bots import MarkerBot
from clientapi import ClientParticipant, join
from latency_markers import RoomMarkers
from sipclient import MarkerSipPhone

TOKEN = os.environ.get("CONFNODE_API_TOKEN", "")
SIP_PORT = int(os.environ.get("CONFNODE_SIP_PORT", "0"))
CA = Path(os.environ.get("CONFNODE_CA", ".confnode/tls/node-cert.pem"))
# The node's self-signed certificate when it is at hand; plain trust-nothing loopback otherwise
# (as booking_api.py does), since this measures media, not TLS.
CA_FILE: Path | None = CA if CA.exists() else None
VERIFY: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(CA)) if CA_FILE else False
CALL_SECONDS = float(os.environ.get("CALL_SECONDS", "30"))
LATE_SECONDS = float(os.environ.get("LATE_MS", "60")) / 1000
TARGETS_ON = os.environ.get("TARGETS", "on") != "off"
CALIBRATION_SECONDS = float(os.environ.get("CALIBRATION_SECONDS", "6"))

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Upper bounds on p95s in ms (None: reported, not checked) and the late+lost audio %."""

    added_audio_markers: float | None = 30.0
    added_audio_packets: float | None = None
    added_video_markers: float | None = None
    added_video_packets: float | None = None
    join: float = 1000.0
    late_audio_percent: float = 1.0


class MediaLoop:
    """An asyncio loop on gevent's selector, run by a greenlet (see the module docstring)."""

    def __init__(self) -> None:
        self.loop = asyncio.SelectorEventLoop(GeventSelector())
        self._greenlet = gevent.spawn(self.loop.run_forever)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@dataclass
class Calibration:
    """The bots' own pipeline latency, from direct calls without the node (seconds)."""

    audio: list[float] = field(default_factory=list)
    video: list[float] = field(default_factory=list)
    phone_audio: list[float] = field(default_factory=list)
    audio_packets: list[float] = field(default_factory=list)
    video_packets: list[float] = field(default_factory=list)

    @staticmethod
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    @staticmethod
    def spread_ms(values: list[float]) -> float:
        if len(values) < 4:
            return float("nan")
        ordered = sorted(values)
        return (ordered[int(0.95 * (len(ordered) - 1))] - statistics.median(ordered)) * 1000


@dataclass
class Run:
    """Per Locust process: the media loop, the calibration, and the call-seconds held."""

    media: MediaLoop = field(default_factory=MediaLoop)
    calibration: Calibration | None = None
    lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)
    call_seconds: float = 0.0
    live_legs: dict[int, tuple[int, float]] = field(default_factory=dict)  # room -> legs, since
    cpu_start: float | None = None
    own_start: tuple[float, float] = (0.0, 0.0)  # (this process's CPU-s, monotonic) at start

    def own_cpu_share(self) -> float:
        """This Locust process's CPU since the test started, as a fraction of one core."""
        times = os.times()
        used = times.user + times.system - self.own_start[0]
        return used / max(1e-9, time.monotonic() - self.own_start[1])

    def calibrated(self) -> Calibration:
        with self.lock:
            if self.calibration is None:
                self.calibration = self.media.run(_calibrate(), timeout=60)
                print(f"calibration (bots without the node): audio {_ms(self.calibration.audio)}, "
                      f"video {_ms(self.calibration.video)}, phone audio "
                      f"{_ms(self.calibration.phone_audio)}", flush=True)
        return self.calibration

    def legs_held(self, room: int, legs: int) -> None:
        self.live_legs[room] = (legs, time.monotonic())

    def legs_released(self, room: int) -> None:
        legs, since = self.live_legs.pop(room, (0, time.monotonic()))
        self.call_seconds += legs * (time.monotonic() - since)

    def total_call_seconds(self) -> float:
        now = time.monotonic()
        return self.call_seconds + sum(legs * (now - since)
                                       for legs, since in self.live_legs.values())


_run: Run | None = None


def run_state() -> Run:
    global _run
    if _run is None:
        _run = Run()
    return _run


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"median {Calibration.median(values) * 1000:.1f} ms, p95-p50 "
            f"{Calibration.spread_ms(values):.1f} ms ({len(values)} markers)")


async def _calibrate() -> Calibration:
    """Direct calls between the same bots: aiortc <-> aiortc with video, phone <-> phone."""
    result = Calibration()

    def collect(into: dict[str, list[float]]) -> Callable[[str, float, bool], None]:
        def report(metric: str, seconds: float, _failed: bool) -> None:
            into.setdefault(metric, []).append(seconds)
        return report

    webrtc: dict[str, list[float]] = {}
    phones: dict[str, list[float]] = {}
    markers, phone_markers = RoomMarkers(), RoomMarkers()
    a = MarkerBot("cal-a", 1, markers, collect(webrtc), video=True)
    b = MarkerBot("cal-b", 2, markers, collect(webrtc), video=True)
    p, q = (MarkerSipPhone(1, phone_markers, collect(phones)),
            MarkerSipPhone(2, phone_markers, collect(phones)))
    try:
        await b.pc.setRemoteDescription(RTCSessionDescription(sdp=await a.offer(), type="offer"))
        await b.pc.setLocalDescription(await b.pc.createAnswer())
        b.tap_rtp()  # the answerer never calls offer(), where bots tap their transports
        await a.accept(b.pc.localDescription.sdp)
        await p.media.open()
        await q.media.open()
        p.start_media(q.media.offer)
        q.start_media(p.media.offer)
        await asyncio.sleep(CALIBRATION_SECONDS)
    finally:
        await a.close()
        await b.close()
        await p.hangup()
        await q.hangup()
    # The first markers include ICE/DTLS set-up and jitter-buffer fill: keep the steady state.
    result.audio = webrtc.get("audio latency", [])[4:]
    result.video = webrtc.get("video latency", [])[30:]
    result.phone_audio = phones.get("audio latency", [])[4:]
    result.audio_packets = webrtc.get("audio packet latency", [])[50:]
    result.video_packets = webrtc.get("video packet latency", [])[50:]
    return result


class MediaCall(User):
    """One room held by one Locust user; subclasses choose the mix."""

    abstract = True
    wait_time = constant(1)
    mix: ClassVar[str] = ""
    webrtc_parties: ClassVar[int] = 2
    sip_parties: ClassVar[int] = 0
    video: ClassVar[bool] = False
    audio_codec: ClassVar[str | None] = None
    target: ClassVar[Target]

    def on_start(self) -> None:
        if not TOKEN:
            raise RuntimeError("set CONFNODE_API_TOKEN")
        if self.sip_parties and not SIP_PORT:
            raise RuntimeError("set CONFNODE_SIP_PORT for SIP parties")
        self.run = run_state()
        self.calibration = self.run.calibrated()
        self.people: list[ClientParticipant] = []
        self.phones: list[MarkerSipPhone] = []
        self.http: httpx.AsyncClient | None = None
        self.started = 0.0
        self.room_complete = False
        self._connect()

    def on_stop(self) -> None:
        self._hang_up()

    @task
    def hold(self) -> None:
        """Media flows on the loop by itself; the user only ends the call when it is due."""
        if self.started and time.monotonic() - self.started > CALL_SECONDS:
            self._hang_up()
            self._connect()

    def _connect(self) -> None:
        started = time.perf_counter()
        try:
            self.run.media.run(self._join_all(), timeout=30)
        except Exception as error:  # a join that failed is a failed request, and ends nothing
            self._fire("join", (time.perf_counter() - started) * 1000, error)
            self._hang_up()
            return
        self.started = time.monotonic()
        self.run.legs_held(id(self), self.webrtc_parties + self.sip_parties)

    def _hang_up(self) -> None:
        self.room_complete = False  # parties leave one by one: the last two are forwarded again
        if self.started:
            self.run.legs_released(id(self))
            self.started = 0.0
        people, phones, http = self.people, self.phones, self.http
        self.people, self.phones, self.http = [], [], None
        if people or phones or http:
            self.run.media.run(_leave(people, phones, http), timeout=30)

    async def _join_all(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.host, timeout=15, verify=VERIFY)
        booked = await self.http.post(
            "/api/v1/meetings", headers={"Authorization": f"Bearer {TOKEN}"},
            json={"subject": "Load", "meeting_type": "instant", "guests_wait_for_host": False})
        booked.raise_for_status()
        meeting = booked.json()
        self.room_complete = False
        markers = RoomMarkers()
        for slot in range(1, self.webrtc_parties + 1):
            began = time.monotonic()
            person = await join(self.http, meeting["guest_link"].rsplit("/", 1)[1], f"bot{slot}")
            bot = MarkerBot(f"bot{slot}", slot, markers, self._reporter(began, sip=False),
                            video=self.video, audio_codec=self.audio_codec)
            self.people.append(person)
            response = await person.call(bot)
            if response.status_code != 200:
                raise RuntimeError(f"call refused: {response.status_code}")
        for index in range(self.sip_parties):
            slot = self.webrtc_parties + index + 1
            began = time.monotonic()
            phone = MarkerSipPhone(slot, markers, self._reporter(began, sip=True))
            self.phones.append(phone)
            await phone.dial(SIP_PORT, CA_FILE, meeting["alias"])
        # Latency counts from here: while a 4-party room fills, two parties are a forwarded
        # 1:1 call, and that is not the mix being measured.
        self.room_complete = True

    def _reporter(self, began: float, *, sip: bool) -> Callable[[str, float, bool], None]:
        calibration = self.calibration
        audio_base = Calibration.median(calibration.audio)
        if self.sip_parties:
            # One aiortc and one phone pipeline per direction: subtract their mean.
            audio_base = (audio_base + Calibration.median(calibration.phone_audio)) / 2
        video_base = Calibration.median(calibration.video)
        packet_base = {"audio": Calibration.median(calibration.audio_packets),
                       "video": Calibration.median(calibration.video_packets)}

        def report(metric: str, seconds: float, failed: bool) -> None:
            if metric == "first media":
                self._fire("join", (seconds - began) * 1000)
            elif not self.room_complete:
                return
            elif metric == "audio latency":
                self._fire("added-latency audio", max(0.0, seconds - audio_base) * 1000)
            elif metric == "video latency":
                self._fire("added-latency video", max(0.0, seconds - video_base) * 1000)
            elif metric.endswith(" packet latency"):
                kind = metric.split()[0]
                self._fire(f"added-latency {kind} packets",
                           max(0.0, seconds - packet_base[kind]) * 1000)
            elif metric == "audio frame":
                self._fire("audio frame", seconds * 1000,
                           RuntimeError("late or lost") if failed else None)
        return report

    def _fire(self, name: str, milliseconds: float, error: BaseException | None = None) -> None:
        self.environment.events.request.fire(
            request_type="media", name=f"{self.mix}: {name}", response_time=milliseconds,
            response_length=0, exception=error, context={})


async def _leave(people: list[ClientParticipant], phones: list[MarkerSipPhone],
                 http: httpx.AsyncClient | None) -> None:
    for phone in phones:
        await phone.hangup()
    for person in people:
        try:
            await person.post("release_token", {})
        except httpx.HTTPError:
            pass
        await person.close()
    if http is not None:
        await http.aclose()


class OneToOneCall(MediaCall):
    mix = "1:1"
    video = True
    target = Target(added_audio_packets=2, added_video_markers=100)


class SipWebRtcCall(MediaCall):
    mix = "SIP-WebRTC"
    webrtc_parties, sip_parties = 1, 1
    audio_codec = "opus"  # a PCMU phone and an Opus-only browser: the node must transcode
    target = Target()


class FourPartyAudio(MediaCall):
    mix = "4-party audio"
    webrtc_parties = 4
    target = Target()


class FourPartyVideo(MediaCall):
    mix = "4-party video"
    webrtc_parties = 4
    video = True
    target = Target(added_video_markers=100)


def _node_cpu_seconds(environment: Environment) -> float | None:
    """process_cpu_seconds_total from the node's /metrics (None when it is not exported)."""
    # The per-call-type CPU metric another branch adds would be read here instead.
    try:
        text = httpx.get(f"{environment.host}/metrics", verify=VERIFY, timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    return None


@events.test_start.add_listener
def _cpu_at_start(environment: Environment, **_kwargs: object) -> None:
    run = run_state()
    run.cpu_start = _node_cpu_seconds(environment)
    times = os.times()
    run.own_start = (times.user + times.system, time.monotonic())


@events.quitting.add_listener
def _check_targets(environment: Environment, **_kwargs: object) -> None:
    run = run_state()
    cpu_end, call_seconds = _node_cpu_seconds(environment), run.total_call_seconds()
    rows: list[str] = []
    exit_code = 0
    for user_class in environment.user_classes:
        if not issubclass(user_class, MediaCall):
            continue
        mix, target = user_class.mix, user_class.target
        names = ("join", "added-latency audio", "added-latency audio packets",
                 "added-latency video", "added-latency video packets", "audio frame")
        stats = {name: environment.stats.get(f"{mix}: {name}", "media") for name in names}
        frames = stats["audio frame"]
        late = 100 * frames.num_failures / frames.num_requests if frames.num_requests else 100.0
        checks = [("late+lost audio %", late, target.late_audio_percent, frames.num_requests)]
        for label, name, limit in (
                ("join p95 ms", "join", target.join),
                ("added audio p95 ms", "added-latency audio", target.added_audio_markers),
                ("audio packets p95 ms", "added-latency audio packets",
                 target.added_audio_packets),
                ("added video p95 ms", "added-latency video", target.added_video_markers),
                ("video packets p95 ms", "added-latency video packets",
                 target.added_video_packets)):
            if limit is not None:
                entry = stats[name]
                checks.append((label, entry.get_response_time_percentile(0.95), limit,
                               entry.num_requests))
        if stats["join"].num_failures:
            exit_code = max(exit_code, 1)
        for label, value, limit, count in checks:
            ok = count > 0 and value is not None and (value < limit if "%" in label
                                                      else value <= limit)
            if not ok and TARGETS_ON:
                exit_code = max(exit_code, 2)
            rows.append(f"{mix:<14} {label:<22} {value if value is not None else 0:>9.1f} "
                        f"{('<' if '%' in label else '<=')} {limit:<6g} n={count:<6} "
                        f"{'PASS' if ok else 'FAIL'}")
        for name, entry in stats.items():
            if entry.num_requests:
                p50, p95, p99 = (entry.get_response_time_percentile(q)
                                 for q in (0.5, 0.95, 0.99))
                rows.append(f"{mix:<14}   {name:<28} p50 {p50:.0f} p95 {p95:.0f} p99 {p99:.0f} ms, "
                            f"{entry.num_requests} samples, {entry.num_failures} failed")
    print("media load: targets" + ("" if TARGETS_ON else " (TARGETS=off: reported, not enforced)"))
    for row in rows:
        print("  " + row)
    if run.cpu_start is not None and cpu_end is not None and call_seconds > 0:
        used = cpu_end - run.cpu_start
        print(f"  node CPU: {used:.2f} CPU-s over {call_seconds:.0f} call-seconds = "
              f"{used / call_seconds:.4f} CPU-s per call-second")
    else:
        print("  node CPU: not available (no process_cpu_seconds_total on /metrics)")
    share = run.own_cpu_share()
    print(f"  load generator (this Locust process, all bots): {100 * share:.0f} % of a core"
          + (" - near saturation: the latency figures measure it, not the node"
             if share > 0.8 else ""))
    if run.calibration is not None:
        print(f"  calibration: audio {_ms(run.calibration.audio)}; video "
              f"{_ms(run.calibration.video)}; phone audio {_ms(run.calibration.phone_audio)}; "
              f"audio packets {_ms(run.calibration.audio_packets)}; video packets "
              f"{_ms(run.calibration.video_packets)}")
    # Set even when 0: late audio frames are Locust failures, which alone would exit 1.
    environment.process_exit_code = exit_code
