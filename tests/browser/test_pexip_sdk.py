"""Pexip's own web SDK (``@pexip/infinity`` 20.0.0 from npm) joins a confnode room in Chromium.

The bundle is built with esbuild as in docs/pexip-client-api.md §8 and served same-origin by an
app that mounts the node (the embedding pattern). The SDK validates every answer it gets, so a
shape confnode gets wrong shows up here as a console error or a rejected join.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots import MediaBot
from clientapi import ClientParticipant, book, join, token_of, wait_for
from conftest import ServedNode
from headless_chromium import Browser, chromium, unavailable
from starlette.staticfiles import StaticFiles

from confnode.licensing import LicenceKind

PEXIP_VERSION = "20.0.0"

# The bundle entry (docs/pexip-client-api.md §8 plus an ``onClient`` hook; see the file).
JOIN_JS = (Path(__file__).parent / "pexip_join.js").read_text()

# Records every PeerConnection the page creates, so the test can read the SDK's call stats.
INSTRUMENT_JS = """\
window.peerConnections = [];
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(...args) { super(...args); window.peerConnections.push(this); }
};
"""

INDEX_HTML = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pexip SDK against confnode</title>
<link rel="icon" href="data:,">
<script src="instrument.js"></script></head>
<body><video id="remote" autoplay playsinline></video></body></html>
"""

SDK_JOIN_SCRIPT = """
const [alias, displayName, pin, done] = arguments;
(async () => {
  const { join } = await import('/sdk-test/pexip-join.js');
  const sdk = window.sdk = { rosters: [], left: [], remoteStreams: 0, disconnected: null };
  const mediaStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const { client } = await join({
    nodeUrl: location.origin, alias, displayName, pin, mediaStream,
    onClient: ({ signals, callSignals }) => {
      signals.onParticipants.add(({ id, participants }) => sdk.rosters.push({
        id,
        names: participants.map((p) => p.displayName),
        hosts: participants.filter((p) => p.isHost).map((p) => p.displayName),
      }));
      signals.onParticipantLeft.add((left) => sdk.left.push(left.length));
      signals.onDisconnected.add(({ error }) => { sdk.disconnected = error; });
      callSignals.onRemoteStream.add((stream) => {
        const video = document.getElementById('remote');
        video.srcObject = stream;
        video.play().catch(() => {});
        sdk.remoteStreams += 1;
      });
    },
  });
  sdk.client = client;
  const names = client.getParticipants('main').map((p) => p.displayName);
  done({ ok: true, me: client.getMe()?.uuid, names });
})().catch((e) => done({ ok: false, error: String((e && e.message) || e) }));
"""

# Console lines that mean the SDK refused one of confnode's answers.
REJECTIONS = ("ValidationError", "Unexpected status", "NonJSONResponseError",
              "Can't request participants", "Could not execute critical network action")


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "confnode-tests" / f"pexip-{PEXIP_VERSION}"


def build_bundle() -> Path:
    """The SDK bundle, built once per entry-module content and reused from the cache."""
    cache = cache_dir()
    bundle = cache / "dist" / "pexip-join.js"
    stamp = cache / "dist" / "join.js.sha256"
    digest = hashlib.sha256(JOIN_JS.encode()).hexdigest()
    if bundle.exists() and stamp.exists() and stamp.read_text() == digest:
        return bundle
    npm, npx = shutil.which("npm"), shutil.which("npx")
    if npm is None or npx is None:
        unavailable("npm is not installed")
    cache.mkdir(parents=True, exist_ok=True)

    def run(*command: str) -> None:
        try:
            done = subprocess.run(command, cwd=cache, capture_output=True, text=True,
                                  timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"{' '.join(command)} failed: {exc}")
        if done.returncode != 0:
            unavailable(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")

    if not (cache / "package.json").exists():
        run(npm, "init", "-y")
    if not (cache / "node_modules" / "@pexip" / "infinity").exists() \
            or not (cache / "node_modules" / ".bin" / "esbuild").exists():
        run(npm, "install", "--no-audit", "--no-fund", f"@pexip/infinity@{PEXIP_VERSION}",
            "esbuild")
    (cache / "join.js").write_text(JOIN_JS)
    run(npx, "esbuild", "join.js", "--bundle", "--format=esm", "--platform=browser",
        "--target=es2020", "--minify", "--sourcemap", "--outfile=dist/pexip-join.js")
    stamp.write_text(digest)
    return bundle








def rejections(lines: list[dict[str, Any]]) -> list[str]:
    return [str(line.get("message")) for line in lines
            if any(word in str(line.get("message")) for word in REJECTIONS)]


@dataclass
class SdkRoom:
    """A room with an aiortc doctor (host) and Pexip's SDK in Chromium as the patient."""

    browser: Browser
    host: ClientParticipant
    doctor: MediaBot
    joined: dict[str, Any]
    console: list[dict[str, Any]]


@contextlib.asynccontextmanager
async def sdk_room(served: ServedNode, tmp_path: Path) -> AsyncIterator[SdkRoom]:
    bundle = await asyncio.to_thread(build_bundle)
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(bundle, site / "pexip-join.js")
    (site / "instrument.js").write_text(INSTRUMENT_JS)
    (site / "index.html").write_text(INDEX_HTML)
    # The embedding pattern: an app mounting the node serves its own page, same origin.
    served.node.app.mount("/sdk-test", StaticFiles(directory=site, html=True))

    b = await book(served, guest_pin="2468")
    async with served.http() as http, chromium(tmp_path / "profile") as browser:
        host = await join(http, token_of(b["host_link"]), "Læge", pin=b["host_pin"])
        try:
            await host.start_events()
            doctor = MediaBot("doctor", tone=660, luma=200)
            assert (await host.call(doctor)).status_code == 200
            await browser.open(f"{served.url}/sdk-test/")
            joined = await browser.run_async(SDK_JOIN_SCRIPT, token_of(b["guest_link"]),
                                             "Patient SDK", "2468")
            console = browser.console()
            assert joined["ok"], (joined, console)
            yield SdkRoom(browser, host, doctor, joined, console)
        finally:
            if host.call_uuid:
                await host.post(f"participants/{host.uuid}/calls/{host.call_uuid}/disconnect")
            await host.post("release_token", {})
            await host.close()
    await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.PORT) == 0,
                   "licences still held")


