"""SIP callers find and enter rooms as browsers do, against a real node: a gateway's number routed
by the dial plan, a permanent VMR by its numeric alias with the host PIN keyed in, and the lobby
and the lock holding a SIP guest exactly where they hold a WebRTC guest — hearing nothing of the
room until let in, and its licence given back when the host sends it away.

The phone is scripted (``sipsystem``): SIP over TLS, SDES-SRTP, keypad by SIP INFO. A browser bot
in the room sends a 660 Hz tone; what the phone hears is checked by FFT.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bots import MediaBot, energy_at
from clientapi import ClientParticipant, book, join, request_token, token_of, wait_for
from conftest import SERVED_SETTINGS, ServedNode, serving
from sipsystem import ScriptedSipSystem

from confnode.rooms import EndpointType, ParticipantState, ParticipantView, Role, WaitingReason
from confnode.security.certificate import ensure_self_signed

ROOM_TONE = 660
HOST_PIN = "4321"


async def listen(served: ServedNode, tmp_path: Path) -> tuple[int, Path]:
    """Start the node's SIP-TLS listener on a free port; its port and the CA to trust."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    return (await served.node.start_sip(cert, key)).bound_port, cert


@pytest.fixture
async def sip(served: ServedNode, tmp_path: Path) -> tuple[int, Path]:
    return await listen(served, tmp_path)


@pytest.fixture
async def phone() -> AsyncIterator[ScriptedSipSystem]:
    system = ScriptedSipSystem(tone=500)
    yield system
    await system.close()


def sip_participant(served: ServedNode, meeting_id: str) -> ParticipantView | None:
    """The phone as the room sees it; None until its call has entered the room."""
    live = served.node.rooms.get(meeting_id)
    views = [] if live is None else [p for p in live.room.participants()
                                     if p.endpoint_type is EndpointType.SIP]
    assert len(views) <= 1
    return views[0] if views else None


async def phone_in_room(served: ServedNode, meeting_id: str,
                        state: ParticipantState) -> ParticipantView:
    def check() -> bool:
        view = sip_participant(served, meeting_id)
        return view is not None and view.state is state
    await wait_for(check, f"the caller is not {state.value} in the room", seconds=6)
    view = sip_participant(served, meeting_id)
    assert view is not None
    return view


def participant(served: ServedNode, meeting_id: str, participant_id: str) -> ParticipantView:
    live = served.node.rooms.get(meeting_id)
    assert live is not None
    return next(p for p in live.room.participants() if p.participant_id == participant_id)


def licences(served: ServedNode) -> int:
    return len(served.node.calls.ledger.holds())


async def hears_nothing_of_the_room(phone: ScriptedSipSystem, seconds: float = 1.5) -> None:
    """What reaches the phone for ``seconds`` (silence, or nothing) has no room tone in it."""
    phone.audio.clear()
    await asyncio.sleep(seconds)
    assert energy_at(phone.audio, ROOM_TONE, last_seconds=seconds) < 0.005, \
        "a phone in the lobby hears the room"


async def hears_the_room(phone: ScriptedSipSystem) -> None:
    phone.audio.clear()
    await wait_for(lambda: energy_at(phone.audio, ROOM_TONE) > 0.02,
                   "the phone does not hear the room's tone", seconds=6)


async def in_room_with_tone(http: Any, booking: dict[str, Any], pin: str | None = None,
                            tone: float | None = ROOM_TONE) -> ClientParticipant:
    """A browser that joins by the host link and sends ``tone`` into the room."""
    browser = await join(http, token_of(booking["host_link"]), "Læge", pin)
    assert (await browser.call(MediaBot("browser", tone=tone))).status_code == 200
    return browser


async def test_a_dial_plan_rule_routes_a_gateway_number_to_the_room(
        settings_factory: Callable[..., Any], tmp_path: Path,
        phone: ScriptedSipSystem) -> None:
    settings = settings_factory(**SERVED_SETTINGS, sip={
        "dial_plan": [{"pattern": r"9(\d{10})", "alias": r"\1"},
                      {"pattern": r"\+45(\d{10})", "alias": r"\1"}]})
    async with serving(settings) as served:
        port, ca = await listen(served, tmp_path)
        booking = await book(served, guests_wait_for_host=False)
        unmatched = ScriptedSipSystem()
        try:
            missing = await unmatched.dial(port, ca, "+4599")  # no rule, no such room
            assert missing.status == 404
        finally:
            await unmatched.close()
        answer = await phone.dial(port, ca, f"+45{booking['alias']}")
        assert answer.status == 200, answer.status
        [call] = served.node.sip.calls.values()
        assert call.meeting.id == booking["id"]
        await phone_in_room(served, booking["id"], ParticipantState.CONNECTED)
        assert licences(served) == 1


