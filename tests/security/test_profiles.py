"""Security profiles: the contexts they build, checked with real loopback handshakes."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from confnode.config import Settings
from confnode.security.certificate import ensure_self_signed
from confnode.security.profiles import (
    GROUPS,
    PROFILES,
    ListenerKind,
    ProfileName,
    client_context,
    compliance_profile_text,
    effective_tls,
    get_profile,
    server_context,
)
from confnode.security.tls import available_groups, https_server_context, set_tls13_suites

TIMEOUT = 5.0
MODERN_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("profiles")
    cert, key = directory / "cert.pem", directory / "key.pem"
    ensure_self_signed(cert, key, ["node.example"], datetime.now(UTC))
    return cert, key


@contextmanager
def server(context: ssl.SSLContext) -> Iterator[tuple[int, list[str | None]]]:
    """One TLS handshake on 127.0.0.1 in a thread; yields (port, [negotiated version])."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    seen: list[str | None] = []

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(TIMEOUT)
            with context.wrap_socket(connection, server_side=True) as tls:
                seen.append(tls.version())
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            seen.append(None)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        thread.join(TIMEOUT)
        listener.close()


def connect(client: ssl.SSLContext, port: int) -> tuple[str, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
            client.wrap_socket(raw, server_hostname="localhost") as tls:
        version, cipher = tls.version(), tls.cipher()
        assert version is not None and cipher is not None
        assert tls.recv(2) == b"ok"
        return version, cipher[0]


def client_for(cert: Path, *, maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
               tls12: str | None = None, tls13: tuple[str, ...] | None = None) -> ssl.SSLContext:
    client = ssl.create_default_context(cafile=str(cert))
    client.maximum_version = maximum
    if tls12:
        client.set_ciphers(tls12)
    if tls13:
        set_tls13_suites(client, tls13)
    return client


def handshake(profile: str, certificate: tuple[Path, Path], client: ssl.SSLContext,
              kind: ListenerKind = ListenerKind.HTTPS) -> tuple[str, str] | None:
    context = server_context(get_profile(profile), kind, *certificate)
    with server(context) as (port, _seen):
        try:
            return connect(client, port)
        except (ssl.SSLError, ConnectionError):
            return None


# What each profile builds


def test_modern_https_is_tls13_only_with_the_mozilla_suites(
        certificate: tuple[Path, Path]) -> None:
    context = server_context(get_profile("modern"), ListenerKind.HTTPS, *certificate)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert not context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"} \
        == MODERN_TLS13


def test_effective_configuration_of_every_profile() -> None:
    groups = available_groups(GROUPS)
    assert groups[-3:] == ("X25519", "prime256v1", "secp384r1")
    modern = effective_tls(get_profile("modern").https)
    assert modern.versions == ("TLSv1.3",)
    assert modern.tls12_suites == ()
    assert modern.groups == groups
    intermediate = effective_tls(get_profile("intermediate").https)
    assert intermediate.versions == ("TLSv1.2", "TLSv1.3")
    assert set(intermediate.tls12_suites) == {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}
    bsi = effective_tls(get_profile("bsi").https)
    # TLS 1.3 suites set through SSL_CTX_set_ciphersuites: no ChaCha20, CCM instead.
    assert set(bsi.tls13_suites) == {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                                     "TLS_AES_128_CCM_SHA256"}
    assert not any("CHACHA" in s for s in bsi.tls12_suites)
    assert all(s.startswith("ECDHE-") and ("GCM" in s or "CCM" in s) for s in bsi.tls12_suites)


@pytest.mark.parametrize("name", list(ProfileName))
def test_sip_tls_allows_tls12_but_only_ecdhe_aead(name: ProfileName) -> None:
    sip = effective_tls(get_profile(name).sip_tls)
    assert sip.versions == ("TLSv1.2", "TLSv1.3")
    assert sip.tls12_suites
    assert all(s.startswith("ECDHE-") and any(a in s for a in ("GCM", "CCM", "CHACHA20"))
               for s in sip.tls12_suites)


@pytest.mark.parametrize("name", list(ProfileName))
def test_dtls_srtp_and_sdes_policies(name: ProfileName) -> None:
    profile = get_profile(name)
    assert profile.dtls_srtp.minimum_version == "DTLSv1.2"
    assert profile.dtls_srtp.srtp_profiles == ("SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM",
                                               "SRTP_AES128_CM_SHA1_80")
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in profile.dtls_srtp.cipher_suites  # RFC 8827
    assert not any(s.endswith("-SHA") for s in profile.dtls_srtp.cipher_suites)
    assert profile.dtls_srtp.fingerprint_algorithms == ("sha-256", "sha-384", "sha-512")
    assert profile.quic.tls13_suites == ("TLS_AES_256_GCM_SHA384",)
    assert profile.hsts == "max-age=63072000; includeSubDomains"


def test_sdes_answers_only_strong_keyable_suites() -> None:
    sdes = get_profile("modern").sdes
    assert sdes.acceptable("AEAD_AES_256_GCM")
    assert sdes.acceptable("aes_cm_128_hmac_sha1_80")
    assert not sdes.acceptable("AES_CM_128_HMAC_SHA1_32")
    assert not sdes.acceptable("F8_128_HMAC_SHA1_80")
    assert not sdes.acceptable("NULL_HMAC_SHA1_80")
    assert not sdes.acceptable("AES_256_CM_HMAC_SHA1_80")  # allowed, but pylibsrtp cannot key it
    assert not sdes.acceptable("AES_CM_128_HMAC_SHA1_80", ("UNENCRYPTED_SRTP",))
    assert not sdes.acceptable("AES_CM_128_HMAC_SHA1_80", ("UNAUTHENTICATED_SRTP",))
    assert sdes.acceptable("AES_CM_128_HMAC_SHA1_80", ("KDR=0",))
    assert sdes.suites[0] == "AEAD_AES_256_GCM"


def test_dtls_and_quic_have_no_ssl_context(certificate: tuple[Path, Path]) -> None:
    for kind in (ListenerKind.DTLS_SRTP, ListenerKind.QUIC):
        with pytest.raises(ValueError):
            server_context(get_profile("modern"), kind, *certificate)


def test_unknown_profiles_are_refused() -> None:
    with pytest.raises(ValueError, match="old"):
        get_profile("old")
    with pytest.raises(ValidationError):
        Settings(security_profile="old")  # type: ignore[arg-type]
    assert Settings().security_profile == "modern"


def test_the_packaged_compliance_profiles() -> None:
    modern = json.loads(compliance_profile_text(get_profile("modern")))
    assert modern["tls_versions"] == ["TLSv1.3"]
    assert modern["ciphers"]["iana"] == []
    intermediate = json.loads(compliance_profile_text(get_profile("intermediate")))
    assert intermediate["tls_versions"] == ["TLSv1.2", "TLSv1.3"]
    bsi = json.loads(compliance_profile_text(get_profile("bsi")))
    assert "TLS_CHACHA20_POLY1305_SHA256" not in bsi["ciphersuites"]
    assert set(bsi["ciphersuites"]) == set(PROFILES[ProfileName.BSI].https.tls13_suites)


def test_https_server_context_keeps_its_name_and_takes_a_profile(
        certificate: tuple[Path, Path]) -> None:
    assert https_server_context(*certificate).minimum_version == ssl.TLSVersion.TLSv1_3
    assert https_server_context(*certificate, "intermediate").minimum_version \
        == ssl.TLSVersion.TLSv1_2


# Real handshakes


def test_modern_refuses_tls12_and_intermediate_accepts_it(
        certificate: tuple[Path, Path]) -> None:
    tls12 = client_for(certificate[0], maximum=ssl.TLSVersion.TLSv1_2)
    assert handshake("modern", certificate, tls12) is None
    accepted = handshake("intermediate", certificate, tls12)
    assert accepted is not None and accepted[0] == "TLSv1.2"
    assert accepted[1] in {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                           "ECDHE-ECDSA-CHACHA20-POLY1305"}


@pytest.mark.parametrize("profile", ["intermediate", "bsi"])
def test_a_tls12_cbc_client_is_refused(certificate: tuple[Path, Path], profile: str) -> None:
    cbc = client_for(certificate[0], maximum=ssl.TLSVersion.TLSv1_2,
                     tls12="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")
    assert handshake(profile, certificate, cbc) is None
    # Control: the same client against a default Python server context gets through.
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    default.load_cert_chain(*certificate)
    with server(default) as (port, _seen):
        assert connect(cbc, port)[1] in {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"}


def test_bsi_refuses_chacha20_and_accepts_ccm(certificate: tuple[Path, Path]) -> None:
    chacha = client_for(certificate[0], tls13=("TLS_CHACHA20_POLY1305_SHA256",))
    assert handshake("bsi", certificate, chacha) is None
    assert handshake("modern", certificate, chacha) == ("TLSv1.3",
                                                        "TLS_CHACHA20_POLY1305_SHA256")
    ccm = client_for(certificate[0], tls13=("TLS_AES_128_CCM_SHA256",))
    assert handshake("bsi", certificate, ccm) == ("TLSv1.3", "TLS_AES_128_CCM_SHA256")
    assert handshake("modern", certificate, ccm) is None


def test_bsi_tls12_takes_ecdhe_ccm(certificate: tuple[Path, Path]) -> None:
    ccm = client_for(certificate[0], maximum=ssl.TLSVersion.TLSv1_2,
                     tls12="ECDHE-ECDSA-AES128-CCM")
    assert handshake("bsi", certificate, ccm) == ("TLSv1.2", "ECDHE-ECDSA-AES128-CCM")
    assert handshake("intermediate", certificate, ccm) is None


def test_sip_tls_accepts_a_tls12_aead_client_even_under_modern(
        certificate: tuple[Path, Path]) -> None:
    tls12 = client_for(certificate[0], maximum=ssl.TLSVersion.TLSv1_2)
    accepted = handshake("modern", certificate, tls12, ListenerKind.SIP_TLS)
    assert accepted is not None and accepted[0] == "TLSv1.2"


def test_the_client_context_verifies_the_peer(certificate: tuple[Path, Path]) -> None:
    profile = get_profile("modern")
    trusting = client_context(profile, ListenerKind.SIP_TLS, certificate[0])
    assert trusting.verify_mode == ssl.CERT_REQUIRED and trusting.check_hostname
    context = server_context(profile, ListenerKind.SIP_TLS, *certificate)
    with server(context) as (port, _seen):
        assert connect(trusting, port)[0] == "TLSv1.3"
    stranger = client_context(profile, ListenerKind.SIP_TLS)  # system roots only
    with server(context) as (port, _seen), pytest.raises(ssl.SSLCertVerificationError):
        connect(stranger, port)
