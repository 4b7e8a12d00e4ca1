"""DTLS-SRTP (RFC 5763/5764) for SIP media, sans-IO: datagrams in, datagrams and events out.

A SIP endpoint that offers ``UDP/TLS/RTP/SAVP(F)`` keys its SRTP with a DTLS handshake on the
media port instead of keys in the SDP, so it is safe over SIP/UDP or TCP too. aiortc's
``RTCDtlsTransport`` does this for browsers but is welded to its ICE transport; this module is
the same memory-BIO technique (pyOpenSSL ``Connection`` without a socket) as a pure object the
RTP endpoint drives, in the shape of aioquic's ``QuicConnection``:

* :meth:`DtlsSrtpSession.start` / :meth:`receive_datagram` feed it, :meth:`datagrams_to_send`
  empties it, :meth:`get_timer` / :meth:`handle_timer` drive DTLS retransmission (RFC 6347
  §4.2.4) and the handshake deadline, :meth:`next_event` reports :class:`HandshakeComplete`
  (the negotiated SRTP profile and both directions' keys), :class:`HandshakeFailed` or
  :class:`DtlsClosed`.
* Every parameter comes from the node's security profile through
  :func:`confnode.security.dtls.dtls_hardening` and :func:`harden_context` -- DTLS 1.2 at least,
  ECDHE + AEAD suites, the SRTP profiles in the profile's order as far as pylibsrtp keys them --
  so browsers' and SIP phones' DTLS follow one policy.
* The peer's certificate must match every ``a=fingerprint`` of its SDP
  (:func:`confnode.security.dtls.fingerprint_problem`: sha-256/384/512 only); anything else,
  or a handshake that negotiates no SRTP profile of ours, is a failure, never unprotected media.

Roles (RFC 5763 §5, RFC 8842 §5): the answerer to ``a=setup:actpass`` picks ``active`` or
``passive``; the node answers ``passive`` (see ``transport.sip.negotiation``), so it is the DTLS
*server* and the caller, having read our answer, sends the ClientHello. RFC 5763 recommends
``active`` to save a half round trip, but a node that speaks first sends its ClientHello to an
address it only knows from the SDP: a caller behind NAT has no binding open yet, and one that
has not processed the answer yet drops it, costing a 1 s retransmission -- more than it saves.
An offer of ``passive`` makes the node the client.

Datagram sizing: pyOpenSSL's memory BIO keeps no datagram boundaries, so the records OpenSSL
writes (each at most :data:`MTU` bytes, fixed here rather than queried from a socket) are split
at their record headers and packed into datagrams of at most :data:`MTU` bytes -- never a
record cut across two datagrams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from aiortc.rtcdtlstransport import SRTP_PROFILES, SRTPProtectionProfile, generate_certificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from OpenSSL import SSL

from confnode.security.dtls import (
    FINGERPRINT_HASHES,
    DtlsHardening,
    fingerprint_problem,
    harden_context,
)
from confnode.transport.sip.sdes import REDACTED
from confnode.transport.sip.sdp import Fingerprint

#: Largest datagram the session sends: fits IPv6's 1280-byte minimum MTU with room for the
#: UDP/IP headers, as libwebrtc's DTLS does.
MTU = 1200
#: A handshake not finished by then fails: the peer never started, or its flights never came.
HANDSHAKE_TIMEOUT = 10.0
_RECORD_HEADER = 13  # content type, version, epoch, sequence number, length (RFC 6347 §4.1)
_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"  # RFC 5764 §4.2


class DtlsRole(StrEnum):
    CLIENT = "client"
    SERVER = "server"

    @classmethod
    def for_setup(cls, local_setup: str) -> DtlsRole:
        """Our ``a=setup`` in the answer fixes our side (RFC 4145 §4: active connects)."""
        if local_setup == "active":
            return cls.CLIENT
        if local_setup == "passive":
            return cls.SERVER
        raise ValueError(f"a=setup:{local_setup} has no DTLS role")


@dataclass(frozen=True)
class DtlsIdentity:
    """The certificate and key the node's DTLS presents; its fingerprint goes in the answer."""

    certificate: x509.Certificate
    private_key: CertificateIssuerPrivateKeyTypes

    @classmethod
    def generate(cls) -> DtlsIdentity:
        """An ephemeral ECDSA P-256 identity (what browsers use), for nodes without a
        certificate of their own."""
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(generate_certificate(key), key)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> DtlsIdentity:
        """The node's own certificate (``security.certificate``); DTLS checks no names or
        dates, only that the fingerprint in our SDP matches it."""
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise ValueError("the node's DTLS key must be ECDSA or RSA (the profile's suites)")
        return cls(certificate, key)

    def fingerprint(self, algorithm: str = "sha-256") -> Fingerprint:
        digest = self.certificate.fingerprint(FINGERPRINT_HASHES[algorithm]()).hex().upper()
        return Fingerprint(algorithm, ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)))


