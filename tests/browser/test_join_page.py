"""The join page in a real headless Chromium against a real node, with an aiortc host.

Acceptance: a patient opens the guest link, gives a name, is asked for the PIN, waits in the lobby,
is let in when the doctor arrives, and media flows both ways (decoded frames and audio energy in the
browser; frames and audio at the doctor's bot). Leaving releases the licence.
"""

from __future__ import annotations

from pathlib import Path

from bots import MediaBot
from clientapi import ClientParticipant, book, join, token_of, wait_for
from conftest import ServedNode, link_path
from headless_chromium import chromium

from confnode.licensing import LicenceKind


async def hang_up(person: ClientParticipant) -> None:
    if person.call_uuid:
        await person.post(f"participants/{person.uuid}/calls/{person.call_uuid}/disconnect")
    await person.post("release_token", {"reason": "User initiated disconnect"})
    await person.close()


async def test_join_page_is_served_with_a_strict_policy(served: ServedNode) -> None:
    b = await book(served, guest_pin="2468")
    async with served.http() as http:
        page = await http.get(link_path(b["guest_link"]), headers={"Accept": "text/html"})
        described = await http.get(link_path(b["guest_link"]),
                                   headers={"Accept": "application/json"})
        script = await http.get("/static/join.js")
        style = await http.get("/static/join.css")
        other = await http.get("/static/app.py")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert '<script src="../static/join.js" defer></script>' in page.text
    assert described.json()["pin_required"] is True  # JSON answer unchanged
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "window.confnode = confnode" in script.text
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert other.status_code == 404


async def test_guest_joins_through_pin_and_lobby_with_media_both_ways(
        served: ServedNode, tmp_path: Path) -> None:
    b = await book(served, guest_pin="2468")
    host_alias = token_of(b["host_link"])
    ledger = served.node.calls.ledger
    async with served.http() as http, chromium(tmp_path / "profile") as browser:
        host: ClientParticipant | None = None
        try:
            await browser.open(served.url + link_path(b["guest_link"]))
            assert await browser.run("return window.confnode.state") == "name"
            await browser.type_into("#display-name", "Patient")
            await browser.click("#join-button")
            await browser.wait_until("return window.confnode.state === 'pin'",
                                     "no PIN prompt")
            assert await browser.run("return document.getElementById('pin-field').hidden") \
                is False

            await browser.type_into("#pin", "0000")
            await browser.click("#join-button")
            await browser.wait_until(
                "return document.getElementById('error').textContent === 'Invalid PIN'",
                "a wrong PIN is not reported")
            assert await browser.run("return window.confnode.state") == "pin"

            await browser.type_into("#pin", "2468")
            await browser.click("#join-button")
            await browser.wait_until("return window.confnode.state === 'lobby'",
                                     "the guest did not reach the lobby")
            assert "Waiting for the host" in await browser.text("#lobby-message")
            assert await browser.run("return document.getElementById('screen-lobby').hidden") \
                is False

            host = await join(http, host_alias, "Læge", pin=b["host_pin"])
            await host.start_events()
            doctor = MediaBot("doctor", tone=660, luma=200)
            assert (await host.call(doctor)).status_code == 200

            await browser.wait_until("return window.confnode.state === 'meeting'",
                                     "the page stayed in the lobby", seconds=15)
            media = await browser.inbound_media("confnode.pc", seconds=20)
            assert media.get("framesDecoded", 0) > 0, media
            assert media.get("totalAudioEnergy", 0) > 0, media

            await wait_for(lambda: doctor.received.video_frames > 0
                           and len(doctor.received.audio) > 0,
                           "the doctor's bot got no media from the browser", seconds=15)
            roster = (await http.get(f"{host.base}/participants",
                                     headers={"token": host.token})).json()["result"]
            assert {p["display_name"] for p in roster} == {"Patient", "Læge"}
            patient = next(p for p in roster if p["display_name"] == "Patient")
            assert patient["service_type"] == "conference"
            # Every participant sees the list, the patient included.
            names = await browser.wait_until(
                "const n = window.confnode.participants.map(p => p.display_name);"
                "return n.length === 2 && n", "the page has no participant list")
            assert sorted(names) == ["Læge", "Patient"]
            assert "Læge" in await browser.text("#participant-list")

            # Mute and camera toggle the local tracks (what the PeerConnection sends).
            sent = ("return window.confnode.pc.getSenders()"
                    ".filter(s => s.track).map(s => [s.track.kind, s.track.enabled]).sort()")
            assert await browser.run(sent) == [["audio", True], ["video", True]]
            await browser.click("#mic-button")
            await browser.click("#camera-button")
            assert await browser.run(sent) == [["audio", False], ["video", False]]
            assert await browser.run(
                "return ['mic-button', 'camera-button'].map("
                "id => document.getElementById(id).getAttribute('aria-pressed'))") \
                == ["true", "true"]
            await browser.click("#mic-button")
            assert await browser.run(sent) == [["audio", True], ["video", False]]

            in_meeting = ledger.in_use(LicenceKind.PORT)
            assert in_meeting == 2
            await browser.click("#leave-button")
            await browser.wait_until("return window.confnode.state === 'left'",
                                     "Leave did not leave")
            await wait_for(lambda: ("participant_delete", {"uuid": patient["uuid"]})
                           in host.events, "the host did not see the patient leave")
            await wait_for(lambda: ledger.in_use(LicenceKind.PORT) == 1,
                           "the patient's licence was not released")
        finally:
            if host is not None:
                await hang_up(host)
    await wait_for(lambda: ledger.in_use(LicenceKind.PORT) == 0, "licences still held")


