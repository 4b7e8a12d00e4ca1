"""ICE settings for the node's peer connections.

aiortc adds a public STUN server when given no ICE servers and aioice never offers 127.0.0.1 as a
host candidate. A node on loopback (the embedded default, and every test) must offer a candidate
its clients can reach there, and must not talk to the outside world unless the operator configured
STUN/TURN servers.
"""

from __future__ import annotations

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

_original_host_addresses = aioice.ice.get_host_addresses


def _with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _original_host_addresses(use_ipv4, use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addresses:
        addresses.insert(0, "127.0.0.1")
    return addresses


def offer_loopback_candidates(enabled: bool) -> None:
    """Make aioice gather a 127.0.0.1 host candidate too (process-wide: aioice has one list)."""
    aioice.ice.get_host_addresses = _with_loopback if enabled else _original_host_addresses


def rtc_configuration(urls: list[str], username: str | None = None,
                      credential: str | None = None) -> RTCConfiguration:
    """Exactly the operator's ICE servers; an empty list means none (not aiortc's default)."""
    servers = [RTCIceServer(urls=url, username=username, credential=credential) for url in urls]
    return RTCConfiguration(iceServers=servers)
