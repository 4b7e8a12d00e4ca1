"""Hardening aiortc's DTLS-SRTP to the node's security profile.

aiortc 1.16 builds every DTLS context in ``RTCCertificate._create_ssl_context``: pyOpenSSL's
``DTLS_METHOD`` with no minimum version, the cipher list
``ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:
ECDHE-ECDSA-AES256-SHA`` (two CBC suites) and the SRTP profiles of its module list
``SRTP_PROFILES``. Its fingerprint check (``RTCDtlsTransport._validate_peer_identity``) ignores
fingerprints whose hash it does not know -- an offer with a sha-1 and a sha-256 fingerprint
passes on the sha-256 one alone.

``harden_aiortc_dtls(profile)`` replaces exactly those two methods, process-wide (aiortc has no
per-connection hook, like aioice's host list in ``transport.webrtc.ice``):

* the context factory calls aiortc's own (certificate, key, peer-certificate request, no
  tickets stay as aiortc sets them), then sets the minimum version to DTLS 1.2, the profile's
  ECDHE + AEAD cipher list, no compression or renegotiation, and the profile's SRTP profiles in
  its order, as far as this pylibsrtp build can key them;
* the identity check requires at least one fingerprint, every offered fingerprint to use an
  allowed hash (sha-256/384/512), and every one to match the peer's certificate.

Private names of aiortc 1.16 this depends on, checked when hardening (a changed aiortc makes
``harden_aiortc_dtls`` raise rather than leave media unhardened):
``aiortc.rtcdtlstransport.RTCCertificate._create_ssl_context(self, srtp_profiles)``,
``aiortc.rtcdtlstransport.RTCDtlsTransport._validate_peer_identity(self, remoteParameters)``,
the transport's ``_ssl`` (a pyOpenSSL ``Connection``) and ``_set_state``, the enum
``aiortc.rtcdtlstransport.State`` and the module list ``aiortc.rtcdtlstransport.SRTP_PROFILES``
(``SRTPProtectionProfile.openssl_profile``).

Key-exchange groups are left at OpenSSL's defaults: pyOpenSSL has no group-list setter
(``set_tmp_ecdh`` takes one curve), and with an ECDHE-only cipher list DTLS 1.2 can only use
OpenSSL's default EC groups (X25519, P-256, X448, P-384, P-521), none of them weak.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import rtcdtlstransport
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from confnode.errors import ConfnodeError
from confnode.security.profiles import ProfileName, SecurityProfile, get_profile

log = logging.getLogger(__name__)

# OpenSSL's DTLS1_VERSION / DTLS1_2_VERSION (dtls1.h); pyOpenSSL exports no DTLS constants.
DTLS1_VERSION = 0xFEFF
DTLS1_2_VERSION = 0xFEFD
_VERSION_NUMBERS = {"DTLSv1.2": DTLS1_2_VERSION}

FINGERPRINT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}

# aiortc's originals, looked up once; restoring puts these back.
_ORIGINAL_CREATE_SSL_CONTEXT = rtcdtlstransport.RTCCertificate._create_ssl_context
_ORIGINAL_VALIDATE_PEER_IDENTITY = rtcdtlstransport.RTCDtlsTransport._validate_peer_identity


class DtlsHardeningUnavailable(ConfnodeError):
    """aiortc no longer has the methods the hardening replaces: refuse to run unhardened."""

    code = "dtls_hardening_unavailable"


@dataclass(frozen=True)
class DtlsHardening:
    """What every aiortc DTLS context gets while the hardening is installed."""

    profile: ProfileName
    minimum_version: str
    cipher_list: tuple[str, ...]
    srtp_profiles: tuple[str, ...]  # offered, in this order
    unavailable_srtp_profiles: tuple[str, ...]  # in the profile, not keyable by this pylibsrtp
    fingerprint_algorithms: tuple[str, ...]


def keyable_srtp_profiles() -> tuple[str, ...]:
    """SRTP profiles aiortc can key with this libsrtp build (AES-GCM is a build option)."""
    return tuple(p.openssl_profile.decode("ascii") for p in rtcdtlstransport.SRTP_PROFILES)


def dtls_hardening(profile: SecurityProfile) -> DtlsHardening:
    policy = profile.dtls_srtp
    keyable = keyable_srtp_profiles()
    offered = tuple(p for p in policy.srtp_profiles if p in keyable)
    if not offered:
        raise DtlsHardeningUnavailable(
            "This libsrtp build keys none of the profile's SRTP profiles.")
    return DtlsHardening(
        profile=profile.name, minimum_version=policy.minimum_version,
        cipher_list=policy.cipher_suites, srtp_profiles=offered,
        unavailable_srtp_profiles=tuple(p for p in policy.srtp_profiles if p not in keyable),
        fingerprint_algorithms=policy.fingerprint_algorithms)


def harden_context(context: SSL.Context, hardening: DtlsHardening) -> None:
    """Restrict a DTLS context aiortc (or a test) built to the hardening's settings."""
    context.set_min_proto_version(_VERSION_NUMBERS[hardening.minimum_version])
    context.set_cipher_list(":".join(hardening.cipher_list).encode("ascii"))
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.set_tlsext_use_srtp(":".join(hardening.srtp_profiles).encode("ascii"))


