"""aiortc's DTLS, hardened: real handshakes between a real ``RTCDtlsTransport`` and pyOpenSSL.

The transport runs over an in-memory "ICE" (two queues), so the node side is exactly aiortc's
code with the hardening installed -- handshake, fingerprint check and SRTP keying -- and the
peer is a pyOpenSSL DTLS endpoint the test configures (an old, a CBC-only, a NULL-SRTP client).
Every refusal has a control that shows the same peer succeeding where it should, so the checks
can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from aiortc import rtcdtlstransport
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from OpenSSL import SSL

from confnode.security import dtls
from confnode.security.dtls import (
    DTLS1_VERSION,
    DtlsHardeningUnavailable,
    dtls_hardening,
    harden_aiortc_dtls,
    harden_context,
    installed_hardening,
    restore_aiortc_dtls,
)
from confnode.security.profiles import get_profile

AEAD_SRTP = {"SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM"}
AEAD_CIPHERS = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305"}
TIMEOUT = 5.0


@pytest.fixture
def hardened() -> Iterator[dtls.DtlsHardening]:
    hardening = harden_aiortc_dtls("modern")
    try:
        yield hardening
    finally:
        restore_aiortc_dtls()


@pytest.fixture
def unhardened() -> Iterator[None]:
    restore_aiortc_dtls()
    yield


class QueueIce:
    """What ``RTCDtlsTransport`` uses of an ``RTCIceTransport``: a role, _recv and _send."""

    def __init__(self, role: str, inbox: asyncio.Queue[bytes | None],
                 outbox: asyncio.Queue[bytes | None]) -> None:
        self.role = role
        self.inbox, self.outbox = inbox, outbox

    async def _recv(self) -> bytes:
        data = await self.inbox.get()
        if data is None:
            raise ConnectionError
        return data

    async def _send(self, data: bytes) -> None:
        await self.outbox.put(data)


@dataclass
class Outcome:
    node_state: str
    peer_error: str | None
    version: str | None = None
    cipher: str | None = None
    srtp: bytes | None = None
    server_hellos: list[bytes] = dataclasses.field(default_factory=list)


def aiortc_default_context(certificate: RTCCertificate) -> SSL.Context:
    """The context an unhardened aiortc (a browser-like peer) would use."""
    return dtls._ORIGINAL_CREATE_SSL_CONTEXT(certificate,
                                             srtp_profiles=rtcdtlstransport.SRTP_PROFILES)


def sha256(certificate: RTCCertificate) -> list[RTCDtlsFingerprint]:
    return [f for f in certificate.getFingerprints() if f.algorithm == "sha-256"]


async def handshake(peer_context: SSL.Context, peer_certificate: RTCCertificate, *,
                    node_is_server: bool = True,
                    fingerprints: list[RTCDtlsFingerprint] | None = None,
                    rewrite: Callable[[bytes], bytes] | None = None) -> Outcome:
    """Run one DTLS handshake between an aiortc transport (the node) and a pyOpenSSL peer."""
    to_node: asyncio.Queue[bytes | None] = asyncio.Queue()
    to_peer: asyncio.Queue[bytes | None] = asyncio.Queue()
    # aiortc's ORTC rule: the ICE-controlling side is the DTLS server.
    node = RTCDtlsTransport(QueueIce("controlling" if node_is_server else "controlled",
                                     to_node, to_peer), [RTCCertificate.generateCertificate()])
    remote = RTCDtlsParameters(fingerprints=fingerprints if fingerprints is not None
                               else sha256(peer_certificate))
    node_task = asyncio.ensure_future(node.start(remote))
    connection = SSL.Connection(peer_context)
    if node_is_server:
        connection.set_connect_state()
    else:
        connection.set_accept_state()
    outcome = Outcome(node_state="", peer_error=None)

    async def flush() -> None:
        with contextlib.suppress(SSL.WantReadError, SSL.Error):
            while data := connection.bio_read(65536):
                await to_node.put(rewrite(data) if rewrite else data)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            await flush()
            try:
                data = await asyncio.wait_for(to_peer.get(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                outcome.peer_error = "timeout"
                break
            if data is None:
                outcome.peer_error = "closed"
                break
            if data[:1] == b"\x16" and data[13:14] == b"\x02":
                outcome.server_hellos.append(data)
            connection.bio_write(data)
            continue
        except SSL.Error as error:
            await flush()
            outcome.peer_error = str(error)
            break
        await flush()
        outcome.version = connection.get_protocol_version_name()
        outcome.cipher = connection.get_cipher_name()
        outcome.srtp = connection.get_selected_srtp_profile()
        break
    # The node decides after the peer's last flight; if it is still waiting, end its input.
    done, _ = await asyncio.wait({node_task}, timeout=2)
    if not done:
        await to_node.put(None)
        await asyncio.wait_for(node_task, TIMEOUT)
    outcome.node_state = node.state
    await to_node.put(None)
    await node.stop()
    return outcome


def peer(modify: Callable[[SSL.Context], None] | None = None
         ) -> tuple[SSL.Context, RTCCertificate]:
    certificate = RTCCertificate.generateCertificate()
    context = aiortc_default_context(certificate)
    if modify is not None:
        modify(context)
    return context, certificate


# Node as DTLS server (a browser offered a=setup:active, or ORTC controlling)


async def test_a_normal_client_gets_an_aead_srtp_profile_and_an_aead_cipher(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer()
    outcome = await handshake(context, certificate)
    assert outcome.peer_error is None
    assert outcome.node_state == "connected"
    assert outcome.version == "DTLSv1.2"
    assert outcome.cipher in AEAD_CIPHERS
    # The server's order decides: AEAD_AES_256_GCM first.
    assert outcome.srtp == b"SRTP_AEAD_AES_256_GCM"


@pytest.mark.parametrize(("offered", "selected"), [
    (b"SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM", b"SRTP_AEAD_AES_128_GCM"),
    (b"SRTP_AES128_CM_SHA1_80", b"SRTP_AES128_CM_SHA1_80"),  # RFC 8827: must be supported
])
async def test_srtp_selection_follows_the_profile_order(
        hardened: dtls.DtlsHardening, offered: bytes, selected: bytes) -> None:
    context, certificate = peer(lambda c: c.set_tlsext_use_srtp(offered))
    outcome = await handshake(context, certificate)
    assert outcome.srtp == selected
    assert outcome.node_state == "connected"


async def test_a_dtls_1_0_client_is_refused(hardened: dtls.DtlsHardening) -> None:
    def dtls10(context: SSL.Context) -> None:
        context.set_max_proto_version(DTLS1_VERSION)
        # DTLS 1.0 signs with SHA-1, which OpenSSL 3 allows only at security level 0.
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")

    context, certificate = peer(dtls10)
    outcome = await handshake(context, certificate)
    assert outcome.peer_error is not None and "protocol version" in outcome.peer_error
    assert outcome.node_state == "failed"


@pytest.mark.parametrize("cbc", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA"])
async def test_a_cbc_only_client_is_refused(hardened: dtls.DtlsHardening, cbc: str) -> None:
    context, certificate = peer(lambda c: c.set_cipher_list(cbc.encode()))
    outcome = await handshake(context, certificate)
    assert outcome.peer_error is not None and "handshake failure" in outcome.peer_error
    assert outcome.node_state == "failed"


async def test_control_unhardened_aiortc_accepts_the_cbc_only_client(unhardened: None) -> None:
    context, certificate = peer(lambda c: c.set_cipher_list(b"ECDHE-ECDSA-AES128-SHA"))
    outcome = await handshake(context, certificate)
    assert outcome.cipher == "ECDHE-ECDSA-AES128-SHA"
    assert outcome.node_state == "connected"


async def test_a_chacha20_client_is_accepted_under_modern(hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer(lambda c: c.set_cipher_list(b"ECDHE-ECDSA-CHACHA20-POLY1305"))
    outcome = await handshake(context, certificate)
    assert outcome.cipher == "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert outcome.node_state == "connected"


async def test_bsi_refuses_chacha20_and_accepts_ccm() -> None:
    harden_aiortc_dtls("bsi")
    try:
        chacha, chacha_cert = peer(lambda c: c.set_cipher_list(b"ECDHE-ECDSA-CHACHA20-POLY1305"))
        refused = await handshake(chacha, chacha_cert)
        ccm, ccm_cert = peer(lambda c: c.set_cipher_list(b"ECDHE-ECDSA-AES128-CCM"))
        accepted = await handshake(ccm, ccm_cert)
    finally:
        restore_aiortc_dtls()
    assert refused.node_state == "failed"
    assert accepted.cipher == "ECDHE-ECDSA-AES128-CCM"
    assert accepted.node_state == "connected"


async def test_a_client_offering_only_sha1_32_srtp_gets_no_profile(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer(lambda c: c.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_32"))
    outcome = await handshake(context, certificate)
    assert outcome.srtp == b""
    assert outcome.node_state == "failed"  # no SRTP keys: aiortc fails the transport


def test_control_a_context_listing_sha1_32_would_select_it() -> None:
    # The same client against a server context whose list includes _32: it is selected, so
    # the refusal above comes from the hardening's list, not from the client.
    weak = dataclasses.replace(dtls_hardening(get_profile("modern")),
                               srtp_profiles=("SRTP_AES128_CM_SHA1_32",))
    server_context, _ = peer(lambda c: harden_context(c, weak))
    client_context, _ = peer(lambda c: c.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_32"))
    client, server = in_memory_handshake(client_context, server_context)
    assert client.get_selected_srtp_profile() == b"SRTP_AES128_CM_SHA1_32"
    assert server.get_selected_srtp_profile() == b"SRTP_AES128_CM_SHA1_32"


# OpenSSL cannot offer NULL SRTP profiles at all (its profile table has none), so the test
# offers SHA1_80 + SHA1_32 and rewrites their ids in the ClientHello's use_srtp extension
# (RFC 5764 §4.1.1) before the node sees it. The transcript no longer matches, so the
# handshake fails at Finished either way; what is checked is the node's ServerHello.
_USE_SRTP_80_32 = bytes.fromhex("000e0007" "0004" "0001" "0002" "00")


def rewrite_profiles(first: int, second: int) -> Callable[[bytes], bytes]:
    replacement = bytes.fromhex("000e0007" "0004") + first.to_bytes(2, "big") \
        + second.to_bytes(2, "big") + b"\x00"
    return lambda datagram: datagram.replace(_USE_SRTP_80_32, replacement)


def server_hello_use_srtp(datagram: bytes) -> bytes | None:
    """The use_srtp extension data of the ServerHello in the node's first flight, if any."""
    body = datagram[13 + 12:]  # DTLS record header, DTLS handshake header
    position = 2 + 32  # server_version, random
    position += 1 + body[position]  # session_id
    position += 2 + 1  # cipher_suite, compression_method
    end = position + 2 + int.from_bytes(body[position:position + 2], "big")
    position += 2
    while position < end:
        kind = int.from_bytes(body[position:position + 2], "big")
        length = int.from_bytes(body[position + 2:position + 4], "big")
        if kind == 0x000E:
            return body[position + 4:position + 4 + length]
        position += 4 + length
    return None


