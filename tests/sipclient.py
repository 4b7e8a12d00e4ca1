"""A scriptable SIP user agent client for tests: raw requests over TLS, TCP or UDP (for
malformed input, refusals and retransmissions), and a video endpoint built from the node's own RTP
pieces on the other side of the wire (for an H.264 SIP video system, which no Debian SIP client
here provides)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import ssl
from pathlib import Path

from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.message import SipResponse, parse_message


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
        to = response.headers.get("To") or ""
        return (f"BYE sip:{user}@127.0.0.1:{port};transport={self.transport.lower()} SIP/2.0\r\n"
                f"Via: SIP/2.0/{self.transport} 127.0.0.1:{self.local_port};"
                f"branch=z9hG4bK{secrets.token_hex(6)};rport\r\nMax-Forwards: 70\r\n"
                f"From: \"Hospital VC\" <sip:vc@127.0.0.1>;tag={self.tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
                ).encode()

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