async def test_host_locks_admits_mutes_and_removes_from_the_page(
        served: ServedNode, tmp_path: Path) -> None:
    b = await book(served, guest_pin="2468")
    async with served.http() as http, chromium(tmp_path / "profile") as browser:
        guest: ClientParticipant | None = None
        try:
            await browser.open(served.url + link_path(b["host_link"]))
            await browser.type_into("#display-name", "Læge")
            await browser.click("#join-button")
            await browser.wait_until("return window.confnode.state === 'pin'", "no PIN prompt")
            await browser.type_into("#pin", b["host_pin"])
            await browser.click("#join-button")
            await browser.wait_until("return window.confnode.state === 'meeting'",
                                     "the host did not enter the meeting")

            await browser.wait_until("return !document.getElementById('lock-button').hidden",
                                     "no lock button for the host")
            await browser.click("#lock-button")
            await browser.wait_until(
                "return document.getElementById('lock-button')"
                ".getAttribute('aria-pressed') === 'true'", "the room did not lock")
            live = served.node.rooms.get(b["id"])
            assert live is not None and live.room.locked

            guest = await join(http, token_of(b["guest_link"]), "Pårørende", pin="2468")
            assert guest.service_type == "waiting_room"
            await guest.start_events()
            row = f'#participant-list li[data-uuid="{guest.uuid}"]'
            await browser.wait_until(
                f"return document.querySelector('{row} button[data-action=\"admit\"]')",
                "no Admit button for the waiting guest")
            assert "waiting" in await browser.text(row)
            await browser.click(f'{row} button[data-action="admit"]')
            await wait_for(lambda: any(
                n == "participant_update" and d["uuid"] == guest.uuid
                and d["service_type"] == "conference" for n, d in guest.events),
                "Admit did not let the guest in")

            await browser.wait_until(
                f"return document.querySelector('{row} button[data-action=\"mute\"]')",
                "no Mute button for the admitted guest")
            await browser.click(f'{row} button[data-action="mute"]')
            await wait_for(lambda: any(
                n == "participant_update" and d["uuid"] == guest.uuid
                and d["is_muted"] == "YES" for n, d in guest.events), "Mute did not mute")

            await browser.wait_until(
                f"return document.querySelector('{row} button[data-action=\"disconnect\"]')",
                "no Disconnect button")
            await browser.click(f'{row} button[data-action="disconnect"]')
            await wait_for(lambda: "disconnect" in guest.event_names(),
                           "Disconnect did not remove the guest")
            await browser.wait_until(
                f"return !document.querySelector('{row}')",
                "the removed guest is still listed")
            await browser.click("#leave-button")
            await browser.wait_until("return window.confnode.state === 'left'",
                                     "Leave did not leave")
        finally:
            if guest is not None:
                await guest.close()
    await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.PORT) == 0,
                   "licences still held")
