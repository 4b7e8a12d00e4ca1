"""The booking API against the ASGI app: booking, links, windows, permissions, personal data."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import ManualClock, Staff, link_path

from confnode.booking.principal import StaffRole
from confnode.config import Settings
from confnode.node import Node
from confnode.security.capability import token_digest

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=15)


def planned(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {"subject": "Videokonsultation", "start_time": START.isoformat(),
                               "end_time": END.isoformat()}
    body.update(extra)
    return body


async def book(client: httpx.AsyncClient, staff: Staff, **extra: object) -> dict[str, object]:
    response = await client.post("/api/v1/meetings", json=planned(**extra), headers=staff.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_book_planned_meeting_returns_everything_in_one_answer(
        client: httpx.AsyncClient, admin: Staff) -> None:
    b = await book(client, admin, host_pin_required=True, guest_pin_required=True)
    assert b["meeting_type"] == "planned" and b["status"] == "scheduled"
    assert b["opens_at"] == "2026-11-23T09:45:00Z" and b["closes_at"] == "2026-11-23T10:30:00Z"
    assert b["host_link"] != b["guest_link"]
    assert b["sip_uri"] == f"sip:{b['alias']}@127.0.0.1"
    assert len(b["alias"]) == 10 and b["alias"].isdigit()
    assert b["host_pin"].isdigit() and b["guest_pin"].isdigit() and b["host_pin"] != b["guest_pin"]
    # Reading it back never shows the secrets again.
    again = (await client.get(f"/api/v1/meetings/{b['id']}", headers=admin.headers)).json()
    assert "guest_link" not in again and "host_pin" not in again
    assert again["host_pin_required"] is True


async def test_book_instant_meeting_opens_now(client: httpx.AsyncClient, admin: Staff,
                                              clock: ManualClock) -> None:
    response = await client.post("/api/v1/meetings", headers=admin.headers,
                                 json={"subject": "Straks", "meeting_type": "instant"})
    assert response.status_code == 201, response.text
    b = response.json()
    assert b["meeting_type"] == "instant" and b["status"] == "open"
    assert datetime.fromisoformat(b["start_time"]) == clock.now
    assert datetime.fromisoformat(b["end_time"]) == clock.now + timedelta(minutes=30)
    link = await client.get(link_path(b["guest_link"]))
    assert link.status_code == 200 and link.json()["role"] == "guest"


async def test_every_booking_gets_a_new_room(client: httpx.AsyncClient, admin: Staff) -> None:
    first, second = await book(client, admin), await book(client, admin)
    assert first["alias"] != second["alias"] and first["guest_link"] != second["guest_link"]


async def test_guest_link_fits_in_60_characters_with_the_default_host(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    assert settings.public_url == "https://127.0.0.1:8443"
    async with Node(settings) as node:
        token = node.admin_token_path.read_text().strip()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=node.app),
                                     base_url="https://testserver") as client:
            response = await client.post(
                "/api/v1/meetings", headers={"Authorization": f"Bearer {token}"},
                json={"subject": "x", "meeting_type": "instant"})
    guest_link = response.json()["guest_link"]
    assert guest_link.startswith("https://127.0.0.1:8443/j/")
    assert len(guest_link) <= 60, guest_link


async def test_tokens_carry_128_bits_and_are_stored_only_hashed(
        client: httpx.AsyncClient, admin: Staff, node: Node) -> None:
    b = await book(client, admin, host_pin="482913", guest_pin="771204")
    tokens = [link.rsplit("/", 1)[1] for link in (b["host_link"], b["guest_link"])]
    for token in tokens:
        # base64url without padding: 22 characters carry 132 bits, of which 128 are random.
        assert len(token) >= math.ceil(128 / 6)
    db = sqlite3.connect(node.settings.data_dir / "confnode.db")
    dump = "\n".join(db.iterdump())
    db.close()
    for secret in (*tokens, admin.token, "482913", "771204"):
        assert secret not in dump
    for token in tokens:
        assert token_digest(token) in dump


async def test_link_window_edges(client: httpx.AsyncClient, admin: Staff,
                                 clock: ManualClock) -> None:
    b = await book(client, admin)
    path = link_path(b["guest_link"])
    opens, closes = START - timedelta(minutes=15), END + timedelta(minutes=15)
    tick = timedelta(microseconds=1)

    clock.set(opens - tick)
    before = await client.get(path)
    assert before.status_code == 403
    assert before.json()["error"] == "not_open_yet"
    assert before.json()["opens_at"] == opens.isoformat()
    assert before.headers["retry-after"] == "1"
    page = await client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 403 and "opens at 23-11-2026 10:45" in page.text  # Copenhagen

    clock.set(opens)
    assert (await client.get(path)).status_code == 200
    clock.set(closes - tick)
    assert (await client.get(path)).status_code == 200
    clock.set(closes)
    after = await client.get(path)
    assert after.status_code == 410 and after.json()["error"] == "room_closed"
    assert (await client.get("/j/AAAAAAAAAAAAAAAAAAAAAA")).status_code == 404


async def test_extend_while_live_moves_the_close(client: httpx.AsyncClient, admin: Staff,
                                                 clock: ManualClock, node: Node) -> None:
    b = await book(client, admin)
    clock.set(START + timedelta(minutes=5))
    meeting = await node.meetings.get(str(b["id"]))
    from confnode.rooms import EndpointType, MediaKind, Role

    await node.rooms.join(meeting, participant_id="p1", display_name="Dr", role=Role.HOST,
                          endpoint_type=EndpointType.WEBRTC, protocol="webrtc",
                          media=[MediaKind.AUDIO, MediaKind.VIDEO], now=clock.now)
    assert (await client.get(f"/api/v1/meetings/{b['id']}",
                             headers=admin.headers)).json()["status"] == "live"
    new_end = END + timedelta(minutes=20)
    response = await client.patch(f"/api/v1/meetings/{b['id']}", headers=admin.headers,
                                  json={"end_time": new_end.isoformat()})
    assert response.status_code == 200, response.text
    assert response.json()["closes_at"] == "2026-11-23T10:50:00Z"
    live = node.rooms.get(str(b["id"]))
    assert live is not None and live.room.window is not None
    assert live.room.window.closes_at == new_end + timedelta(minutes=15)
    # The old close no longer ends it; the new one does.
    clock.set(END + timedelta(minutes=15))
    await node.tick()
    assert (await client.get(link_path(b["guest_link"]))).status_code == 200
    assert node.rooms.is_live(str(b["id"]))
    clock.set(new_end + timedelta(minutes=15))
    await node.tick()
    assert node.rooms.get(str(b["id"])) is None
    assert (await client.get(link_path(b["guest_link"]))).status_code == 410
    shrink = await client.patch(f"/api/v1/meetings/{b['id']}", headers=admin.headers,
                                json={"end_time": (new_end + timedelta(hours=1)).isoformat()})
    assert shrink.status_code == 409


async def test_extension_must_be_later(client: httpx.AsyncClient, admin: Staff) -> None:
    b = await book(client, admin)
    response = await client.patch(f"/api/v1/meetings/{b['id']}", headers=admin.headers,
                                  json={"end_time": (END - timedelta(minutes=1)).isoformat()})
    assert response.status_code == 422
    assert "extended" in response.json()["message"]


async def test_subject_changes_only_before_the_room_opens(
        client: httpx.AsyncClient, admin: Staff, clock: ManualClock) -> None:
    b = await book(client, admin)
    ok = await client.patch(f"/api/v1/meetings/{b['id']}", headers=admin.headers,
                            json={"subject": "Opfølgning"})
    assert ok.status_code == 200 and ok.json()["subject"] == "Opfølgning"
    clock.set(START - timedelta(minutes=10))
    late = await client.patch(f"/api/v1/meetings/{b['id']}", headers=admin.headers,
                              json={"subject": "For sent"})
    assert late.status_code == 409


async def test_cancel_before_start_closes_the_links(client: httpx.AsyncClient, admin: Staff,
                                                    clock: ManualClock) -> None:
    b = await book(client, admin)
    response = await client.delete(f"/api/v1/meetings/{b['id']}", headers=admin.headers)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    clock.set(START)
    assert (await client.get(link_path(b["guest_link"]))).status_code == 410
    again = await client.delete(f"/api/v1/meetings/{b['id']}", headers=admin.headers)
    assert again.status_code == 409


async def test_cancel_after_start_is_refused(client: httpx.AsyncClient, admin: Staff,
                                             clock: ManualClock) -> None:
    b = await book(client, admin)
    clock.set(START + timedelta(minutes=1))
    response = await client.delete(f"/api/v1/meetings/{b['id']}", headers=admin.headers)
    assert response.status_code == 409
    assert (await client.get(link_path(b["guest_link"]))).status_code == 200


async def test_rotating_links_revokes_the_old_ones(client: httpx.AsyncClient, admin: Staff,
                                                   clock: ManualClock) -> None:
    b = await book(client, admin)
    clock.set(START)
    fresh = (await client.post(f"/api/v1/meetings/{b['id']}/links",
                               headers=admin.headers)).json()
    assert (await client.get(link_path(b["guest_link"]))).status_code == 410
    assert (await client.get(link_path(fresh["guest_link"]))).status_code == 200


async def test_role_permissions(client: httpx.AsyncClient, make_staff: object) -> None:
    doctor = await make_staff("doctor@clinic.dk")  # type: ignore[operator]
    colleague = await make_staff("colleague@clinic.dk")  # type: ignore[operator]
    secretary = await make_staff("secretary@clinic.dk", StaffRole.PLANNER)  # type: ignore[operator]
    outsider = await make_staff("planner@other.dk", StaffRole.PLANNER,  # type: ignore[operator]
                                org_id="other-clinic")
    own = await book(client, doctor)
    url = f"/api/v1/meetings/{own['id']}"

    assert (await client.get(url, headers=doctor.headers)).status_code == 200
    assert (await client.get(url, headers=colleague.headers)).status_code == 404
    assert (await client.get(url, headers=secretary.headers)).status_code == 200
    assert (await client.get(url, headers=outsider.headers)).status_code == 404
    assert (await client.delete(url, headers=outsider.headers)).status_code == 404
    listed = (await client.get("/api/v1/meetings", headers=colleague.headers)).json()
    assert own["id"] not in [m["id"] for m in listed]
    listed = (await client.get("/api/v1/meetings", headers=secretary.headers)).json()
    assert own["id"] in [m["id"] for m in listed]
    assert (await client.get("/api/v1/meetings", headers=outsider.headers)).json() == []

    # A planner books on behalf of the doctor; a plain user may not book for a colleague.
    for_doctor = await book(client, secretary, organizer_email="doctor@clinic.dk")
    assert for_doctor["organizer_id"] == doctor.user_id
    assert (await client.get(f"/api/v1/meetings/{for_doctor['id']}",
                             headers=doctor.headers)).status_code == 200
    refused = await client.post("/api/v1/meetings", headers=colleague.headers,
                                json=planned(organizer_email="doctor@clinic.dk"))
    assert refused.status_code == 403
    cross = await client.post("/api/v1/meetings", headers=outsider.headers,
                              json=planned(organizer_email="doctor@clinic.dk"))
    assert cross.status_code == 422
    # Only admins manage users and templates.
    assert (await client.post("/api/v1/users", headers=secretary.headers,
                              json={"email": "x@clinic.dk"})).status_code == 403
    assert (await client.get("/api/v1/meetings")).status_code == 401
    assert (await client.get("/api/v1/meetings",
                             headers={"Authorization": "Bearer nope"})).status_code == 401


@pytest.mark.parametrize("where", ["subject", "description", "external_id", "labels", "key"])
@pytest.mark.parametrize("cpr", ["010203-1234", "0102031234", "31129 91234".replace(" ", "")])
async def test_cpr_numbers_are_refused_never_echoed_nor_stored(
        client: httpx.AsyncClient, admin: Staff, node: Node, where: str, cpr: str,
        caplog: pytest.LogCaptureFixture) -> None:
    body = planned()
    if where == "labels":
        body["labels"] = [f"pt {cpr}"]
    elif where == "key":
        body[cpr] = "x"
    else:
        body[where] = f"Patient {cpr} ringede"
    caplog.set_level("DEBUG")
    response = await client.post("/api/v1/meetings", json=body, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["error"] == "personal_data_refused"
    assert cpr not in response.text
    assert cpr not in caplog.text
    listed = (await client.get("/api/v1/meetings", headers=admin.headers)).json()
    assert listed == []
    db = sqlite3.connect(node.settings.data_dir / "confnode.db")
    assert cpr not in "\n".join(db.iterdump())
    db.close()


async def test_a_date_that_is_not_a_cpr_number_is_accepted(client: httpx.AsyncClient,
                                                          admin: Staff) -> None:
    b = await book(client, admin, subject="Kontrol 320199-1234 ref")  # 32 January: no CPR
    assert b["subject"] == "Kontrol 320199-1234 ref"


@pytest.mark.parametrize("body, fragment", [
    ({"subject": ""}, "subject"),
    ({"subject": "x" * 101}, "subject"),
    ({"description": "x" * 501}, "description"),
    ({"start_time": "tomorrow"}, "start_time"),
    ({"start_time": "2026-11-23T10:00:00"}, "start_time"),  # no offset
    ({"end_time": (START - timedelta(minutes=1)).isoformat()}, "after"),
    ({"end_time": (START + timedelta(hours=13)).isoformat()}, "at most"),
    ({"host_pin": "12"}, "host_pin"),
    ({"guest_pin": "12ab"}, "guest_pin"),
    ({"host_pin": "123456", "guest_pin": "123456"}, "differ"),
    ({"max_participants": 1}, "max_participants"),
    ({"meeting_type": "weekly"}, "meeting_type"),
    ({"unknown_field": 1}, "unknown_field"),
    ({"labels": ["x"] * 11}, "labels"),
])
async def test_malformed_input_is_422_with_a_message(client: httpx.AsyncClient, admin: Staff,
                                                      body: dict[str, object],
                                                      fragment: str) -> None:
    response = await client.post("/api/v1/meetings", json=planned(**body), headers=admin.headers)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["message"]
    assert (await client.get("/api/v1/meetings", headers=admin.headers)).json() == []


async def test_booking_in_the_past_is_refused(client: httpx.AsyncClient, admin: Staff,
                                              clock: ManualClock) -> None:
    clock.set(END + timedelta(minutes=1))
    response = await client.post("/api/v1/meetings", json=planned(), headers=admin.headers)
    assert response.status_code == 422 and "past" in response.json()["message"]


async def test_not_json_is_422(client: httpx.AsyncClient, admin: Staff) -> None:
    response = await client.post("/api/v1/meetings", content=b"{not json",
                                 headers={**admin.headers, "Content-Type": "application/json"})
    assert response.status_code == 422


async def test_template_defaults_apply(client: httpx.AsyncClient, admin: Staff) -> None:
    created = await client.post("/api/v1/templates", headers=admin.headers, json={
        "name": "Konsultation", "is_default": True, "open_before_minutes": 5,
        "close_after_minutes": 10, "guest_pin_required": True, "pin_length": 4,
        "guest_microphone": "muted"})
    assert created.status_code == 201, created.text
    b = await book(client, admin)
    assert b["opens_at"] == "2026-11-23T09:55:00Z" and b["closes_at"] == "2026-11-23T10:25:00Z"
    assert len(b["guest_pin"]) == 4 and len(b["host_pin"]) == 4
    assert b["guest_microphone"] == "muted"


async def test_security_headers_and_docs(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.json()["status"] == "ok"
    assert health.headers["referrer-policy"] == "no-referrer"
    assert health.headers["cache-control"] == "no-store"
    assert health.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/meetings" in spec["paths"]
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
