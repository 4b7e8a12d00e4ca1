"""A scriptable SIP user agent client for tests: raw requests over TLS, TCP or UDP (for
malformed input, refusals and retransmissions), and a video endpoint built from the node's own RTP
pieces on the other side of the wire (for an H.264 SIP video system, which no Debian SIP client
here provides)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
from av.frame import Frame
from latency_markers import (
    MARKER_FREQUENCIES,
    SAMPLE_RATE,
    AudioMarkerSchedule,
    MarkerReceiver,
    RoomMarkers,
)

from confnode.transport.encoders import G711Encoder
from confnode.transport.rtp.endpoint import FrameSink, RtpEndpoint
from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.message import SipRequest, SipResponse, parse_message
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdes import SdesSuite, generate_key
from confnode.transport.sip.sdp import parse_sdp


class RawSipClient:
    def __init__(self) -> None:
        self.framer = StreamFramer()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.local_port = 0

    async def connect(self, port: int, ca: Path | None) -> RawSipClient:
        context = ssl.create_default_context(cafile=str(ca)) if ca else None
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1" if ca else None)
        self.local_port = self.writer.get_extra_info("sockname")[1]
        self.transport = "TLS" if ca else "TCP"
        return self

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, seconds: float = 5.0, *, final: bool = True) -> SipResponse:
        """The next response (skipping 1xx when ``final``)."""
        assert self.reader is not None
        pending: list[SipResponse] = []
        async with asyncio.timeout(seconds):
            while True:
                for item in self.framer.feed(await self.reader.read(65536) or b""):
                    if isinstance(item, SipResponse):
                        pending.append(item)
                while pending:
                    response = pending.pop(0)
                    if not final or response.status >= 200:
                        return response

    async def incoming_request(self, seconds: float = 5.0) -> SipRequest:
        """The next request the node sends us (its BYE when it ends the call)."""
        assert self.reader is not None
        async with asyncio.timeout(seconds):
            while True:
                for item in self.framer.feed(await self.reader.read(65536) or b""):
                    if isinstance(item, SipRequest):
                        return item

    async def status_line(self, seconds: float = 5.0) -> int:
        """The status code of the next response, read raw: a reply to a malformed request may
        echo the malformed header (e.g. an overflowing CSeq) and so not parse itself."""
        assert self.reader is not None
        async with asyncio.timeout(seconds):
            line = await self.reader.readline()
        return int(line.split()[1])

    def request(self, method: str, user: str, port: int, *, body: bytes = b"",
                call_id: str | None = None, cseq: int = 1, extra: str = "",
                content_type: str = "application/sdp") -> bytes:
        """A request outside any dialog (a new Call-ID and From tag each time)."""
        self.call_id = call_id or secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        return self._request(method, user, port, f"<sip:{user}@127.0.0.1>", cseq=cseq,
                             body=body, extra=extra, content_type=content_type)

    def in_dialog(self, method: str, dialog: SipResponse, user: str, port: int, *, cseq: int,
                  body: bytes = b"", content_type: str = "application/sdp") -> bytes:
        """A request in the dialog the 2xx ``dialog`` set up (re-INVITE, UPDATE, BYE): same
        Call-ID and From tag, the node's To tag, a higher ``cseq``."""
        return self._request(method, user, port, dialog.headers.get("To") or "", cseq=cseq,
                             body=body, content_type=content_type)

    def _request(self, method: str, user: str, port: int, to: str, *, cseq: int, body: bytes,
                 extra: str = "", content_type: str) -> bytes:
        self.branch = "z9hG4bK" + secrets.token_hex(6)
        transport = self.transport.lower()
        head = (f"{method} sip:{user}@127.0.0.1:{port};transport={transport} SIP/2.0\r\n"
                f"Via: SIP/2.0/{self.transport} 127.0.0.1:{self.local_port};branch={self.branch};"
                "rport\r\nMax-Forwards: 70\r\n"
                f"From: \"Hospital VC\" <sip:vc@127.0.0.1>;tag={self.tag}\r\n"
                f"To: {to}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:vc@127.0.0.1:{self.local_port};transport={transport}>\r\n{extra}")
        if body:
            head += f"Content-Type: {content_type}\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def ack(self, response: SipResponse, user: str, port: int) -> bytes:
        """The ACK for ``response`` to our INVITE or re-INVITE (its CSeq number): a new
        transaction for a 2xx, the INVITE's own branch for an error (RFC 3261 §17.1.1.3), so that
        the server's transaction absorbs it."""
        to = response.headers.get("To") or ""
        branch = self.branch if response.status >= 300 else f"z9hG4bK{secrets.token_hex(6)}"
        return (f"ACK sip:{user}@127.0.0.1:{port};transport={self.transport.lower()} SIP/2.0\r\n"
                f"Via: SIP/2.0/{self.transport} 127.0.0.1:{self.local_port};"
                f"branch={branch};rport\r\nMax-Forwards: 70\r\n"
                f"From: \"Hospital VC\" <sip:vc@127.0.0.1>;tag={self.tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {response.cseq.number} ACK\r\n"
                "Content-Length: 0\r\n\r\n").encode()

    def bye(self, response: SipResponse, user: str, port: int, cseq: int = 2) -> bytes:
        """Hang up the call ``response`` (the INVITE's 2xx) answered."""
        return self.in_dialog("BYE", response, user, port, cseq=cseq)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class RawSipUdpClient(RawSipClient):
    """The same requests as datagrams, from one UDP socket; every datagram the node sends back
    is kept in arrival order, so retransmissions can be counted."""

    async def connect(self, port: int, ca: Path | None = None) -> RawSipUdpClient:
        loop = asyncio.get_running_loop()
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.udp, _ = await loop.create_datagram_endpoint(
            lambda: _Collector(self.datagrams), remote_addr=("127.0.0.1", port))
        self.local_port = self.udp.get_extra_info("sockname")[1]
        self.transport = "UDP"
        return self

    async def send(self, data: bytes) -> None:
        self.udp.sendto(data)

    async def datagram(self, seconds: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.datagrams.get(), seconds)

    async def response(self, seconds: float = 5.0, *, final: bool = True) -> SipResponse:
        async with asyncio.timeout(seconds):
            while True:
                message = parse_message(await self.datagrams.get())
                if isinstance(message, SipResponse) and (not final or message.status >= 200):
                    return message

    async def status_line(self, seconds: float = 5.0) -> int:
        return int((await self.datagram(seconds)).split(b" ", 2)[1])

    def close(self) -> None:
        self.udp.close()


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)


