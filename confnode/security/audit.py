"""``confnode audit``: what the node is configured to do, and what it really does when probed.

The report has three parts. The *configuration* of every listener kind, as the node's profile
builds it on this Python/OpenSSL (versions, suites, groups, SRTP profiles), compared with the
profile audited against. The *certificate* facts. And *probes* with real handshakes against the
running node:

* HTTPS: sslyze, in-process, with the compliance checker sslyze uses for Mozilla's profiles,
  fed the TLSRef 6.0 file matching the audited profile (``profiles_data/``); plus sslyze's
  0-RTT probe, and the HTTP security headers (HSTS, Referrer-Policy, nosniff, no-store; the
  join page's Content-Security-Policy).
* DTLS-SRTP: calls through the node's own client API with an aiortc peer whose DTLS context
  each probe sets -- a DTLS 1.0 client, one client per cipher suite and per SRTP profile,
  SDP fingerprints with sha-1 or a wrong certificate, and the node as DTLS client against a
  CBC-only or DTLS 1.0 server. A probe counts as accepted when the handshake completed with an
  SRTP profile and the node still holds the call afterwards (a DTLS failure ends the call).
  The probes need the admin API token; they book one instant meeting ("confnode audit"),
  which shows in the statistics as an unanswered instant meeting, and end it.
* SIP-TLS (when ``sip.enabled``): sslyze again, against the TLS 1.2-capable compliance file the
  profile names for SIP (SIP phones still speak TLS 1.2). QUIC node links are listed as "not
  configured" until the node has them; a new listener kind is one more entry in
  ``_LISTENER_KINDS`` and, if it can be probed, one more probe in ``run_audit``.

Every finding is pass, fail, skipped or info; any fail is a deviation and makes the command
exit non-zero. What cannot be reached is skipped, and the report says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from confnode.config import Settings
from confnode.security.certificate import describe_certificate
from confnode.security.profiles import (
    ListenerKind,
    ProfileName,
    SecurityProfile,
    compliance_profile_text,
    effective_tls,
    get_profile,
)

# RFC 8827 §6.5: every WebRTC endpoint must offer these; refusing them is a deviation too.
MANDATORY_DTLS_CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"
MANDATORY_SRTP_PROFILE = "SRTP_AES128_CM_SHA1_80"
# Suites a DTLS probe offers one at a time: the profile's, plus CBC and CCM to see them refused.
DTLS_PROBE_CIPHERS: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-CCM",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
)
DTLS_PROBE_SRTP: tuple[str, ...] = ("SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM",
                                    "SRTP_AES128_CM_SHA1_80", "SRTP_AES128_CM_SHA1_32")
REQUIRED_HEADERS: tuple[tuple[str, str], ...] = (
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
)
_SIGNATURE_NAMES = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.ED25519: "ed25519",
}
_MOZILLA_CURVES = {"secp256r1": "prime256v1", "secp384r1": "secp384r1", "secp521r1": "secp521r1"}
PROBE_TIMEOUT = 10.0
# After the handshake the node checks fingerprints and keys SRTP; a failure ends the call at
# once. This long without the call disappearing means the node kept it.
SETTLE_SECONDS = 0.6


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIPPED = "skipped"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    area: str  # "configuration", "certificate", "https", "headers", "dtls-srtp", ...
    check: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class ListenerReport:
    kind: ListenerKind
    address: str
    configured: bool
    profile: ProfileName
    versions: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    srtp_profiles: tuple[str, ...] = ()
    fingerprint_algorithms: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class CertificateFacts:
    path: str
    subject: str
    key_type: str
    signature_algorithm: str
    not_before: datetime
    not_after: datetime
    lifetime_days: int
    days_left: int
    sans: tuple[str, ...]
    sha256_fingerprint: str


@dataclass(frozen=True)
class DtlsProbe:
    """One handshake the audit tries: what the probing peer offers."""

    name: str
    node_role: str  # "server" (probe offers a=setup:active) or "client" (a=setup:passive)
    cipher_list: str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    srtp_profiles: str = "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
    max_version: int | None = None  # OpenSSL version number, e.g. 0xFEFF for DTLS 1.0
    fingerprints: str = "sha-256"  # "sha-256", "sha-1-only", "wrong-sha-256"
    should_accept: bool = True


@dataclass(frozen=True)
class DtlsProbeResult:
    probe: DtlsProbe
    accepted: bool
    version: str | None
    cipher: str | None
    srtp_profile: str | None
    detail: str
    ran: bool = True  # False: the call could not even be set up, so nothing was learnt


@dataclass(frozen=True)
class AuditReport:
    node_url: str
    node_profile: ProfileName
    audited_profile: ProfileName
    reference: str
    generated_at: datetime
    listeners: tuple[ListenerReport, ...]
    certificate: CertificateFacts | None
    findings: tuple[Finding, ...]
    dtls_probes: tuple[DtlsProbeResult, ...] = ()

    @property
    def deviations(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.verdict is Verdict.FAIL)

    @property
    def compliant(self) -> bool:
        return not self.deviations

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if hasattr(value, "__dataclass_fields__"):
                return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
            return value

        result = plain(self)
        result["compliant"] = self.compliant
        result["deviations"] = len(self.deviations)
        return result  # type: ignore[no-any-return]


@dataclass
class _Target:
    """Where the running node is, and what the audit may use to talk to it."""

    url: str
    host: str
    port: int
    tls: bool
    cafile: Path | None
    token: str | None
    verify: bool | ssl.SSLContext = True
    findings: list[Finding] = field(default_factory=list)


# Listeners


def listeners(settings: Settings, profile: SecurityProfile) -> tuple[ListenerReport, ...]:
    """Every listener kind the node has or may get, as ``profile`` configures it here."""
    return tuple(describe(settings, profile) for describe in _LISTENER_KINDS)


def _https_listener(settings: Settings, profile: SecurityProfile) -> ListenerReport:
    address = f"{settings.http.host}:{settings.http.port}"
    if not settings.http.tls:
        return ListenerReport(ListenerKind.HTTPS, address, configured=False,
                              profile=profile.name,
                              note="plain HTTP: TLS is terminated in front of the node")
    return _tls_report(ListenerKind.HTTPS, address, profile)


def _sip_tls_listener(settings: Settings, profile: SecurityProfile) -> ListenerReport:
    sip = getattr(settings, "sip", None)
    if sip is None or not getattr(sip, "enabled", False) or not getattr(sip, "tls", True):
        return ListenerReport(ListenerKind.SIP_TLS, "-", configured=False, profile=profile.name,
                              note="not configured")
    return _tls_report(ListenerKind.SIP_TLS, f"{sip.host}:{sip.port}", profile)


def _dtls_listener(settings: Settings, profile: SecurityProfile) -> ListenerReport:
    from confnode.security.dtls import keyable_srtp_profiles

    policy = profile.dtls_srtp
    keyable = keyable_srtp_profiles()
    return ListenerReport(
        ListenerKind.DTLS_SRTP, "UDP, ICE host candidates", configured=True,
        profile=profile.name, versions=(f">= {policy.minimum_version}",),
        suites=policy.cipher_suites,
        srtp_profiles=tuple(p for p in policy.srtp_profiles if p in keyable),
        fingerprint_algorithms=policy.fingerprint_algorithms,
        note="ECDHE groups: OpenSSL defaults (no group setter in pyOpenSSL)")


def _quic_listener(settings: Settings, profile: SecurityProfile) -> ListenerReport:
    return ListenerReport(ListenerKind.QUIC, "-", configured=False, profile=profile.name,
                          versions=profile.quic.versions, suites=profile.quic.tls13_suites,
                          note="not configured (node links)")


def _tls_report(kind: ListenerKind, address: str, profile: SecurityProfile) -> ListenerReport:
    effective = effective_tls(profile.tls_policy(kind))
    return ListenerReport(kind, address, configured=True, profile=profile.name,
                          versions=effective.versions,
                          suites=effective.tls13_suites + effective.tls12_suites,
                          groups=effective.groups)


_LISTENER_KINDS: tuple[Callable[[Settings, SecurityProfile], ListenerReport], ...] = (
    _https_listener, _sip_tls_listener, _dtls_listener, _quic_listener)


def configuration_findings(configured: tuple[ListenerReport, ...],
                           audited: SecurityProfile) -> list[Finding]:
    """Does what the node's profile builds stay inside the audited profile?"""
    findings: list[Finding] = []
    for listener in configured:
        kind = listener.kind
        if not listener.configured:
            verdict = Verdict.FAIL if kind is ListenerKind.HTTPS else Verdict.SKIPPED
            findings.append(Finding("configuration", kind.value, verdict, listener.note))
            continue
        if kind is ListenerKind.DTLS_SRTP:
            policy = audited.dtls_srtp
            extra = set(listener.suites) - set(policy.cipher_suites)
            extra_srtp = set(listener.srtp_profiles) - set(policy.srtp_profiles)
            problems = ([f"cipher suites {sorted(extra)}"] if extra else []) + (
                [f"SRTP profiles {sorted(extra_srtp)}"] if extra_srtp else [])
        else:
            wanted = audited.tls_policy(kind)
            allowed_suites = set(wanted.tls13_suites) | set(wanted.tls12_suites)
            problems = []
            if extra_versions := set(listener.versions) - set(wanted.versions):
                problems.append(f"versions {sorted(extra_versions)}")
            if extra_suites := set(listener.suites) - allowed_suites:
                problems.append(f"suites {sorted(extra_suites)}")
            if extra_groups := set(listener.groups) - set(wanted.groups):
                problems.append(f"groups {sorted(extra_groups)}")
        if problems:
            findings.append(Finding("configuration", kind.value, Verdict.FAIL,
                                    f"allows {'; '.join(problems)} outside {audited.name}"))
        else:
            findings.append(Finding("configuration", kind.value, Verdict.PASS,
                                    f"within {audited.name}"))
    return findings


