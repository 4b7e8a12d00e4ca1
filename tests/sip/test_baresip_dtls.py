"""baresip with its dtls_srtp media encryption (RFC 5763/5764) calls a booked room over SIP/TLS:
the keys come from a DTLS handshake on the media port, audio crosses both ways through the
transcoder, the node logs the negotiated SRTP profile; a certificate that does not match the
caller's SDP fingerprint ends the call and gives the licence back."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from baresip import Baresip
from bots import MediaBot
from clientapi import book, join, token_of, wait_for
from test_baresip_calls import SipNode, sip_node  # noqa: F401 (the fixture)

from confnode.licensing import LicenceKind
from confnode.security.certificate import describe_certificate


async def test_baresip_dtls_srtp_call_carries_audio_both_ways(
        sip_node: SipNode, tmp_path: Path,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="confnode")
    served = sip_node.served
    b = await book(served, guests_wait_for_host=False)
    phone = Baresip(tmp_path / "baresip", ca_file=sip_node.cert, tone_hz=440,
                    mediaenc="dtls_srtp")
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        try:
            bot = MediaBot("browser", tone=660, luma=120)
            assert (await browser.call(bot)).status_code == 200
            phone.dial(sip_node.uri(b["alias"]), seconds=8)
            await wait_for(lambda: len(served.node.sip.calls) == 1, "no SIP call", seconds=10)
            call = next(iter(served.node.sip.calls.values()))
            await wait_for(lambda: call.joined, "the SIP caller did not join", seconds=5)
            await asyncio.sleep(3)
            assert abs(bot.peak_frequencies(count=1)[0] - 440) < 15, phone.output()[-2000:]
            await phone.wait(10)
        finally:
            phone.stop()
            await browser.close()
    assert abs(phone.heard_hz(8000) - 660) < 15, phone.output()[-2000:]
    # baresip offers separate RTCP: one handshake per port, both logged with the profile.
    log = caplog.text
    for component in ("rtp", "rtcp"):
        assert f"audio {component} keyed by DTLS-SRTP, SRTP profile SRTP_" in log, log[-2000:]
    output = phone.output()
    assert "UDP/TLS/RTP/SAVP" in output and "DTLS-SRTP complete" in output
    # The node's DTLS certificate is its own (the one SIP/TLS presents), by fingerprint.
    assert describe_certificate(sip_node.cert).sha256_fingerprint in output
    await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 0,
                   "the SIP licence was not released", seconds=10)
