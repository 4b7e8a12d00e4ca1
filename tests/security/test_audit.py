"""``confnode audit`` and the sslyze check behind it, against real listeners.

The node runs as a child process (``confnode serve``), its HTTPS listener built from the
profile. Negative controls -- a listener with OpenSSL's default groups, one with TLS 1.0, a node
whose groups are not restricted and whose aiortc DTLS is not hardened -- prove every check can
fail. sslyze is required: under CI=true its absence fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from nodeprocess import NodeProcess, free_port

from confnode.config import Settings
from confnode.security.audit import (
    DtlsProbe,
    DtlsProbeResult,
    Finding,
    ListenerReport,
    Verdict,
    _hsts_finding,
    certificate_facts,
    certificate_findings,
    configuration_findings,
    dtls_findings,
    listeners,
    plaintext_sip_findings,
    sslyze_findings,
)
from confnode.security.audit_report import render_markdown
from confnode.security.certificate import ensure_self_signed
from confnode.security.profiles import ListenerKind, compliance_profile_text, get_profile

pytestmark = pytest.mark.subprocess

# The node as `confnode serve` runs it once integrated: aiortc's DTLS hardened to the node's
# profile (the node does this at start; repeating it is harmless) and the SIP-TLS listener built
# from the profile like the HTTPS one.
HARDENED_SERVE = """
import os
from pathlib import Path
from confnode.security.dtls import harden_aiortc_dtls
from confnode.security.profiles import ListenerKind, get_profile, server_context
import confnode.transport.sip.listener as sip
profile = get_profile(os.environ.get("CONFNODE_SECURITY_PROFILE", "modern"))
harden_aiortc_dtls(profile)
sip.sip_tls_context = lambda cert, key: server_context(profile, ListenerKind.SIP_TLS,
                                                       Path(cert), Path(key))
from confnode.cli import main
raise SystemExit(main(["serve"]))
"""
# Negative control: key-exchange groups left at OpenSSL's defaults (secp521r1, X448, ffdhe...)
# and aiortc's DTLS left as aiortc ships it (two CBC suites).
WEAK_SERVE = """
import confnode.security.profiles as profiles, confnode.security.dtls as dtls
profiles.restrict_key_exchange_groups = lambda context, groups: groups
dtls.harden_aiortc_dtls = lambda profile: None
from confnode.cli import main
raise SystemExit(main(["serve"]))
"""


def require_sslyze() -> None:
    try:
        import sslyze  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("sslyze is not installed: pip install -e '.[test]'")
        pytest.skip("sslyze is not installed")


def node_process(directory: Path, program: str, **env: str) -> Iterator[NodeProcess]:
    # Each node its own SIP-TLS port: the default 5061 may be taken (another node, a test).
    node = NodeProcess(directory, command=[sys.executable, "-c", program],
                       CONFNODE_SIP__PORT=str(free_port()), **env)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    yield from node_process(tmp_path_factory.mktemp("audited") / "node", HARDENED_SERVE)


@pytest.fixture(scope="module")
def weak_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    yield from node_process(tmp_path_factory.mktemp("weak") / "node", WEAK_SERVE)


def audit(node: NodeProcess, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confnode.cli", "audit", "--data-dir", str(node.data_dir),
         "--url", node.url, *arguments],
        capture_output=True, text=True, env=node.env, timeout=240, check=False)


# sslyze's compliance check, straight


def test_sslyze_finds_no_compliance_issue_on_the_modern_node(node: NodeProcess) -> None:
    require_sslyze()
    findings = sslyze_findings("127.0.0.1", node.port,
                               compliance_profile_text(get_profile("modern")), Path(node.cert))
    failed = [f for f in findings if f.verdict is Verdict.FAIL]
    assert failed == []
    assert Finding("https", "compliance", Verdict.PASS,
                   "0 issues from sslyze's compliance checker") in findings
    assert Finding("https", "0-rtt", Verdict.PASS, "no early data") in findings


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("control")
    cert, key = directory / "cert.pem", directory / "key.pem"
    ensure_self_signed(cert, key, ["localhost"], datetime.now(UTC))
    return cert, key


@contextmanager
def tls_listener(context: ssl.SSLContext) -> Iterator[int]:
    """Serve TLS (a bare HTTP 200) on 127.0.0.1 to as many connections as sslyze opens."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def handle(connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (ssl.SSLError, OSError):
            connection.close()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


