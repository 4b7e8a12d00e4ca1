"""SIP over UDP (and plain TCP) against a real node on 127.0.0.1: off by default; when switched on,
malformed datagrams are answered and survived, SDES is refused outside TLS, responses are
retransmitted until acknowledged, and a real baresip call with plain RTP reaches a browser."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from baresip import Baresip, require_baresip
from bots import MediaBot
from clientapi import book, join, token_of, wait_for
from conftest import SERVED_SETTINGS, ServedNode, serving
from nodeprocess import NodeProcess, free_port
from sipclient import RawSipClient, RawSipUdpClient, audio_offer

from confnode.config import Settings
from confnode.errors import InvalidInput
from confnode.licensing import LicenceKind
from confnode.security.certificate import ensure_self_signed
from confnode.transport.sip.message import SipResponse, parse_message
from confnode.transport.sip.shell import SipTransport


@contextlib.asynccontextmanager
async def sip_node(settings_factory: Callable[..., Settings], tmp_path: Path,
                   **sip: Any) -> AsyncIterator[ServedNode]:
    """A served node with SIP over TLS and UDP (both on free ports) plus ``sip`` settings."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1", "localhost"], datetime.now(UTC))
    settings = settings_factory(**SERVED_SETTINGS,
                                sip={"port": 0, "udp": True, "udp_port": 0, **sip})
    async with serving(settings) as served:
        await served.node.start_sip(cert, key)
        yield served


@pytest.fixture
async def udp_node(settings_factory: Callable[..., Settings],
                   tmp_path: Path) -> AsyncIterator[ServedNode]:
    """UDP switched on, media security as shipped (plain RTP refused)."""
    async with sip_node(settings_factory, tmp_path) as served:
        yield served


@pytest.fixture
async def trusted_node(settings_factory: Callable[..., Settings],
                       tmp_path: Path) -> AsyncIterator[ServedNode]:
    """A trusted-network node: UDP and plain TCP on, plain RTP allowed."""
    async with sip_node(settings_factory, tmp_path, tcp=True, tcp_port=0,
                        allow_plain_rtp=True) as served:
        yield served


def port_of(served: ServedNode, transport: SipTransport) -> int:
    return served.node.sip_listeners[transport].bound_port


async def silence(client: RawSipUdpClient, seconds: float) -> bool:
    """True when nothing arrives for ``seconds``."""
    try:
        await client.datagram(seconds)
    except TimeoutError:
        return True
    return False


# --- off by default ---------------------------------------------------------------------------


def test_plain_transports_are_off_by_default() -> None:
    sip = Settings().sip
    assert (sip.tls, sip.port, sip.tcp, sip.udp) == (True, 5061, False, False)
    with pytest.raises(ValueError, match=r"at least one of sip\.tls"):
        Settings(sip={"tls": False})


