"""The SIP-over-TLS listener: sockets in, the sans-IO user agent in the middle, events out.

One ``SipUserAgent`` serves every connection of the listener; a connection's peer address is its
``Address`` for the agent. Each connection has its own ``StreamFramer``. Nothing here knows about
rooms: events go to the ``handler`` (the node's SIP calls), actions come back through ``agent``
followed by ``flush()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable

from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.transactions import Address
from confnode.transport.sip.uri import SipUri
from confnode.transport.sip.user_agent import SipEvent, SipUserAgent

log = logging.getLogger(__name__)

EventHandler = Callable[[SipEvent], None]


class SipListener:
    def __init__(self, host: str, port: int, context: ssl.SSLContext | None,
                 handler: EventHandler) -> None:
        self.host = host
        self.port = port
        self.tls = context is not None
        self._context = context
        self._handler = handler
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.agent: SipUserAgent | None = None

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port,
                                                  ssl=self._context)
        # sip: with transport=tls rather than sips: in Contact: common endpoints (baresip 1.0)
        # refuse a sips: Contact with ENOSYS, while TLS on every hop is what we enforce anyway.
        params = (("transport", "tls" if self.tls else "tcp"),)
        self.agent = SipUserAgent(SipUri("sip", self.host, port=self.bound_port,
                                         params=params), reliable=True, server="confnode")
        log.info("SIP listening on %s:%d (%s)", self.host, self.bound_port,
                 "TLS" if self.tls else "TCP")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for writer in list(self._writers.values()):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def flush(self) -> None:
        """Send what the agent produced, hand its events on, and re-arm its timer."""
        agent = self.agent
        if agent is None:
            return
        for data, address in agent.datagrams_to_send():
            writer = self._writers.get(address)
            if writer is not None and not writer.is_closing():
                writer.write(data)
        while (event := agent.next_event()) is not None:
            try:
                self._handler(event)
            except Exception:
                log.exception("SIP event handler failed")
        self._arm_timer()

    def _arm_timer(self) -> None:
        assert self.agent is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.agent.get_timer()
        if due is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, due - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.agent is not None:
            self.agent.handle_timer(time.monotonic())
            self.flush()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address: Address = (str(peer[0]), int(peer[1]))
        self._writers[address] = writer
        framer = StreamFramer()
        try:
            while not reader.at_eof():
                data = await reader.read(65536)
                if not data:
                    break
                for item in framer.feed(data):
                    assert self.agent is not None
                    self.agent.receive_message(item, address, time.monotonic())
                for _ in range(framer.take_pings()):
                    writer.write(b"\r\n")  # RFC 5626 keep-alive pong
                self.flush()
                if framer.broken:
                    break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.pop(address, None)
            writer.close()