def plaintext_sip_findings(settings: Settings) -> list[Finding]:
    """The switches that let SIP signalling or media travel in clear text (trusted networks
    only). No TLS scan can see them: a plain listener has nothing to negotiate, so the audit
    reads them from the settings and says what each one exposes."""
    sip = getattr(settings, "sip", None)
    if sip is None or not getattr(sip, "enabled", False):
        return []
    exposures = {
        "sip-tcp": (getattr(sip, "tcp", False), f"plain TCP on port {getattr(sip, 'tcp_port', '')}"
                    ": room aliases, display names and DTMF PINs sent as SIP INFO travel "
                    "unencrypted (SDES keys are refused there)"),
        "sip-udp": (getattr(sip, "udp", False), f"plain UDP on port {getattr(sip, 'udp_port', '')}"
                    ": as plain TCP, and open to spoofed sources"),
        "plain-rtp": (getattr(sip, "allow_plain_rtp", False), "SIP media may be plain RTP/AVP: "
                      "audio, video and RFC 4733 PIN digits unencrypted"),
    }
    return [Finding("configuration", check, Verdict.FAIL if on else Verdict.PASS,
                    f"on: {what}" if on else "off")
            for check, (on, what) in exposures.items()]


# Certificate


def certificate_facts(path: Path, now: datetime) -> CertificateFacts:
    info = describe_certificate(path)
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    oid = certificate.signature_algorithm_oid
    return CertificateFacts(
        path=str(path), subject=info.subject, key_type=info.key_type,
        signature_algorithm=_SIGNATURE_NAMES.get(oid, oid.dotted_string),
        not_before=info.not_before, not_after=info.not_after,
        lifetime_days=(info.not_after - info.not_before).days,
        days_left=(info.not_after - now).days, sans=info.sans,
        sha256_fingerprint=info.sha256_fingerprint)


