"""DTLS-SRTP SIP calls driven by a scripted caller: raw SIP over TLS or plain TCP, and media from
an ``RtpEndpoint`` with its own DTLS identity configured from the node's answer (so it is the
DTLS client, as a phone answering ``a=setup:passive`` is).

DTLS-SRTP keys never travel in the SDP, so unlike SDES it is accepted over plain TCP too. A
certificate that does not match the caller's ``a=fingerprint`` ends the call: the node sends
BYE and the licence count returns to zero.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clientapi import book, wait_for
from conftest import ServedNode
from rtp.test_rtp_endpoint import pcmu_tone
from sipclient import RawSipClient

from confnode.licensing import LicenceKind
from confnode.security.certificate import describe_certificate, ensure_self_signed
from confnode.security.dtls import dtls_hardening
from confnode.security.profiles import get_profile
from confnode.transport.rtp.dtls_srtp import DtlsIdentity, DtlsSrtpSettings
from confnode.transport.rtp.endpoint import RtpEndpoint
from confnode.transport.sip.message import SipRequest
from confnode.transport.sip.negotiation import answer_offer
from confnode.transport.sip.sdp import Fingerprint, parse_sdp

PHONE = DtlsSrtpSettings(DtlsIdentity.generate(), dtls_hardening(get_profile("modern")))


def dtls_offer(port: int, fingerprint: Fingerprint, setup: str = "actpass") -> bytes:
    return ("v=0\r\no=vc 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n"
            f"a=setup:{setup}\r\na=fingerprint:{fingerprint.serialize_value()}\r\n").encode()


async def next_request(client: RawSipClient, method: str, seconds: float = 15.0) -> SipRequest:
    assert client.reader is not None
    async with asyncio.timeout(seconds):
        while True:
            for item in client.framer.feed(await client.reader.read(65536) or b""):
                if isinstance(item, SipRequest) and item.method == method:
                    return item


async def dtls_call(served: ServedNode, port: int, ca: Path | None, offered: Fingerprint,
                    setup: str = "actpass") -> tuple[RawSipClient, RtpEndpoint, bytes]:
    """INVITE a booked room with a DTLS-SRTP offer; the phone's media starts the handshake."""
    b = await book(served, guests_wait_for_host=False)
    phone = RtpEndpoint("phone", "phone", dtls=PHONE, on_frame=lambda p, k, f: None)
    ports = await phone.open("127.0.0.1", parse_sdp(dtls_offer(9, offered, setup)))
    client = await RawSipClient().connect(port, ca)
    await client.send(client.request("INVITE", b["alias"], port,
                                     body=dtls_offer(ports[0][0], offered, setup)))
    answer = await client.response()
    assert answer.status == 200, answer.status
    await client.send(client.ack(answer, b["alias"], port))
    session = answer_offer(parse_sdp(answer.body), local_address="127.0.0.1", ports=ports,
                           over_tls=False, session_id=2,
                           dtls_fingerprint=PHONE.identity.fingerprint())
    phone.configure(session)
    return client, phone, answer.body


async def test_a_certificate_not_matching_the_fingerprint_ends_the_call_with_bye(
        served: ServedNode, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="confnode")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, ["127.0.0.1"], datetime.now(UTC))
    served.node.settings.sip.port = 0
    listener = await served.node.start_sip(cert, key)
    stranger = DtlsIdentity.generate().fingerprint()  # the offer vouches for another cert
    client, phone, answer = await dtls_call(served, listener.bound_port, cert, stranger)
    try:
        # The node answers with its own certificate's fingerprint and waits for our hello.
        node_fingerprint = describe_certificate(cert).sha256_fingerprint
        assert f"a=fingerprint:sha-256 {node_fingerprint}".encode() in answer
        assert b"a=setup:passive" in answer and b"UDP/TLS/RTP/SAVP 0" in answer
        bye = await next_request(client, "BYE")
        assert bye.headers.get("Call-ID") == client.call_id
        await wait_for(lambda: not served.node.sip.calls, "the call was not ended", seconds=5)
        ledger = served.node.calls.ledger
        assert ledger.in_use(LicenceKind.AUDIO) == 0 and ledger.in_use(LicenceKind.PORT) == 0
        assert "DTLS-SRTP failed: the sha-256 fingerprint does not match" in caplog.text
        assert f"SIP call {client.call_id}: audio rtp keyed" not in caplog.text
    finally:
        client.close()
        await phone.close()


