"""Capability tokens, PIN digests and the node secret they are keyed with.

A meeting link *is* the permission to join (a capability URL), so its token must be unguessable:
the W3C TAG asks for at least 120 bits of randomness and OWASP ASVS 5.0 for at least 128, which
is our floor. The database keeps only digests, so a stolen database opens no room.

Tokens and PINs need different digests. A 128-bit token cannot be brute-forced, so a plain
SHA-256 is enough and lets the store look a token up by its digest. A PIN has 4-20 digits -- at
most 10^20 and usually 10^6 candidates -- so a plain hash of it would be reversed from a stolen
database in seconds. PINs are therefore digested with HMAC-SHA256 keyed by the node secret (a
"pepper" kept on disk beside, not inside, the database): without that file the digests reveal
nothing. The PIN digest has no per-room salt because the join path looks PINs up by comparing
digests; two rooms with equal PINs thus share a digest, which tells a thief nothing he could not
get by trying all PINs once he also has the pepper.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

MIN_TOKEN_BITS = 128
NODE_SECRET_BYTES = 32
# Pexip accepts PINs of 4-20 digits; the booking API and the room follow it.
MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 20

# Derives the PIN key from the node secret, so the same secret can key other things later
# (cookie signatures, node-to-node proofs) without a digest from one use verifying in another.
_PIN_KEY_LABEL = b"confnode/pin-digest/v1"


def new_token(bits: int = MIN_TOKEN_BITS) -> str:
    """A fresh capability token: ``bits`` of randomness, base64url without padding.

    128 bits give 22 characters -- short enough to survive practice systems that cut long
    messages, which truncated VDX links in the MedCom pilot.
    """
    if bits < MIN_TOKEN_BITS:
        raise ValueError(f"A capability token needs at least {MIN_TOKEN_BITS} bits, not {bits}.")
    raw = secrets.token_bytes((bits + 7) // 8)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def token_digest(token: str) -> str:
    """The hex SHA-256 the store keeps instead of the token (enough for high-entropy input)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    """Compare two digests in constant time, so response timing does not reveal a prefix."""
    # compare_digest refuses non-ASCII str; bytes work for any input a client can send.
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class PinHasher:
    """Digests PINs with HMAC-SHA256 under a key derived from the node secret (the pepper)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("The PIN pepper must be at least 16 bytes (the node secret is 32).")
        self._key = hmac.new(key, _PIN_KEY_LABEL, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "PinHasher(key=<hidden>)"

    def digest(self, pin: str) -> str:
        return hmac.new(self._key, pin.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, pin: str, digest: str) -> bool:
        """Whether ``pin`` has ``digest``, compared in constant time."""
        return digests_equal(self.digest(pin), digest)


def new_numeric_alias(digits: int = 10) -> str:
    """A random dial-in alias (Pexip's numeric alias) with no leading zero.

    No leading zero because phone keypads, SIP URIs and spreadsheets drop or mangle it. This is
    an address, not a capability (10 digits are ~33 bits): rooms reached by number need a PIN.
    """
    if digits < 1:
        raise ValueError("A numeric alias needs at least one digit.")
    first = str(1 + secrets.randbelow(9))
    return first + "".join(str(secrets.randbelow(10)) for _ in range(digits - 1))


def new_pin(length: int) -> str:
    """A random PIN of ``length`` digits; leading zeros are allowed (a PIN is a string)."""
    if not MIN_PIN_LENGTH <= length <= MAX_PIN_LENGTH:
        raise ValueError(f"A PIN has {MIN_PIN_LENGTH}-{MAX_PIN_LENGTH} digits, not {length}.")
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def load_or_create_node_secret(path: Path) -> bytes:
    """Read the node secret, creating it (32 random bytes, mode 0600) on the first start.

    Every PIN digest depends on this secret, so it must survive restarts and must never be
    silently replaced: a file of the wrong size is an error, not a reason to make a new one.
    Creation is atomic and race-free: the bytes go to a private temporary file that is then
    hard-linked into place, which fails if another process won the race -- in which case its
    secret is the one used. A reader never sees a half-written file.
    """
    try:
        return _read_node_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            # The umask can only remove bits from 0o600, but be exact about what we promise.
            os.fchmod(file.fileno(), 0o600)
            file.write(secrets.token_bytes(NODE_SECRET_BYTES))
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_node_secret(path)


def _read_node_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) != NODE_SECRET_BYTES:
        raise ValueError(
            f"The node secret {path} holds {len(secret)} bytes, not {NODE_SECRET_BYTES}; "
            "refusing to replace it because every stored PIN digest depends on it."
        )
    return secret