def certificate_findings(path: Path, facts: CertificateFacts, compliance: dict[str, Any],
                         now: datetime) -> list[Finding]:
    findings: list[Finding] = []
    public_key = x509.load_pem_x509_certificate(path.read_bytes()).public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        key_kind = "ecdsa"
        curve = _MOZILLA_CURVES.get(public_key.curve.name, public_key.curve.name)
        curve_ok = curve in compliance["certificate_curves"]
        findings.append(Finding("certificate", "curve", Verdict.PASS if curve_ok else Verdict.FAIL,
                                f"{curve}; allowed {compliance['certificate_curves']}"))
    elif isinstance(public_key, rsa.RSAPublicKey):
        key_kind = "rsa"
        minimum = compliance.get("rsa_key_size") or 0
        findings.append(Finding("certificate", "rsa_key_size",
                                Verdict.PASS if public_key.key_size >= minimum else Verdict.FAIL,
                                f"{public_key.key_size} bits; minimum {minimum}"))
    else:
        key_kind = type(public_key).__name__
    findings.append(Finding(
        "certificate", "key_type",
        Verdict.PASS if key_kind in compliance["certificate_types"] else Verdict.FAIL,
        f"{facts.key_type}; allowed {compliance['certificate_types']}"))
    findings.append(Finding(
        "certificate", "signature",
        Verdict.PASS if facts.signature_algorithm in compliance["certificate_signatures"]
        else Verdict.FAIL, facts.signature_algorithm))
    maximum = int(compliance["maximum_certificate_lifespan"])
    findings.append(Finding(
        "certificate", "lifetime", Verdict.PASS if facts.lifetime_days <= maximum
        else Verdict.FAIL, f"{facts.lifetime_days} days; maximum {maximum}"))
    if facts.not_after <= now:
        findings.append(Finding("certificate", "expiry", Verdict.FAIL,
                                f"expired {facts.not_after.isoformat()}"))
    else:
        findings.append(Finding("certificate", "expiry", Verdict.PASS,
                                f"{facts.days_left} days left"))
    return findings


