"""The sans-IO DTLS-SRTP session: two real sessions (pyOpenSSL) handshaking through lists.

No sockets: datagrams are moved by hand, so a test can drop, delay or reorder them. Every
refusal has a control in the same setting that succeeds (the ``pair`` handshake), so the
checks can fail.
"""

from __future__ import annotations

import dataclasses
import time

import pylibsrtp
import pytest
from aiortc.rtp import RtpPacket

from confnode.security.dtls import dtls_hardening
from confnode.security.profiles import get_profile
from confnode.transport.rtp.dtls_srtp import (
    MTU,
    DtlsClosed,
    DtlsEvent,
    DtlsIdentity,
    DtlsRole,
    DtlsSrtpSession,
    DtlsSrtpSettings,
    HandshakeComplete,
    HandshakeFailed,
    pack_records,
)
from confnode.transport.sip.sdp import Fingerprint

HARDENING = dtls_hardening(get_profile("modern"))
NODE = DtlsSrtpSettings(DtlsIdentity.generate(), HARDENING)
PEER = DtlsSrtpSettings(DtlsIdentity.generate(), HARDENING)


def events(session: DtlsSrtpSession) -> list[DtlsEvent]:
    found = []
    while (event := session.next_event()) is not None:
        found.append(event)
    return found


def pump(a: DtlsSrtpSession, b: DtlsSrtpSession, now: float = 0.0, rounds: int = 10) -> None:
    """Deliver everything each side sends to the other until both are quiet."""
    for _ in range(rounds):
        moved = False
        for source, target in ((a, b), (b, a)):
            for datagram in source.datagrams_to_send():
                assert len(datagram) <= MTU
                target.receive_datagram(datagram, now)
                moved = True
        if not moved:
            return


def pair(server_settings: DtlsSrtpSettings = NODE, client_settings: DtlsSrtpSettings = PEER,
         *, client_sees: Fingerprint | None = None, server_sees: Fingerprint | None = None,
         ) -> tuple[DtlsSrtpSession, DtlsSrtpSession]:
    server = DtlsSrtpSession(DtlsRole.SERVER, server_settings,
                             [server_sees or client_settings.identity.fingerprint()])
    client = DtlsSrtpSession(DtlsRole.CLIENT, client_settings,
                             [client_sees or server_settings.identity.fingerprint()])
    server.start(0.0)
    client.start(0.0)
    return server, client


def test_handshake_exports_matching_keys_for_the_first_profile_of_the_policy() -> None:
    server, client = pair()
    pump(client, server)
    [done_server], [done_client] = events(server), events(client)
    assert isinstance(done_server, HandshakeComplete) and isinstance(done_client, HandshakeComplete)
    assert done_server.keying.profile == HARDENING.srtp_profiles[0] == "SRTP_AEAD_AES_256_GCM"
    assert done_server.version == "DTLSv1.2" and "GCM" in done_server.cipher
    assert done_server.keying.local_key == done_client.keying.remote_key
    assert done_server.keying.remote_key == done_client.keying.local_key
    assert done_server.keying.local_key != done_server.keying.remote_key
    assert len(done_server.keying.local_key) == 32 + 12  # AES-256 key + GCM salt
    assert server.get_timer() is None and client.get_timer() is None
    # The exported keys really key SRTP both ways.
    sender = pylibsrtp.Session(pylibsrtp.Policy(
        key=done_client.keying.local_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=done_client.keying.libsrtp_profile))
    receiver = pylibsrtp.Session(pylibsrtp.Policy(
        key=done_server.keying.remote_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=done_server.keying.libsrtp_profile))
    plain = RtpPacket(payload_type=0, sequence_number=1, timestamp=0, ssrc=7,
                      payload=b"x" * 160).serialize()
    assert receiver.unprotect(sender.protect(plain)) == plain


def test_keys_never_appear_in_reprs() -> None:
    server, client = pair()
    pump(client, server)
    [done] = events(server)
    assert isinstance(done, HandshakeComplete)
    text = repr(done)
    assert done.keying.local_key.hex() not in text and repr(done.keying.local_key) not in text
    assert "redacted" in text and "SRTP_AEAD_AES_256_GCM" in text


def test_a_profile_the_policy_narrows_to_is_what_both_sides_get() -> None:
    only_cm = DtlsSrtpSettings(PEER.identity, dataclasses.replace(
        HARDENING, srtp_profiles=("SRTP_AES128_CM_SHA1_80",)))
    server, client = pair(client_settings=only_cm)
    pump(client, server)
    [done] = events(server)
    assert isinstance(done, HandshakeComplete)
    assert done.keying.profile == "SRTP_AES128_CM_SHA1_80" and len(done.keying.local_key) == 30


