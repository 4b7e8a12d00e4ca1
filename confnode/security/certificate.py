"""The self-signed certificate an embedded node serves until the operator configures a real one.

It follows the Mozilla/TLSRef *modern* certificate rules so a default install already passes
the TLS check: an ECDSA P-256 key, a SHA-256 signature and a lifetime of at most 90 days. Names
go in the subjectAltName extension (clients ignore the CN when SANs exist); IP literals must be
``iPAddress`` entries, because a verifier never matches an IP against a ``dNSName``. Loopback
names are always included so local clients (linphone, baresip, tests) can verify the node.

``ensure_self_signed`` is meant for paths the node owns (its data directory): whatever is there
that does not fit -- other names, another key type, a key that does not match, unreadable or
close to expiry -- is replaced. Point it at an operator's own certificate and it would be
overwritten; an operator's certificate is loaded, not ensured.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY = timedelta(days=90)
DEFAULT_RENEW_BEFORE = timedelta(days=14)
ALWAYS_INCLUDED_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

# Backdating notBefore lets clients whose clock runs a little behind accept a certificate made
# a moment ago; it is taken out of the lifetime so notAfter - notBefore never exceeds validity.
_CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)

_SubjectAltName = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class CertificateInfo:
    """What an operator (and ``confnode audit``) needs to know about a certificate."""

    subject: str  # RFC 4514 string, e.g. "CN=localhost"
    key_type: str  # "EC P-256", "EC P-384", "RSA 2048", "Ed25519"
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    sans: tuple[str, ...]  # "DNS:name" / "IP:address", in certificate order
    sha256_fingerprint: str  # "AB:CD:...", as `openssl x509 -fingerprint -sha256` prints it


def ensure_self_signed(
    cert_path: Path,
    key_path: Path,
    hostnames: Sequence[str],
    now: datetime,
    validity: timedelta = DEFAULT_VALIDITY,
    renew_before: timedelta = DEFAULT_RENEW_BEFORE,
) -> CertificateInfo:
    """Reuse the certificate at ``cert_path`` if it still fits, else generate a new one.

    It fits when it is an EC P-256 certificate for exactly ``hostnames`` plus the loopback
    names, its key file matches it, its lifetime is at most ``validity``, and ``now`` lies
    inside that lifetime but earlier than ``renew_before`` ahead of its expiry. A renewal
    keeps no old key: a fresh key each time.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC).")
    if validity <= renew_before:
        raise ValueError("validity must be longer than renew_before, or every start renews.")
    wanted = _subject_alt_names(hostnames)
    existing = _reusable(cert_path, key_path, wanted, now, validity, renew_before)
    if existing is not None:
        return existing
    return _generate(cert_path, key_path, hostnames, wanted, now, validity)


def describe_certificate(cert_path: Path) -> CertificateInfo:
    """Summarise the first certificate in a PEM file."""
    return _describe(x509.load_pem_x509_certificate(cert_path.read_bytes()))


def _subject_alt_names(hostnames: Sequence[str]) -> list[_SubjectAltName]:
    """Normalise names into SAN entries, loopback names first, duplicates dropped."""
    entries: list[_SubjectAltName] = []
    for name in (*ALWAYS_INCLUDED_NAMES, *hostnames):
        entry = _san_entry(name)
        if entry not in entries:
            entries.append(entry)
    return entries


def _san_entry(name: str) -> _SubjectAltName:
    text = name.strip()
    if text.startswith("[") and text.endswith("]"):  # "[::1]" as written in URLs
        text = text[1:-1]
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    text = text.rstrip(".").lower()
    if not text:
        raise ValueError(f"Not a host name or IP address: {name!r}")
    # dNSName is IA5String: internationalised names go in as their ASCII (punycode) form.
    return x509.DNSName(text.encode("idna").decode("ascii"))


def _reusable(cert_path: Path, key_path: Path, wanted: list[_SubjectAltName], now: datetime,
              validity: timedelta, renew_before: timedelta) -> CertificateInfo | None:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        # Missing, unreadable, encrypted or not PEM: nothing to reuse, make a new pair.
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        return None
    if key.public_key() != certificate.public_key():
        return None
    try:
        present = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    if set(present.value) != set(wanted):
        return None
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not_after - not_before > validity:  # e.g. the operator shortened the lifetime
        return None
    if not not_before <= now < not_after - renew_before:
        return None
    return _describe(certificate)


def _generate(cert_path: Path, key_path: Path, hostnames: Sequence[str],
              wanted: list[_SubjectAltName], now: datetime,
              validity: timedelta) -> CertificateInfo:
    key = ec.generate_private_key(ec.SECP256R1())
    # X.509 times have whole seconds; truncating keeps the returned info equal to the file's.
    not_before = now.astimezone(UTC).replace(microsecond=0) - _CLOCK_SKEW_ALLOWANCE
    common_name = _common_name(hostnames)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Key identifiers let strict verifiers (Python 3.13's VERIFY_X509_STRICT) accept it.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: if we stop between the two writes, the next start sees a key that does not
    # match the old certificate and generates a fresh pair instead of serving a mismatch.
    _write_atomically(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return _describe(certificate)


def _common_name(hostnames: Sequence[str]) -> str:
    """The first configured DNS name, else "localhost"; the CN is for humans only."""
    for name in hostnames:
        entry = _san_entry(name)
        if isinstance(entry, x509.DNSName) and len(entry.value) <= 64:  # ub-common-name
            return entry.value
    return "localhost"


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write via a private temporary file and rename, so no reader sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Created with its final mode: the private key is never readable by others, not even
    # between creation and chmod.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _describe(certificate: x509.Certificate) -> CertificateInfo:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(_format_san(entry) for entry in san)
    except x509.ExtensionNotFound:
        sans = ()
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        key_type=_key_type(certificate.public_key()),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sans=sans,
        sha256_fingerprint=":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2)),
    )


def _format_san(entry: x509.GeneralName) -> str:
    if isinstance(entry, x509.DNSName):
        return f"DNS:{entry.value}"
    if isinstance(entry, x509.IPAddress):
        return f"IP:{entry.value}"
    return f"{type(entry).__name__}:{entry.value}"


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _key_type(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(public_key.curve.name, public_key.curve.name)}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(public_key).__name__