@pytest.mark.parametrize("setup, role", [("actpass", "server"), ("passive", "client")])
async def test_dtls_srtp_is_accepted_over_plain_tcp_signalling(
        served: ServedNode, caplog: pytest.LogCaptureFixture, setup: str, role: str) -> None:
    """Either role: a caller offering ``passive`` makes the node the DTLS client (its first
    ClientHello may beat the 200 OK to the caller and be retransmitted a second later)."""
    caplog.set_level(logging.INFO, logger="confnode")
    sip = served.node.settings.sip
    sip.tls, sip.tcp, sip.tcp_port = False, True, 0  # plain TCP: SDES would be refused here
    listener = await served.node.start_sip(None, None)
    client, phone, answer = await dtls_call(served, listener.bound_port, None,
                                            PHONE.identity.fingerprint(), setup)
    try:
        # Without a certificate of its own the node presents an ephemeral DTLS identity.
        assert served.node.sip.dtls is not None
        own = served.node.sip.dtls.identity.fingerprint()
        assert f"a=fingerprint:{own.serialize_value()}".encode() in answer
        assert f"a=setup:{'passive' if role == 'server' else 'active'}".encode() in answer
        await wait_for(lambda: f"SIP call {client.call_id}: audio rtp keyed by DTLS-SRTP, SRTP "
                       "profile SRTP_AEAD_AES_256_GCM" in caplog.text,
                       "the node logged no negotiated profile", seconds=5)
        assert f"node is the DTLS {role})" in caplog.text
        call = served.node.sip.calls[client.call_id]
        await wait_for(lambda: call.joined, "the caller did not join", seconds=5)
        for payload in pcmu_tone(440, 25):
            phone.outbound["audio"].push(payload, 0, None)
            await asyncio.sleep(0.005)
        stream = call.endpoint.streams["audio"]
        # packets_received counts packets that passed SRTP authentication and decryption.
        await wait_for(lambda: stream.packets_received == 25,
                       "the node decrypted nothing from the phone", seconds=5)
        assert served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 1
        keying = stream.dtls["rtp"].session.keying
        assert keying is not None  # the exported keys are never logged
        assert keying.local_key.hex() not in caplog.text
        assert keying.remote_key.hex() not in caplog.text
        assert str(keying.local_key) not in caplog.text
    finally:
        client.close()
        await phone.close()


async def test_a_caller_that_never_handshakes_is_hung_up_on(
        served: ServedNode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="confnode")
    sip = served.node.settings.sip
    sip.tls, sip.tcp, sip.tcp_port = False, True, 0  # plain TCP, switched on explicitly
    listener = await served.node.start_sip(None, None)
    assert served.node.sip.dtls is not None
    served.node.sip.dtls = replace(served.node.sip.dtls, handshake_timeout=0.5)
    b = await book(served, guests_wait_for_host=False)
    client = await RawSipClient().connect(listener.bound_port, None)
    try:  # an offer whose media port nobody listens on: no ClientHello ever comes
        await client.send(client.request("INVITE", b["alias"], listener.bound_port,
                                         body=dtls_offer(9, PHONE.identity.fingerprint())))
        answer = await client.response()
        assert answer.status == 200
        await client.send(client.ack(answer, b["alias"], listener.bound_port))
        assert served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 1
        bye = await next_request(client, "BYE", seconds=5)
        assert bye.headers.get("Call-ID") == client.call_id
        await wait_for(lambda: served.node.calls.ledger.in_use(LicenceKind.AUDIO) == 0,
                       "the licence was not released", seconds=5)
        assert "no DTLS handshake within 0.5 s" in caplog.text
    finally:
        client.close()
