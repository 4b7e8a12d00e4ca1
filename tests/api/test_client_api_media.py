"""The Pexip-compatible client API with real WebRTC media (aiortc bots) on loopback.

Tones are chosen so that no sum, difference or third-order product of two of them lands near a
third (440/660/880 would: 2*660 - 880 = 440): a codec's faint intermodulation must not look like
a participant hearing themselves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bots import MediaBot
from clientapi import ClientParticipant, book, join, request_token, token_of, wait_for
from conftest import ServedNode

from confnode.licensing import LicenceKind


async def test_pin_prompt_lobby_admission_and_passthrough(served: ServedNode) -> None:
    b = await book(served, guest_pin="2468", host_pin="1357")
    guest_alias, host_alias = token_of(b["guest_link"]), token_of(b["host_link"])
    async with served.http() as http:
        prompt = await request_token(http, guest_alias, "Patient")
        assert prompt.status_code == 403
        assert prompt.json() == {"status": "success", "result": {
            "pin": "required", "guest_pin": "required",
            "version": {"version_id": "36", "pseudo_version": "confnode"}}}
        wrong = await request_token(http, guest_alias, "Patient", pin="0000")
        assert wrong.status_code == 403 and wrong.json()["result"] == "Invalid PIN"

        patient = await join(http, guest_alias, "Patient", pin="2468")
        assert patient.role == "GUEST" and patient.service_type == "waiting_room"
        await patient.start_events()
        patient_bot = MediaBot("patient", tone=440, luma=50)
        assert (await patient.call(patient_bot)).status_code == 200  # calls allowed in lobby

        doctor = await join(http, host_alias, "Læge", pin="1357")
        assert doctor.role == "HOST" and doctor.service_type == "conference"
        await doctor.start_events()
        doctor_bot = MediaBot("doctor", tone=660, luma=210)
        assert (await doctor.call(doctor_bot)).status_code == 200
        try:
            # The host arriving admits the guest: the patient sees itself go to "conference".
            await wait_for(lambda: any(
                n == "participant_update" and d["uuid"] == patient.uuid
                and d["service_type"] == "conference" for n, d in patient.events))
            sync = patient.event_names()
            assert sync[:3] == ["conference_update", "participant_sync_begin",
                                "participant_create"]
            assert "participant_sync_end" in sync
            await wait_for(lambda: doctor_bot.received.video_frames > 15
                           and patient_bot.received.video_frames > 15
                           and len(doctor_bot.received.audio) > 50
                           and len(patient_bot.received.audio) > 50, seconds=15)
            await asyncio.sleep(0.5)
            assert abs(doctor_bot.peak_frequencies(count=1)[0] - 440) < 20
            assert abs(patient_bot.peak_frequencies(count=1)[0] - 660) < 20
            # Passthrough: nothing decoded, everything forwarded.
            decoded, forwarded = served.node.webrtc.frame_totals()
            assert decoded == 0 and forwarded > 100
            media = served.node.webrtc.media[b["id"]]
            assert media.route.value == "passthrough"
            assert served.node.calls.ledger.in_use(LicenceKind.PORT) == 2
            roster = (await http.get(f"{doctor.base}/participants",
                                     headers={"token": doctor.token})).json()["result"]
            assert {p["display_name"] for p in roster} == {"Patient", "Læge"}
            assert {p["role"] for p in roster} == {"guest", "chair"}
            hangup = await patient.post(f"participants/{patient.uuid}/calls/"
                                        f"{patient.call_uuid}/disconnect")
            assert hangup.json() == {"status": "success", "result": None}
            released = await patient.post("release_token", {})
            assert released.json() == {"status": "success", "result": True}
            await wait_for(lambda: any(n == "participant_delete" for n, _ in doctor.events))
            assert served.node.calls.ledger.in_use(LicenceKind.PORT) == 1
            metrics = (await http.get("/metrics")).text
            assert 'confnode_frames_decoded 0.0' in metrics
            for series in ('confnode_join_seconds_count{direction="received"}',
                           'confnode_join_seconds_count{direction="sent"}',
                           'confnode_media_added_latency_seconds_count{kind="audio",'
                           'path="passthrough"}'):
                line = next(x for x in metrics.splitlines() if x.startswith(series))
                assert float(line.split()[-1]) >= 1, line
        finally:
            await patient.close()
            await doctor.close()
    await served.node.stop()
    assert served.node.calls.ledger.in_use(LicenceKind.PORT) == 0


async def test_three_party_mixing_by_content(served: ServedNode) -> None:
    """Each hears the other two and never itself; a muted one is not heard; the lobby hears
    nothing."""
    b = await book(served)
    host_alias, guest_alias = token_of(b["host_link"]), token_of(b["guest_link"])
    tones = {"a": 500.0, "b": 800.0, "c": 1400.0}
    people: dict[str, ClientParticipant] = {}
    async with served.http() as http:
        try:
            for name, tone in tones.items():
                person = await join(http, host_alias if name == "a" else guest_alias, name)
                await person.start_events()
                assert (await person.call(MediaBot(name, tone=tone, luma=40 + 60 *
                                                   len(people)))).status_code == 200
                people[name] = person
            media = served.node.webrtc.media[b["id"]]
            await wait_for(lambda: media.route.value == "mixed")
            await asyncio.sleep(3)
            for name, person in people.items():
                bot = person.bot
                assert bot is not None
                own = bot.energy_at(tones[name])
                others = [bot.energy_at(f) for n, f in tones.items() if n != name]
                # The codec's noise floor, measured where nobody sends anything: one's own
                # frequency must be no louder than that, the others far above it.
                floor = max(bot.energy_at(f) for f in (650, 3100, 3700))
                assert own < 4 * max(floor, 1e-3), (name, own, floor)
                assert min(others) > 20 * max(own, floor, 1e-3), (name, own, others, floor)
            decoded, _ = served.node.webrtc.frame_totals()
            assert decoded > 100  # mixing decodes
            assert people["a"].bot.received.video_frames > 5  # type: ignore[union-attr]

            # Mute c (host action): a and b stop hearing 1400 Hz.
            muted = await people["a"].post(f"participants/{people['c'].uuid}/mute")
            assert muted.json()["result"] is True
            await asyncio.sleep(1.5)
            for name in ("a", "b"):
                bot = people[name].bot
                assert bot is not None
                assert bot.energy_at(1400, last_seconds=0.8) * 20 < bot.energy_at(
                    tones["b" if name == "a" else "a"], last_seconds=0.8)

            # Lock the room, then a new guest waits in the lobby and hears nothing.
            assert (await people["a"].post("lock")).json()["result"] is True
            waiting = await join(http, guest_alias, "d")
            assert waiting.service_type == "waiting_room"
            await waiting.start_events()
            lobby_bot = MediaBot("d", tone=1700, luma=250)
            assert (await waiting.call(lobby_bot)).status_code == 200
            people["d"] = waiting
            await asyncio.sleep(2)
            assert lobby_bot.energy_at(500, last_seconds=1) < 1e-3
            assert lobby_bot.energy_at(800, last_seconds=1) < 1e-3
            # ...and is not heard (nothing at 1700 Hz beyond codec noise, next to a's 500 Hz).
            b_bot = people["b"].bot
            assert b_bot is not None
            assert b_bot.energy_at(1700, last_seconds=1) * 20 < b_bot.energy_at(500,
                                                                                last_seconds=1)
            assert served.node.webrtc.media[b["id"]].members[waiting.uuid].endpoint \
                .frames_decoded() == 0
        finally:
            for person in people.values():
                await person.close()


async def test_licence_refusal_past_grace_and_release(settings_factory: Any) -> None:
    import contextlib

    from conftest import ServedNode as _Served  # noqa: F401 - documents the fixture shape

    from confnode.node import Node
    from confnode.transport.https import HttpsListener

    settings = settings_factory(http={"tls": False, "port": 0},
                                licences={"port": 1, "audio": 0, "grace_fraction": 1.0})
    node = Node(settings)
    await node.start()
    listener = HttpsListener(node)
    task = asyncio.ensure_future(listener.serve())
    await wait_for(lambda: listener.bound_port is not None)
    token = node.admin_token_path.read_text().strip()
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.bound_port}",
                                 timeout=20) as http:
        booked = (await http.post("/api/v1/meetings", headers={"Authorization": f"Bearer {token}"},
                                  json={"subject": "x", "meeting_type": "instant",
                                        "guests_wait_for_host": False})).json()
        alias = token_of(booked["guest_link"])
        people = [await join(http, alias, f"p{i}") for i in range(3)]
        try:
            first = await people[0].call(MediaBot("p0", tone=440, luma=90))
            second = await people[1].call(MediaBot("p1", tone=660, luma=90))  # capacity 1 + 1 grace
            assert first.status_code == 200 and second.status_code == 200, second.text
            third = await people[2].call(MediaBot("p2", tone=880, luma=90))
            assert third.status_code == 503
            assert third.json() == {"status": "failed", "result": "Insufficient licenses"}
            assert node.calls.ledger.in_use(LicenceKind.PORT) == 2
            for person in people:
                await person.post("release_token", {})
            await wait_for(lambda: node.calls.ledger.in_use(LicenceKind.PORT) == 0)
        finally:
            for person in people:
                await person.close()
    listener.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)
    await node.stop()
    assert node.calls.ledger.in_use(LicenceKind.PORT) == 0
    assert await node.records.holds() == []


@pytest.mark.parametrize("path", ["nonsense", "participants/x/calls/y/nothing"])
async def test_unknown_client_endpoints_are_404_json(served: ServedNode, path: str) -> None:
    async with served.http() as http:
        response = await http.get(f"/api/client/v2/conferences/123/{path}")
    assert response.status_code == 404
    assert response.json() == {"status": "failed", "result": "404 Not Found"}


async def test_third_joiner_switches_to_mixing_and_back_without_dropping(
        served: ServedNode) -> None:
    b = await book(served, guests_wait_for_host=False)
    alias = token_of(b["guest_link"])
    async with served.http() as http:
        first, second = await join(http, alias, "one"), await join(http, alias, "two")
        third: ClientParticipant | None = None
        try:
            assert (await first.call(MediaBot("one", tone=500, luma=60))).status_code == 200
            assert (await second.call(MediaBot("two", tone=800, luma=160))).status_code == 200
            media = served.node.webrtc.media[b["id"]]
            await wait_for(lambda: media.route.value == "passthrough")
            await asyncio.sleep(2)
            decoded_before, _ = served.node.webrtc.frame_totals()
            assert decoded_before == 0
            calls_before = set(served.node.webrtc.calls)

            third = await join(http, alias, "three")
            assert (await third.call(MediaBot("three", tone=1400, luma=250))).status_code == 200
            await wait_for(lambda: media.route.value == "mixed")
            await asyncio.sleep(3)
            one_bot, two_bot = first.bot, second.bot
            assert one_bot is not None and two_bot is not None
            # The first two kept their calls and now hear both others (the mix).
            assert calls_before <= set(served.node.webrtc.calls)
            assert one_bot.energy_at(1400) > 20 * one_bot.energy_at(500)
            assert one_bot.energy_at(800) > 20 * one_bot.energy_at(500)
            assert two_bot.energy_at(1400) > 20 * two_bot.energy_at(800)

            await third.post("release_token", {})
            await wait_for(lambda: media.route.value == "passthrough")
            frames_before = one_bot.received.video_frames
            decoded_mixing, _ = served.node.webrtc.frame_totals()
            await asyncio.sleep(2)
            decoded_after, _ = served.node.webrtc.frame_totals()
            assert decoded_after - decoded_mixing < 10  # decoding stopped again
            assert one_bot.received.video_frames > frames_before  # still receiving pictures
            assert abs(one_bot.peak_frequencies(count=1, last_seconds=0.8)[0] - 800) < 20
        finally:
            for person in (first, second, third):
                if person is not None:
                    await person.close()


async def test_h264_and_g711_endpoint_is_transcoded_in_a_mixed_room(served: ServedNode) -> None:
    b = await book(served, guests_wait_for_host=False)
    alias = token_of(b["guest_link"])
    async with served.http() as http:
        people = [await join(http, alias, n) for n in ("vp8-a", "vp8-b", "h264")]
        try:
            assert (await people[0].call(MediaBot("a", tone=500, luma=60))).status_code == 200
            assert (await people[1].call(MediaBot("b", tone=660, luma=120))).status_code == 200
            legacy = MediaBot("h264", tone=1200, luma=200, audio_codec="PCMU",
                              video_codec="H264")
            assert (await people[2].call(legacy)).status_code == 200
            media = served.node.webrtc.media[b["id"]]
            member = media.members[people[2].uuid]
            assert (member.audio_codec, member.video_codec) == ("pcmu", "h264")
            await wait_for(lambda: legacy.received.video_frames > 10
                           and len(legacy.received.audio) > 100, seconds=15)
            await asyncio.sleep(1)
            # G.711 adds broadband quantisation noise: compare peaks, not a 26 dB margin.
            peaks = legacy.peak_frequencies(count=2)
            assert sorted(round(p / 20) * 20 for p in peaks) == [500, 660], peaks
            vp8_bot = people[0].bot
            assert vp8_bot is not None
            assert vp8_bot.energy_at(1200) > 20 * vp8_bot.energy_at(500)  # its PCMU is heard
            codecs = {key[1] for key in media._video_encoders}
            assert codecs == {"vp8", "h264"}
        finally:
            for person in people:
                await person.close()


async def test_licence_released_on_token_expiry_and_browser_close(served: ServedNode) -> None:
    from datetime import timedelta

    b = await book(served, guests_wait_for_host=False)
    alias = token_of(b["guest_link"])
    ledger = served.node.calls.ledger
    async with served.http() as http:
        expiring, closing = await join(http, alias, "expiring"), None
        try:
            assert (await expiring.call(MediaBot("x", tone=500, luma=60))).status_code == 200
            served.node.sessions.lifetime = timedelta(seconds=1)
            closing = await join(http, alias, "closing")  # issued with the 1 s lifetime
            assert (await closing.call(MediaBot("y", tone=800, luma=90))).status_code == 200
            assert ledger.in_use(LicenceKind.PORT) == 2
            # The browser goes away without a word: its peer connection closes.
            assert closing.bot is not None
            await closing.bot.close()
            await wait_for(lambda: ledger.in_use(LicenceKind.PORT) == 1, seconds=15)
            # The other never refreshes its token (issued with 120 s; make it expire now).
            served.node.sessions.lifetime = timedelta(seconds=0)
            fresh, _ = served.node.sessions.refresh(expiring.token, served.node.now())
            await asyncio.sleep(0.01)
            await served.node.tick()
            await wait_for(lambda: ledger.in_use(LicenceKind.PORT) == 0)
            gone = await http.get(f"{expiring.base}/participants", headers={"token": fresh})
            assert gone.status_code == 403
        finally:
            await expiring.close()
            if closing is not None:
                await closing.close()


async def test_renegotiation_with_update(served: ServedNode) -> None:
    b = await book(served, guests_wait_for_host=False)
    alias = token_of(b["guest_link"])
    async with served.http() as http:
        person = await join(http, alias, "renegotiating")
        try:
            bot = MediaBot("r", tone=500, luma=60)
            assert (await person.call(bot)).status_code == 200
            await wait_for(lambda: bot.pc.connectionState == "connected")
            offer = await bot.offer()
            answer = await person.post(
                f"participants/{person.uuid}/calls/{person.call_uuid}/update", {"sdp": offer})
            assert answer.status_code == 200
            sdp = answer.json()["result"]
            assert isinstance(sdp, str) and sdp.startswith("v=0")
            await bot.accept(sdp)
            assert bot.pc.signalingState == "stable"
            await asyncio.sleep(0.5)
            assert bot.pc.connectionState == "connected"
        finally:
            await person.close()


async def test_ice_servers_are_the_operators_only(settings_factory: Any) -> None:
    import httpx

    from confnode.node import Node

    for servers, expected in (
        ([], {}),
        (["stun:stun.region.example:3478", "turn:turn.region.example:3478?transport=udp"],
         {"stun": [{"url": "stun:stun.region.example:3478"}],
          "turn": [{"urls": ["turn:turn.region.example:3478?transport=udp"],
                    "username": "u", "credential": "c"}]}),
    ):
        settings = settings_factory(webrtc={"ice_servers": servers, "turn_username": "u",
                                            "turn_credential": "c"})
        async with Node(settings) as node:
            token = node.admin_token_path.read_text().strip()
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=node.app),
                                         base_url="http://t") as http:
                booked = (await http.post("/api/v1/meetings", json={
                    "subject": "x", "meeting_type": "instant"},
                    headers={"Authorization": f"Bearer {token}"})).json()
                result = (await request_token(http, token_of(booked["guest_link"]),
                                              "p")).json()["result"]
        assert {k: result[k] for k in ("stun", "turn") if k in result} == expected


async def test_every_room_action_route_answers_true_and_acts(node: Any) -> None:
    import httpx

    token = node.admin_token_path.read_text().strip()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=node.app),
                                 base_url="http://t") as http:
        booked = (await http.post("/api/v1/meetings", json={
            "subject": "x", "meeting_type": "instant"},
            headers={"Authorization": f"Bearer {token}"})).json()
        host = await join(http, token_of(booked["host_link"]), "host")
        guest = await join(http, token_of(booked["guest_link"]), "guest")
        room = node.rooms.get(booked["id"]).room
        steps = [("lock", lambda: room.locked), ("unlock", lambda: not room.locked),
                 ("muteguests", lambda: room.guests_muted),
                 ("unmuteguests", lambda: not room.guests_muted),
                 (f"participants/{guest.uuid}/mute", lambda: room.participant(guest.uuid).muted),
                 (f"participants/{guest.uuid}/unmute",
                  lambda: not room.participant(guest.uuid).muted),
                 (f"participants/{guest.uuid}/unlock",
                  lambda: room.participant(guest.uuid).state.value == "connected")]
        for path, holds in steps:
            response = await host.post(path)
            assert response.json() == {"status": "success", "result": True}, path
            assert holds(), path
        refused = await guest.post("lock")
        assert refused.status_code == 403 and refused.json()["result"] == "Invalid role"
        assert (await host.post("disconnect")).json()["result"] is True
        assert node.rooms.get(booked["id"]) is None
