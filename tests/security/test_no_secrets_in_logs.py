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
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bots import MediaBot
from clientapi import join, request_token
from conftest import ServedNode
from sipclient import RawSipClient, audio_offer

from confnode.security.certificate import ensure_self_signed
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


async def sip_call_with_keypad_pin(served: ServedNode, alias: str, tmp_path: Path) -> list[str]:
    """A SIP/TLS call with SDES keys and the guest PIN typed as SIP INFO DTMF; returns the keys."""
    cert, key = tmp_path / "sip-cert.pem", tmp_path / "sip-key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    port = listener.bound_port
    client = await RawSipClient().connect(port, cert)
    try:
        offer = audio_offer(40000, ["AES_CM_128_HMAC_SHA1_80"])
        await client.send(client.request("INVITE", alias, port, body=offer))
        answer = await client.response()
        assert answer.status == 200, answer.status
        await client.send(client.ack(answer, alias, port))
        to = answer.headers.get("To") or ""
        for cseq, digit in enumerate(GUEST_PIN + "#", start=2):
            body = f"Signal={digit}\r\nDuration=160\r\n".encode()
            await client.send((
                f"INFO sip:{alias}@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS 127.0.0.1:{client.local_port};branch=z9hG4bKi{cseq}x\r\n"
                f"Max-Forwards: 70\r\nFrom: \"Hospital VC\" <sip:vc@127.0.0.1>;tag={client.tag}"
                f"\r\nTo: {to}\r\nCall-ID: {client.call_id}\r\nCSeq: {cseq} INFO\r\n"
                f"Content-Type: application/dtmf-relay\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body)
            assert (await client.response()).status == 200
        for _ in range(100):
            call = next(iter(served.node.sip.calls.values()), None)
            if call is not None and call.joined:
                break
            await asyncio.sleep(0.05)
        assert call is not None and call.joined, "the keypad PIN did not let the SIP caller in"
    finally:
        client.close()
    return [m.decode() for m in re.findall(rb"inline:([A-Za-z0-9+/=]+)", offer + answer.body)]


async def test_a_consultation_at_debug_level_logs_no_secret(served: ServedNode,
                                                            captured: Capture,
                                                            tmp_path: Path) -> None:
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
            sip_keys = await sip_call_with_keypad_pin(served, booking["alias"], tmp_path)
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
        **{f"SDES key {i}": key for i, key in enumerate(sip_keys)},
    }
    assert len(secrets_in_sdp) >= 2 and len(sip_keys) == 2
    log = "\n".join(captured.lines)
    assert len(captured.lines) > 50, "DEBUG logging did not reach the capture"
    assert "RTCDtlsTransport" in log or "aioice" in log  # media logging was captured too
    leaked = {name for name, value in secrets.items() if value in log}
    assert leaked == set(), [line for line in captured.lines
                             if any(secrets[name] in line for name in leaked)][:5]
    assert re.search(r"a=ice-pwd:(?!\[redacted\])", log) is None
    assert re.search(r"inline:(?!\[redacted\])", log) is None