async def test_a_client_offering_only_null_srtp_gets_no_profile(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer(
        lambda c: c.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32"))
    null = await handshake(context, certificate, rewrite=rewrite_profiles(0x0005, 0x0006))
    assert null.server_hellos, "the node answered no ServerHello"
    assert server_hello_use_srtp(null.server_hellos[0]) is None
    assert null.node_state == "failed"
    # Control: the same rewrite path with an allowed id leaves it selected in the ServerHello.
    context, certificate = peer(
        lambda c: c.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32"))
    allowed = await handshake(context, certificate, rewrite=rewrite_profiles(0x0001, 0x0005))
    assert server_hello_use_srtp(allowed.server_hellos[0]) == bytes.fromhex("0002" "0001" "00")


# Fingerprints (RFC 8122): every one must use sha-256 or stronger and match.


def sha1_of(certificate: RTCCertificate) -> RTCDtlsFingerprint:
    digest = certificate._cert.fingerprint(dtls.FINGERPRINT_HASHES["sha-1"]()).hex().upper()
    return RTCDtlsFingerprint("sha-1", ":".join(digest[i:i + 2] for i in range(0, 40, 2)))


async def test_a_sha1_only_fingerprint_fails_the_connection(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer()
    outcome = await handshake(context, certificate, fingerprints=[sha1_of(certificate)])
    assert outcome.node_state == "failed"


async def test_a_wrong_sha256_fingerprint_fails_the_connection(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer()
    other = RTCCertificate.generateCertificate()
    outcome = await handshake(context, certificate, fingerprints=sha256(other))
    assert outcome.peer_error is None  # the handshake itself completed ...
    assert outcome.node_state == "failed"  # ... and the identity check refused it


async def test_an_extra_sha1_fingerprint_is_refused_hardened_but_not_by_aiortc(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer()
    mixed = [sha1_of(certificate), *sha256(certificate)]
    assert (await handshake(context, certificate, fingerprints=mixed)).node_state == "failed"
    restore_aiortc_dtls()
    context, certificate = peer()
    mixed = [sha1_of(certificate), *sha256(certificate)]
    assert (await handshake(context, certificate, fingerprints=mixed)).node_state == "connected"


@pytest.mark.parametrize("algorithm", ["sha-256", "sha-384", "sha-512"])
async def test_each_strong_fingerprint_alone_is_accepted(hardened: dtls.DtlsHardening,
                                                         algorithm: str) -> None:
    context, certificate = peer()
    chosen = [f for f in certificate.getFingerprints() if f.algorithm == algorithm]
    outcome = await handshake(context, certificate, fingerprints=chosen)
    assert outcome.node_state == "connected"


# Node as DTLS client (its default with browsers: it answers a=setup:actpass with active)


async def test_as_client_the_node_refuses_a_cbc_only_server(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer(lambda c: c.set_cipher_list(b"ECDHE-ECDSA-AES128-SHA"))
    outcome = await handshake(context, certificate, node_is_server=False)
    assert outcome.node_state == "failed"
    assert outcome.version is None


async def test_as_client_the_node_refuses_a_dtls_1_0_server(
        hardened: dtls.DtlsHardening) -> None:
    def dtls10(context: SSL.Context) -> None:
        context.set_max_proto_version(DTLS1_VERSION)
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")

    context, certificate = peer(dtls10)
    outcome = await handshake(context, certificate, node_is_server=False)
    assert outcome.node_state == "failed"
    assert outcome.version is None


async def test_as_client_the_node_connects_to_an_aead_server(
        hardened: dtls.DtlsHardening) -> None:
    context, certificate = peer()
    outcome = await handshake(context, certificate, node_is_server=False)
    assert outcome.node_state == "connected"
    assert outcome.cipher in AEAD_CIPHERS
    assert outcome.srtp is not None and outcome.srtp.decode() in AEAD_SRTP


# Installation


def test_hardening_is_installed_replaced_and_restored() -> None:
    original = rtcdtlstransport.RTCCertificate._create_ssl_context
    try:
        modern = harden_aiortc_dtls("modern")
        assert installed_hardening() == modern
        bsi = harden_aiortc_dtls(get_profile("bsi"))
        assert installed_hardening() == bsi
        assert "ECDHE-ECDSA-CHACHA20-POLY1305" not in bsi.cipher_list
        assert modern.srtp_profiles == ("SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM",
                                        "SRTP_AES128_CM_SHA1_80")
        assert modern.unavailable_srtp_profiles == ()
    finally:
        restore_aiortc_dtls()
    assert installed_hardening() is None
    assert rtcdtlstransport.RTCCertificate._create_ssl_context is original


def test_a_hardened_context_lists_only_aead_ciphers(hardened: dtls.DtlsHardening) -> None:
    context = RTCCertificate.generateCertificate()._create_ssl_context(
        srtp_profiles=rtcdtlstransport.SRTP_PROFILES)
    names = set(SSL.Connection(context).get_cipher_list())
    tls12 = {n for n in names if not n.startswith("TLS_")}
    assert tls12 == set(hardened.cipher_list)
    assert not any("SHA" == n.rsplit("-", 1)[-1] for n in tls12)  # no CBC-SHA1 suites


def test_a_changed_aiortc_is_refused_not_silently_unhardened(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtls, "_ORIGINAL_CREATE_SSL_CONTEXT",
                        lambda self, profiles, extra: None)
    with pytest.raises(DtlsHardeningUnavailable):
        harden_aiortc_dtls("modern")
    assert installed_hardening() is None


def test_no_keyable_srtp_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtcdtlstransport, "SRTP_PROFILES", [])
    with pytest.raises(DtlsHardeningUnavailable):
        dtls_hardening(get_profile("modern"))


def in_memory_handshake(client_context: SSL.Context, server_context: SSL.Context
                        ) -> tuple[SSL.Connection, SSL.Connection]:
    client, server = SSL.Connection(client_context), SSL.Connection(server_context)
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(20):
        for side in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                side.do_handshake()
        for source, target in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                while data := source.bio_read(65536):
                    target.bio_write(data)
    return client, server
