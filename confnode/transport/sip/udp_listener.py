"""The SIP listener on UDP (RFC 3261 §18): one message per datagram, for trusted networks only.

Off by default: SIP over UDP carries no confidentiality, so SDES keys are never accepted on it
(488) and media is plain RTP only where ``sip.allow_plain_rtp`` says the network is trusted.
Everything protocol-shaped is the sans-IO agent's: parsing a datagram (a missing Content-Length
means "the rest of the datagram", a shorter one cuts the body, RFC 3261 §18.3), the 400 to a
malformed one, where responses go (§18.2.2, RFC 3581 rport/received) and the retransmission
timers that make transactions reliable (§17: G/H/I/J, and the 2xx until its ACK, §13.3.1.4).
This shell only moves datagrams and never lets one datagram take the listener down.
"""

from __future__ import annotations

import asyncio
import logging
import time

from confnode.transport.sip.shell import EventHandler, SipShell, SipTransport
from confnode.transport.sip.transactions import Address

log = logging.getLogger(__name__)


class _SipDatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: SipUdpListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._listener._receive(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" for an earlier sendto: the peer went away. Its transaction
        # times out on its own (timer H, or the ACK wait ending the call with a BYE).
        log.debug("SIP over UDP: %s", type(exc).__name__)


class SipUdpListener(SipShell):
    transport = SipTransport.UDP

    def __init__(self, host: str, port: int, handler: EventHandler) -> None:
        super().__init__(host, port, handler)
        self._socket: asyncio.DatagramTransport | None = None

    @property
    def bound_port(self) -> int:
        assert self._socket is not None
        return int(self._socket.get_extra_info("sockname")[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._socket, _ = await loop.create_datagram_endpoint(
            lambda: _SipDatagramProtocol(self), local_addr=(self.host, self.port))
        self._create_agent()

    async def stop(self) -> None:
        await super().stop()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _write(self, data: bytes, address: Address) -> None:
        if self._socket is not None and not self._socket.is_closing():
            self._socket.sendto(data, address)

    def _receive(self, data: bytes, source: Address) -> None:
        if self.agent is None:
            return
        try:
            # The agent answers every malformed datagram itself and is built never to raise;
            # this guard is for the day it does: one datagram must not end the listener.
            self.agent.receive(data, source, time.monotonic())
        except Exception:
            log.exception("SIP over UDP: a datagram could not be handled")
        self.flush()
