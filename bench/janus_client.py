"""A real Janus gateway on loopback and a minimal client of its HTTP API, for side-by-side runs.

Janus (Debian package ``janus``) is started from a generated configuration directory holding only
what the comparison needs: the HTTP transport on 127.0.0.1 and the AudioBridge and EchoTest
plugins (the plugin and transport folders are temporary directories of symlinks to exactly those
shared objects, so nothing else is loaded).

ICE: Janus gathers no candidates on a loopback interface (1.1.2 with ``ice_enforce_list = "lo"``
or ``"127.0.0.1"`` offered every *other* interface's addresses instead). So its ICE is enforced
to one local IPv4 address of this host, IPv6 off. Packets to a local address never leave the
host: the kernel routes them through ``lo`` (``ip route get <addr>`` says ``local ... dev lo``),
exactly like 127.0.0.1.

The client speaks the Janus HTTP API as a browser app's janus.js would: create a session, attach a
plugin handle, send a plugin message (with a JSEP offer where there is one) and long-poll the
session for the asynchronous events (the plugin's answer). aiortc's offer already carries every
candidate, so no trickle is needed beyond what the SDP holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aioice.ice
import httpx

JANUS_BINARY = Path("/usr/bin/janus")
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGINS = ("libjanus_audiobridge.so", "libjanus_echotest.so")
TRANSPORTS = ("libjanus_http.so",)
EVENT_TIMEOUT = 15.0  # seconds for a plugin's asynchronous answer (an SDP answer takes ~0.1 s)


class JanusError(RuntimeError):
    """Janus answered a request with an error (or never answered)."""


def _lib_dir() -> Path:
    """Where the Debian package put the plugins (multiarch path differs per architecture)."""
    if JANUS_LIB.is_dir():
        return JANUS_LIB
    found = sorted(Path("/usr/lib").glob("*/janus/plugins"))
    if not found:
        raise FileNotFoundError("Janus plugins not found under /usr/lib/*/janus")
    return found[0].parent


class JanusProcess:
    """``janus`` as a child process, configured in ``work_dir``; HTTP API at ``url``."""

    def __init__(self, work_dir: Path, port: int, ice_address: str,
                 binary: Path = JANUS_BINARY) -> None:
        if not binary.exists():
            raise FileNotFoundError(f"{binary} missing: apt-get install janus")
        self.work_dir = work_dir
        self.port = port
        self.ice_address = ice_address
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self.log = work_dir / "janus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/janus"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _configure(self) -> Path:
        lib = _lib_dir()
        conf = self.work_dir / "conf"
        for folder, names in (("plugins", PLUGINS), ("transports", TRANSPORTS)):
            target = self.work_dir / folder
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                link = target / name
                if not link.exists():
                    link.symlink_to(lib / folder / name)
        conf.mkdir(parents=True, exist_ok=True)
        # Log level 3 (warnings): Janus's per-event info logging is not part of the workload.
        (conf / "janus.jcfg").write_text(f"""general: {{
    configs_folder = "{conf}"
    plugins_folder = "{self.work_dir / 'plugins'}"
    transports_folder = "{self.work_dir / 'transports'}"
    events_folder = "{self.work_dir / 'events'}"
    loggers_folder = "{self.work_dir / 'loggers'}"
    debug_level = 3
    session_timeout = 120
    server_name = "confnode-bench"
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{self.ice_address}"
    ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
events: {{
    broadcast = false
}}
""")
        (conf / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {self.port}
    interface = "lo"
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""")
        (conf / "janus.plugin.audiobridge.jcfg").write_text("general: {\n}\n")
        (conf / "janus.plugin.echotest.jcfg").write_text("general: {\n}\n")
        for folder in ("events", "loggers"):
            (self.work_dir / folder).mkdir(exist_ok=True)
        return conf / "janus.jcfg"

    def start(self, timeout: float = 20.0) -> JanusProcess:
        config = self._configure()
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), "--config", str(config), "--configs-folder", str(config.parent),
             "--disable-colors", "--ice-enforce-list", self.ice_address],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.work_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"janus exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError, OSError):
                info = httpx.get(f"{self.url}/info", timeout=1)
                if info.status_code == 200 and all(
                        f"janus.plugin.{p}" in info.json().get("plugins", {})
                        for p in ("audiobridge", "echotest")):
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"janus did not answer in {timeout}s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # Janus's orderly shutdown
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class JanusHandle:
    """One plugin handle: send it messages, wait for its asynchronous events."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request (create, list, ...): the plugin's data in the reply."""
        reply = await self.session.post(f"/{self.id}", {"janus": "message", "body": body})
        if reply.get("janus") != "success":
            raise JanusError(f"{body.get('request')}: {reply}")
        data: dict[str, Any] = reply["plugindata"]["data"]
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data['error']}")
        return data

    async def message(self, body: dict[str, Any],
                      offer_sdp: str | None = None) -> dict[str, Any]:
        """An asynchronous plugin request: acked now, its event (with the answer) comes later."""
        message: dict[str, Any] = {"janus": "message", "body": body}
        if offer_sdp is not None:
            message["jsep"] = {"type": "offer", "sdp": offer_sdp}
        reply = await self.session.post(f"/{self.id}", message)
        if reply.get("janus") != "ack":
            raise JanusError(f"{body.get('request')}: {reply}")
        while True:
            event = await asyncio.wait_for(self.events.get(), EVENT_TIMEOUT)
            if event.get("janus") != "event":
                continue  # webrtcup, media, ... arrive on the same queue
            data = event.get("plugindata", {}).get("data", {})
            if "error" in data:
                raise JanusError(f"{body.get('request')}: {data['error']}")
            if offer_sdp is None or "jsep" in event:
                return event


