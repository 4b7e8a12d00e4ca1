"""The composition root: one ``Node`` wires settings, store, domain cores and the ASGI app.

Everything hangs off the node, nothing off modules, so an application can embed one (or a test can
run two) in a process. Embedding::

    node = Node(Settings(data_dir=...))
    async with node:               # migrates the store, reconciles licences, starts timers
        app.mount("/video", node.app)

Time comes from ``clock`` so tests can stand exactly on a window's edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from confnode import __version__
from confnode.api.app import create_app
from confnode.booking.principal import StaffRole
from confnode.booking.service import BookingPolicy, BookingService
from confnode.config import Settings
from confnode.errors import InvalidInput
from confnode.licensing import GracePolicy, LicenceKind, LicenceLedger
from confnode.live.admission import Admission
from confnode.live.calls import CallLegs
from confnode.live.cpu_sampler import CpuSampler
from confnode.live.queues import ClinicQueues
from confnode.live.rooms import LiveRooms
from confnode.live.sessions import ClientSessions
from confnode.live.sip_calls import SipCalls
from confnode.live.webrtc_calls import WebRtcCalls
from confnode.metrics import NodeMetrics
from confnode.rooms import EndReason, ParticipantLeft, RoomEnded, RoomEvent
from confnode.rooms.dial_plan import DialPlan, DialRule
from confnode.security.capability import PinHasher, load_or_create_node_secret
from confnode.security.dtls import harden_aiortc_dtls
from confnode.security.profiles import ListenerKind, get_profile, server_context
from confnode.security.redaction import install_redaction
from confnode.store.database import Database, create_engine, migrate
from confnode.store.directory import Directory
from confnode.store.meetings import MeetingStore
from confnode.store.records import RecordStore
from confnode.transport.rtp.dtls_srtp import DtlsIdentity, DtlsSrtpSettings
from confnode.transport.sip.listener import SipListener
from confnode.transport.sip.shell import SipShell, SipTransport
from confnode.transport.sip.udp_listener import SipUdpListener
from confnode.transport.webrtc.ice import offer_loopback_candidates

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
TICK_SECONDS = 1.0
PURGE_EVERY = timedelta(hours=1)
DEFAULT_ORG = "default"
ADMIN_EMAIL = "admin@localhost"


def system_clock() -> datetime:
    return datetime.now(UTC)


class Node:
    version = __version__

    def __init__(self, settings: Settings | None = None, *, clock: Clock = system_clock) -> None:
        self.settings = settings or Settings()
        self.clock = clock
        self.metrics = NodeMetrics()
        self.engine = create_engine(self.settings.effective_database_url)
        self.database = Database(self.engine)
        self.directory = Directory(self.database)
        self.meetings = MeetingStore(self.database)
        self.records = RecordStore(self.database)
        s = self.settings
        ledger = LicenceLedger(
            {LicenceKind.PORT: s.licences.port, LicenceKind.AUDIO: s.licences.audio},
            GracePolicy(fraction=s.licences.grace_fraction,
                        max_seconds_per_day=s.licences.grace_hours_per_day * 3600),
            tz=s.tz)
        self.calls = CallLegs(ledger, self.records, self.directory,
                              self.metrics.on_licence_event)
        secret = load_or_create_node_secret(s.data_dir / "node-secret")
        self.bookings = BookingService(self.meetings, self.directory, BookingPolicy(
            open_before=s.open_before, close_after=s.close_after,
            instant_duration=timedelta(minutes=s.rooms.instant_duration_minutes),
            max_duration=timedelta(hours=s.rooms.max_meeting_hours),
            guests_wait_for_host=s.rooms.guests_wait_for_host, public_url=s.public_url,
            sip_domain=urlsplit(s.public_url).hostname or "localhost"), PinHasher(secret))
        self.rooms = LiveRooms(self.bookings, self.calls)
        self.admission = Admission(self.bookings, self.rooms)
        self.sessions = ClientSessions()
        offer_loopback_candidates(s.webrtc.loopback_candidates)
        # Process-wide: aiortc has one DTLS setup. SIP's DTLS-SRTP follows the same hardening.
        hardening = harden_aiortc_dtls(s.security_profile)
        self.webrtc = WebRtcCalls(self.calls, self.rooms, self.now,
                                  ice=s.webrtc, media=s.media,
                                  on_latency=self.metrics.observe_latency)
        self.rooms.add_listener(self._forget_sessions)
        self.cpu = CpuSampler(self.calls, self.webrtc, composed_height=s.media.height,
                              on_interval=self.metrics.on_cpu_interval)
        self.sip = SipCalls(self.admission, self.rooms, self.calls, self.webrtc, self.now,
                            allow_plain_rtp=s.sip.allow_plain_rtp, media_host=s.sip.host,
                            dtls=DtlsSrtpSettings(DtlsIdentity.generate(), hardening),
                            dial_plan=DialPlan(DialRule(rule.pattern, rule.alias)
                                               for rule in s.sip.dial_plan))
        self.sip_listeners: dict[SipTransport, SipShell] = {}
        self.queues = ClinicQueues(self.directory, self.bookings, self._notify_clinic,
                                   s.public_url)
        self.app = create_app(self)
        self._ticker: asyncio.Task[None] | None = None
        self._last_purge: datetime | None = None
        self._started = False

    def now(self) -> datetime:
        return self.clock()

    @property
    def admin_token_path(self) -> Path:
        return self.settings.data_dir / "admin-token"

    async def start(self) -> None:
        if self._started:
            return
        # An embedded node cannot rely on `confnode serve` having filtered the host's logs:
        # aiortc logs whole SDPs (ICE passwords) at DEBUG.
        install_redaction()
        await migrate(self.engine)
        await self._bootstrap()
        await self.calls.recover(self.now())
        self._ticker = asyncio.create_task(self._run_timers(), name="confnode-timers")
        self.cpu.start()
        self._started = True
        log.info("confnode %s started at %s", self.version, self.settings.public_url)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.cpu.stop()
        now = self.now()
        # Every exit path gives licences back: closing the rooms ends their calls.
        await self.rooms.close_all(now, EndReason.NODE_SHUTDOWN)
        await self.sip.close_all()
        for shell in self.sip_listeners.values():
            await shell.stop()
        self.sip_listeners.clear()
        await self.webrtc.close_all()
        await self.calls.end_all(now)
        await self.engine.dispose()
        log.info("confnode stopped")

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def tick(self) -> None:
        """Run every timer that is due now (the background task calls this each second)."""
        now = self.now()
        await self.calls.tick(now)
        for session in self.sessions.expire(now):
            # An expired token is an exit path like a hang-up: the participant leaves.
            await self.rooms.leave(session.meeting_id, session.participant_id, now,
                                   "token_expired")
        await self.rooms.tick(now)
        for meeting in await self.meetings.due_to_end(now):
            if self.rooms.get(meeting.id) is None:
                await self.bookings.mark_ended(meeting.id, now, early=False)
        if self._last_purge is None or now - self._last_purge >= PURGE_EVERY:
            self._last_purge = now
            await self.records.purge_before(
                now - timedelta(days=self.settings.record_retention_days))

    async def start_sip(self, cert: Path | None, key: Path | None) -> SipShell:
        """Listen for SIP on every transport switched on in ``sip`` (TLS by default; plain TCP
        and UDP only when asked) and return the first, TLS when it runs. TLS needs ``cert`` and
        ``key``: without them it is not started, and never silently replaced by plain TCP."""
        sip = self.settings.sip
        shells: list[SipShell] = []
        if cert and key and self.sip.dtls is not None:  # DTLS-SRTP presents the node's own
            self.sip.dtls = replace(self.sip.dtls, identity=DtlsIdentity.load(cert, key))
        if sip.tls and cert and key:
            context = server_context(get_profile(self.settings.security_profile),
                                     ListenerKind.SIP_TLS, cert, key)
            shells.append(SipListener(sip.host, sip.port, context, self.sip.handle))
        elif sip.tls:
            log.warning("SIP over TLS is not listening: no certificate was given (plain TCP is "
                        "a separate switch, sip.tcp)")
        if sip.tcp:
            shells.append(SipListener(sip.host, sip.tcp_port, None, self.sip.handle))
        if sip.udp:
            shells.append(SipUdpListener(sip.host, sip.udp_port, self.sip.handle))
        if not shells:
            raise InvalidInput("SIP cannot listen: TLS needs a certificate, and plain TCP and "
                               "UDP are off (sip.tcp, sip.udp).")
        for shell in shells:
            await shell.start()
            self.sip_listeners[shell.transport] = shell
            self.sip.attach(shell)
        off = [t.value.upper() for t in (SipTransport.TCP, SipTransport.UDP)
               if t not in self.sip_listeners]
        if off:
            log.info("SIP over %s off (settings sip.tcp, sip.udp)", " and ".join(off))
        return shells[0]

    def _forget_sessions(self, meeting_id: str, event: RoomEvent) -> None:
        if isinstance(event, ParticipantLeft):
            self.sessions.drop_participant(event.participant_id)
        elif isinstance(event, RoomEnded):
            self.sessions.drop_meeting(meeting_id)

    async def _run_timers(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("timer tick failed; retrying")
            await asyncio.sleep(TICK_SECONDS)

    async def check_store(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def licence_report(self) -> dict[str, Any]:
        now = self.now()
        usage = self.calls.ledger.usage(now)
        peaks = await self.records.peaks()
        monthly: dict[tuple[str, str], int] = {}
        for day, kind, peak in peaks:
            key = (day[:7], kind)
            monthly[key] = max(monthly.get(key, 0), peak)
        return {
            "pools": {kind.value: {
                "in_use": u.in_use, "capacity": u.capacity,
                "grace_allowance": u.grace_allowance,
                "grace_seconds_used_today": round(u.grace_seconds_used_today, 1),
                "in_grace": u.in_grace} for kind, u in usage.items()},
            "daily_peaks": [{"day": day, "kind": kind, "peak": peak} for day, kind, peak in peaks],
            "monthly_peaks": [{"month": month, "kind": kind, "peak": peak}
                              for (month, kind), peak in sorted(monthly.items())],
        }

    async def _bootstrap(self) -> None:
        """First start: an organisation and an admin whose API token is written, 0600, to the data
        directory (never logged), so ``confnode book`` works straight away."""
        if not await self.directory.is_empty():
            return
        now = self.now()
        await self.directory.create_organisation(DEFAULT_ORG, "Default organisation",
                                                 self.settings.region, now)
        admin = await self.directory.create_user(DEFAULT_ORG, ADMIN_EMAIL, StaffRole.ADMIN, now)
        issued = await self.directory.issue_token(admin.user_id, "bootstrap", now)
        path = self.admin_token_path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(issued.token + "\n")
        log.info("Created organisation %r and admin %s; API token written to %s",
                 DEFAULT_ORG, ADMIN_EMAIL, path)

    async def _notify_clinic(self, org_id: str, payload: dict[str, Any]) -> None:
        org = await self.directory.organisation(org_id)
        if not org.webhook_url:
            log.info("Patient called in %s; no webhook configured", org_id)
            return
        try:
            async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_seconds) as client:
                response = await client.post(org.webhook_url, json=payload)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The payload holds a join link: log only that delivery failed, never the body.
            log.warning("Webhook delivery for %s failed: %s", org_id, type(exc).__name__)
