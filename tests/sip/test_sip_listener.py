"""The live SIP listener: malformed input, SDES rules, refusals — answered, never fatal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clientapi import book
from conftest import ServedNode
from sipclient import RawSipClient, audio_offer

from confnode.security.certificate import ensure_self_signed


@pytest.fixture
async def tls_port(served: ServedNode, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    yield listener.bound_port, cert


MALFORMED = [
    (b"INVITE sip:1@127.0.0.1 SIP/7.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKx\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: v\r\nCSeq: 1 INVITE\r\n"
     b"Content-Length: 0\r\n\r\n", 505),
    (b"OPTIONS sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKy\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: w\r\nCSeq: 1 INVITE\r\n"
     b"Content-Length: 0\r\n\r\n", 400),  # CSeq method mismatch
    (b"OPTIONS sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKz\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 99999999999 OPTIONS"
     b"\r\nContent-Length: 0\r\n\r\n", 400),  # CSeq overflow
    (b"OPTIONS sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKq\r\n"
     b"From: \"unbalanced <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: y\r\n"
     b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", 400),
]


async def test_malformed_sip_gets_the_right_4xx_and_the_listener_survives(
        tls_port: tuple[int, Path]) -> None:
    port, cert = tls_port
    for data, status in MALFORMED:
        client = await RawSipClient().connect(port, cert)
        try:
            await client.send(data)
            assert await client.status_line() == status, data[:60]
        finally:
            client.close()
    client = await RawSipClient().connect(port, cert)
    try:
        await client.send(client.request("OPTIONS", "ping", port))
        assert (await client.response()).status == 200
        await client.send(client.request("BYE", "ping", port))  # no such dialog
        assert (await client.response()).status == 481
        await client.send(client.request("INVITE", "ping", port, body=b"hello",
                                         content_type="text/plain"))
        assert (await client.response()).status == 415
        await client.send(client.request("INVITE", "ping", port,
                                         extra="Require: 100rel-nonsense\r\n"))
        assert (await client.response()).status == 420
    finally:
        client.close()


async def invite(served: ServedNode, port: int, ca: Path | None, body: bytes,
                 user: str | None = None) -> Any:
    if user is None:
        user = (await book(served, guests_wait_for_host=False))["alias"]
    client = await RawSipClient().connect(port, ca)
    try:
        await client.send(client.request("INVITE", user, port, body=body))
        return await client.response()
    finally:
        client.close()


async def test_sdes_only_over_tls_and_never_the_32_bit_tag(
        served: ServedNode, tls_port: tuple[int, Path]) -> None:
    port, cert = tls_port
    short = await invite(served, port, cert, audio_offer(40000, ["AES_CM_128_HMAC_SHA1_32"]))
    assert short.status == 488
    plain = await invite(served, port, cert, audio_offer(40000, [], proto="RTP/AVP"))
    assert plain.status == 488  # plain RTP is off by default
    good = await invite(served, port, cert, audio_offer(
        40000, ["AES_CM_128_HMAC_SHA1_32", "AES_CM_128_HMAC_SHA1_80"]))
    assert good.status == 200 and b"AES_CM_128_HMAC_SHA1_80 inline:" in good.body
    assert b"_32" not in good.body


async def test_sdes_over_plain_tcp_is_488(served: ServedNode) -> None:
    sip = served.node.settings.sip
    sip.tls, sip.tcp, sip.tcp_port = False, True, 0  # plain TCP, switched on explicitly
    listener = await served.node.start_sip(None, None)
    assert listener.transport == "tcp"
    response = await invite(served, listener.bound_port, None,
                            audio_offer(40000, ["AES_CM_128_HMAC_SHA1_80"]))
    assert response.status == 488


async def test_unknown_alias_404_and_full_node_503(
        settings_factory: Callable[..., Any], tmp_path: Path) -> None:
    import asyncio

    from confnode.node import Node
    from confnode.transport.https import HttpsListener

    settings = settings_factory(http={"tls": False, "port": 0}, sip={"port": 0},
                                licences={"port": 0, "audio": 0, "grace_fraction": 0})
    node = Node(settings)
    await node.start()
    http = HttpsListener(node)
    task = asyncio.ensure_future(http.serve())
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    listener = await node.start_sip(cert, key)
    try:
        from conftest import ServedNode, Staff

        for _ in range(100):
            if http.bound_port:
                break
            await asyncio.sleep(0.02)
        served = ServedNode(node, f"http://127.0.0.1:{http.bound_port}",
                            Staff(node.admin_token_path.read_text().strip(), "", "default"))
        body = audio_offer(40000, ["AES_CM_128_HMAC_SHA1_80"])
        missing = await invite(served, listener.bound_port, cert, body, user="1234567890")
        assert missing.status == 404
        full = await invite(served, listener.bound_port, cert, body)
        assert full.status == 503
        assert full.headers.get("Retry-After") == "30"
        assert "Insufficient licenses" in (full.headers.get("Warning") or "")
    finally:
        http.stop()
        await asyncio.wait_for(task, 10)
        await node.stop()
