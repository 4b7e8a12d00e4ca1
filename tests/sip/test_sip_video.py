"""A SIP video system (H.264 + G.711 over SIP/TLS with SDES-SRTP) and a VP8 browser in one room:
both decode the other's pictures, through the node's transcoder.

No Debian SIP client here sends H.264, so the video system is scripted (``sipsystem``): SIP
signalling by hand over TLS, media through an ``RtpEndpoint`` on the other side of the wire (its
own sockets and SRTP keys), H.264 from libx264.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pylibsrtp
from aiortc.rtp import RtpPacket
from bots import MediaBot
from clientapi import book, join, token_of, wait_for
from conftest import ServedNode
from sipclient import RawSipClient, sdes_offer
from sipsystem import ScriptedSipSystem

from confnode.licensing import LicenceKind
from confnode.security.certificate import ensure_self_signed
from confnode.transport.encoders import G711Encoder, H264Encoder
from confnode.transport.h264 import RTP_PAYLOAD_MTU
from confnode.transport.rtp.endpoint import RtpEndpoint
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdes import SdesSuite, generate_key
from confnode.transport.sip.sdp import parse_sdp

H264_MODE_1 = "profile-level-id=42e01f;packetization-mode=1"

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


class PacketTap:
    """Wraps the video system's inbound SRTP session to keep every RTP packet the node sent."""

    def __init__(self, session: pylibsrtp.Session) -> None:
        self._session = session
        self.packets: list[RtpPacket] = []

    def unprotect(self, data: bytes) -> bytes:
        plain = self._session.unprotect(data)
        self.packets.append(RtpPacket.parse(plain))
        return plain

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._session.unprotect_rtcp(data)


def nal_type(packet: RtpPacket) -> int:
    return packet.payload[0] & 0x1F


async def test_packetization_mode_0_level_2_1_video_system(served: ServedNode,
                                                           tmp_path: Path) -> None:
    """A video system that offers only H.264 packetization-mode 0 at level 2.1: every packet
    the node sends is one NAL unit within the MTU, the picture is fitted to the level (the room
    composes 640x360 = 920 macroblocks; level 2.1 allows 792), and keyframe requests work both
    ways (the node asks when it starts decoding us; our PLI gets an IDR from its encoder)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    port = listener.bound_port
    b = await book(served, guests_wait_for_host=False)
    fmtp = "profile-level-id=42e015;packetization-mode=0"

    received: list[np.ndarray] = []
    vc = RtpEndpoint("vc", "vc", on_frame=lambda p, kind, frame: received.append(
        frame.to_ndarray(format="yuv420p")) if kind == "video" else None)
    keys = (generate_key(SdesSuite.AES_CM_128_HMAC_SHA1_80),
            generate_key(SdesSuite.AES_CM_128_HMAC_SHA1_80))
    ports = await vc.open("127.0.0.1", parse_sdp(sdes_offer(9, 9, keys, fmtp)))
    offer = sdes_offer(ports[0][0], ports[1][0], keys, fmtp)
    client = await RawSipClient().connect(port, cert)
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        bot = MediaBot("browser", tone=660, luma=40)
        encoder, audio = H264Encoder(320, 240, fps=15), G711Encoder("PCMU")
        try:
            assert (await browser.call(bot)).status_code == 200
            await client.send(client.request("INVITE", b["alias"], port, body=offer))
            answer = await client.response()
            assert answer.status == 200, answer.status
            await client.send(client.ack(answer, b["alias"], port))
            assert b"a=fmtp:97 profile-level-id=42e015;packetization-mode=0" in answer.body
            ours: Iterator[bytes] = iter(keys)
            session = answer_offer(parse_sdp(answer.body), local_address="127.0.0.1",
                                   ports=ports, over_tls=True, session_id=1,
                                   random_bytes=lambda n: next(ours)[:n])
            vc.configure(session)
            vc.set_decoding(True)
            vc.on_keyframe_request(encoder.request_keyframe)
            stream = vc.streams["video"]
            assert stream.srtp_in is not None
            tap = PacketTap(stream.srtp_in)
            stream.srtp_in = tap  # type: ignore[assignment]
            media = served.node.webrtc.media[b["id"]]
            await wait_for(lambda: len(media.members) == 2, "the SIP video system did not join")
            picture = np.full((240 * 3 // 2, 320), 128, dtype=np.uint8)
            picture[:240] = 220
            tone = (np.sin(2 * np.pi * 500 * np.arange(960) / 48000) * 8000).astype(np.int16)

            async def send(seconds: float) -> None:
                for _ in range(int(seconds * 15)):
                    frame = encoder.encode(picture)
                    if frame is not None:
                        vc.outbound["video"].push(frame.data, encoder.frames_encoded * 6000,
                                                  "vc")
                    for _ in range(3):
                        data = audio.encode(tone)
                        if data:
                            vc.outbound["audio"].push(data, 0, "vc")
                    await asyncio.sleep(1 / 15)

            await send(3)
            await wait_for(lambda: bot.received.video_frames > 10 and len(received) > 5,
                           "pictures did not arrive on both sides", seconds=10)
            assert max(bot.received.video_luma[-5:]) > 60  # our bright picture reached the mix
            # The node decoded our stream and asked us for a keyframe to start from.
            assert stream.keyframe_requests_received >= 1
            # Mode 0: one NAL unit (types 1-23) per packet, each within the MTU.
            video = [p for p in tap.packets if p.payload_type == 97]
            assert len(video) > 20
            assert {nal_type(p) for p in video} <= set(range(1, 24))
            assert max(len(p.serialize()) for p in video) <= RTP_PAYLOAD_MTU
            sps = next(p.payload for p in video if nal_type(p) == 7)
            assert sps[3] == 21  # level_idc: the negotiated level 2.1
            assert received[-1].shape == (336 * 3 // 2, 592)  # fitted: 37x21 = 777 macroblocks
            assert abs(float(np.median(received[-1][:336])) - 40) < 12  # the browser's picture

            # Our PLI gets an IDR from the node's encoder (its keyframe interval is 10 s).
            await asyncio.sleep(0.5)
            before = len(tap.packets)
            await vc.request_keyframe()
            await send(1.5)
            later = [p for p in tap.packets[before:] if p.payload_type == 97]
            assert any(nal_type(p) == 5 for p in later), "no IDR after our PLI"
        finally:
            client.close()
            await vc.close()
            await browser.close()