def test_control_a_listener_with_default_groups_is_not_compliant(
        certificate: tuple[Path, Path]) -> None:
    require_sslyze()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # modern in every other respect
    context.load_cert_chain(*certificate)
    with tls_listener(context) as port:
        findings = sslyze_findings("127.0.0.1", port,
                                   compliance_profile_text(get_profile("modern")), certificate[0])
    curves = [f for f in findings if f.check == "tls_curves"]
    assert len(curves) == 1 and curves[0].verdict is Verdict.FAIL
    assert "secp521r1" in curves[0].detail and "X448" in curves[0].detail
    assert not any(f.check == "compliance" for f in findings)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_control_a_listener_with_tls10_is_not_compliant(certificate: tuple[Path, Path]) -> None:
    require_sslyze()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 needs level 0 to speak TLS 1.0
    context.load_cert_chain(*certificate)
    with tls_listener(context) as port:
        findings = sslyze_findings("127.0.0.1", port,
                                   compliance_profile_text(get_profile("intermediate")),
                                   certificate[0])
    versions = [f for f in findings if f.check == "tls_versions"]
    assert len(versions) == 1 and versions[0].verdict is Verdict.FAIL
    assert "TLSv1'" in versions[0].detail or "TLSv1}" in versions[0].detail


# confnode audit


def test_audit_of_a_default_node_passes_and_lists_every_listener(node: NodeProcess,
                                                                 tmp_path: Path) -> None:
    require_sslyze()
    markdown = tmp_path / "audit.md"
    result = audit(node, "--json", "--markdown", str(markdown))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["compliant"] is True and report["deviations"] == 0
    assert [x["kind"] for x in report["listeners"]] == ["https", "sip-tls", "dtls-srtp", "quic"]
    https = report["listeners"][0]
    assert https["address"] == f"127.0.0.1:{node.port}"
    assert https["versions"] == ["TLSv1.3"]
    sip = report["listeners"][1]
    assert sip["configured"] is True and sip["versions"] == ["TLSv1.2", "TLSv1.3"]
    assert report["certificate"]["key_type"] == "EC P-256"
    assert report["certificate"]["signature_algorithm"] == "ecdsa-with-SHA256"
    checks = {f"{f['area']}.{f['check']}": f["verdict"] for f in report["findings"]}
    assert checks["https.compliance"] == "pass"
    assert checks["sip-tls.compliance"] == "pass"
    assert checks["headers.strict-transport-security"] == "pass"
    assert checks["headers.content-security-policy"] == "pass"
    assert checks["dtls-srtp.cipher ECDHE-ECDSA-AES128-SHA"] == "pass"  # refused, as it must be
    probes = {p["probe"]["name"]: p for p in report["dtls_probes"]}
    assert probes["baseline"]["accepted"] is True
    assert probes["baseline"]["srtp_profile"] == "SRTP_AEAD_AES_256_GCM"
    assert probes["DTLS 1.0 only"]["accepted"] is False
    assert probes["fingerprint sha-1 only"]["accepted"] is False
    text = markdown.read_text()
    assert "**Compliant**: no deviations." in text
    for kind in ("### https", "### sip-tls", "### dtls-srtp", "### quic"):
        assert kind in text


def test_audit_against_another_profile_names_the_deviation(node: NodeProcess) -> None:
    require_sslyze()
    result = audit(node, "--profile", "bsi", "--no-media-probes")
    assert result.returncode == 1, result.stdout[-4000:]
    assert "[https]" in result.stdout and "[sip-tls]" in result.stdout
    assert "[dtls-srtp]" in result.stdout and "[quic]" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert any("https.ciphersuites" in line and "TLS_CHACHA20_POLY1305_SHA256" in line
               for line in failed), failed
    assert "NOT COMPLIANT" in result.stdout


def test_audit_of_the_negative_control_fails_and_names_each_deviation(
        weak_node: NodeProcess) -> None:
    require_sslyze()
    result = audit(weak_node)
    assert result.returncode == 1, result.stdout[-4000:]
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("FAIL")]
    curves = [line for line in failed if "https.tls_curves" in line]
    assert curves and "secp521r1" in curves[0]
    assert any("dtls-srtp.cipher ECDHE-ECDSA-AES128-SHA " in line and "accepted" in line
               for line in failed), failed
    assert any("node as client, CBC-only server" in line for line in failed), failed