@dataclass(frozen=True)
class DtlsSrtpSettings:
    """What every DTLS-SRTP session of the node shares: its identity and the profile's rules."""

    identity: DtlsIdentity
    hardening: DtlsHardening
    handshake_timeout: float = HANDSHAKE_TIMEOUT


@dataclass(frozen=True, repr=False)
class SrtpKeying:
    """The SRTP keys a handshake exported (RFC 5764 §4.2), as pylibsrtp ``Policy`` takes them:
    master key || master salt. ``local_key`` protects what we send."""

    profile: str  # OpenSSL's name, e.g. "SRTP_AEAD_AES_256_GCM"
    libsrtp_profile: int
    local_key: bytes
    remote_key: bytes

    def __repr__(self) -> str:
        return (f"SrtpKeying(profile={self.profile!r}, local_key={REDACTED}, "
                f"remote_key={REDACTED})")


@dataclass(frozen=True)
class HandshakeComplete:
    keying: SrtpKeying
    cipher: str
    version: str


@dataclass(frozen=True)
class HandshakeFailed:
    reason: str


@dataclass(frozen=True)
class DtlsClosed:
    """The peer sent close_notify: it is leaving (a BYE usually follows)."""


DtlsEvent = HandshakeComplete | HandshakeFailed | DtlsClosed


class _State(StrEnum):
    NEW = "new"
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    FAILED = "failed"
    CLOSED = "closed"