def audio_offer(port: int, suites: list[str], proto: str = "RTP/SAVP") -> bytes:
    lines = ["v=0", "o=vc 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             f"m=audio {port} {proto} 0 101", "a=rtpmap:0 PCMU/8000",
             "a=rtpmap:101 telephone-event/8000", "a=rtcp-mux"]
    for tag, suite in enumerate(suites, start=1):
        key = base64.b64encode(secrets.token_bytes(30)).decode()
        lines.append(f"a=crypto:{tag} {suite} inline:{key}")
    return ("\r\n".join(lines) + "\r\n").encode()


H264_MODE_1 = "profile-level-id=42e01f;packetization-mode=1"


def sdes_offer(audio_port: int, video_port: int | None, keys: tuple[bytes, ...],
               h264_fmtp: str = H264_MODE_1) -> bytes:
    """G.711 audio (and H.264 video with ``h264_fmtp`` when ``video_port`` is given) over
    SDES-SRTP with the given AES_CM_128_HMAC_SHA1_80 keys, one per m-line."""
    audio_key, *video_key = (base64.b64encode(k).decode() for k in keys)
    sdp = ("v=0\r\no=vc 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {audio_port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
           "a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n"
           f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{audio_key}\r\n")
    if video_port is not None:
        sdp += (f"m=video {video_port} RTP/SAVP 97\r\na=rtpmap:97 H264/90000\r\n"
                f"a=fmtp:97 {h264_fmtp}\r\n"
                "a=rtcp-fb:97 nack pli\r\na=rtcp-mux\r\n"
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{video_key[0]}\r\n")
    return sdp.encode()


class SdesMediaEndpoint:
    """The media side of a scripted SIP endpoint: the node's own ``RtpEndpoint`` on the other
    side of the wire, with its own sockets and SRTP keys, configured from the far end's SDP as
    the node would configure its side (``answer_offer`` playing our half of the negotiation)."""

    def __init__(self, name: str, *, video: bool, on_frame: FrameSink) -> None:
        self.video = video
        self.endpoint = RtpEndpoint(name, name, on_frame=on_frame)
        suite = SdesSuite.AES_CM_128_HMAC_SHA1_80
        self.keys = tuple(generate_key(suite) for _ in range(2 if video else 1))
        self.ports: dict[int, tuple[int, int]] = {}

    async def open(self) -> bytes:
        """Bind the media sockets; returns our offer."""
        self.ports = await self.endpoint.open(
            "127.0.0.1", parse_sdp(sdes_offer(9, 9 if self.video else None, self.keys)))
        return self.offer

    @property
    def offer(self) -> bytes:
        return sdes_offer(self.ports[0][0], self.ports[1][0] if self.video else None, self.keys)

    def configure(self, remote_sdp: bytes) -> None:
        """Start media towards the far end's SDP (the node's answer, or a peer's offer)."""
        ours: Iterator[bytes] = iter(self.keys)
        session = answer_offer(parse_sdp(remote_sdp), local_address="127.0.0.1",
                               ports=self.ports, over_tls=True, session_id=1,
                               random_bytes=lambda n: next(ours)[:n])
        self.endpoint.configure(session)
        self.endpoint.set_decoding(True)

    async def close(self) -> None:
        await self.endpoint.close()


class MarkerSipPhone:
    """A SIP phone (PCMU, SDES-SRTP, signalling over TLS) that plays the same audio latency
    markers as ``bots.MarkerBot`` and measures what it hears, for load tests with SIP legs."""

    def __init__(self, slot: int, markers: RoomMarkers,
                 report: Callable[[str, float, bool], None]) -> None:
        self.slot, self.markers = slot, markers
        self.media = SdesMediaEndpoint(f"phone{slot}", video=False, on_frame=self._on_frame)
        self.receiver = MarkerReceiver(slot, markers, report)
        self.client = RawSipClient()
        self.schedule = AudioMarkerSchedule()
        self._encoder = G711Encoder("PCMU")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._sender: asyncio.Task[None] | None = None
        self._dialog: tuple[SipResponse, str, int] | None = None

    async def dial(self, port: int, ca: Path | None, alias: str, seconds: float = 10.0) -> None:
        """INVITE the room ``alias`` on the node's SIP port; media starts on the 200 OK."""
        await self.client.connect(port, ca)
        await self.client.send(self.client.request("INVITE", alias, port,
                                                   body=await self.media.open()))
        answer = await self.client.response(seconds)
        if answer.status != 200:
            raise RuntimeError(f"INVITE refused: {answer.status}")
        await self.client.send(self.client.ack(answer, alias, port))
        self._dialog = (answer, alias, port)
        self.start_media(answer.body)

    def start_media(self, remote_sdp: bytes) -> None:
        self.media.configure(remote_sdp)
        self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        outbound = self.media.endpoint.outbound["audio"]
        frequency = MARKER_FREQUENCIES[self.slot - 1]
        start, index, noise = time.monotonic(), 0, np.random.default_rng()
        while True:
            wait = start + index * 0.02 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            data = self._encoder.encode(self.schedule.frame(frequency, index, noise))
            if self.schedule.is_marker_start(index):
                self.markers.audio_sent(self.slot, time.monotonic())
            if data:
                outbound.push(data, 0, self)
            index += 1

    def _on_frame(self, _participant: str, kind: str, frame: Frame) -> None:
        if kind != "audio" or not isinstance(frame, av.AudioFrame):
            return
        arrived = time.monotonic()
        resampled = [r.to_ndarray().reshape(-1) for r in self._resampler.resample(frame)]
        if resampled:
            self.receiver.audio(np.concatenate(resampled), frame.pts, frame.sample_rate,
                                frame.samples, arrived)

    async def hangup(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._dialog is not None:
            with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                await self.client.send(self.client.bye(*self._dialog))
                await self.client.response(2)
        await self.media.close()
        self.client.close()