async def test_pexip_sdk_joins_sees_roster_and_media_and_leaves_cleanly(
        served: ServedNode, tmp_path: Path) -> None:
    ledger = served.node.calls.ledger
    async with sdk_room(served, tmp_path) as room:
        browser, host = room.browser, room.host
        assert sorted(room.joined["names"]) == ["Læge", "Patient SDK"]

        # The roster as the SDK reported it (onParticipants, after the sync on connect).
        rosters = await browser.run("return window.sdk.rosters")
        assert rosters, room.console
        assert rosters[-1]["id"] == "main"
        assert sorted(rosters[-1]["names"]) == ["Læge", "Patient SDK"]
        assert rosters[-1]["hosts"] == ["Læge"]

        # Remote media reaches the SDK's call and plays in a <video>.
        assert await browser.run("return window.sdk.remoteStreams") >= 1
        await browser.wait_until("return document.getElementById('remote').videoWidth > 0",
                                 "no picture in the SDK's remote video", seconds=15)
        media = await browser.inbound_media("peerConnections.0", seconds=15)
        assert media["framesDecoded"] > 0 and media["totalAudioEnergy"] > 0, media
        await wait_for(lambda: len(room.doctor.received.audio) > 0,
                       "the doctor's bot got no audio from the SDK", seconds=15)

        # The validated REST roster (GET participants) passes the SDK's checks too.
        listed = await browser.run_async(
            "const done = arguments[0];"
            "window.sdk.client.requestParticipants({}).then("
            "  (r) => done(r && r.data ? r.data.result.map((p) => p.display_name) : r),"
            "  (e) => done(String(e)));")
        assert sorted(listed) == ["Læge", "Patient SDK"], (listed, browser.console_text())
        assert ledger.in_use(LicenceKind.PORT) == 2

        left = await browser.run_async(
            "const done = arguments[0];"
            "window.sdk.client.disconnect({reason: 'User initiated disconnect'})"
            "  .then(() => done('ok'), (e) => done(String(e)));")
        assert left == "ok"
        patient_uuid = room.joined["me"]
        await wait_for(lambda: ("participant_delete", {"uuid": patient_uuid}) in host.events,
                       "the host did not see the SDK client leave")
        await wait_for(lambda: ledger.in_use(LicenceKind.PORT) == 1,
                       "the SDK client's licence was not released")
        assert await browser.run("return window.sdk.disconnected") is None
        room.console += browser.console()
        refused = rejections(room.console)
        assert refused == [], "\n".join(refused)


async def test_host_decodes_the_pexip_sdk_clients_video(
        served: ServedNode, tmp_path: Path) -> None:
    """Pexip's SDK rewrites the answer it gets to prefer H.264; the node answers with a single
    codec per m-line, so what the browser sends is what the node routes (here: forwarded to a
    VP8 peer that must decode it)."""
    async with sdk_room(served, tmp_path) as room:
        await wait_for(lambda: room.doctor.received.video_frames > 0,
                       "the doctor's bot decoded no video from the SDK", seconds=8)
        left = await room.browser.run_async(
            "const done = arguments[0];"
            "window.sdk.client.disconnect({reason: 'User initiated disconnect'})"
            "  .then(() => done('ok'), (e) => done(String(e)));")
        assert left == "ok"
