"""A scripted SIP endpoint (a hospital video system or a desk phone) for tests and benchmarks.

No Debian SIP client here sends H.264 or re-INVITEs on cue, so this one is put together from the
node's own pieces on the other side of the wire: signalling by :class:`RawSipClient` over TLS,
media through an ``RtpEndpoint`` with its own sockets and SDES keys, G.711 from the node's
encoder and H.264 from libx264. It offers, re-offers (hold, codec change) and reads back what
the node sends: decoded pictures, 48 kHz audio for FFT checks, raw packet counts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from bots import SAMPLE_RATE, moving_bar
from sipclient import RawSipClient

from confnode.transport.encoders import G711Encoder, H264Encoder
from confnode.transport.rtp.endpoint import RtpEndpoint
from confnode.transport.sip.message import SipResponse
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdes import SdesSuite, generate_key
from confnode.transport.sip.sdp import parse_sdp

_SUITE = SdesSuite.AES_CM_128_HMAC_SHA1_80
_STATIC_PT = {"PCMU": 0, "PCMA": 8, "G729": 18}  # RFC 3551 static payload types


class ScriptedSipSystem:
    """One SIP call into a room. ``video_size`` ``None`` makes it an audio-only phone."""

    def __init__(self, *, video_size: tuple[int, int] | None = None, fps: int = 15,
                 tone: float = 500, luma: int = 220, moving: bool = False) -> None:
        self.video_size = video_size
        self.fps = fps
        self.tone = tone
        self.luma = luma
        self.moving = moving
        self.endpoint = RtpEndpoint("sip-system", "sip-system", on_frame=self._on_frame)
        self.keys = {"audio": generate_key(_SUITE), "video": generate_key(_SUITE)}
        self.client = RawSipClient()
        self.pictures: list[np.ndarray] = []  # the latest few it decoded
        self.pictures_decoded = 0
        self.audio: list[np.ndarray] = []  # what it decoded, as 48 kHz mono (for FFT checks)
        self.dialog: SipResponse | None = None
        self.audio_codec = "PCMU"
        self._cseq = 1
        self._port = 0
        self._alias = ""
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._sender: asyncio.Task[None] | None = None

    # Signalling

    def offer(self, *, audio_codec: str = "PCMU", direction: str = "sendrecv",
              address: str = "127.0.0.1", video: bool | None = None,
              extra_audio_codecs: tuple[str, ...] = ()) -> bytes:
        """The SDP it offers; the ports are the endpoint's (9 before ``dial`` has bound them).

        ``extra_audio_codecs`` are rtpmap names offered before ``audio_codec`` (e.g. a codec the
        node does not have, to see it skipped); ``address`` ``0.0.0.0`` is RFC 2543 hold."""
        audio_port, video_port = self._ports()
        pts = [_STATIC_PT[audio_codec]]
        rtpmaps = [f"a=rtpmap:{pts[0]} {audio_codec}/8000"]
        for offset, name in enumerate(extra_audio_codecs):
            pts.insert(0, 110 + offset)
            rtpmaps.insert(0, f"a=rtpmap:{110 + offset} {name}/8000")
        lines = ["v=0", f"o=vc 1 {self._cseq} IN IP4 127.0.0.1", "s=-", f"c=IN IP4 {address}",
                 "t=0 0", f"m=audio {audio_port} RTP/SAVP {' '.join(map(str, pts))} 101",
                 *rtpmaps, "a=rtpmap:101 telephone-event/8000", "a=rtcp-mux",
                 f"a=crypto:1 {_SUITE.value} inline:{_b64(self.keys['audio'])}", f"a={direction}"]
        if self.video_size is not None if video is None else video:
            lines += [f"m=video {video_port} RTP/SAVP 97", "a=rtpmap:97 H264/90000",
                      "a=fmtp:97 profile-level-id=42e01f;packetization-mode=1",
                      "a=rtcp-fb:97 nack pli", "a=rtcp-mux",
                      f"a=crypto:1 {_SUITE.value} inline:{_b64(self.keys['video'])}",
                      f"a={direction}"]
        return ("\r\n".join(lines) + "\r\n").encode()

    async def dial(self, port: int, ca: Path, alias: str) -> SipResponse:
        """INVITE the room over TLS; on a 2xx, ACK it and start the media side of the session."""
        self._port, self._alias = port, alias
        await self.endpoint.open("127.0.0.1", parse_sdp(self.offer()))
        await self.client.connect(port, ca)
        await self.client.send(self.client.request("INVITE", alias, port, body=self.offer()))
        answer = await self.client.response(10)
        if answer.status < 300:
            self.dialog = answer
            await self.client.send(self.client.ack(answer, alias, port))
            self._apply(answer)
            self.endpoint.set_decoding(True)
        return answer

    async def reoffer(self, body: bytes, method: str = "INVITE") -> SipResponse:
        """A re-INVITE (or UPDATE) in the call; a 2xx is ACKed (INVITE) and applied."""
        assert self.dialog is not None, "dial first"
        self._cseq += 1
        await self.client.send(self.client.in_dialog(method, self.dialog, self._alias,
                                                     self._port, cseq=self._cseq, body=body))
        answer = await self.client.response(10)
        if answer.status < 300:
            if method == "INVITE":
                await self.client.send(self.client.ack(answer, self._alias, self._port))
            self._apply(answer)
        return answer

    async def press(self, keys: str) -> None:
        """Keypad presses as SIP INFO (``application/dtmf-relay``), one request per key, each
        answered before the next, as many video systems send them."""
        assert self.dialog is not None, "dial first"
        for key in keys:
            self._cseq += 1
            await self.client.send(self.client.in_dialog(
                "INFO", self.dialog, self._alias, self._port, cseq=self._cseq,
                body=f"Signal={key}\r\nDuration=160\r\n".encode(),
                content_type="application/dtmf-relay"))
            answer = await self.client.response(5)
            assert answer.status == 200, answer.status

    def _apply(self, answer: SipResponse) -> None:
        """Configure our endpoint from the node's answer: read from our side, the answer is
        the offer we "answer" with our own keys (the same keys we offered)."""
        keys: Iterator[bytes] = iter([self.keys["audio"], self.keys["video"]])
        sdp = parse_sdp(answer.body)
        ports = {i: (p, p) for i, p in enumerate(self._ports()) if i < len(sdp.media)}
        session = answer_offer(sdp, local_address="127.0.0.1", ports=ports, over_tls=True,
                               session_id=1, random_bytes=lambda n: next(keys)[:n])
        self.endpoint.configure(session)
        if session.audio is not None:
            self.audio_codec = session.audio.codec.name

    def _ports(self) -> tuple[int, int]:
        streams = self.endpoint.streams
        return (streams["audio"].rtp.port if "audio" in streams else 9,
                streams["video"].rtp.port if "video" in streams else 9)

    # Media

    def packets_received(self, kind: str = "audio") -> int:
        """Packets that reached our socket and decrypted, whatever we then did with them."""
        stream = self.endpoint.streams.get(kind)
        return 0 if stream is None else stream.packets_received

    def start_sending(self) -> None:
        """Send the tone (20 ms frames) and, with video, the picture at ``fps``, in real time."""
        self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        width, height = self.video_size or (0, 0)
        video = H264Encoder(width, height, fps=self.fps) if self.video_size else None
        if video is not None:
            self.endpoint.on_keyframe_request(video.request_keyframe)
        audio_encoders: dict[str, G711Encoder] = {}
        t = np.arange(960) / 48000
        tone = (np.sin(2 * np.pi * self.tone * t) * 8000).astype(np.int16)
        start, tick = loop.time(), 0
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                codec = self.audio_codec
                encoder = audio_encoders.setdefault(codec, G711Encoder(codec))
                data = encoder.encode(tone)
                track = self.endpoint.outbound.get("audio")
                if data and track is not None:
                    track.push(data, 0, self)
                picture_due = video is not None and tick % max(1, round(50 / self.fps)) == 0
                track = self.endpoint.outbound.get("video")
                if picture_due and video is not None and track is not None:
                    plane = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
                    plane[:height] = self.luma
                    if self.moving:
                        moving_bar(plane, height, tick)
                    frame = await loop.run_in_executor(None, video.encode, plane)
                    if frame is not None:
                        track.push(frame.data, tick * 1800, self)
                tick += 1
                await asyncio.sleep(max(0.0, start + tick * 0.02 - loop.time()))

    def _on_frame(self, _participant: str, kind: str, frame: av.AudioFrame | av.VideoFrame) -> None:
        if kind == "video":
            assert isinstance(frame, av.VideoFrame)
            self.pictures_decoded += 1
            self.pictures.append(frame.to_ndarray(format="yuv420p"))
            del self.pictures[:-5]  # the latest few are enough, and 720p pictures are big
            return
        assert isinstance(frame, av.AudioFrame)
        for resampled in self._resampler.resample(frame):
            self.audio.append(resampled.to_ndarray().reshape(-1).astype(np.float64))

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        self.client.close()
        await self.endpoint.close()


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()
