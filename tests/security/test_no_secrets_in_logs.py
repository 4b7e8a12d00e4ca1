"""A whole consultation at DEBUG level leaves no secret in the node's logs.

Booking (API token, PINs, capability links), joining through the Pexip client API (the link
token as conference alias, the PIN header, the session token) and a real aiortc media call (SDP
with ICE passwords) all run with every logger at DEBUG, through the redacting filter installed
the way ``confnode serve`` installs it. Then every captured line is searched for every secret.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import pytest
from bots import MediaBot
from clientapi import join, request_token
from conftest import ServedNode

from confnode.security.redaction import SecretRedactingFilter, install_redaction

# Loggers of the test's own HTTP client, not the node's: they print the request URLs the test
# sends (the node's access log is off for exactly that reason).
CLIENT_SIDE = ("httpx", "httpcore")
HOST_PIN, GUEST_PIN = "739184", "502617"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in CLIENT_SIDE:
            self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    root = logging.getLogger()
    handler = Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_redaction()  # as `confnode serve` does, after its handlers exist
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for target in (root, *root.handlers):
            for existing in [f for f in target.filters if isinstance(f, SecretRedactingFilter)]:
                target.removeFilter(existing)


def ice_passwords(sdp: str) -> set[str]:
    return set(re.findall(r"a=ice-pwd:(\S+)", sdp))


async def test_a_consultation_at_debug_level_logs_no_secret(served: ServedNode,
                                                            captured: Capture) -> None:
    async with served.http() as http:
        booked = await http.post("/api/v1/meetings", headers=served.admin.headers, json={
            "subject": "Konsultation", "meeting_type": "instant",
            "host_pin": HOST_PIN, "guest_pin": GUEST_PIN})
        assert booked.status_code == 201, booked.text
        booking = booked.json()
        guest_alias = booking["guest_link"].rsplit("/", 1)[1]
        host_alias = booking["host_link"].rsplit("/", 1)[1]
        # A wrong PIN first: refusals are a classic place to log what was typed.
        wrong = await request_token(http, guest_alias, "Patient", pin="000000")
        assert wrong.status_code == 403
        patient = await join(http, guest_alias, "Patient", pin=GUEST_PIN)
        doctor = await join(http, host_alias, "Læge", pin=HOST_PIN)
        await patient.start_events()
        await doctor.start_events()
        patient_bot, doctor_bot = MediaBot("patient", tone=440), MediaBot("doctor", tone=660)
        secrets_in_sdp: set[str] = set()
        try:
            for person, bot in ((patient, patient_bot), (doctor, doctor_bot)):
                assert (await person.call(bot)).status_code == 200
                secrets_in_sdp |= ice_passwords(bot.pc.localDescription.sdp)
                secrets_in_sdp |= ice_passwords(bot.pc.remoteDescription.sdp)
            for _ in range(200):
                if len(doctor_bot.received.audio) > 10 and len(patient_bot.received.audio) > 10:
                    break
                await asyncio.sleep(0.05)
            assert len(doctor_bot.received.audio) > 10, "no media flowed: the test proves little"
            await patient.post(f"participants/{patient.uuid}/calls/{patient.call_uuid}/disconnect")
            await patient.post("release_token", {})
        finally:
            await patient.close()
            await doctor.close()

    secrets = {
        "admin API token": served.admin.token,
        "guest link token": guest_alias,
        "host link token": host_alias,
        "patient session token": patient.token,
        "doctor session token": doctor.token,
        "host PIN": HOST_PIN,
        "guest PIN": GUEST_PIN,
        **{f"ICE password {i}": pwd for i, pwd in enumerate(sorted(secrets_in_sdp))},
    }
    assert len(secrets_in_sdp) >= 2
    log = "\n".join(captured.lines)
    assert len(captured.lines) > 50, "DEBUG logging did not reach the capture"
    assert "RTCDtlsTransport" in log or "aioice" in log  # media logging was captured too
    leaked = {name for name, value in secrets.items() if value in log}
    assert leaked == set(), [line for line in captured.lines
                             if any(secrets[name] in line for name in leaked)][:5]
    assert re.search(r"a=ice-pwd:(?!\[redacted\])", log) is None
    assert re.search(r"inline:(?!\[redacted\])", log) is None