def test_audit_of_an_unreachable_node_exits_3(tmp_path: Path) -> None:
    port = NodeProcess(tmp_path).port  # a free port nobody listens on
    result = subprocess.run(
        [sys.executable, "-m", "confnode.cli", "audit", "--data-dir", str(tmp_path),
         "--url", f"https://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3
    assert "node.reachable" in result.stdout


# The pieces, without a network


def test_configuration_of_an_intermediate_node_deviates_from_modern(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, security_profile="intermediate")
    configured = listeners(settings, get_profile("intermediate"))
    findings = {f.check: f for f in configuration_findings(configured, get_profile("modern"))}
    assert findings["https"].verdict is Verdict.FAIL
    assert "TLSv1.2" in findings["https"].detail
    assert findings["sip-tls"].verdict is Verdict.PASS  # TLS 1.2 AEAD under every profile
    assert findings["quic"].verdict is Verdict.SKIPPED
    assert findings["dtls-srtp"].verdict is Verdict.PASS
    same = configuration_findings(configured, get_profile("intermediate"))
    assert all(f.verdict is not Verdict.FAIL for f in same)


def test_a_plain_http_node_cannot_pass(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, http={"tls": False})
    configured = listeners(settings, get_profile("modern"))
    https = configuration_findings(configured, get_profile("modern"))[0]
    assert (https.check, https.verdict) == ("https", Verdict.FAIL)


def test_a_node_without_sip_tls_has_no_sip_tls_listener_to_audit(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sip={"tls": False, "udp": True})
    findings = {f.check: f for f in configuration_findings(
        listeners(settings, get_profile("modern")), get_profile("modern"))}
    assert findings["sip-tls"].verdict is Verdict.SKIPPED


def test_plain_sip_switches_are_reported_from_the_settings(tmp_path: Path) -> None:
    default = {f.check: f.verdict for f in plaintext_sip_findings(Settings(data_dir=tmp_path))}
    assert default == {"sip-tcp": Verdict.PASS, "sip-udp": Verdict.PASS,
                       "plain-rtp": Verdict.PASS}
    trusted = Settings(data_dir=tmp_path, sip={"udp": True, "allow_plain_rtp": True})
    findings = {f.check: f for f in plaintext_sip_findings(trusted)}
    assert findings["sip-udp"].verdict is Verdict.FAIL
    assert "5060" in findings["sip-udp"].detail
    assert findings["plain-rtp"].verdict is Verdict.FAIL
    assert findings["sip-tcp"].verdict is Verdict.PASS
    assert plaintext_sip_findings(Settings(data_dir=tmp_path, sip={"enabled": False})) == []


def test_dtls_verdicts() -> None:
    profile = get_profile("modern")

    def verdict(probe: DtlsProbe, accepted: bool, ran: bool = True) -> Verdict:
        result = DtlsProbeResult(probe, accepted, None, None, None, "", ran=ran)
        return dtls_findings((result,), profile)[0].verdict

    weak = DtlsProbe("cipher ECDHE-ECDSA-AES128-SHA", "server", should_accept=False)
    assert verdict(weak, accepted=False) is Verdict.PASS
    assert verdict(weak, accepted=True) is Verdict.FAIL
    mandatory = DtlsProbe("cipher ECDHE-ECDSA-AES128-GCM-SHA256", "server")
    assert verdict(mandatory, accepted=False) is Verdict.FAIL  # RFC 8827 interop broken
    optional = DtlsProbe("cipher ECDHE-ECDSA-CHACHA20-POLY1305", "server")
    assert verdict(optional, accepted=False) is Verdict.INFO  # stricter than the profile
    assert verdict(optional, accepted=True, ran=False) is Verdict.FAIL  # inconclusive


def test_hsts_header_rules() -> None:
    assert _hsts_finding("max-age=63072000; includeSubDomains", 63072000).verdict \
        is Verdict.PASS
    assert _hsts_finding("max-age=31536000; includeSubDomains", 63072000).verdict \
        is Verdict.FAIL
    assert _hsts_finding("max-age=63072000", 63072000).verdict is Verdict.FAIL
    assert _hsts_finding(None, 63072000).verdict is Verdict.FAIL


def test_a_weak_long_lived_rsa_certificate_fails(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example")])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(start).not_valid_after(start + timedelta(days=800))
                   .sign(key, hashes.SHA256()))
    path = tmp_path / "old.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    facts = certificate_facts(path, now)
    assert facts.key_type == "RSA 1024"
    assert facts.signature_algorithm == "sha256WithRSAEncryption"
    modern = json.loads(compliance_profile_text(get_profile("modern")))
    findings = {f.check: f.verdict for f in certificate_findings(path, facts, modern, now)}
    assert findings == {"rsa_key_size": Verdict.PASS, "key_type": Verdict.FAIL,
                        "signature": Verdict.FAIL, "lifetime": Verdict.FAIL,
                        "expiry": Verdict.PASS}
    intermediate = json.loads(compliance_profile_text(get_profile("intermediate")))
    findings = {f.check: f.verdict for f in certificate_findings(path, facts, intermediate,
                                                                 now + timedelta(days=400))}
    assert findings["rsa_key_size"] is Verdict.FAIL and findings["expiry"] is Verdict.FAIL


def test_markdown_lists_deviations_first() -> None:
    from confnode.security.audit import AuditReport

    report = AuditReport(
        node_url="https://127.0.0.1:8443", node_profile=get_profile("modern").name,
        audited_profile=get_profile("modern").name, reference="Mozilla/TLSRef guideline 6.0",
        generated_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        listeners=(ListenerReport(ListenerKind.SIP_TLS, "-", False,
                                  get_profile("modern").name, note="not configured"),),
        certificate=None,
        findings=(Finding("https", "tls_curves", Verdict.FAIL, "X448 | secp521r1"),
                  Finding("headers", "referrer-policy", Verdict.PASS, "no-referrer")))
    text = render_markdown(report)
    assert "**Not compliant**: 1 deviation(s)" in text
    deviations = text.index("## Deviations")
    assert deviations < text.index("## Listeners") < text.index("## All findings")
    assert "| FAIL | https | tls_curves | X448 \\| secp521r1 |" in text
    assert "| status | not configured |" in text