@pytest.mark.subprocess
def test_a_default_node_listens_for_sip_over_tls_only(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "node").start()
    try:
        assert node.process is not None
        sockets = psutil.Process(node.process.pid).net_connections(kind="inet")
        listening = {c.laddr.port for c in sockets
                     if c.type == socket.SOCK_STREAM and c.status == psutil.CONN_LISTEN}
        assert [c for c in sockets if c.type == socket.SOCK_DGRAM] == []  # no UDP at all
        assert node.port in listening and len(listening) == 2  # HTTPS and SIP-TLS, no TCP 5060
        sip_port = (listening - {node.port}).pop()
        context = ssl.create_default_context(cafile=node.cert)
        with socket.create_connection(("127.0.0.1", sip_port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() is not None  # a TLS handshake with the node's certificate
    finally:
        node.stop()
    log = node.log.read_text()
    assert f"SIP listening on 127.0.0.1:{sip_port} (TLS)" in log
    assert "SIP over TCP and UDP off" in log


async def test_no_certificate_and_no_plain_transport_is_a_clear_error(
        served: ServedNode, caplog: pytest.LogCaptureFixture) -> None:
    """The old fallback opened plain TCP when no certificate was given; now TCP is its own
    switch and the node says why it cannot listen."""
    served.node.settings.sip.port = 0
    with pytest.raises(InvalidInput, match="TLS needs a certificate"):
        await served.node.start_sip(None, None)
    assert served.node.sip_listeners == {}
    assert "SIP over TLS is not listening: no certificate" in caplog.text


# --- the UDP listener -------------------------------------------------------------------------


def malformed(local_port: int) -> list[tuple[bytes, int]]:
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};rport;branch=z9hG4bK"
    head = "From: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\n"
    return [
        (f"OPTIONS sip:1@127.0.0.1 SIP/7.0\r\n{via}m1\r\n{head}Call-ID: m1\r\n"
         "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode(), 505),
        (f"OPTIONS sip:1@127.0.0.1 SIP/2.0\r\n{via}m2\r\n{head}Call-ID: m2\r\n"
         "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".encode(), 400),  # CSeq method mismatch
        (f"OPTIONS sip:1@127.0.0.1 SIP/2.0\r\n{via}m3\r\n{head}Call-ID: m3\r\n"
         "CSeq: 1 OPTIONS\r\nContent-Length: 50\r\n\r\nshort".encode(), 400),  # body cut short
        (f"OPTIONS sip:1@127.0.0.1 SIP/2.0\r\n{via}m4\r\nFrom: \"unbalanced <sip:a@b>;tag=1\r\n"
         "To: <sip:1@127.0.0.1>\r\nCall-ID: m4\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
         .encode(), 400),
    ]


async def test_udp_options_and_malformed_datagrams(udp_node: ServedNode) -> None:
    port = port_of(udp_node, SipTransport.UDP)
    client = await RawSipUdpClient().connect(port)
    try:
        await client.send(client.request("OPTIONS", "ping", port))
        ok = await client.response()
        assert ok.status == 200 and "INVITE" in (ok.headers.get("Allow") or "")
        assert ok.top_via.param("rport") == str(client.local_port)  # RFC 3581
        for data, status in malformed(client.local_port):
            await client.send(data)
            assert await client.status_line() == status, data[:60]
        # Nothing to answer (no start line, no Via) and a keep-alive: both dropped quietly.
        await client.send(b"\x00\x01\x00\x00 not SIP at all")
        await client.send(b"\r\n\r\n")
        # RFC 3261 §18.3: on UDP Content-Length may be missing (the body is the rest of the
        # datagram), and a shorter one cuts the body.
        no_length = client.request("OPTIONS", "ping", port).replace(b"Content-Length: 0\r\n", b"")
        await client.send(no_length)
        answer = await client.response()
        assert answer.status == 200 and answer.call_id == client.call_id
        await client.send(client.request("OPTIONS", "ping", port) + b"trailing noise")
        assert (await client.response()).status == 200
        await client.send(client.request("BYE", "ping", port))
        assert (await client.response()).status == 481
    finally:
        client.close()


async def test_udp_responses_go_to_the_via_port_without_rport(udp_node: ServedNode) -> None:
    """RFC 3261 §18.2.2: without ``rport`` the response goes to the port in the Via's sent-by,
    not to the port the datagram came from (with ``rport``, RFC 3581, it is the source port)."""
    port = port_of(udp_node, SipTransport.UDP)
    sender, listener = (await RawSipUdpClient().connect(port),
                        await RawSipUdpClient().connect(port))
    try:
        data = sender.request("OPTIONS", "ping", port)
        data = data.replace(f"127.0.0.1:{sender.local_port};".encode(),
                            f"127.0.0.1:{listener.local_port};".encode(), 1)
        await sender.send(data.replace(b";rport", b"", 1))
        answer = await listener.response()
        assert answer.status == 200 and answer.call_id == sender.call_id
        assert await silence(sender, 0.3)
    finally:
        sender.close()
        listener.close()


async def test_sdes_over_udp_is_488_even_on_a_trusted_network_and_retransmitted_until_ack(
        trusted_node: ServedNode) -> None:
    port = port_of(trusted_node, SipTransport.UDP)
    alias = (await book(trusted_node, guests_wait_for_host=False))["alias"]
    client = await RawSipUdpClient().connect(port)
    try:
        await client.send(client.request("INVITE", alias, port,
                                         body=audio_offer(free_port(), ["AEAD_AES_128_GCM"])))
        refused = await client.response()
        first = time.monotonic()
        assert refused.status == 488
        # Timer G (RFC 3261 §17.2.1): the same 488 again after T1 while no ACK comes.
        again = parse_message(await client.datagram(2))
        assert isinstance(again, SipResponse) and again == refused
        assert 0.3 < time.monotonic() - first < 1.2
        await client.send(client.ack(refused, alias, port))
        # Absorbed: no retransmission at T1 + 2*T1 = 1.5 s, and the ACK is not answered.
        assert await silence(client, 1.5 - (time.monotonic() - first) + 0.5)
        assert trusted_node.node.sip.calls == {}
    finally:
        client.close()


async def test_plain_rtp_over_udp_is_488_unless_the_network_is_trusted(
        udp_node: ServedNode) -> None:
    port = port_of(udp_node, SipTransport.UDP)
    alias = (await book(udp_node, guests_wait_for_host=False))["alias"]
    client = await RawSipUdpClient().connect(port)
    try:
        await client.send(client.request("INVITE", alias, port,
                                         body=audio_offer(free_port(), [], proto="RTP/AVP")))
        assert (await client.response()).status == 488
    finally:
        client.close()
    assert udp_node.node.calls.ledger.in_use(LicenceKind.AUDIO) == 0


async def test_a_plain_rtp_call_over_udp_with_a_lost_ack(trusted_node: ServedNode) -> None:
    served = trusted_node
    port = port_of(served, SipTransport.UDP)
    alias = (await book(served, guests_wait_for_host=False))["alias"]
    client = await RawSipUdpClient().connect(port)
    try:
        await client.send(client.request("INVITE", alias, port,
                                         body=audio_offer(free_port(), [], proto="RTP/AVP")))
        ok = await client.response()
        first = time.monotonic()
        assert ok.status == 200 and b"RTP/AVP" in ok.body and b"a=crypto" not in ok.body
        # The ACK is "lost": the UAS core sends the 2xx again (RFC 3261 §13.3.1.4, T1 doubling).
        again = parse_message(await client.datagram(2))
        assert isinstance(again, SipResponse) and again == ok
        assert 0.3 < time.monotonic() - first < 1.2
        await client.send(client.ack(ok, alias, port))
        assert await silence(client, 1.5 - (time.monotonic() - first) + 0.5)
        [call] = served.node.sip.calls.values()
        assert call.listener is served.node.sip_listeners[SipTransport.UDP]
        await wait_for(lambda: call.joined, "the UDP caller did not join", seconds=5)
        assert served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 1

        # The same Call-ID over another transport never reaches this call.
        tcp_port = port_of(served, SipTransport.TCP)
        intruder = await RawSipClient().connect(tcp_port, None)
        try:
            await intruder.send(intruder.request(
                "INVITE", alias, tcp_port, call_id=client.call_id,
                body=audio_offer(free_port(), [], proto="RTP/AVP")))
            assert (await intruder.response()).status == 482
        finally:
            intruder.close()
        assert list(served.node.sip.calls.values()) == [call]

        await client.send(client.bye(ok, alias, port))
        assert (await client.response()).status == 200
    finally:
        client.close()
    await wait_for(lambda: not served.node.sip.calls, "the call did not end", seconds=5)
    await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 0,
                   "the licence was not released", seconds=5)


async def test_baresip_over_udp_with_plain_rtp_hears_a_browser(
        trusted_node: ServedNode, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_baresip()
    caplog.set_level(logging.INFO, logger="confnode")
    served = trusted_node
    port = port_of(served, SipTransport.UDP)
    b = await book(served, guests_wait_for_host=False)
    phone = Baresip(tmp_path / "baresip", ca_file=tmp_path / "cert.pem", tone_hz=440,
                    mediaenc=None, transport="udp")
    async with served.http() as http:
        browser = await join(http, token_of(b["host_link"]), "Læge")
        try:
            bot = MediaBot("browser", tone=660, luma=120)
            assert (await browser.call(bot)).status_code == 200
            phone.dial(f"sip:{b['alias']}@127.0.0.1:{port};transport=udp", seconds=8)
            await wait_for(lambda: len(served.node.sip.calls) == 1, "no SIP call", seconds=10)
            call = next(iter(served.node.sip.calls.values()))
            assert call.listener is served.node.sip_listeners[SipTransport.UDP]
            assert call.session is not None
            assert [m.srtp for m in call.session.media] == [None]  # plain RTP, as allowed
            await wait_for(lambda: call.joined, "the SIP caller did not join", seconds=5)
            await asyncio.sleep(3)
            assert abs(bot.peak_frequencies(count=1)[0] - 440) < 15
            await phone.wait(10)
        finally:
            phone.stop()
            await browser.close()
    assert abs(phone.heard_hz(8000) - 660) < 15, phone.output()[-2000:]
    assert "SRTP none" in caplog.text
    await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 0,
                   "the SIP licence was not released", seconds=10)
