"""SIP calls into rooms: routing by alias, SDES or DTLS-SRTP media, the keypad PIN IVR, licences.

An INVITE's request-URI user is a room's numeric alias (a permanent VMR's dial-in number, or a
booked room's), a number the operator's dial plan maps to one (a gateway's ``+45…``, a PBX prefix:
:mod:`confnode.rooms.dial_plan`), or one of the room's link tokens. The call takes its licence
before it is answered (a full node answers 503 with Retry-After and nothing else is disturbed);
rooms with PINs answer first and then ask for the PIN by keypad (RFC 4733 or SIP INFO): ``#``
submits, three wrong PINs end the call. The caller then joins the same room media as browsers,
transcoded or forwarded. A DTLS-SRTP handshake that fails (or a certificate that does not match the
caller's fingerprint) ends the call like a hang-up by the node: BYE, licence released.

Within the call, a re-INVITE or UPDATE with a new offer is renegotiated against the current
session (:func:`renegotiate`): hold and resume (RFC 3264 §8.4, and the RFC 2543 ``c=0.0.0.0``),
a codec change, video added or dropped, a new remote address. The endpoint and the room media
follow the new session; an offer with nothing acceptable gets 488 and the current session goes
on unchanged (RFC 3261 §14.2). The licence taken at the INVITE is held throughout: one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from confnode.booking.meeting import Meeting
from confnode.errors import (
    ConfnodeError,
    LicenceRefused,
    NotFound,
    PinInvalid,
    PinLockedOut,
    PinRequired,
    RoomClosed,
    RoomNotOpenYet,
)
from confnode.licensing import LicenceKind
from confnode.live.admission import Admission
from confnode.live.calls import CallLegs
from confnode.live.rooms import LiveRooms
from confnode.live.webrtc_calls import WebRtcCalls
from confnode.rooms import EndpointType, MediaKind, ParticipantState, Role
from confnode.rooms.dial_plan import DialPlan
from confnode.rooms.pin_entry import GaveUp, PinEntry, Rejected, Submitted
from confnode.security.personal_data import find_cpr_like
from confnode.transport.encoders import audio_encoder
from confnode.transport.rtp.dtls_srtp import DtlsSrtpSettings
from confnode.transport.rtp.endpoint import RtpEndpoint
from confnode.transport.sip.negotiation import (
    NegotiatedSession,
    NotAcceptable,
    answer_offer,
    renegotiate,
)
from confnode.transport.sip.sdp import SdpError, parse_sdp
from confnode.transport.sip.shell import SipShell
from confnode.transport.sip.user_agent import (
    CallCancelled,
    CallEnded,
    DtmfReceived,
    IncomingCall,
    ReInvite,
    SipEvent,
    SipUserAgent,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FRAME = 960  # 20 ms at 48 kHz
# What the node both decodes and encodes for SIP legs; the answer prefers wideband (Opus,
# G.722) over G.711 whatever the offer's order (confnode.transport.sip.negotiation).
SIP_AUDIO_CODECS = ("opus", "G722", "PCMU", "PCMA")


def prompt_tone(kind: str) -> np.ndarray:
    """Prompts are tones, not speech, so they need no language: rising = "enter your PIN",
    low = "wrong PIN", soft pulse = "waiting for the host"."""
    rate = 48000

    def beep(hz: float, seconds: float, level: float = 6000) -> np.ndarray:
        t = np.arange(int(rate * seconds)) / rate
        envelope = np.minimum(1, np.minimum(t, t[::-1]) * 50)
        return (np.sin(2 * np.pi * hz * t) * level * envelope).astype(np.int16)

    def gap(seconds: float) -> np.ndarray:
        return np.zeros(int(rate * seconds), dtype=np.int16)

    parts = {
        "enter_pin": [beep(600, 0.2), gap(0.1), beep(900, 0.3), gap(2.4)],
        "wrong_pin": [beep(300, 0.6), gap(0.4)],
        "waiting": [beep(440, 0.15, 2500), gap(2.85)],
    }[kind]
    samples = np.concatenate(parts)
    return np.pad(samples, (0, -len(samples) % FRAME))


@dataclass
class SipCall:
    call_id: str
    participant_id: str
    meeting: Meeting
    endpoint: RtpEndpoint
    leg_id: str | None = None
    entry: PinEntry | None = None
    joined: bool = False
    prompt: asyncio.Task[None] | None = None
    ended_by_peer: bool = False
    display_name: str = "SIP"
    session: NegotiatedSession | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    listener: SipShell | None = None  # the transport the call came in on; it is answered there
    # One offer/answer at a time per call: the user agent already refuses overlapping offers,
    # this keeps the await between offer and answer from interleaving two of ours.
    renegotiating: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def on_hold(self) -> bool:
        return self.session is not None and self.session.on_hold


class SipCalls:
    def __init__(self, admission: Admission, rooms: LiveRooms, calls: CallLegs,
                 webrtc: WebRtcCalls, clock: Clock, *, allow_plain_rtp: bool,
                 media_host: str, dtls: DtlsSrtpSettings | None = None,
                 dial_plan: DialPlan | None = None) -> None:
        self._admission = admission
        self._rooms = rooms
        self._calls = calls
        self._webrtc = webrtc
        self._clock = clock
        self._allow_plain_rtp = allow_plain_rtp
        self._media_host = media_host
        self.listeners: list[SipShell] = []
        # The node's DTLS identity and the profile's rules; None answers no DTLS-SRTP offer.
        self.dtls = dtls
        self.dial_plan = dial_plan or DialPlan()
        self.calls: dict[str, SipCall] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def attach(self, listener: SipShell) -> None:
        self.listeners.append(listener)

    def handle(self, event: SipEvent, listener: SipShell) -> None:
        """The listeners' event handler (synchronous: work is spawned onto the loop). A call is
        only ever touched by events from the listener it came in on."""
        if isinstance(event, IncomingCall):
            self._spawn(self._incoming(event, listener))
            return
        if (known := self.calls.get(event.call_id)) is not None and known.listener is not listener:
            return  # the same Call-ID on another transport: not this call's peer
        if isinstance(event, (CallEnded, CallCancelled)):
            call = self.calls.get(event.call_id)
            if call is not None:
                call.ended_by_peer = True
                self._spawn(self._end(call))
        elif isinstance(event, DtmfReceived):
            call = self.calls.get(event.call_id)
            if call is not None:
                for digit in event.digits:
                    self._digit(call, digit)
        elif isinstance(event, ReInvite):
            self._spawn(self._reinvite(event, listener))

    # Incoming calls

    async def _incoming(self, event: IncomingCall, listener: SipShell) -> None:
        agent = self._agent(listener)
        now = self._clock()
        mono = asyncio.get_running_loop().time()
        if event.call_id in self.calls:
            # A live call's Call-ID arriving on another transport: never let it touch that call.
            agent.reject(event.call_id, 482, "Loop Detected", now=mono)
            return self._flush(listener)
        routed = self.dial_plan.route(event.target_user or "")
        if routed.rule is not None:
            # What was dialled is a room's address, not a person's: fine to log, at DEBUG.
            log.debug("SIP call %s: %r routed to alias %s by dial-plan rule %d (%s)",
                      event.call_id, event.target_user, routed.address, routed.rule,
                      self.dial_plan.rules[routed.rule].pattern)
        try:
            meeting, _ = await self._admission.locate(routed.address, now)
        except RoomNotOpenYet as exc:
            agent.reject(event.call_id, 480, "Meeting not open yet",
                         warning=f"The meeting opens at {exc.opens_at.isoformat()}", now=mono)
            return self._flush(listener)
        except (NotFound, RoomClosed, ConfnodeError):
            agent.reject(event.call_id, 404, "Not Found", now=mono)
            return self._flush(listener)
        try:
            offer = parse_sdp(event.offer_sdp or b"")
        except SdpError as exc:
            agent.reject(event.call_id, exc.status, warning="Unusable session description",
                         now=mono)
            return self._flush(listener)
        participant_id = str(uuid.uuid4())
        endpoint = RtpEndpoint(event.call_id, participant_id, on_frame=self._on_frame,
                               on_digit=lambda d: self._digit(self.calls[event.call_id], d),
                               dtls=self.dtls)
        ports = await endpoint.open(self._media_host, offer)
        try:
            session = answer_offer(offer, local_address=self._media_host, ports=ports,
                                   over_tls=listener.tls,
                                   allow_plain_rtp=self._allow_plain_rtp,
                                   supported_audio=SIP_AUDIO_CODECS,
                                   session_id=secrets.randbits(31),
                                   dtls_fingerprint=self.dtls.identity.fingerprint()
                                   if self.dtls is not None else None)
        except NotAcceptable as exc:
            await endpoint.close()
            agent.reject(event.call_id, exc.status, warning=(exc.warning, exc.reason), now=mono)
            return self._flush(listener)
        name = event.display_name or "SIP"
        call = SipCall(event.call_id, participant_id, meeting, endpoint,
                       display_name="SIP" if find_cpr_like(name) else name[:100],
                       session=session, listener=listener)
        licence = LicenceKind.PORT if session.video is not None else LicenceKind.AUDIO

        async def close_media() -> None:
            await self._teardown(call)

        try:
            leg = await self._calls.start(meeting, participant_id, endpoint_type="sip",
                                          protocol=f"sip/{listener.transport.value}",
                                          codec=None, licence=licence, now=now,
                                          close_media=close_media)
        except LicenceRefused:
            await endpoint.close()
            agent.reject(event.call_id, 503, "Service Unavailable", retry_after=30,
                         warning="Insufficient licenses", now=mono)
            return self._flush(listener)
        call.leg_id = leg.leg_id
        self.calls[event.call_id] = call
        await self._calls.set_codec(leg.leg_id, _codec_names(session))
        endpoint.on_security_failure = lambda _reason: self._spawn(self._end(call))
        endpoint.configure(session)
        for media in session.media:
            # The acceptance criterion and auditors want to see it; never the keys.
            log.info("SIP call %s: %s %s, SRTP %s", event.call_id, media.kind.value,
                     media.codec.name if media.codec else "-",
                     media.srtp.suite.value if media.srtp else
                     "by DTLS handshake" if media.dtls else "none")
        agent.accept(event.call_id, session.answer.serialize().encode(), now=mono)
        self._flush(listener)
        if meeting.has_pins:
            call.entry = PinEntry(now)
            self._play(call, "enter_pin", repeat=True)
        else:
            await self._join(call, Role.HOST)

    def _digit(self, call: SipCall, digit: str) -> None:
        if call.entry is None or call.joined:
            return
        outcome = call.entry.press(digit, self._clock())
        if isinstance(outcome, Submitted):
            self._spawn(self._check_pin(call, outcome.pin))
        elif isinstance(outcome, GaveUp):
            self._spawn(self._end(call))

    async def _check_pin(self, call: SipCall, pin: str) -> None:
        assert call.entry is not None
        source = f"sip:{call.call_id}"
        try:
            role = self._admission.role_for(call.meeting, None, pin or None, source,
                                            self._clock())
        except PinLockedOut:
            await self._end(call)
            return
        except (PinInvalid, PinRequired):
            outcome = call.entry.verdict(False)
            if isinstance(outcome, GaveUp):
                log.info("SIP call %s: wrong PIN three times, disconnecting", call.call_id)
                await self._end(call)
            elif isinstance(outcome, Rejected):
                self._play(call, "wrong_pin", then="enter_pin")
            return
        call.entry.verdict(True)
        await self._join(call, role)

    async def _join(self, call: SipCall, role: Role) -> None:
        if call.prompt is not None:
            call.prompt.cancel()
        media = [MediaKind.AUDIO] + ([MediaKind.VIDEO] if "video" in call.endpoint.kinds
                                     else [])
        try:
            admitted = await self._admission.join(
                call.meeting, role, display_name=call.display_name,
                endpoint_type=EndpointType.SIP, protocol="sip", media=media, now=self._clock(),
                participant_id=call.participant_id)
        except ConfnodeError:
            await self._end(call)
            return
        call.joined = True
        view = admitted.participant
        self._webrtc.room_media(call.meeting.id).attach(
            call.endpoint, connected=view.state is ParticipantState.CONNECTED, muted=view.muted)
        if call.on_hold:  # held while still at the PIN prompt
            await self._show_hold(call)

    # Prompts

    def _play(self, call: SipCall, kind: str, *, repeat: bool = False,
              then: str | None = None) -> None:
        if call.prompt is not None:
            call.prompt.cancel()
        call.prompt = asyncio.ensure_future(self._prompt(call, kind, repeat, then))

    async def _prompt(self, call: SipCall, kind: str, repeat: bool, then: str | None) -> None:
        codec = ""
        samples = prompt_tone(kind)
        loop = asyncio.get_running_loop()
        next_frame = loop.time()
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                for start in range(0, len(samples), FRAME):
                    outbound = call.endpoint.outbound.get("audio")
                    if outbound is None:
                        return
                    current = call.endpoint.negotiated_codecs().get("audio", "PCMU")
                    if current != codec:  # a re-INVITE changed the codec mid-prompt
                        codec, encoder = current, audio_encoder(current, 32000)
                    data = encoder.encode(samples[start:start + FRAME])
                    if data:
                        outbound.push(data, 0, self)
                    next_frame += 0.02
                    await asyncio.sleep(max(0.0, next_frame - loop.time()))
                if then is not None:
                    kind, samples, then, repeat = then, prompt_tone(then), None, True
                elif not repeat:
                    return

    # Endings

    async def _end(self, call: SipCall) -> None:
        if call.leg_id is not None:
            await self._calls.end(call.leg_id, self._clock())  # -> _teardown via close_media
        else:
            await self._teardown(call)

    async def _teardown(self, call: SipCall) -> None:
        if self.calls.pop(call.call_id, None) is None:
            return
        if call.prompt is not None:
            call.prompt.cancel()
        media = self._webrtc.media.get(call.meeting.id)
        if media is not None:
            media.detach(call.participant_id)
        await call.endpoint.close()
        if call.joined:
            await self._rooms.leave(call.meeting.id, call.participant_id, self._clock())
        if not call.ended_by_peer and call.listener is not None:
            with contextlib.suppress(ConfnodeError):
                self._agent(call.listener).hangup(call.call_id,
                                                  now=asyncio.get_running_loop().time())
            self._flush(call.listener)

    async def close_all(self) -> None:
        for call in list(self.calls.values()):
            await self._end(call)

    async def _reinvite(self, event: ReInvite, listener: SipShell) -> None:
        call = self.calls.get(event.call_id)
        agent = self._agent(listener)
        loop = asyncio.get_running_loop()
        if call is None or call.session is None:
            # Ending or not yet set up: the user agent still waits for an answer.
            with contextlib.suppress(ConfnodeError):
                agent.answer_reinvite(event.call_id, None, 500, now=loop.time())
            return self._flush(listener)
        async with call.renegotiating:
            previous = call.session
            if event.offer_sdp is None:
                # No offer (RFC 3261 §14.2): ours is the current session, unchanged.
                agent.answer_reinvite(event.call_id, previous.answer.serialize().encode(),
                                      now=loop.time())
                return self._flush(listener)
            try:
                offer = parse_sdp(event.offer_sdp)
                ports = await call.endpoint.open(self._media_host, offer)
                session = renegotiate(previous, offer, ports=ports,
                                      over_tls=listener.tls)
            except SdpError as exc:
                agent.answer_reinvite(event.call_id, None, exc.status,
                                      warning="Unusable session description", now=loop.time())
                return self._flush(listener)
            except NotAcceptable as exc:
                log.info("SIP call %s: re-offer refused (%s); the session continues",
                         event.call_id, exc.reason)
                agent.answer_reinvite(event.call_id, None, exc.status,
                                      warning=(exc.warning, exc.reason), now=loop.time())
                return self._flush(listener)
            if call.call_id not in self.calls:
                return  # hung up while we bound ports; the user agent answered 487
            call.endpoint.configure(session)
            call.session = session
            agent.answer_reinvite(event.call_id, session.answer.serialize().encode(),
                                  now=loop.time())
            self._flush(listener)
            codecs = _codec_names(session)
            if codecs != _codec_names(previous):
                log.info("SIP call %s: renegotiated to %s", event.call_id, codecs)
                if call.leg_id is not None:
                    await self._calls.set_codec(call.leg_id, codecs)
                media = self._webrtc.media.get(call.meeting.id)
                if media is not None and call.joined:
                    media.renegotiated(call.participant_id)
            if session.on_hold != previous.on_hold:
                log.info("SIP call %s: %s", event.call_id,
                         "on hold" if session.on_hold else "resumed")
                if call.joined:
                    await self._show_hold(call)

    async def _show_hold(self, call: SipCall) -> None:
        """Tell the room (and so its media and every roster) that the call is (no longer) held."""
        now = self._clock()
        live = self._rooms.get(call.meeting.id)
        if live is None:
            return
        with contextlib.suppress(ConfnodeError):
            live.room.set_on_hold(call.participant_id, call.on_hold, now)
        await self._rooms.settle(live, now)

    def _on_frame(self, participant_id: str, kind: str, frame: Any) -> None:
        for call in self.calls.values():
            if call.participant_id == participant_id and call.joined:
                media = self._webrtc.media.get(call.meeting.id)
                if media is not None:
                    media.on_frame(participant_id, kind, frame)
                return

    def _agent(self, listener: SipShell) -> SipUserAgent:
        assert listener.agent is not None
        return listener.agent

    def _flush(self, listener: SipShell) -> None:
        listener.flush()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP call handling failed", exc_info=task.exception())


def _codec_names(session: NegotiatedSession) -> str:
    return "/".join(m.codec.name for m in session.media if m.codec is not None)
