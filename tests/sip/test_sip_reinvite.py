"""Re-INVITE and UPDATE against a real node: hold and resume, a codec change mid-call, and a
re-offer with nothing acceptable — with RTP counted and audio checked by FFT on the phone's side.

The phone is scripted (``sipsystem``): SIP over TLS by hand, SDES-SRTP media through an
``RtpEndpoint`` of its own. A browser bot in the room sends a 660 Hz tone, the phone 500 Hz.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bots import MediaBot, energy_at, peak_frequencies
from clientapi import ClientParticipant, book, join, token_of, wait_for
from conftest import ServedNode
from sipsystem import ScriptedSipSystem

from confnode.licensing import LicenceKind
from confnode.rooms import ParticipantView
from confnode.security.certificate import ensure_self_signed
from confnode.transport.sip.sdp import parse_sdp

ROOM_TONE, PHONE_TONE = 660, 500


@dataclass
class Call:
    served: ServedNode
    booking: dict[str, Any]
    phone: ScriptedSipSystem
    browser: ClientParticipant
    bot: MediaBot

    def phone_view(self) -> ParticipantView:
        live = self.served.node.rooms.get(self.booking["id"])
        assert live is not None
        return next(p for p in live.room.participants() if p.endpoint_type.value == "sip")

    async def roster_shows_hold(self) -> bool:
        """What a browser's roster (Pexip participant objects) shows for the phone."""
        browser = self.browser
        roster = (await browser.http.get(f"{browser.base}/participants",
                                         headers={"token": browser.token})).json()["result"]
        [phone] = [p for p in roster if p["protocol"] == "sip"]
        return bool(phone["is_video_silent"])

    def licences(self) -> int:
        return self.served.node.calls.ledger.in_use(LicenceKind.AUDIO)

    async def rtp_in(self, seconds: float) -> int:
        """RTP packets the node sent the phone during the next ``seconds``."""
        before = self.phone.packets_received()
        await asyncio.sleep(seconds)
        return self.phone.packets_received() - before

    async def rtp_flows(self, packets: int = 25) -> None:
        """RTP keeps reaching the phone (counted, not timed: a loaded machine ticks unevenly)."""
        before = self.phone.packets_received()
        await wait_for(lambda: self.phone.packets_received() >= before + packets,
                       "no RTP reaches the phone", seconds=6)

    async def phone_hears_the_room(self) -> None:
        await wait_for(lambda: self.phone.audio and sum(map(len, self.phone.audio)) > 48000
                       and abs(peak_frequencies(self.phone.audio)[0] - ROOM_TONE) < 15,
                       "the phone does not hear the room's tone", seconds=6)

    def purity(self) -> float:
        """Share of the phone's last second of audio power within 30 Hz of the room's tone: a
        right-codec decode is a clean sine, PCMU bytes decoded as PCMA are not."""
        samples = np.concatenate(self.phone.audio)[-48000:]
        power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
        freqs = np.fft.rfftfreq(len(samples), 1 / 48000)
        return float(power[np.abs(freqs - ROOM_TONE) < 30].sum() / power.sum())

    async def room_hears_the_phone(self, heard: bool) -> None:
        def check() -> bool:
            return (energy_at(self.bot.received.audio, PHONE_TONE) > 0.01) is heard
        await wait_for(check, f"the browser {'does not hear' if heard else 'hears'} the phone",
                       seconds=6)


@pytest.fixture
async def call(served: ServedNode, tmp_path: Path) -> AsyncIterator[Call]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    booking = await book(served, guests_wait_for_host=False)
    phone = ScriptedSipSystem(tone=PHONE_TONE)
    async with served.http() as http:
        browser = await join(http, token_of(booking["host_link"]), "Læge")
        bot = MediaBot("browser", tone=ROOM_TONE)  # Opus: the room transcodes for the phone
        try:
            assert (await browser.call(bot)).status_code == 200
            answer = await phone.dial(listener.bound_port, cert, booking["alias"])
            assert answer.status == 200, answer.status
            phone.start_sending()
            call = Call(served, booking, phone, browser, bot)
            await call.phone_hears_the_room()
            await call.room_hears_the_phone(True)
            assert call.licences() == 2
            yield call
        finally:
            await phone.close()
            await browser.close()


