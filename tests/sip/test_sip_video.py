"""A SIP video system (H.264 + G.711 over SIP/TLS with SDES-SRTP) and a VP8 browser in one room:
both decode the other's pictures, through the node's transcoder.

No Debian SIP client here sends H.264, so the video system is scripted: SIP signalling by hand
over TLS, media through an ``RtpEndpoint`` on the other side of the wire (its own sockets and
SRTP keys), H.264 from libx264.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bots import MediaBot
from clientapi import book, join, token_of, wait_for
from conftest import ServedNode
from sipclient import RawSipClient, sdes_offer

from confnode.licensing import LicenceKind
from confnode.security.certificate import ensure_self_signed
from confnode.transport.encoders import G711Encoder, H264Encoder
from confnode.transport.rtp.endpoint import RtpEndpoint
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdes import SdesSuite, generate_key
from confnode.transport.sip.sdp import parse_sdp


async def test_h264_sip_video_and_vp8_browser_decode_each_other(served: ServedNode,
                                                                  tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    port = listener.bound_port
    b = await book(served, guests_wait_for_host=False)

    received: list[np.ndarray] = []
    vc = RtpEndpoint("vc", "vc", on_frame=lambda p, kind, frame: received.append(
        frame.to_ndarray(format="yuv420p")) if kind == "video" else None)
    keys = (generate_key(SdesSuite.AES_CM_128_HMAC_SHA1_80),
            generate_key(SdesSuite.AES_CM_128_HMAC_SHA1_80))
    ports = await vc.open("127.0.0.1", parse_sdp(sdes_offer(9, 9, keys)))
    offer = sdes_offer(ports[0][0], ports[1][0], keys)
    client = await RawSipClient().connect(port, cert)
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        bot = MediaBot("browser", tone=660, luma=40)  # VP8 + Opus
        encoder, audio = H264Encoder(320, 240, fps=15), G711Encoder("PCMU")
        try:
            assert (await browser.call(bot)).status_code == 200
            await client.send(client.request("INVITE", b["alias"], port, body=offer))
            answer = await client.response()
            assert answer.status == 200, answer.status
            await client.send(client.ack(answer, b["alias"], port))
            assert b"H264/90000" in answer.body and b"AES_CM_128_HMAC_SHA1_80" in answer.body
            # The video system's side of the session: the node's answer, our keys.
            ours: Iterator[bytes] = iter(keys)
            session = answer_offer(parse_sdp(answer.body), local_address="127.0.0.1",
                                   ports=ports, over_tls=True, session_id=1,
                                   random_bytes=lambda n: next(ours)[:n])
            vc.configure(session)
            vc.set_decoding(True)
            vc.on_keyframe_request(encoder.request_keyframe)
            media = served.node.webrtc.media[b["id"]]
            await wait_for(lambda: len(media.members) == 2, "the SIP video system did not join")
            assert media.route.value == "mixed"
            assert served.node.calls.ledger.in_use(LicenceKind.PORT) == 2
            picture = np.full((240 * 3 // 2, 320), 128, dtype=np.uint8)
            picture[:240] = 220
            tone = (np.sin(2 * np.pi * 500 * np.arange(960) / 48000) * 8000).astype(np.int16)
            for i in range(60):  # 4 s of 15 fps video, audio every 20 ms
                frame = encoder.encode(picture)
                if frame is not None:
                    vc.outbound["video"].push(frame.data, i * 6000, "vc")
                for _ in range(3):
                    data = audio.encode(tone)
                    if data:
                        vc.outbound["audio"].push(data, 0, "vc")
                await asyncio.sleep(1 / 15)
            await wait_for(lambda: bot.received.video_frames > 10 and len(received) > 5,
                           "pictures did not arrive on both sides", seconds=10)
            # The browser sees the video system's bright picture in its composition.
            assert max(bot.received.video_luma[-5:]) > 60
            # The video system decodes the node's H.264 composition (the served fixture composes
            # at 640x360) showing the browser's picture (luma 40 on black 16).
            assert len(received) > 5 and received[-1].shape == (360 * 3 // 2, 640)
            assert abs(float(np.median(received[-1][:360])) - 40) < 12
            call = next(iter(served.node.sip.calls.values()))
            assert call.endpoint.frames_decoded() > 20  # H.264 decoded for the mix
        finally:
            client.close()
            await vc.close()
            await browser.close()