# HTTPS: sslyze


def sslyze_findings(host: str, port: int, compliance_json: str,
                    cafile: Path | None, area: str = "https") -> list[Finding]:
    """Scan ``host:port`` with sslyze and check it against a sslyze-shaped profile."""
    try:
        from sslyze import (
            CertificateInfoExtraArgument,
            ScanCommand,
            ScanCommandsExtraArguments,
            Scanner,
            ServerNetworkLocation,
            ServerScanRequest,
            ServerScanStatusEnum,
        )
        from sslyze.mozilla_tls_profile.tls_config_checker import (
            SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
            ServerNotCompliantWithTlsConfiguration,
            ServerScanResultIncomplete,
            TlsConfigurationAsJson,
            check_server_against_tls_configuration,
        )
    except ImportError:
        return [Finding(area, "sslyze", Verdict.FAIL,
                        "sslyze is not installed: the TLS listener cannot be verified "
                        "(pip install 'sslyze>=6,<7')")]
    profile = TlsConfigurationAsJson(**json.loads(compliance_json))
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=cafile)
        if cafile is not None and cafile.is_file() else None)
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=host, port=port),
        scan_commands=set(SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER)
        | {ScanCommand.TLS_1_3_EARLY_DATA},
        scan_commands_extra_arguments=extra)
    scanner = Scanner()
    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold old roots that newer cryptography warns about.
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        results = list(scanner.get_results())
    result = results[0]
    if result.scan_status is not ServerScanStatusEnum.COMPLETED:
        trace = result.connectivity_error_trace
        return [Finding(area, "reachable", Verdict.FAIL,
                        f"sslyze could not connect to {host}:{port}: "
                        f"{trace.exc_type.__name__ if trace else result.connectivity_status}")]
    findings: list[Finding] = []
    try:
        check_server_against_tls_configuration(result, profile)
    except ServerNotCompliantWithTlsConfiguration as exc:
        findings.extend(Finding(area, key, Verdict.FAIL, issue)
                        for key, issue in sorted(exc.issues.items()))
    except ServerScanResultIncomplete as exc:
        findings.append(Finding(area, "scan", Verdict.FAIL, f"incomplete scan: {exc}"))
    else:
        findings.append(Finding(area, "compliance", Verdict.PASS,
                                "0 issues from sslyze's compliance checker"))
    scan = result.scan_result
    if scan is not None and scan.tls_1_3_early_data.result is not None:
        early = scan.tls_1_3_early_data.result.supports_early_data
        findings.append(Finding(area, "0-rtt", Verdict.FAIL if early else Verdict.PASS,
                                "early data accepted" if early else "no early data"))
    if scan is not None and scan.elliptic_curves.result is not None:
        curves = [c.name for c in scan.elliptic_curves.result.supported_curves or []]
        findings.append(Finding(area, "groups_accepted", Verdict.INFO, ", ".join(curves)))
    if scan is not None:
        accepted = []
        for attempt in (scan.tls_1_2_cipher_suites, scan.tls_1_3_cipher_suites):
            if attempt.result is not None:
                accepted += [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
        findings.append(Finding(area, "suites_accepted", Verdict.INFO, ", ".join(accepted)))
    return findings


# HTTP headers


async def header_findings(http: httpx.AsyncClient, profile: SecurityProfile,
                          compliance: dict[str, Any], join_path: str | None,
                          tls: bool) -> list[Finding]:
    findings: list[Finding] = []
    response = await http.get("/healthz")
    headers = response.headers
    if tls:
        findings.append(_hsts_finding(headers.get("strict-transport-security"),
                                      int(compliance["hsts_min_age"])))
    for name, wanted in REQUIRED_HEADERS:
        value = headers.get(name)
        ok = value is not None and wanted in [v.strip() for v in value.lower().split(",")]
        findings.append(Finding("headers", name, Verdict.PASS if ok else Verdict.FAIL,
                                value or "missing"))
    if join_path is None:
        findings.append(Finding("headers", "content-security-policy", Verdict.SKIPPED,
                                "join page not reachable without an API token to book a room"))
        return findings
    page = await http.get(join_path, headers={"accept": "text/html"})
    csp = page.headers.get("content-security-policy")
    if page.status_code != 200 or csp is None:
        findings.append(Finding("headers", "content-security-policy", Verdict.FAIL,
                                f"join page answered {page.status_code} without a CSP"
                                if csp is None else f"join page answered {page.status_code}"))
        return findings
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    problems = [d for d in ("default-src", "frame-ancestors") if d not in directives]
    if "'unsafe-inline'" in csp or "'unsafe-eval'" in csp:
        problems.append("unsafe-inline/unsafe-eval")
    findings.append(Finding("headers", "content-security-policy",
                            Verdict.FAIL if problems else Verdict.PASS,
                            f"missing/weak: {problems}" if problems else csp))
    return findings


def _hsts_finding(value: str | None, minimum_age: int) -> Finding:
    if value is None:
        return Finding("headers", "strict-transport-security", Verdict.FAIL, "missing")
    match = re.search(r"max-age\s*=\s*\"?(\d+)", value, re.IGNORECASE)
    age = int(match.group(1)) if match else 0
    ok = age >= minimum_age and "includesubdomains" in value.lower()
    return Finding("headers", "strict-transport-security", Verdict.PASS if ok else Verdict.FAIL,
                   value if ok else f"{value} (need max-age >= {minimum_age}; "
                                    "includeSubDomains)")


# DTLS-SRTP probes


def dtls_probes(profile: SecurityProfile) -> tuple[DtlsProbe, ...]:
    """The handshakes to try, each with what the audited profile says should happen."""
    from confnode.security.dtls import DTLS1_VERSION, keyable_srtp_profiles

    policy = profile.dtls_srtp
    keyable = keyable_srtp_profiles()
    probes = [
        DtlsProbe("baseline", "server"),
        DtlsProbe("DTLS 1.0 only", "server", cipher_list="DEFAULT:@SECLEVEL=0",
                  max_version=DTLS1_VERSION, should_accept=False),
    ]
    probes += [DtlsProbe(f"cipher {cipher}", "server", cipher_list=cipher,
                         should_accept=cipher in policy.cipher_suites)
               for cipher in DTLS_PROBE_CIPHERS]
    probes += [DtlsProbe(f"SRTP {name}", "server", srtp_profiles=name,
                         should_accept=name in policy.srtp_profiles and name in keyable)
               for name in DTLS_PROBE_SRTP]
    probes += [
        DtlsProbe("fingerprint sha-1 only", "server", fingerprints="sha-1-only",
                  should_accept="sha-1" in policy.fingerprint_algorithms),
        DtlsProbe("fingerprint of another certificate", "server",
                  fingerprints="wrong-sha-256", should_accept=False),
        DtlsProbe("node as client, AEAD server", "client"),
        DtlsProbe("node as client, CBC-only server", "client",
                  cipher_list="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",
                  should_accept=False),
        DtlsProbe("node as client, DTLS 1.0 server", "client", cipher_list="DEFAULT:@SECLEVEL=0",
                  max_version=DTLS1_VERSION, should_accept=False),
    ]
    return tuple(probes)


def dtls_findings(results: tuple[DtlsProbeResult, ...],
                  profile: SecurityProfile) -> list[Finding]:
    findings: list[Finding] = []
    for result in results:
        probe = result.probe
        mandatory = probe.name in (f"cipher {MANDATORY_DTLS_CIPHER}",
                                   f"SRTP {MANDATORY_SRTP_PROFILE}", "baseline",
                                   "node as client, AEAD server")
        if not result.ran:
            verdict = Verdict.FAIL  # inconclusive is not compliant
        elif result.accepted == probe.should_accept:
            verdict = Verdict.PASS
        elif result.accepted or mandatory:
            verdict = Verdict.FAIL  # something weak was accepted, or interop is broken
        else:
            verdict = Verdict.INFO  # the node is stricter than the audited profile
        state = "accepted" if result.accepted else "refused"
        expected = "accept" if probe.should_accept else "refuse"
        findings.append(Finding("dtls-srtp", probe.name, verdict,
                                f"{state} ({expected} expected under {profile.name}); "
                                f"{result.detail}"))
    return findings


class _ProbeObserver:
    """Records what the probing side saw of one handshake (pyOpenSSL info callback)."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.version: str | None = None
        self.cipher: str | None = None
        self.srtp: str | None = None
        self.alert: str | None = None

    def __call__(self, connection: Any, where: int, ret: int) -> None:
        from OpenSSL import SSL

        if where & SSL.SSL_CB_HANDSHAKE_DONE:
            self.version = connection.get_protocol_version_name()
            self.cipher = connection.get_cipher_name()
            self.srtp = connection.get_selected_srtp_profile().decode("ascii") or None
            self.done.set()
        elif where & SSL.SSL_CB_ALERT and self.alert is None:
            direction = "received" if where & SSL.SSL_CB_READ else "sent"
            self.alert = f"alert {ret & 0xFF} {direction}"
            if ret >> 8 == 2:  # fatal
                self.done.set()


def _probe_certificate(probe: DtlsProbe, observer: _ProbeObserver) -> Any:
    """An aiortc certificate whose DTLS context is the probe's, not aiortc's or the node's."""
    from aiortc.rtcdtlstransport import RTCCertificate
    from OpenSSL import SSL

    class ProbeCertificate(RTCCertificate):
        def _create_ssl_context(self, srtp_profiles: list[Any]) -> SSL.Context:
            context = SSL.Context(SSL.DTLS_METHOD)
            context.set_options(SSL.OP_NO_TICKET)
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                               lambda *args: True)
            context.use_certificate(self._cert)
            context.use_privatekey(self._key)
            if probe.max_version is not None:
                context.set_max_proto_version(probe.max_version)
            context.set_cipher_list(probe.cipher_list.encode("ascii"))
            context.set_tlsext_use_srtp(probe.srtp_profiles.encode("ascii"))
            context.set_info_callback(observer)
            return context

    generated = RTCCertificate.generateCertificate()
    return ProbeCertificate(key=generated._key, cert=generated._cert)


