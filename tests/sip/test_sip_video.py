"""A SIP video system (H.264 + G.711 over SIP/TLS with SDES-SRTP) and a VP8 browser in one room:
both decode the other's pictures, through the node's transcoder.

No Debian SIP client here sends H.264, so the video system is scripted (``sipsystem``): SIP
signalling by hand over TLS, media through an ``RtpEndpoint`` on the other side of the wire (its
own sockets and SRTP keys), H.264 from libx264.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bots import MediaBot
from clientapi import book, join, token_of, wait_for
from conftest import ServedNode
from sipsystem import ScriptedSipSystem

from confnode.licensing import LicenceKind
from confnode.security.certificate import ensure_self_signed


async def test_h264_sip_video_and_vp8_browser_decode_each_other(served: ServedNode,
                                                                  tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    b = await book(served, guests_wait_for_host=False)
    vc = ScriptedSipSystem(video_size=(320, 240), fps=15, luma=220)
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        bot = MediaBot("browser", tone=660, luma=40)  # VP8 + Opus
        try:
            assert (await browser.call(bot)).status_code == 200
            answer = await vc.dial(listener.bound_port, cert, b["alias"])
            assert answer.status == 200, answer.status
            assert b"H264/90000" in answer.body and b"AES_CM_128_HMAC_SHA1_80" in answer.body
            media = served.node.webrtc.media[b["id"]]
            await wait_for(lambda: len(media.members) == 2, "the SIP video system did not join")
            assert media.route.value == "mixed"
            assert served.node.calls.ledger.in_use(LicenceKind.PORT) == 2
            vc.start_sending()
            await wait_for(lambda: bot.received.video_frames > 10 and vc.pictures_decoded > 5,
                           "pictures did not arrive on both sides", seconds=14)
            # The browser sees the video system's bright picture in its composition.
            assert max(bot.received.video_luma[-5:]) > 60
            # The video system decodes the node's H.264 composition (the served fixture composes
            # at 640x360) showing the browser's picture (luma 40 on black 16).
            assert vc.pictures[-1].shape == (360 * 3 // 2, 640)
            assert abs(float(np.median(vc.pictures[-1][:360])) - 40) < 12
            call = next(iter(served.node.sip.calls.values()))
            assert call.endpoint.frames_decoded() > 20  # H.264 decoded for the mix
        finally:
            await vc.close()
            await browser.close()
