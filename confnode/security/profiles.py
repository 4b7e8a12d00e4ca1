"""Security profiles: one named choice fixes the cryptography of every listener the node runs.

An operator picks ``modern`` (the default), ``intermediate`` or ``bsi``; every listener --
HTTPS, SIP over TLS, DTLS-SRTP for browsers, SDES for SIP media, QUIC node links -- is built
from the active profile, and ``confnode audit`` checks the running node against one.

* ``modern`` is Mozilla/TLSRef guideline 6.0 *modern*: TLS 1.3 only, its three suites, the
  client chooses the suite, key exchange X25519MLKEM768 (where OpenSSL has it), X25519,
  prime256v1, secp384r1.
* ``intermediate`` is TLSRef 6.0 *intermediate*: adds TLS 1.2 with ECDHE-ECDSA/RSA AES-GCM and
  CHACHA20-POLY1305, for clients that cannot do TLS 1.3.
* ``bsi`` follows BSI TR-02102-2 (2026) for new systems: TLS 1.3 with the AES-GCM/CCM suites,
  TLS 1.2 only with ECDHE and AES-GCM/CCM (ChaCha20 is not among the TR's suites).

What every profile shares: no TLS compression (CRIME), no renegotiation, no 0-RTT (Python's
``ssl`` never enables early data on a server; sslyze's early-data probe shows it), HSTS for two
years. SIP over TLS always allows TLS 1.2 -- deployed SIP phones lag browsers by years -- but
only with ECDHE and AEAD suites. DTLS-SRTP follows RFC 8827 (DTLS 1.2, ECDHE, AEAD) and RFC
7714 (AEAD SRTP first); SDES (RFC 4568) is data here, used by the SIP media negotiation.

The sslyze-shaped compliance profiles ``confnode audit`` checks against ship as package data
(``profiles_data/``): the two TLSRef 6.0 files as published, and a ``bsi`` file confnode
derives from the TR in the same shape (no such file is published).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from confnode.security.tls import (
    HSTS_HEADER,
    available_groups,
    restrict_key_exchange_groups,
    set_tls13_suites,
)


class ProfileName(StrEnum):
    MODERN = "modern"
    INTERMEDIATE = "intermediate"
    BSI = "bsi"


class ListenerKind(StrEnum):
    HTTPS = "https"
    SIP_TLS = "sip-tls"
    DTLS_SRTP = "dtls-srtp"
    QUIC = "quic"


@dataclass(frozen=True)
class TlsPolicy:
    """One TLS listener kind: what it may negotiate."""

    versions: tuple[str, ...]  # "TLSv1.2", "TLSv1.3"
    tls13_suites: tuple[str, ...]  # IANA names, preferred first
    tls12_suites: tuple[str, ...]  # OpenSSL names; empty when TLS 1.2 is off
    groups: tuple[str, ...]  # OpenSSL group names, preferred first
    # Mozilla: the client chooses, so a client without AES hardware can pick ChaCha20.
    server_chooses_suite: bool = False
    # Outgoing connections verify the peer's certificate and name. Incoming ones never ask a
    # client for a certificate: browsers have none and SIP phones rarely do.
    verify_peer: bool = True

    @property
    def minimum_version(self) -> ssl.TLSVersion:
        return ssl.TLSVersion.TLSv1_2 if "TLSv1.2" in self.versions else ssl.TLSVersion.TLSv1_3


@dataclass(frozen=True)
class DtlsSrtpPolicy:
    """Browser media: the DTLS handshake that keys SRTP (RFC 5764, RFC 8827 §6.5)."""

    minimum_version: str  # "DTLSv1.2"
    cipher_suites: tuple[str, ...]  # OpenSSL names for DTLS 1.2
    # Offered and selected in this order (OpenSSL's server picks by its own list order).
    srtp_profiles: tuple[str, ...]
    # Every a=fingerprint the peer sends must use one of these and match its certificate.
    fingerprint_algorithms: tuple[str, ...]


@dataclass(frozen=True)
class SdesPolicy:
    """SIP media keyed in SDP (RFC 4568): which a=crypto suites to answer with, which to refuse.

    SDES puts the key in the SDP, so it is only ever used over SIP-TLS, never on WebRTC.
    """

    suites: tuple[str, ...]  # answer with the first of these the peer offered
    refused_suite_markers: tuple[str, ...]  # a suite whose name contains one is never used
    refused_session_parameters: tuple[str, ...]  # an a=crypto line with one is never used
    # In the policy but not keyable by pylibsrtp: skipped when answering (REFERENCES §4).
    not_keyable: tuple[str, ...]

    def acceptable(self, suite: str, session_parameters: tuple[str, ...] = ()) -> bool:
        """Whether an offered a=crypto line may be answered at all."""
        name = suite.upper()
        if any(marker in name for marker in self.refused_suite_markers):
            return False
        if any(p.split("=", 1)[0].upper() in self.refused_session_parameters
               for p in session_parameters):
            return False
        return name in self.suites and name not in self.not_keyable


@dataclass(frozen=True)
class SecurityProfile:
    name: ProfileName
    reference: str  # what the profile implements, for reports
    https: TlsPolicy
    sip_tls: TlsPolicy
    quic: TlsPolicy  # node-to-node links (aioquic configuration, not an ssl.SSLContext)
    dtls_srtp: DtlsSrtpPolicy
    sdes: SdesPolicy
    hsts: str
    compliance_file: str  # sslyze-shaped profile in profiles_data/ for HTTPS
    # SIP-TLS allows TLS 1.2 under every profile, so it is checked against the matching
    # TLS 1.2-capable file.
    sip_tls_compliance_file: str

    def tls_policy(self, kind: ListenerKind) -> TlsPolicy:
        if kind is ListenerKind.HTTPS:
            return self.https
        if kind is ListenerKind.SIP_TLS:
            return self.sip_tls
        if kind is ListenerKind.QUIC:
            return self.quic
        raise ValueError(f"{kind} is not keyed by a TLS context of its own.")


# Suite names, OpenSSL -> IANA, for the TLS 1.2 suites any profile uses (sslyze reports IANA).
IANA_NAMES: Mapping[str, str] = MappingProxyType({
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-CCM": "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "ECDHE-ECDSA-AES256-CCM": "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
})

GROUPS: tuple[str, ...] = ("X25519MLKEM768", "X25519", "prime256v1", "secp384r1")
TLS13_MOZILLA: tuple[str, ...] = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                  "TLS_CHACHA20_POLY1305_SHA256")
TLS13_BSI: tuple[str, ...] = ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                              "TLS_AES_128_CCM_SHA256")
TLS12_MOZILLA: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
)
TLS12_BSI: tuple[str, ...] = (
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-CCM", "ECDHE-ECDSA-AES128-CCM",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
)

# RFC 8827 §6.5 makes ECDHE-ECDSA-AES128-GCM-SHA256 mandatory. The RSA suites matter when the
# node is the DTLS client (it answers browsers' offers with a=setup:active) of a gateway whose
# DTLS certificate is RSA; as a server the node's own certificate is ECDSA P-256.
DTLS_MOZILLA: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
)
DTLS_BSI: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-CCM", "ECDHE-ECDSA-AES256-CCM",
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
)
# RFC 7714 AEAD first; RFC 8827 requires AES128_CM_SHA1_80 to be supported. Never _32 (a
# 32-bit tag) and never NULL (no encryption).
SRTP_PROFILES: tuple[str, ...] = ("SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM",
                                  "SRTP_AES128_CM_SHA1_80")
FINGERPRINT_ALGORITHMS: tuple[str, ...] = ("sha-256", "sha-384", "sha-512")

SDES = SdesPolicy(
    suites=("AEAD_AES_256_GCM", "AEAD_AES_128_GCM", "AES_256_CM_HMAC_SHA1_80",
            "AES_CM_128_HMAC_SHA1_80"),
    refused_suite_markers=("_32", "F8", "NULL"),
    refused_session_parameters=("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP",
                                "UNAUTHENTICATED_SRTP"),
    not_keyable=("AES_256_CM_HMAC_SHA1_80",),
)
# Node links carry only node-to-node traffic: one suite, the strongest, no negotiation room.
QUIC = TlsPolicy(versions=("TLSv1.3",), tls13_suites=("TLS_AES_256_GCM_SHA384",), tls12_suites=(),
                 groups=GROUPS)


def _sip_tls(tls13: tuple[str, ...], tls12: tuple[str, ...]) -> TlsPolicy:
    return TlsPolicy(versions=("TLSv1.2", "TLSv1.3"), tls13_suites=tls13, tls12_suites=tls12,
                     groups=GROUPS)


PROFILES: Mapping[ProfileName, SecurityProfile] = MappingProxyType({
    ProfileName.MODERN: SecurityProfile(
        name=ProfileName.MODERN, reference="Mozilla/TLSRef guideline 6.0 modern",
        https=TlsPolicy(versions=("TLSv1.3",), tls13_suites=TLS13_MOZILLA, tls12_suites=(),
                        groups=GROUPS),
        sip_tls=_sip_tls(TLS13_MOZILLA, TLS12_MOZILLA), quic=QUIC,
        dtls_srtp=DtlsSrtpPolicy("DTLSv1.2", DTLS_MOZILLA, SRTP_PROFILES,
                                 FINGERPRINT_ALGORITHMS),
        sdes=SDES, hsts=HSTS_HEADER, compliance_file="mozilla-tlsref-6.0-modern.sslyze.json",
        sip_tls_compliance_file="mozilla-tlsref-6.0-intermediate.sslyze.json"),
    ProfileName.INTERMEDIATE: SecurityProfile(
        name=ProfileName.INTERMEDIATE, reference="Mozilla/TLSRef guideline 6.0 intermediate",
        https=TlsPolicy(versions=("TLSv1.2", "TLSv1.3"), tls13_suites=TLS13_MOZILLA,
                        tls12_suites=TLS12_MOZILLA, groups=GROUPS),
        sip_tls=_sip_tls(TLS13_MOZILLA, TLS12_MOZILLA), quic=QUIC,
        dtls_srtp=DtlsSrtpPolicy("DTLSv1.2", DTLS_MOZILLA, SRTP_PROFILES,
                                 FINGERPRINT_ALGORITHMS),
        sdes=SDES, hsts=HSTS_HEADER,
        compliance_file="mozilla-tlsref-6.0-intermediate.sslyze.json",
        sip_tls_compliance_file="mozilla-tlsref-6.0-intermediate.sslyze.json"),
    ProfileName.BSI: SecurityProfile(
        name=ProfileName.BSI, reference="BSI TR-02102-2 (2026)",
        https=TlsPolicy(versions=("TLSv1.2", "TLSv1.3"), tls13_suites=TLS13_BSI,
                        tls12_suites=TLS12_BSI, groups=GROUPS),
        sip_tls=_sip_tls(TLS13_BSI, TLS12_BSI), quic=QUIC,
        dtls_srtp=DtlsSrtpPolicy("DTLSv1.2", DTLS_BSI, SRTP_PROFILES, FINGERPRINT_ALGORITHMS),
        sdes=SDES, hsts=HSTS_HEADER, compliance_file="bsi-tr-02102-2-2026.sslyze.json",
        sip_tls_compliance_file="bsi-tr-02102-2-2026.sslyze.json"),
})


def get_profile(name: str | ProfileName) -> SecurityProfile:
    try:
        return PROFILES[ProfileName(name)]
    except ValueError:
        known = ", ".join(p.value for p in ProfileName)
        raise ValueError(f"Unknown security profile {name!r}; known: {known}.") from None


def compliance_profile_text(profile: SecurityProfile,
                            kind: ListenerKind = ListenerKind.HTTPS) -> str:
    """The sslyze-shaped JSON profile ``confnode audit`` checks a TLS listener against."""
    name = (profile.sip_tls_compliance_file if kind is ListenerKind.SIP_TLS
            else profile.compliance_file)
    return resources.files("confnode.security").joinpath(
        "profiles_data", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class EffectiveTls:
    """What a context built from a policy really allows on this Python/OpenSSL."""

    versions: tuple[str, ...]
    tls13_suites: tuple[str, ...]
    tls12_suites: tuple[str, ...]  # OpenSSL names
    groups: tuple[str, ...]


def server_context(profile: SecurityProfile, kind: ListenerKind, cert_path: Path,
                   key_path: Path) -> ssl.SSLContext:
    """A server context for an HTTPS or SIP-TLS listener, as the profile fixes it."""
    if kind not in (ListenerKind.HTTPS, ListenerKind.SIP_TLS):
        raise ValueError(f"{kind} listeners are not built from an ssl.SSLContext.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply(context, profile.tls_policy(kind))
    context.load_cert_chain(certfile=cert_path, keyfile=key_path)
    return context


def client_context(profile: SecurityProfile, kind: ListenerKind,
                   cafile: Path | None = None) -> ssl.SSLContext:
    """A client context for outgoing connections of ``kind`` (e.g. SIPS to a trunk)."""
    if kind not in (ListenerKind.HTTPS, ListenerKind.SIP_TLS):
        raise ValueError(f"{kind} connections are not built from an ssl.SSLContext.")
    policy = profile.tls_policy(kind)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _apply(context, policy)
    if policy.verify_peer:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        if cafile is not None:
            context.load_verify_locations(cafile=cafile)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def effective_tls(policy: TlsPolicy) -> EffectiveTls:
    """Build a scratch context from ``policy`` and read back what OpenSSL put in force."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    groups = _apply(context, policy)
    tls13 = tuple(c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3")
    tls12: tuple[str, ...] = ()
    if context.minimum_version <= ssl.TLSVersion.TLSv1_2:
        tls12 = tuple(c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2")
    versions = tuple(v.name.replace("_", ".")
                     for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
                     if context.minimum_version <= v <= context.maximum_version)
    return EffectiveTls(versions=versions, tls13_suites=tls13, tls12_suites=tls12, groups=groups)


def _apply(context: ssl.SSLContext, policy: TlsPolicy) -> tuple[str, ...]:
    """Put ``policy`` into ``context``; returns the key-exchange groups in force."""
    context.minimum_version = policy.minimum_version
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    # Compression enables CRIME-style attacks; renegotiation brought the 2009 prefix attack
    # and costs CPU on demand. TLS 1.3 has neither, the flags cover TLS 1.2 where allowed.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if policy.server_chooses_suite:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~int(ssl.OP_CIPHER_SERVER_PREFERENCE)
    if policy.tls12_suites:
        # set_ciphers governs TLS <= 1.2 only; the TLS 1.3 suites are set separately.
        context.set_ciphers(":".join(policy.tls12_suites))
    set_tls13_suites(context, policy.tls13_suites)
    return restrict_key_exchange_groups(context, available_groups(policy.groups))
