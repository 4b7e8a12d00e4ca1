"""WebRTC calls: the client API's ``calls`` endpoints, licences, and the room's media.

Starting a call takes the licence first (a refusal costs the node nothing), then answers the offer,
then hands the endpoint to its room's media. Every way a call can end — the client's
``disconnect``, ICE/DTLS failure, the participant leaving or being removed, the room closing,
token expiry, node shutdown — goes through ``CallLegs.end``, which releases the licence and calls
back here to close the peer connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from confnode.booking.meeting import Meeting
from confnode.config import MediaSettings, WebRtcSettings
from confnode.errors import Conflict, NotFound
from confnode.licensing import LicenceKind
from confnode.live.calls import CallLegs
from confnode.live.room_media import LatencyObserver, RoomMedia
from confnode.live.rooms import LiveRooms
from confnode.rooms import (
    ParticipantState,
    ParticipantUpdated,
    ParticipantView,
    RoomEnded,
    RoomEvent,
)
from confnode.transport.webrtc.endpoint import WebRtcEndpoint
from confnode.transport.webrtc.ice import rtc_configuration

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class WebRtcCall:
    call_id: str
    meeting_id: str
    participant_id: str
    endpoint: WebRtcEndpoint


def offers_video(sdp: str) -> bool:
    """Whether an offer has a usable video section (decides port vs audio licence)."""
    sections = sdp.split("\nm=")[1:]
    for section in sections:
        if section.startswith("video") and not section.startswith("video 0 "):
            if "a=inactive" not in section:
                return True
    return False


class WebRtcCalls:
    def __init__(self, calls: CallLegs, rooms: LiveRooms, clock: Clock, *,
                 ice: WebRtcSettings, media: MediaSettings,
                 on_latency: LatencyObserver | None = None) -> None:
        self._calls = calls
        self._rooms = rooms
        self._clock = clock
        self._ice = ice
        self._media_settings = media
        self._on_latency = on_latency
        self.calls: dict[str, WebRtcCall] = {}
        self.media: dict[str, RoomMedia] = {}
        self._layouts: dict[str, str] = {}
        self._closed_decoded = 0
        self._closed_forwarded = 0
        rooms.add_listener(self._room_event)

    def frame_totals(self) -> tuple[int, int]:
        """Frames decoded and forwarded since start, over ended and live calls."""
        decoded, forwarded = self._closed_decoded, self._closed_forwarded
        for call in self.calls.values():
            decoded += call.endpoint.frames_decoded()
            forwarded += call.endpoint.frames_forwarded()
        return decoded, forwarded

    def set_layout(self, meeting_id: str, layout: str) -> None:
        self._layouts[meeting_id] = layout
        media = self.media.get(meeting_id)
        if media is not None:
            media.layout = layout

    def room_media(self, meeting_id: str) -> RoomMedia:
        if meeting_id not in self.media:
            media = RoomMedia(meeting_id, self._media_settings, self._on_latency)
            media.layout = self._layouts.get(meeting_id, media.layout)
            self.media[meeting_id] = media
        return self.media[meeting_id]

    async def start(self, meeting: Meeting, participant: ParticipantView,
                    offer_sdp: str, now: datetime) -> tuple[str, str]:
        if any(c.participant_id == participant.participant_id for c in self.calls.values()):
            raise Conflict("This participant already has a call; disconnect it first.")
        licence = LicenceKind.PORT if offers_video(offer_sdp) else LicenceKind.AUDIO
        holder: dict[str, WebRtcCall] = {}

        async def close_media() -> None:
            call = holder.get("call")
            if call is not None:
                await self._teardown(call)

        leg = await self._calls.start(meeting, participant.participant_id,
                                      endpoint_type="webrtc", protocol="webrtc", codec=None,
                                      licence=licence, now=now, close_media=close_media)
        media = self.room_media(meeting.id)
        endpoint = WebRtcEndpoint(
            leg.leg_id, participant.participant_id,
            ice=rtc_configuration(self._ice.ice_servers, self._ice.turn_username,
                                  self._ice.turn_credential),
            on_state=lambda state: self._state(leg.leg_id, state), on_frame=media.on_frame)
        call = holder["call"] = WebRtcCall(leg.leg_id, meeting.id, participant.participant_id,
                                           endpoint)
        self.calls[leg.leg_id] = call
        try:
            answer = await endpoint.answer(offer_sdp)
        except Exception as exc:
            await self._calls.end(leg.leg_id, self._clock())
            raise Conflict("The SDP offer could not be answered.") from exc
        codecs = endpoint.negotiated_codecs()
        await self._calls.set_codec(leg.leg_id, "/".join(codecs.values()) or "none")
        # Read the participant again: answering took a while (ICE gathering), and a host may
        # have admitted them meanwhile; that event found no endpoint in the room's media yet.
        current = self._current_view(meeting.id, participant)
        media.attach(endpoint, connected=current.state is ParticipantState.CONNECTED,
                     muted=current.muted)
        return leg.leg_id, answer

    def _current_view(self, meeting_id: str, participant: ParticipantView) -> ParticipantView:
        live = self._rooms.get(meeting_id)
        if live is None:
            return participant
        try:
            return live.room.participant(participant.participant_id)
        except NotFound:
            return participant

    def call(self, call_id: str, participant_id: str) -> WebRtcCall:
        call = self.calls.get(call_id)
        if call is None or call.participant_id != participant_id:
            raise NotFound("No such call.")
        return call

    async def add_candidate(self, call_id: str, participant_id: str, candidate: str,
                            mid: str | None) -> None:
        await self.call(call_id, participant_id).endpoint.add_candidate(candidate, mid)

    async def update(self, call_id: str, participant_id: str, offer_sdp: str) -> str:
        return await self.call(call_id, participant_id).endpoint.renegotiate(offer_sdp)

    async def end(self, call_id: str, participant_id: str) -> None:
        self.call(call_id, participant_id)
        await self._calls.end(call_id, self._clock())

    async def end_participant(self, participant_id: str) -> None:
        for call in [c for c in self.calls.values() if c.participant_id == participant_id]:
            await self._calls.end(call.call_id, self._clock())

    async def close_all(self) -> None:
        for call_id in list(self.calls):
            await self._calls.end(call_id, self._clock())
        for media in self.media.values():
            await media.close()
        self.media.clear()

    async def _teardown(self, call: WebRtcCall) -> None:
        if self.calls.pop(call.call_id, None) is not None:
            self._closed_decoded += call.endpoint.frames_decoded()
            self._closed_forwarded += call.endpoint.frames_forwarded()
        media = self.media.get(call.meeting_id)
        if media is not None:
            media.detach(call.participant_id)
            if not media.members:
                await media.close()
                self.media.pop(call.meeting_id, None)
        await call.endpoint.close()

    async def _state(self, call_id: str, state: str) -> None:
        if state in ("failed", "closed") and call_id in self.calls:
            log.info("call %s ended: connection %s", call_id, state)
            await self._calls.end(call_id, self._clock())

    def _room_event(self, meeting_id: str, event: RoomEvent) -> None:
        media = self.media.get(meeting_id)
        if media is None:
            return
        if isinstance(event, ParticipantUpdated):
            view = event.view
            media.set_connected(view.participant_id, view.state is ParticipantState.CONNECTED)
            media.set_muted(view.participant_id, view.muted)
            media.set_on_hold(view.participant_id, view.on_hold)
        elif isinstance(event, RoomEnded):
            self._layouts.pop(meeting_id, None)
        # ParticipantLeft needs nothing here: CallLegs.end, driven by LiveRooms, tears the
        # endpoint down through the leg's close_media.