@pytest.mark.parametrize(("method", "style"), [("INVITE", "sendonly"), ("UPDATE", "0.0.0.0")])
async def test_hold_stops_media_to_the_phone_and_resume_brings_it_back(
        call: Call, method: str, style: str) -> None:
    phone = call.phone
    held_offer = (phone.offer(address="0.0.0.0") if style == "0.0.0.0"
                  else phone.offer(direction=style))
    held = await phone.reoffer(held_offer, method)
    assert held.status == 200 and b"a=recvonly" in held.body
    assert call.phone_view().on_hold and await call.roster_shows_hold()
    await asyncio.sleep(0.3)  # what was already in flight
    assert await call.rtp_in(1.0) == 0, "the node kept sending RTP to a held phone"
    # The phone's music on hold (its tone, still sent) is not mixed into the room.
    await call.room_hears_the_phone(False)
    assert call.licences() == 2  # one call, one licence, held throughout

    resumed = await phone.reoffer(phone.offer(), method)
    assert resumed.status == 200 and b"a=sendrecv" in resumed.body
    assert not call.phone_view().on_hold and not await call.roster_shows_hold()
    await call.rtp_flows()
    await call.room_hears_the_phone(True)
    assert call.licences() == 2


async def test_codec_change_mid_call_keeps_the_call_and_its_tone(call: Call) -> None:
    phone = call.phone
    changed = await phone.reoffer(phone.offer(audio_codec="PCMA"))
    assert changed.status == 200 and b"PCMA/8000" in changed.body and b"PCMU" not in changed.body
    assert phone.audio_codec == "PCMA"  # the phone now decodes PT 8 only, and sends PCMA
    phone.audio.clear()
    await call.phone_hears_the_room()  # PCMA from the node's re-built encoder
    assert call.purity() > 0.8
    await call.room_hears_the_phone(True)  # PCMA decoded by the node
    [sip_call] = call.served.node.sip.calls.values()
    assert sip_call.endpoint.negotiated_codecs() == {"audio": "PCMA"}
    # The room encodes PCMA for it now (PCMU bytes sent as PCMA still decode to a recognisable
    # tone, so the FFT alone cannot tell).
    media = call.served.node.webrtc.media[call.booking["id"]]
    assert media.members[sip_call.participant_id].audio_codec == "pcma"
    assert call.licences() == 2


async def test_unacceptable_reoffer_is_488_and_the_call_goes_on(call: Call) -> None:
    phone = call.phone
    refused = await phone.reoffer(phone.offer(audio_codec="G729"))
    assert refused.status == 488
    assert "305" in (refused.headers.get("Warning") or "")
    phone.audio.clear()
    await call.phone_hears_the_room()  # still PCMU, still flowing
    await call.rtp_flows()
    # The dialog is intact: the next re-offer is answered.
    again = await phone.reoffer(phone.offer())
    assert again.status == 200 and b"PCMU/8000" in again.body
    assert call.licences() == 2


async def test_video_added_by_reinvite_reaches_the_phone(call: Call) -> None:
    """An audio call upgraded to H.264 video mid-call: new sockets on both sides, the node's
    composition encoded in H.264 for it, still the one call and the one licence."""
    phone = call.phone
    await phone.endpoint.open("127.0.0.1", parse_sdp(phone.offer(video=True)))  # our new port
    upgraded = await phone.reoffer(phone.offer(video=True))
    assert upgraded.status == 200 and b"H264/90000" in upgraded.body
    assert b"m=video 0 " not in upgraded.body
    phone.endpoint.set_decoding(True)
    await wait_for(lambda: phone.pictures_decoded > 3, "no H.264 pictures reach the phone",
                   seconds=10)
    [sip_call] = call.served.node.sip.calls.values()
    assert sip_call.endpoint.negotiated_codecs() == {"audio": "PCMU", "video": "H264"}
    await call.phone_hears_the_room()
    assert call.licences() == 2
