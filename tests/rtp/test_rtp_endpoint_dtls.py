"""Two RTP endpoints keyed by a real DTLS-SRTP handshake over loopback UDP.

The node's endpoint answers a ``UDP/TLS/RTP/SAVP`` offer (``a=setup:passive``: it is the DTLS
server); the phone's side is another ``RtpEndpoint`` configured from the node's answer, so it
is the DTLS client. Media before the handshake goes nowhere in either direction; after it,
G.711 crosses both ways; RTCP works multiplexed and on its own port (one handshake each).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket
from rtp.test_rtp_endpoint import pcmu_tone

from confnode.security.dtls import dtls_hardening
from confnode.security.profiles import get_profile
from confnode.transport.rtp.dtls_srtp import (
    DtlsIdentity,
    DtlsRole,
    DtlsSrtpSession,
    DtlsSrtpSettings,
)
from confnode.transport.rtp.endpoint import RtpEndpoint, RtpSocket
from confnode.transport.sip.negotiation import NegotiatedSession, answer_offer
from confnode.transport.sip.sdp import Fingerprint, parse_sdp

HARDENING = dtls_hardening(get_profile("modern"))
NODE = DtlsSrtpSettings(DtlsIdentity.generate(), HARDENING)
PHONE = DtlsSrtpSettings(DtlsIdentity.generate(), HARDENING)


def dtls_offer(rtp: int, rtcp: int, fingerprint: Fingerprint, *, mux: bool) -> str:
    return ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp} UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
            + ("a=rtcp-mux\r\n" if mux else f"a=rtcp:{rtcp}\r\n")
            + f"a=setup:actpass\r\na=fingerprint:{fingerprint.serialize_value()}\r\n"
            "a=sendrecv\r\n")


@dataclass
class Call:
    node: RtpEndpoint
    phone: RtpEndpoint
    heard_by_node: list[np.ndarray]
    heard_by_phone: list[np.ndarray]
    failures: list[str]
    answer: NegotiatedSession

    def connect_phone(self) -> None:
        """The phone reads the node's answer (a=setup:passive) and starts the handshake."""
        ports = {0: (self.phone.streams["audio"].rtp.port,
                     self.phone.streams["audio"].rtcp.port
                     if self.phone.streams["audio"].rtcp else
                     self.phone.streams["audio"].rtp.port)}
        session = answer_offer(parse_sdp(self.answer.answer.serialize()),
                               local_address="127.0.0.1", ports=ports, over_tls=False,
                               session_id=2, dtls_fingerprint=PHONE.identity.fingerprint())
        assert session.media[0].dtls is not None
        assert session.media[0].dtls.local_setup == "active"
        self.phone.configure(session)


async def start_call(mux: bool, offered: Fingerprint) -> Call:
    heard_by_node: list[np.ndarray] = []
    heard_by_phone: list[np.ndarray] = []
    failures: list[str] = []
    node = RtpEndpoint("call", "sip-1", dtls=NODE, on_frame=lambda p, k, f: heard_by_node.append(
        f.to_ndarray().reshape(-1)))
    node.on_security_failure = failures.append
    phone = RtpEndpoint("phone", "phone", dtls=PHONE,
                        on_frame=lambda p, k, f: heard_by_phone.append(f.to_ndarray().reshape(-1)))
    phone_ports = await phone.open("127.0.0.1", parse_sdp(dtls_offer(9, 10, offered, mux=mux)))
    rtp, rtcp = phone_ports[0]
    offer = parse_sdp(dtls_offer(rtp, rtcp, offered, mux=mux))
    ports = await node.open("127.0.0.1", offer)
    answer = answer_offer(offer, local_address="127.0.0.1", ports=ports, over_tls=False,
                          session_id=1, dtls_fingerprint=NODE.identity.fingerprint())
    node.configure(answer)
    return Call(node, phone, heard_by_node, heard_by_phone, failures, answer)


@pytest.fixture
async def calls() -> AsyncIterator[list[Call]]:
    made: list[Call] = []
    yield made
    for call in made:
        await call.node.close()
        await call.phone.close()


