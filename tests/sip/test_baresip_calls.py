"""baresip (a real SIP/TLS + SRTP client) calls rooms where browsers (aiortc bots via the client
API) are: transcoded audio proven by FFT both ways, keypad PINs, refusals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from baresip import Baresip, require_baresip
from bots import MediaBot
from clientapi import book, join, token_of, wait_for
from conftest import ServedNode

from confnode.licensing import LicenceKind
from confnode.security.certificate import ensure_self_signed
from confnode.transport.sip.listener import SipListener


@dataclass
class SipNode:
    served: ServedNode
    listener: SipListener
    cert: Path

    def uri(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1:{self.listener.bound_port};transport=tls"


@pytest.fixture
async def sip_node(served: ServedNode, tmp_path: Path) -> AsyncIterator[SipNode]:
    require_baresip()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1", "localhost"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    yield SipNode(served, listener, cert)


async def test_baresip_and_a_browser_hear_each_other_through_the_transcoder(
        sip_node: SipNode, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="confnode")
    served = sip_node.served
    b = await book(served, guests_wait_for_host=False)
    phone = Baresip(tmp_path / "baresip", ca_file=sip_node.cert, tone_hz=440)
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        try:
            bot = MediaBot("browser", tone=660, luma=120)  # Opus + VP8 from the browser side
            assert (await browser.call(bot)).status_code == 200
            phone.dial(sip_node.uri(b["alias"]), seconds=8)
            await wait_for(lambda: len(served.node.sip.calls) == 1, "no SIP call", seconds=10)
            call = next(iter(served.node.sip.calls.values()))
            await wait_for(lambda: call.joined, "the SIP caller did not join", seconds=5)
            media = served.node.webrtc.media[b["id"]]
            assert media.route.value == "mixed"  # PCMU and Opus: transcoded
            await asyncio.sleep(3)
            assert abs(bot.peak_frequencies(count=1)[0] - 440) < 15
            ledger = served.node.calls.ledger
            assert ledger.in_use(LicenceKind.AUDIO) == 1  # the audio-only SIP call
            assert ledger.in_use(LicenceKind.PORT) == 1  # the browser's video call
            await phone.wait(10)
        finally:
            phone.stop()
            await browser.close()
    assert abs(phone.heard_hz(8000) - 660) < 15, phone.output()[-2000:]
    log = caplog.text
    assert "SRTP AEAD_AES_256_GCM" in log or "SRTP AES_CM_128_HMAC_SHA1_80" in log or \
        "SRTP AEAD_AES_128_GCM" in log
    assert "inline:" not in log
    await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 0,
                   "the SIP licence was not released", seconds=10)


async def test_pin_by_keypad_and_three_wrong_pins(sip_node: SipNode, tmp_path: Path) -> None:
    served = sip_node.served
    b = await book(served, host_pin="1357", guest_pin="2468")
    right = Baresip(tmp_path / "right", ca_file=sip_node.cert)
    try:
        right.dial(sip_node.uri(b["alias"]), seconds=12)
        await wait_for(lambda: len(served.node.sip.calls) == 1, "no SIP call", seconds=10)
        call = next(iter(served.node.sip.calls.values()))
        await asyncio.sleep(1)
        assert not call.joined  # waiting for the PIN
        await right.command("sndcode", "2468#")
        await wait_for(lambda: call.joined, "the right PIN did not let the caller in", seconds=8)
        live = served.node.rooms.get(b["id"])
        assert live is not None
        roles = {p.endpoint_type.value: p.role.value for p in live.room.participants()}
        assert roles == {"sip": "guest"}
    finally:
        right.stop()
    await wait_for(lambda: not served.node.sip.calls, "call not ended", seconds=10)

    wrong = Baresip(tmp_path / "wrong", ca_file=sip_node.cert)
    try:
        wrong.dial(sip_node.uri(b["alias"]), seconds=20)
        await wait_for(lambda: len(served.node.sip.calls) == 1, "no SIP call", seconds=10)
        await asyncio.sleep(1)
        for _ in range(3):
            await wrong.command("sndcode", "0000#")
            await asyncio.sleep(1.5)
        await wait_for(lambda: not served.node.sip.calls,
                       "three wrong PINs did not disconnect", seconds=10)
        ledger = served.node.calls.ledger
        assert ledger.in_use(LicenceKind.AUDIO) == 0 and ledger.in_use(LicenceKind.PORT) == 0
        assert await wrong.wait(10) is not None
    finally:
        wrong.stop()


@pytest.mark.parametrize("user, expected", [("0000000000", "404"), ("9" * 10, "404")])
async def test_unknown_alias_is_404(sip_node: SipNode, tmp_path: Path, user: str,
                                    expected: str) -> None:
    phone = Baresip(tmp_path / "unknown", ca_file=sip_node.cert)
    try:
        phone.dial(sip_node.uri(user), seconds=4)
        await phone.wait(8)
    finally:
        phone.stop()
    assert expected in phone.output(), phone.output()[-1500:]




async def test_baresip_g722_only_is_wideband_both_ways(sip_node: SipNode, tmp_path: Path) -> None:
    """G.722 (and nothing else) from a real baresip: 500 Hz + 6 kHz towards a browser that sends
    Opus at 5.5 kHz back. 6 and 5.5 kHz are above what G.711's 8 kHz sampling can carry, so
    both arriving proves the whole path wideband: G.722 decode, the 48 kHz mix, G.722 encode."""
    served = sip_node.served
    b = await book(served, guests_wait_for_host=False)
    phone = Baresip(tmp_path / "g722", ca_file=sip_node.cert, tone_hz=(500, 6000),
                    tone_rate=16000, codecs="g722/16000/1")  # baresip's own G.722 name
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        try:
            bot = MediaBot("browser", tone=5500)  # Opus
            assert (await browser.call(bot)).status_code == 200
            phone.dial(sip_node.uri(b["alias"]), seconds=8)
            await wait_for(lambda: len(served.node.sip.calls) == 1, "no SIP call", seconds=10)
            call = next(iter(served.node.sip.calls.values()))
            await wait_for(lambda: call.joined, "the SIP caller did not join", seconds=5)
            assert call.endpoint.negotiated_codecs() == {"audio": "G722"}
            assert call.session is not None
            offered = call.session.offer.media[0].rtpmaps()
            assert {m.encoding.upper() for m in offered.values()} <= {"G722", "TELEPHONE-EVENT"}
            assert "a=rtpmap:9 G722/8000" in call.session.answer.serialize()
            assert served.node.webrtc.media[b["id"]].route.value == "mixed"  # G.722 and Opus
            await asyncio.sleep(3)
            heard = sorted(round(p / 100) * 100 for p in bot.peak_frequencies(count=2))
            assert heard == [500, 6000], heard
            await phone.wait(10)
        finally:
            phone.stop()
            await browser.close()
    assert abs(phone.heard_hz(16000) - 5500) < 20, phone.output()[-2000:]