class DtlsSrtpSession:
    """One DTLS association keying one SRTP component (RTP, or RTCP when not multiplexed)."""

    def __init__(self, role: DtlsRole, settings: DtlsSrtpSettings,
                 remote_fingerprints: Sequence[Fingerprint]) -> None:
        self.role = role
        self._settings = settings
        self._remote_fingerprints = tuple(remote_fingerprints)
        self._ssl = SSL.Connection(_context(settings))
        self._ssl.set_ciphertext_mtu(MTU)
        if role is DtlsRole.CLIENT:
            self._ssl.set_connect_state()
        else:
            self._ssl.set_accept_state()
        self._state = _State.NEW
        self._outgoing: list[bytes] = []
        self._events: deque[DtlsEvent] = deque()
        self._deadline: float | None = None
        self._retransmit_at: float | None = None
        self.keying: SrtpKeying | None = None

    @property
    def established(self) -> bool:
        return self._state is _State.ESTABLISHED

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    def start(self, now: float) -> None:
        """Begin: a client sends its ClientHello, a server waits for one. The deadline runs
        from here."""
        if self._state is not _State.NEW:
            return
        self._state = _State.HANDSHAKING
        self._deadline = now + self._settings.handshake_timeout
        if self.role is DtlsRole.CLIENT:
            self._advance(now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """A datagram whose first byte said DTLS (RFC 7983: 20..63)."""
        if self._state is _State.NEW:
            self.start(now)
        if self._state in (_State.FAILED, _State.CLOSED):
            return
        self._ssl.bio_write(data)
        if self._state is _State.HANDSHAKING:
            self._advance(now)
            return
        # Established: alerts, or the peer retransmitting its last flight because ours was
        # lost (OpenSSL answers it). No application data is carried on this association.
        try:
            self._ssl.recv(MTU)
        except SSL.ZeroReturnError:
            self._state = _State.CLOSED
            self._events.append(DtlsClosed())
        except (SSL.WantReadError, SSL.Error):
            pass
        self._flush()

    def datagrams_to_send(self) -> list[bytes]:
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> DtlsEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next due (retransmission or deadline), or None."""
        if self._state is not _State.HANDSHAKING:
            return None
        times = [t for t in (self._retransmit_at, self._deadline) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        if self._state is not _State.HANDSHAKING:
            return
        if self._deadline is not None and now >= self._deadline:
            self._fail(f"no DTLS handshake within {self._settings.handshake_timeout:g} s")
            return
        if self._retransmit_at is not None and now >= self._retransmit_at:
            # OpenSSL keeps its own timer (real time); it resends the last flight only when
            # that has expired too, and then doubles its timeout (RFC 6347 §4.2.4.1).
            self._ssl.DTLSv1_handle_timeout()
            self._flush()
            self._rearm(now)

    def close(self) -> None:
        """Say goodbye (close_notify) if established; the session is unusable afterwards."""
        if self._state is _State.ESTABLISHED:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass
            self._flush()
        if self._state is not _State.FAILED:
            self._state = _State.CLOSED

    def _advance(self, now: float) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            self._flush()
            self._rearm(now)
            return
        except SSL.Error as exc:
            self._flush()  # the alert telling the peer why
            self._fail(f"DTLS handshake failed: {_ssl_reason(exc)}")
            return
        self._flush()
        self._finish()

    def _finish(self) -> None:
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        problem = ("the peer sent no certificate" if certificate is None else
                   fingerprint_problem(certificate, self._remote_fingerprints,
                                       self._settings.hardening.fingerprint_algorithms))
        if problem is not None:
            self._fail(problem)
            return
        selected = self._ssl.get_selected_srtp_profile().decode("ascii")
        profile = _keyable(selected, self._settings.hardening)
        if profile is None:
            self._fail(f"no allowed SRTP profile negotiated (peer chose {selected or 'none'})")
            return
        material = self._ssl.export_keying_material(
            _EXPORTER_LABEL, 2 * (profile.key_length + profile.salt_length))
        # RFC 5764 §4.2: client key, server key, client salt, server salt.
        client, server = profile.get_key_and_salt(material, 0), profile.get_key_and_salt(
            material, 1)
        local, remote = (client, server) if self.role is DtlsRole.CLIENT else (server, client)
        self.keying = SrtpKeying(selected, profile.libsrtp_profile, local, remote)
        self._state = _State.ESTABLISHED
        self._retransmit_at = None
        self._events.append(HandshakeComplete(
            self.keying, self._ssl.get_cipher_name() or "",
            self._ssl.get_protocol_version_name()))

    def _fail(self, reason: str) -> None:
        self._state = _State.FAILED
        self._retransmit_at = None
        self._events.append(HandshakeFailed(reason))

    def _rearm(self, now: float) -> None:
        timeout = self._ssl.DTLSv1_get_timeout()
        self._retransmit_at = now + timeout if timeout is not None else None

    def _flush(self) -> None:
        pending = b""
        while True:
            try:
                pending += self._ssl.bio_read(65536)
            except SSL.WantReadError:
                break
        self._outgoing.extend(pack_records(pending, MTU))


def pack_records(data: bytes, mtu: int) -> list[bytes]:
    """Split a byte run of DTLS records at their headers and pack whole records into
    datagrams of at most ``mtu`` bytes (RFC 6347 §4.1.1: a record never spans datagrams)."""
    datagrams: list[bytes] = []
    current = b""
    offset = 0
    while offset + _RECORD_HEADER <= len(data):
        length = int.from_bytes(data[offset + 11:offset + 13], "big")
        record = data[offset:offset + _RECORD_HEADER + length]
        offset += len(record)
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams


def _context(settings: DtlsSrtpSettings) -> SSL.Context:
    context = SSL.Context(SSL.DTLS_METHOD)
    # No session tickets (nothing resumes), and a peer certificate is required; it is judged
    # by its fingerprint after the handshake, not by a CA, hence the accept-all callback.
    context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                       lambda *_: True)
    context.use_certificate(settings.identity.certificate)
    context.use_privatekey(settings.identity.private_key)
    harden_context(context, settings.hardening)
    return context


def _keyable(selected: str, hardening: DtlsHardening) -> SRTPProtectionProfile | None:
    if selected not in hardening.srtp_profiles:
        return None
    return next((p for p in SRTP_PROFILES if p.openssl_profile.decode("ascii") == selected), None)


def _ssl_reason(exc: SSL.Error) -> str:
    try:
        return "; ".join(str(part[2]) for part in exc.args[0]) or "unknown"
    except (IndexError, TypeError):
        return str(exc)