class JanusSession:
    """A Janus session over HTTP with its long-poll loop (which also keeps it alive)."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.id: int | None = None
        self.handles: dict[int, JanusHandle] = {}
        self._poller: asyncio.Task[None] | None = None

    async def post(self, path: str, message: dict[str, Any]) -> dict[str, Any]:
        message = {**message, "transaction": secrets.token_hex(6)}
        response = await self.http.post(f"{self.url}/{self.id}{path}", json=message)
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        if reply.get("janus") == "error":
            raise JanusError(str(reply.get("error")))
        return reply

    async def create(self) -> JanusSession:
        response = await self.http.post(self.url, json={"janus": "create",
                                                        "transaction": secrets.token_hex(6)})
        reply = response.json()
        if reply.get("janus") != "success":
            raise JanusError(f"create: {reply}")
        self.id = int(reply["data"]["id"])
        self._poller = asyncio.ensure_future(self._poll())
        return self

    async def attach(self, plugin: str) -> JanusHandle:
        reply = await self.post("", {"janus": "attach", "plugin": plugin})
        if reply.get("janus") != "success":
            raise JanusError(f"attach {plugin}: {reply}")
        handle = JanusHandle(self, int(reply["data"]["id"]))
        self.handles[handle.id] = handle
        return handle

    async def _poll(self) -> None:
        while True:
            try:
                response = await self.http.get(f"{self.url}/{self.id}",
                                               params={"maxev": 10}, timeout=40)
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            events = response.json()
            for event in events if isinstance(events, list) else [events]:
                handle = self.handles.get(int(event.get("sender", 0)))
                if handle is not None:
                    handle.events.put_nowait(event)

    async def destroy(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
        if self.id is not None:
            with contextlib.suppress(httpx.HTTPError, JanusError):
                await self.post("", {"janus": "destroy"})


def local_ice_address() -> str:
    """A local, non-loopback IPv4 address of this host for Janus's ICE (see the module docstring).

    aioice's own interface list is used so both sides agree on what "local" means."""
    addresses = [a for a in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
                 if not a.startswith("127.")]
    if not addresses:
        raise RuntimeError("no non-loopback IPv4 address for Janus's ICE (Janus skips lo)")
    route = subprocess.run(["ip", "route", "get", addresses[0]], capture_output=True, text=True,
                           check=False).stdout
    if route and not route.startswith("local"):
        raise RuntimeError(f"{addresses[0]} is not routed locally: {route}")
    return addresses[0]
