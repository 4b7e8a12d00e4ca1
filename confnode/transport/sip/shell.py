"""What every SIP listener does around its sans-IO user agent, whatever the socket kind.

A listener owns one :class:`SipUserAgent`. After feeding it, the listener calls :meth:`flush`:
the bytes the agent produced go out through the subclass's :meth:`SipShell._write` (a stream
connection, or a datagram), its events go to the ``handler`` together with the listener they came
from (the application answers on the same agent), and its next timer is re-armed on the loop.
Nothing here knows about rooms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum

from confnode.transport.sip.transactions import Address
from confnode.transport.sip.uri import SipUri
from confnode.transport.sip.user_agent import SipEvent, SipUserAgent

log = logging.getLogger(__name__)


class SipTransport(StrEnum):
    """The transports the node can listen on; the value is the ``transport=`` URI parameter."""

    TLS = "tls"
    TCP = "tcp"
    UDP = "udp"

    @property
    def reliable(self) -> bool:
        """RFC 3261 §17: retransmission timers run only on an unreliable transport."""
        return self is not SipTransport.UDP


EventHandler = Callable[[SipEvent, "SipShell"], None]


class SipShell:
    """The asyncio side of one SIP listener. Subclasses open the socket in :meth:`start` and
    then call :meth:`_create_agent`; :attr:`bound_port` says where (port 0 picks one)."""

    transport: SipTransport

    def __init__(self, host: str, port: int, handler: EventHandler) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._timer: asyncio.TimerHandle | None = None
        self.agent: SipUserAgent | None = None

    @property
    def tls(self) -> bool:
        return self.transport is SipTransport.TLS

    @property
    def bound_port(self) -> int:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _create_agent(self) -> None:
        # sip: with transport=tls rather than sips: in Contact: common endpoints (baresip 1.0)
        # refuse a sips: Contact with ENOSYS, while TLS on every hop is what we enforce anyway.
        contact = SipUri("sip", self.host, port=self.bound_port,
                         params=(("transport", self.transport.value),))
        self.agent = SipUserAgent(contact, reliable=self.transport.reliable, server="confnode")
        log.info("SIP listening on %s:%d (%s)", self.host, self.bound_port,
                 self.transport.value.upper())

    def _write(self, data: bytes, address: Address) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Send what the agent produced, hand its events on, and re-arm its timer."""
        agent = self.agent
        if agent is None:
            return
        for data, address in agent.datagrams_to_send():
            self._write(data, address)
        while (event := agent.next_event()) is not None:
            try:
                self._handler(event, self)
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
