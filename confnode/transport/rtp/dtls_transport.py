"""The asyncio shell of a :class:`DtlsSrtpSession` on one media socket.

It only moves data: datagrams the RTP endpoint demultiplexed as DTLS go in, the session's
datagrams go out through the endpoint's ``send``, its timer becomes a ``loop.call_at``, and its
events become two callbacks -- keys (to build the pylibsrtp sessions) or a failure (to end the
call). The clock is the loop's, which runs on the same monotonic time OpenSSL's own DTLS timer
uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from confnode.transport.rtp.dtls_srtp import (
    DtlsClosed,
    DtlsSrtpSession,
    HandshakeComplete,
    HandshakeFailed,
)


class DtlsSrtpTransport:
    def __init__(self, session: DtlsSrtpSession, send: Callable[[bytes], None], *,
                 on_complete: Callable[[HandshakeComplete], None],
                 on_failure: Callable[[str], None]) -> None:
        self.session = session
        self._send = send
        self._on_complete = on_complete
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        self.session.start(self._loop.time())
        self._after()

    def datagram_received(self, data: bytes) -> None:
        if self._closed:
            return
        self.session.receive_datagram(data, self._loop.time())
        self._after()

    def close(self) -> None:
        if self._closed:
            return
        self.session.close()
        self._flush()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        if not self._closed:
            self.session.handle_timer(self._loop.time())
            self._after()

    def _flush(self) -> None:
        for datagram in self.session.datagrams_to_send():
            self._send(datagram)

    def _after(self) -> None:
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.session.get_timer()
        if due is not None:
            self._timer = self._loop.call_at(due, self._on_timer)
        while (event := self.session.next_event()) is not None:
            if isinstance(event, HandshakeComplete):
                self._on_complete(event)
            elif isinstance(event, HandshakeFailed):
                self._on_failure(event.reason)
            elif isinstance(event, DtlsClosed):
                pass  # the peer is leaving; its BYE ends the call