def fingerprint_problem(certificate: x509.Certificate,
                        fingerprints: Sequence[Any],
                        allowed: Sequence[str]) -> str | None:
    """Why the peer's SDP fingerprints do not vouch for ``certificate``, or None if they do.

    ``fingerprints`` are aiortc ``RTCDtlsFingerprint`` (``algorithm``, ``value``). Every one
    must use an allowed hash and match: a weak or wrong extra fingerprint is an attacker's
    foothold, not something to skip.
    """
    if not fingerprints:
        return "the peer sent no fingerprint"
    for fingerprint in fingerprints:
        algorithm = fingerprint.algorithm.lower()
        if algorithm not in allowed:
            return f"fingerprint hash {algorithm} is not allowed (need one of {list(allowed)})"
        digest = certificate.fingerprint(FINGERPRINT_HASHES[algorithm]()).hex().upper()
        expected = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
        if fingerprint.value.upper() != expected:
            return f"the {algorithm} fingerprint does not match the peer's certificate"
    return None


def harden_aiortc_dtls(profile: SecurityProfile | str) -> DtlsHardening:
    """Make every aiortc DTLS context follow ``profile`` from now on (process-wide).

    Call once when the node starts, before any peer connection exists. Calling it again
    replaces the previous hardening; it never stacks.
    """
    _check_aiortc()
    if not isinstance(profile, SecurityProfile):
        profile = get_profile(profile)
    hardening = dtls_hardening(profile)
    rtcdtlstransport.RTCCertificate._create_ssl_context = (  # type: ignore[method-assign]
        _hardened_context_factory(hardening))
    rtcdtlstransport.RTCDtlsTransport._validate_peer_identity = (  # type: ignore[method-assign]
        _strict_identity_check(hardening))
    log.info("aiortc DTLS hardened to the %s profile: min %s, SRTP %s", profile.name,
             hardening.minimum_version, ", ".join(hardening.srtp_profiles))
    return hardening


def restore_aiortc_dtls() -> None:
    """Put aiortc's own methods back (tests, and an embedding application that must)."""
    rtcdtlstransport.RTCCertificate._create_ssl_context = (  # type: ignore[method-assign]
        _ORIGINAL_CREATE_SSL_CONTEXT)
    rtcdtlstransport.RTCDtlsTransport._validate_peer_identity = (  # type: ignore[method-assign]
        _ORIGINAL_VALIDATE_PEER_IDENTITY)


def installed_hardening() -> DtlsHardening | None:
    """The hardening aiortc runs with now, or None when it runs with its own defaults."""
    factory = rtcdtlstransport.RTCCertificate._create_ssl_context
    hardening = getattr(factory, "confnode_hardening", None)
    return hardening if isinstance(hardening, DtlsHardening) else None


def _hardened_context_factory(hardening: DtlsHardening) -> Callable[..., SSL.Context]:
    def _create_ssl_context(self: rtcdtlstransport.RTCCertificate,
                            srtp_profiles: list[Any]) -> SSL.Context:
        context = _ORIGINAL_CREATE_SSL_CONTEXT(self, srtp_profiles=srtp_profiles)
        harden_context(context, hardening)
        return context

    _create_ssl_context.confnode_hardening = hardening  # type: ignore[attr-defined]
    return _create_ssl_context


def _strict_identity_check(hardening: DtlsHardening) -> Callable[..., None]:
    def _validate_peer_identity(self: rtcdtlstransport.RTCDtlsTransport,
                                remoteParameters: rtcdtlstransport.RTCDtlsParameters) -> None:
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        problem = ("the peer sent no certificate" if certificate is None else
                   fingerprint_problem(certificate, remoteParameters.fingerprints,
                                       hardening.fingerprint_algorithms))
        if problem is not None:
            log.info("DTLS peer refused: %s", problem)
            self._set_state(rtcdtlstransport.State.FAILED)

    return _validate_peer_identity


def _check_aiortc() -> None:
    """Fail loudly if aiortc's private surface is not the one this module replaces."""
    try:
        create = inspect.signature(_ORIGINAL_CREATE_SSL_CONTEXT)
        validate = inspect.signature(_ORIGINAL_VALIDATE_PEER_IDENTITY)
        failed = rtcdtlstransport.State.FAILED
        profiles = [p.openssl_profile for p in rtcdtlstransport.SRTP_PROFILES]
    except (AttributeError, TypeError, ValueError) as exc:
        raise DtlsHardeningUnavailable(f"aiortc's DTLS internals changed: {exc}") from exc
    if (list(create.parameters) != ["self", "srtp_profiles"]
            or list(validate.parameters) != ["self", "remoteParameters"]
            or not hasattr(rtcdtlstransport.RTCDtlsTransport, "_set_state")
            or failed is None or not all(isinstance(p, bytes) for p in profiles)):
        raise DtlsHardeningUnavailable("aiortc's DTLS internals changed; update "
                                       "confnode.security.dtls before running this aiortc.")