def test_a_peer_offering_only_profiles_outside_the_policy_is_refused() -> None:
    weak = DtlsSrtpSettings(PEER.identity, dataclasses.replace(
        HARDENING, srtp_profiles=("SRTP_AES128_CM_SHA1_32",)))  # a 32-bit tag: never allowed
    server, client = pair(client_settings=weak)
    pump(client, server)
    [failed] = events(server)
    assert isinstance(failed, HandshakeFailed)
    assert "no allowed SRTP profile" in failed.reason
    assert server.keying is None and server.failed


def test_a_fingerprint_that_does_not_match_the_peer_certificate_fails() -> None:
    stranger = DtlsIdentity.generate().fingerprint()
    server, client = pair(server_sees=stranger)
    pump(client, server)
    [failed] = events(server)
    assert isinstance(failed, HandshakeFailed)
    assert "does not match" in failed.reason and server.keying is None


def test_a_client_checks_the_server_fingerprint_too() -> None:
    server, client = pair(client_sees=DtlsIdentity.generate().fingerprint())
    pump(client, server)
    assert [type(e) for e in events(client)] == [HandshakeFailed]


def test_a_sha1_fingerprint_is_refused_even_when_it_matches() -> None:
    sha1 = PEER.identity.fingerprint("sha-1")
    server, client = pair(server_sees=sha1)
    pump(client, server)
    [failed] = events(server)
    assert isinstance(failed, HandshakeFailed) and "sha-1" in failed.reason


def test_a_lost_client_hello_is_retransmitted_on_the_timer() -> None:
    server, client = pair()
    lost = client.datagrams_to_send()
    assert lost and lost[0][0] == 22  # a handshake record: RFC 7983 puts 20..63 at DTLS
    timer = client.get_timer()
    assert timer is not None and 0.5 <= timer <= 1.5  # OpenSSL's initial 1 s
    client.handle_timer(0.5)  # not due yet: nothing resent
    assert client.datagrams_to_send() == []
    time.sleep(max(0.0, timer) + 0.1)  # OpenSSL times retransmission on the real clock too
    client.handle_timer(timer + 0.1)
    again = client.datagrams_to_send()
    assert again, "the ClientHello was not retransmitted"
    next_timer = client.get_timer()
    assert next_timer is not None and next_timer > timer  # backed off
    for datagram in again:
        server.receive_datagram(datagram, timer + 0.1)
    pump(client, server, timer + 0.1)
    assert isinstance(events(server)[0], HandshakeComplete)


def test_a_handshake_that_never_starts_fails_at_the_deadline() -> None:
    server = DtlsSrtpSession(DtlsRole.SERVER, NODE, [PEER.identity.fingerprint()])
    server.start(100.0)
    assert server.get_timer() == 100.0 + NODE.handshake_timeout
    server.handle_timer(109.0)
    assert events(server) == []
    server.handle_timer(110.0)
    [failed] = events(server)
    assert isinstance(failed, HandshakeFailed) and "within 10 s" in failed.reason
    assert server.get_timer() is None


def test_close_notify_reaches_the_peer() -> None:
    server, client = pair()
    pump(client, server)
    events(server), events(client)
    client.close()
    pump(client, server)
    assert events(server) == [DtlsClosed()]


def test_garbage_during_the_handshake_fails_cleanly() -> None:
    server = DtlsSrtpSession(DtlsRole.SERVER, NODE, [PEER.identity.fingerprint()])
    server.start(0.0)
    server.receive_datagram(b"\x16\xfe\xfd" + b"\x00" * 8 + b"\x00\x05hello", 0.0)
    [failed] = events(server)
    assert isinstance(failed, HandshakeFailed) and "unexpected message" in failed.reason
    [alert] = server.datagrams_to_send()
    assert alert[0] == 21  # the fatal alert telling the peer
    server.receive_datagram(b"\x17" * 40, 0.0)  # after failing: ignored, no second event
    assert events(server) == [] and server.get_timer() is None


@pytest.mark.parametrize("sizes", [[100], [100, 200, 300], [500] * 10, [1187]])
def test_records_are_packed_whole_into_datagrams(sizes: list[int]) -> None:
    records = [bytes([22, 0xFE, 0xFD]) + bytes(8) + n.to_bytes(2, "big") + bytes([i]) * n
               for i, n in enumerate(sizes)]
    datagrams = pack_records(b"".join(records), MTU)
    assert b"".join(datagrams) == b"".join(records)
    assert all(len(d) <= MTU for d in datagrams)
    # Each datagram is a run of whole records.
    rebuilt = []
    for datagram in datagrams:
        offset = 0
        while offset < len(datagram):
            length = int.from_bytes(datagram[offset + 11:offset + 13], "big")
            rebuilt.append(datagram[offset:offset + 13 + length])
            offset += 13 + length
        assert offset == len(datagram)
    assert rebuilt == records


def test_roles_follow_our_setup_attribute() -> None:
    assert DtlsRole.for_setup("active") is DtlsRole.CLIENT
    assert DtlsRole.for_setup("passive") is DtlsRole.SERVER
    with pytest.raises(ValueError):
        DtlsRole.for_setup("holdconn")
