"""Two aiortc bots through two node endpoints with forwarding only: media flows, nothing decoded."""

from __future__ import annotations

import asyncio

from bots import MediaBot

from confnode.transport.webrtc.endpoint import WebRtcEndpoint
from confnode.transport.webrtc.ice import offer_loopback_candidates, rtc_configuration


async def noop_state(_state: str) -> None:
    return None


async def test_forwarding_without_decoding() -> None:
    offer_loopback_candidates(True)
    frames: list[str] = []
    a_bot, b_bot = MediaBot("a", tone=440, luma=60), MediaBot("b", tone=660, luma=200)
    a = WebRtcEndpoint("ca", "a", ice=rtc_configuration([]), on_state=noop_state,
                       on_frame=lambda p, k, f: frames.append(k))
    b = WebRtcEndpoint("cb", "b", ice=rtc_configuration([]), on_state=noop_state,
                       on_frame=lambda p, k, f: frames.append(k))
    await a_bot.accept(await a.answer(await a_bot.offer()))
    await b_bot.accept(await b.answer(await b_bot.offer()))
    for src, dst in ((a, b), (b, a)):
        src.set_decoding(False)
        for kind in ("audio", "video"):
            track = dst.outbound[kind]
            src.set_forwarder(kind, lambda codec, frame, t=track, s=src: t.push(
                frame.data, frame.timestamp, s))
    await asyncio.sleep(3)
    await a.request_keyframe()
    await asyncio.sleep(1)
    try:
        assert a.frames_decoded() == 0 and b.frames_decoded() == 0 and frames == []
        assert a.frames_forwarded() > 50 and b.frames_forwarded() > 50
        assert b_bot.received.video_frames > 10 and a_bot.received.video_frames > 10
        assert abs(b_bot.peak_frequencies(count=1)[0] - 440) < 20
        assert abs(a_bot.peak_frequencies(count=1)[0] - 660) < 20
        assert abs(b_bot.received.video_luma[-1] - 60) < 15
        assert abs(a_bot.received.video_luma[-1] - 200) < 15
    finally:
        for x in (a, b, a_bot, b_bot):
            await x.close()


async def test_relaying_rtp_packets_between_two_endpoints() -> None:
    """Browser to browser: packets go receive handler → other leg's stream; nothing is
    depacketized into frames for the decoder, and each bot sees the other's tone and picture."""
    offer_loopback_candidates(True)
    a_bot, b_bot = MediaBot("a", tone=440, luma=60), MediaBot("b", tone=660, luma=200)
    a = WebRtcEndpoint("ca", "a", ice=rtc_configuration([]), on_state=noop_state,
                       on_frame=lambda p, k, f: None)
    b = WebRtcEndpoint("cb", "b", ice=rtc_configuration([]), on_state=noop_state,
                       on_frame=lambda p, k, f: None)
    await a_bot.accept(await a.answer(await a_bot.offer()))
    await b_bot.accept(await b.answer(await b_bot.offer()))
    for src, dst in ((a, b), (b, a)):
        src.set_decoding(False)
        for kind in ("audio", "video"):
            assert src.set_relay(kind, dst)
    await asyncio.sleep(3)
    await a.request_keyframe()
    await asyncio.sleep(1)
    try:
        assert a.frames_decoded() == 0 and b.frames_decoded() == 0
        assert a.frames_forwarded() > 50 and b.frames_forwarded() > 50
        assert b.streams["audio"].packets_relayed > 50 and a.streams["video"].packets_relayed > 10
        assert b_bot.received.video_frames > 10 and a_bot.received.video_frames > 10
        assert abs(b_bot.peak_frequencies(count=1)[0] - 440) < 20
        assert abs(a_bot.peak_frequencies(count=1)[0] - 660) < 20
        assert abs(b_bot.received.video_luma[-1] - 60) < 15
        assert abs(a_bot.received.video_luma[-1] - 200) < 15
        # Stopping the relay stops the flow into the other leg's stream.
        a.set_relay("audio", None)
        relayed = b.streams["audio"].packets_relayed
        await asyncio.sleep(0.5)
        assert b.streams["audio"].packets_relayed == relayed
    finally:
        for x in (a, b, a_bot, b_bot):
            await x.close()