def _offer_for(probe: DtlsProbe, sdp: str, certificate: Any) -> str:
    """The probe's offer as sent: its DTLS role forced, its fingerprints as the probe says."""
    from aiortc.rtcdtlstransport import RTCCertificate
    from cryptography.hazmat.primitives import hashes

    setup = "active" if probe.node_role == "server" else "passive"
    sdp = sdp.replace("a=setup:actpass", f"a=setup:{setup}")
    if probe.fingerprints == "sha-256":
        return sdp
    if probe.fingerprints == "sha-1-only":
        algorithm, digest = "sha-1", certificate._cert.fingerprint(hashes.SHA1())  # noqa: S303
    else:  # a sha-256 fingerprint of some other certificate
        other = RTCCertificate.generateCertificate()._cert
        algorithm, digest = "sha-256", other.fingerprint(hashes.SHA256())
    text = digest.hex().upper()
    replacement = f"a=fingerprint:{algorithm} " + ":".join(
        text[i:i + 2] for i in range(0, len(text), 2))
    lines: list[str] = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=fingerprint:"):
            if replacement not in lines:
                lines.append(replacement)
            continue
        lines.append(line)
    return "\r\n".join(lines)


class _ProbeSession:
    """One instant meeting and one host participant through which every probe calls."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.admin = {"Authorization": f"Bearer {token}"}
        self.meeting_id: str | None = None
        self.alias = ""
        self.participant = ""
        self.session_token = ""
        self.guest_path: str | None = None

    async def open(self) -> None:
        booked = await self.http.post("/api/v1/meetings", headers=self.admin, json={
            "subject": "confnode audit", "meeting_type": "instant"})
        if booked.status_code != 201:
            raise RuntimeError(f"booking the probe room answered {booked.status_code}")
        booking = booked.json()
        self.meeting_id = booking["id"]
        self.alias = booking["host_link"].rstrip("/").rsplit("/", 1)[1]
        self.guest_path = urlsplit(booking["guest_link"]).path
        headers = {"pin": booking["host_pin"]} if booking.get("host_pin") else {}
        joined = await self.http.post(
            f"/api/client/v2/conferences/{self.alias}/request_token", headers=headers,
            json={"display_name": "confnode audit", "chosen_idp": "none",
                  "direct_media": True, "sso_token": "none"})
        if joined.status_code != 200:
            raise RuntimeError(f"joining the probe room answered {joined.status_code}")
        result = joined.json()["result"]
        self.participant, self.session_token = result["participant_uuid"], result["token"]

    @property
    def base(self) -> str:
        return f"/api/client/v2/conferences/{self.alias}/participants/{self.participant}/calls"

    async def call(self, sdp: str) -> tuple[str, str] | int:
        """(call id, answer), or the status code the node refused the offer with."""
        for _ in range(int(PROBE_TIMEOUT / 0.1)):
            response = await self.http.post(self.base, headers={"token": self.session_token},
                                            json={"call_type": "WEBRTC", "sdp": sdp,
                                                  "media_type": "audio"})
            # The previous probe's call may still be tearing down after its failure; the
            # client API answers that with 403 "already has a call" (Pexip maps conflicts so).
            if response.status_code != 403 or "already has a call" not in response.text:
                break
            await asyncio.sleep(0.1)
        if response.status_code != 200:
            return response.status_code
        result = response.json()["result"]
        return result["call_uuid"], result["sdp"]

    async def call_alive(self, call_id: str) -> bool:
        response = await self.http.post(f"{self.base}/{call_id}/ack",
                                        headers={"token": self.session_token}, json={})
        return response.status_code == 200

    async def hang_up(self, call_id: str) -> None:
        """Disconnect, then wait until the node no longer knows the call."""
        with contextlib.suppress(httpx.HTTPError):
            await self.http.post(f"{self.base}/{call_id}/disconnect",
                                 headers={"token": self.session_token}, json={})
            for _ in range(int(PROBE_TIMEOUT / 0.1)):
                if not await self.call_alive(call_id):
                    return
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            if self.session_token:
                await self.http.post(
                    f"/api/client/v2/conferences/{self.alias}/release_token",
                    headers={"token": self.session_token}, json={})
            if self.meeting_id:
                await self.http.post(f"/api/v1/meetings/{self.meeting_id}/end",
                                     headers=self.admin)


async def run_dtls_probes(session: _ProbeSession,
                          probes: tuple[DtlsProbe, ...]) -> tuple[DtlsProbeResult, ...]:
    from confnode.transport.webrtc.ice import offer_loopback_candidates

    # The node usually listens on loopback; the probing peer must offer a candidate there too.
    offer_loopback_candidates(True)
    results = []
    for probe in probes:
        results.append(await _run_probe(session, probe))
    return tuple(results)


async def _run_probe(session: _ProbeSession, probe: DtlsProbe) -> DtlsProbeResult:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    observer = _ProbeObserver()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    certificate = _probe_certificate(probe, observer)
    # aiortc keeps its certificates in a private list read when a transport is created.
    pc._RTCPeerConnection__certificates = [certificate]  # type: ignore[attr-defined]
    call_id: str | None = None
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        offer = _offer_for(probe, pc.localDescription.sdp, certificate)
        answered = await session.call(offer)
        if isinstance(answered, int):
            return DtlsProbeResult(probe, False, None, None, None,
                                   f"the probe could not run: the offer got HTTP {answered}",
                                   ran=False)
        call_id, answer = answered
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(observer.done.wait(), PROBE_TIMEOUT)
        handshake = observer.version is not None
        alive = False
        if handshake:
            await asyncio.sleep(SETTLE_SECONDS)
            alive = await session.call_alive(call_id)
        accepted = handshake and observer.srtp is not None and alive
        detail = ", ".join(x for x in (observer.version, observer.cipher, observer.srtp,
                                       observer.alert) if x) or "no handshake"
        if handshake and not alive:
            detail += "; the node ended the call"
        return DtlsProbeResult(probe, accepted, observer.version, observer.cipher,
                               observer.srtp, detail)
    finally:
        if call_id is not None:
            await session.hang_up(call_id)
        with contextlib.suppress(Exception):
            await pc.close()


# The audit


def _target(settings: Settings, url: str | None, token: str | None) -> _Target:
    http = settings.http
    if url is None:
        host = http.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
            host = "127.0.0.1"
        bracketed = f"[{host}]" if ":" in host else host
        url = f"{'https' if http.tls else 'http'}://{bracketed}:{http.port}"
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    cafile = http.cert_file or settings.data_dir / "tls" / "node-cert.pem"
    if token is None:
        token_file = settings.data_dir / "admin-token"
        token = token_file.read_text().strip() if token_file.exists() else None
    verify: bool | ssl.SSLContext = True
    if tls and cafile.is_file():
        verify = ssl.create_default_context(cafile=str(cafile))
    return _Target(url=url.rstrip("/"), host=parts.hostname or "127.0.0.1",
                   port=parts.port or (443 if tls else 80), tls=tls,
                   cafile=cafile if cafile.is_file() else None, token=token, verify=verify)


async def run_audit(settings: Settings, now: datetime, *, profile: str | None = None,
                    url: str | None = None, token: str | None = None,
                    media_probes: bool = True) -> AuditReport:
    """Audit the node ``settings`` describe, running at ``url`` (default: from the settings)."""
    node_profile = get_profile(settings.security_profile)
    audited = get_profile(profile) if profile else node_profile
    compliance_text = compliance_profile_text(audited)
    compliance = json.loads(compliance_text)
    target = _target(settings, url, token)
    configured = listeners(settings, node_profile)
    findings = configuration_findings(configured, audited) + plaintext_sip_findings(settings)
    if audited.name is not node_profile.name:
        findings.append(Finding("configuration", "profile", Verdict.INFO,
                                f"node runs {node_profile.name}; audited against "
                                f"{audited.name}"))

    facts: CertificateFacts | None = None
    if target.tls and target.cafile is not None:
        facts = certificate_facts(target.cafile, now)
        findings += certificate_findings(target.cafile, facts, compliance, now)
    elif target.tls:
        findings.append(Finding("certificate", "file", Verdict.SKIPPED,
                                "no certificate file found in the settings or data directory"))

    async with httpx.AsyncClient(base_url=target.url, verify=target.verify,
                                 timeout=PROBE_TIMEOUT) as http:
        try:
            await http.get("/healthz")
        except httpx.HTTPError as exc:
            findings.append(Finding("node", "reachable", Verdict.FAIL,
                                    f"{target.url}: {type(exc).__name__}"))
            return _report(target, node_profile, audited, now, configured, facts, findings, ())
        if target.tls:
            findings += await asyncio.to_thread(sslyze_findings, target.host, target.port,
                                                compliance_text, target.cafile)
        else:
            findings.append(Finding("https", "sslyze", Verdict.SKIPPED,
                                    "the node serves plain HTTP"))
        session = _ProbeSession(http, target.token) if target.token else None
        results: tuple[DtlsProbeResult, ...] = ()
        try:
            if session is not None:
                await session.open()
            findings += await header_findings(http, audited, compliance,
                                              session.guest_path if session else None,
                                              target.tls)
            if session is None:
                findings.append(Finding("dtls-srtp", "probes", Verdict.SKIPPED,
                                        "no admin API token (--token, or the data directory)"))
            elif not media_probes:
                findings.append(Finding("dtls-srtp", "probes", Verdict.SKIPPED,
                                        "skipped on request (--no-media-probes)"))
            else:
                results = await run_dtls_probes(session, dtls_probes(audited))
                findings += dtls_findings(results, audited)
        except RuntimeError as exc:
            findings.append(Finding("dtls-srtp", "probes", Verdict.FAIL, str(exc)))
        finally:
            if session is not None:
                await session.close()
    for listener in configured:
        if listener.kind is ListenerKind.SIP_TLS and listener.configured:
            findings += await _sip_tls_findings(listener, audited, target.cafile)
        elif listener.kind is ListenerKind.QUIC and listener.configured:
            findings.append(Finding("quic", "probe", Verdict.SKIPPED,
                                    "no probe for node links yet"))
    return _report(target, node_profile, audited, now, configured, facts, findings, results)


async def _sip_tls_findings(listener: ListenerReport, audited: SecurityProfile,
                            cafile: Path | None) -> list[Finding]:
    """sslyze against the SIP-TLS port, with the TLS 1.2-capable profile SIP-TLS follows."""
    host, _, port = listener.address.rpartition(":")
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if not port.isdigit() or int(port) == 0:
        return [Finding("sip-tls", "sslyze", Verdict.SKIPPED, "no fixed port to probe")]
    return await asyncio.to_thread(
        sslyze_findings, host.strip("[]"), int(port),
        compliance_profile_text(audited, ListenerKind.SIP_TLS), cafile, "sip-tls")


def _report(target: _Target, node_profile: SecurityProfile, audited: SecurityProfile,
            now: datetime, configured: tuple[ListenerReport, ...],
            facts: CertificateFacts | None, findings: list[Finding],
            results: tuple[DtlsProbeResult, ...]) -> AuditReport:
    return AuditReport(node_url=target.url, node_profile=node_profile.name,
                       audited_profile=audited.name, reference=audited.reference,
                       generated_at=now, listeners=configured, certificate=facts,
                       findings=tuple(findings), dtls_probes=results)
