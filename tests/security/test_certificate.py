"""The embedded default certificate: ECDSA P-256, SHA-256, <= 90 days, right SANs, renewed."""

from __future__ import annotations

import hashlib
import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from confnode.security.certificate import (
    CertificateInfo,
    describe_certificate,
    ensure_self_signed,
)

NOW = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
HOSTS = ["node.example", "192.0.2.10", "[2001:db8::1]"]


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"


def _load(cert_path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


def test_generates_an_ecdsa_p256_sha256_certificate(paths: tuple[Path, Path]) -> None:
    cert_path, key_path = paths
    info = ensure_self_signed(cert_path, key_path, HOSTS, NOW)
    certificate = _load(cert_path)
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    assert info.key_type == "EC P-256"
    assert info.subject == "CN=node.example"
    # Self-signed: issuer is subject and the signature verifies with its own key.
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_lifetime_is_validity_backdated_for_clock_skew(paths: tuple[Path, Path]) -> None:
    info = ensure_self_signed(*paths, HOSTS, NOW)
    assert info.not_before == datetime(2026, 11, 22, 9, 55, 0, tzinfo=UTC)
    assert info.not_after - info.not_before == timedelta(days=90)
    # Shortening the lifetime replaces a certificate that lives longer than allowed now.
    short = ensure_self_signed(*paths, HOSTS, NOW, validity=timedelta(days=30),
                               renew_before=timedelta(days=1))
    assert short.sha256_fingerprint != info.sha256_fingerprint
    assert short.not_after - short.not_before == timedelta(days=30)


def test_sans_hold_dns_names_and_ip_addresses_plus_loopback(paths: tuple[Path, Path]) -> None:
    info = ensure_self_signed(*paths, HOSTS, NOW)
    assert info.sans == ("DNS:localhost", "IP:127.0.0.1", "IP:::1", "DNS:node.example",
                         "IP:192.0.2.10", "IP:2001:db8::1")
    san = _load(paths[0]).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"),
        ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node.example"]


def test_no_hostnames_still_covers_loopback(paths: tuple[Path, Path]) -> None:
    info = ensure_self_signed(*paths, [], NOW)
    assert info.sans == ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
    assert info.subject == "CN=localhost"


def test_international_names_are_stored_as_punycode(paths: tuple[Path, Path]) -> None:
    info = ensure_self_signed(*paths, ["lægehus.example"], NOW)
    assert "DNS:xn--lgehus-pua.example" in info.sans


def test_key_file_is_private_pkcs8_and_matches(paths: tuple[Path, Path]) -> None:
    cert_path, key_path = paths
    ensure_self_signed(cert_path, key_path, HOSTS, NOW)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key() == _load(cert_path).public_key()
    assert sorted(p.name for p in cert_path.parent.iterdir()) == ["cert.pem", "key.pem"]


def test_reused_while_valid_and_for_the_same_names(paths: tuple[Path, Path]) -> None:
    first = ensure_self_signed(*paths, HOSTS, NOW)
    key_bytes = paths[1].read_bytes()
    later = NOW + timedelta(days=30)
    # Same names in another order, case and spelling are the same certificate.
    again = ensure_self_signed(*paths, ["NODE.EXAMPLE.", "[2001:db8::1]", "192.0.2.10",
                                        "localhost"], later)
    assert again == first
    assert paths[1].read_bytes() == key_bytes


def test_renewed_within_renew_before_of_expiry(paths: tuple[Path, Path]) -> None:
    first = ensure_self_signed(*paths, HOSTS, NOW)
    just_before = first.not_after - timedelta(days=14) - timedelta(seconds=1)
    assert ensure_self_signed(*paths, HOSTS, just_before) == first
    renewed = ensure_self_signed(*paths, HOSTS, first.not_after - timedelta(days=14))
    assert renewed.sha256_fingerprint != first.sha256_fingerprint
    assert renewed.not_before == (first.not_after - timedelta(days=14, minutes=5))
    assert describe_certificate(paths[0]) == renewed


def test_regenerated_when_the_names_change(paths: tuple[Path, Path]) -> None:
    first = ensure_self_signed(*paths, HOSTS, NOW)
    fewer = ensure_self_signed(*paths, ["node.example"], NOW)
    assert fewer.sha256_fingerprint != first.sha256_fingerprint
    assert "IP:192.0.2.10" not in fewer.sans
    more = ensure_self_signed(*paths, ["node.example", "other.example"], NOW)
    assert "DNS:other.example" in more.sans


def test_regenerated_when_the_key_does_not_match(paths: tuple[Path, Path]) -> None:
    first = ensure_self_signed(*paths, HOSTS, NOW)
    stranger = ec.generate_private_key(ec.SECP256R1())
    paths[1].write_bytes(stranger.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    again = ensure_self_signed(*paths, HOSTS, NOW)
    assert again.sha256_fingerprint != first.sha256_fingerprint
    key = serialization.load_pem_private_key(paths[1].read_bytes(), password=None)
    assert key.public_key() == _load(paths[0]).public_key()


def test_regenerated_when_files_are_damaged_or_missing(paths: tuple[Path, Path]) -> None:
    first = ensure_self_signed(*paths, HOSTS, NOW)
    paths[0].write_text("not a certificate")
    second = ensure_self_signed(*paths, HOSTS, NOW)
    assert second.sha256_fingerprint != first.sha256_fingerprint
    paths[1].unlink()
    third = ensure_self_signed(*paths, HOSTS, NOW)
    assert third.sha256_fingerprint != second.sha256_fingerprint


def test_regenerated_when_the_clock_is_before_not_before(paths: tuple[Path, Path]) -> None:
    first = ensure_self_signed(*paths, HOSTS, NOW)
    earlier = ensure_self_signed(*paths, HOSTS, NOW - timedelta(days=1))
    assert earlier.sha256_fingerprint != first.sha256_fingerprint
    assert earlier.not_before < NOW - timedelta(days=1)


def test_fingerprint_is_sha256_of_the_der_in_openssl_notation(paths: tuple[Path, Path]) -> None:
    info = ensure_self_signed(*paths, HOSTS, NOW)
    der = _load(paths[0]).public_bytes(serialization.Encoding.DER)
    expected = hashlib.sha256(der).hexdigest().upper()
    assert info.sha256_fingerprint.replace(":", "") == expected
    assert len(info.sha256_fingerprint) == 32 * 3 - 1


def test_describe_reports_other_key_types(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "p384.example")])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    path = tmp_path / "p384.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    info = describe_certificate(path)
    assert info == CertificateInfo(
        subject="CN=p384.example", key_type="EC P-384",
        not_before=NOW.replace(microsecond=0), not_after=(NOW + timedelta(days=1)).replace(
            microsecond=0),
        sans=(), sha256_fingerprint=info.sha256_fingerprint)


def test_info_is_frozen(paths: tuple[Path, Path]) -> None:
    info = ensure_self_signed(*paths, HOSTS, NOW)
    with pytest.raises(AttributeError):
        info.key_type = "RSA 1024"  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["", "  ", "a..b"])
def test_rejects_names_that_are_neither_host_nor_ip(paths: tuple[Path, Path], bad: str) -> None:
    with pytest.raises(ValueError):
        ensure_self_signed(*paths, [bad], NOW)


def test_naive_now_and_odd_renewal_are_refused(paths: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError):
        ensure_self_signed(*paths, HOSTS, datetime(2026, 11, 22, 10, 0))
    with pytest.raises(ValueError):
        ensure_self_signed(*paths, HOSTS, NOW, validity=timedelta(days=7),
                           renew_before=timedelta(days=14))