async def wait_until(condition: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def peak(samples: list[np.ndarray]) -> float:
    signal = np.concatenate(samples).astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(signal))) * 8000 / len(signal))


@pytest.mark.parametrize("mux", [True, False], ids=["rtcp-mux", "separate-rtcp"])
async def test_dtls_keys_the_call_and_audio_crosses_both_ways(
        calls: list[Call], mux: bool) -> None:
    call = await start_call(mux, PHONE.identity.fingerprint())
    calls.append(call)
    node_stream = call.node.streams["audio"]
    assert call.answer.media[0].dtls is not None
    assert call.answer.media[0].dtls.local_setup == "passive"
    assert (node_stream.rtcp is None) == mux
    # Before the handshake: the node sends nothing and takes nothing, not even plain RTP.
    for payload in pcmu_tone(660, 5):
        call.node.outbound["audio"].push(payload, 0, None)
    assert node_stream.packets_sent == 0
    sender = call.phone.streams["audio"].rtp.transport
    assert sender is not None
    sender.sendto(RtpPacket(payload_type=0, sequence_number=1, timestamp=0, ssrc=5,
                            payload=b"\xff" * 160).serialize(), ("127.0.0.1", node_stream.rtp.port))
    await asyncio.sleep(0.1)
    assert node_stream.packets_received == 0 and not call.heard_by_node

    call.connect_phone()
    components = 1 if mux else 2
    await wait_until(lambda: node_stream.srtp_in is not None and node_stream.srtcp_in is not None
                     and call.phone.streams["audio"].srtp_in is not None
                     and len(node_stream.dtls) == components)
    assert node_stream.srtcp_in is not node_stream.srtp_in or mux  # RTCP keyed on its own port

    for tx, tone in ((call.phone, 440), (call.node, 660)):
        for payload in pcmu_tone(tone, 25):
            tx.outbound["audio"].push(payload, 0, None)
            await asyncio.sleep(0.002)
    await wait_until(lambda: len(call.heard_by_node) >= 20 and len(call.heard_by_phone) >= 20)
    assert abs(peak(call.heard_by_node) - 440) < 15
    assert abs(peak(call.heard_by_phone) - 660) < 15
    # RTCP crosses too (SRTCP under the RTCP component's keys): a PLI reaches the node.
    requests: list[int] = []
    call.node.on_keyframe_request(lambda: requests.append(1))
    call.phone._send_rtcp(call.phone.streams["audio"], [
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2)])
    await wait_until(lambda: bool(requests))
    assert not call.failures


async def test_a_certificate_not_matching_the_offered_fingerprint_fails_the_call(
        calls: list[Call]) -> None:
    call = await start_call(True, DtlsIdentity.generate().fingerprint())  # not the phone's
    calls.append(call)
    call.connect_phone()
    await wait_until(lambda: bool(call.failures))
    assert "does not match" in call.failures[0]
    for payload in pcmu_tone(660, 5):
        call.node.outbound["audio"].push(payload, 0, None)
    assert call.node.streams["audio"].packets_sent == 0


async def test_a_client_hello_from_another_port_is_ignored(calls: list[Call]) -> None:
    call = await start_call(True, PHONE.identity.fingerprint())
    calls.append(call)
    # An intruder on another port starts a handshake first, with its own certificate.
    intruder = DtlsSrtpSession(DtlsRole.CLIENT, DtlsSrtpSettings(
        DtlsIdentity.generate(), HARDENING), [NODE.identity.fingerprint()])
    intruder.start(0.0)
    stray = await RtpSocket.bind("127.0.0.1", lambda d, a: None)
    assert stray.transport is not None
    node_stream = call.node.streams["audio"]
    for datagram in intruder.datagrams_to_send():
        stray.transport.sendto(datagram, ("127.0.0.1", node_stream.rtp.port))
    await asyncio.sleep(0.1)
    call.connect_phone()
    await wait_until(lambda: node_stream.srtp_in is not None)
    assert not call.failures
    stray.transport.close()
