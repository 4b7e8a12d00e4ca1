"""The SIP listener on a stream (TLS, or plain TCP for trusted networks): connections in, the
sans-IO user agent in the middle, events out (see :mod:`confnode.transport.sip.shell`).

One ``SipUserAgent`` serves every connection of the listener; a connection's peer address is its
``Address`` for the agent. Each connection has its own ``StreamFramer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from confnode.transport.sip.framing import StreamFramer
from confnode.transport.sip.shell import EventHandler, SipShell, SipTransport
from confnode.transport.sip.transactions import Address


class SipListener(SipShell):
    def __init__(self, host: str, port: int, context: ssl.SSLContext | None,
                 handler: EventHandler) -> None:
        super().__init__(host, port, handler)
        self.transport = SipTransport.TCP if context is None else SipTransport.TLS
        self._context = context
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port,
                                                  ssl=self._context)
        self._create_agent()

    async def stop(self) -> None:
        await super().stop()
        for writer in list(self._writers.values()):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def _write(self, data: bytes, address: Address) -> None:
        writer = self._writers.get(address)
        if writer is not None and not writer.is_closing():
            writer.write(data)

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