async def test_a_permanent_vmr_is_reached_by_its_numeric_alias(
        served: ServedNode, sip: tuple[int, Path], phone: ScriptedSipSystem) -> None:
    async with served.http() as http:
        created = await http.post("/api/v1/permanent-rooms", headers=served.admin.headers,
                                  json={"subject": "Dr. Hansens rum", "host_pin": HOST_PIN})
    assert created.status_code == 201, created.text
    vmr = created.json()
    assert vmr["meeting_type"] == "permanent" and vmr["alias"].isdigit()
    answer = await phone.dial(*sip, vmr["alias"])
    assert answer.status == 200, answer.status
    await phone.press(HOST_PIN + "#")  # the IVR: the host PIN makes a host
    view = await phone_in_room(served, vmr["id"], ParticipantState.CONNECTED)
    assert view.role is Role.HOST


async def test_a_sip_guest_waits_in_the_lobby_for_the_host_and_then_hears_the_room(
        served: ServedNode, sip: tuple[int, Path], phone: ScriptedSipSystem) -> None:
    booking = await book(served, guests_wait_for_host=True, host_pin=HOST_PIN)
    async with served.http() as http:
        # A browser guest with the tone waits too: nothing of it may reach the phone yet.
        guest = await join(http, token_of(booking["guest_link"]), "Pårørende")
        assert (await guest.call(MediaBot("guest", tone=ROOM_TONE))).status_code == 200
        host: ClientParticipant | None = None
        try:
            answer = await phone.dial(*sip, booking["alias"])
            assert answer.status == 200, answer.status
            await phone.press("#")  # host PIN only: a guest enters without one
            view = await phone_in_room(served, booking["id"], ParticipantState.WAITING)
            assert (view.role, view.state, view.waiting_reason) == (
                Role.GUEST, ParticipantState.WAITING, WaitingReason.HOST_ABSENT)
            await hears_nothing_of_the_room(phone)

            host = await in_room_with_tone(http, booking, HOST_PIN, tone=None)
            await phone_in_room(served, booking["id"], ParticipantState.CONNECTED)
            await hears_the_room(phone)  # the browser guest's tone, let in with it
        finally:
            if host is not None:
                await host.close()
            await guest.close()


async def test_a_locked_room_holds_a_sip_guest_as_it_holds_a_webrtc_guest(
        served: ServedNode, sip: tuple[int, Path], phone: ScriptedSipSystem) -> None:
    booking = await book(served, guests_wait_for_host=False, host_pin=HOST_PIN)
    async with served.http() as http:
        host = await in_room_with_tone(http, booking, HOST_PIN)
        try:
            assert (await host.post("lock")).json()["result"] is True
            # What a browser guest gets from the locked room ...
            token = await request_token(http, token_of(booking["guest_link"]), "Pårørende")
            assert token.status_code == 200, token.text
            browser_guest = participant(served, booking["id"],
                                        token.json()["result"]["participant_uuid"])
            assert browser_guest.state is ParticipantState.WAITING
            before = licences(served)

            # ... a SIP guest gets too: held in the lobby for the host to decide.
            answer = await phone.dial(*sip, booking["alias"])
            assert answer.status == 200, answer.status
            await phone.press("#")
            view = await phone_in_room(served, booking["id"], ParticipantState.WAITING)
            assert (view.role, view.state, view.waiting_reason) == (
                Role.GUEST, browser_guest.state, browser_guest.waiting_reason)
            assert view.waiting_reason is WaitingReason.LOCKED
            assert licences(served) == before + 1
            await hears_nothing_of_the_room(phone)

            # The host turns it away: the node hangs up, the licence comes back.
            refused = await host.post(f"participants/{view.participant_id}/disconnect")
            assert refused.status_code == 200, refused.text
            bye = await phone.client.incoming_request(5)
            assert bye.method == "BYE"
            await wait_for(lambda: not served.node.sip.calls and licences(served) == before,
                           "the refused call kept its licence")
        finally:
            await host.close()
