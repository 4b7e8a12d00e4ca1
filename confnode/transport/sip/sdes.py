"""SDES: SRTP master keys carried in SDP ``a=crypto`` attributes (RFC 4568, RFC 7714 §14.2).

SDES puts the SRTP master key and salt in clear text inside the SDP, so the key is exactly as
secret as the SIP hop that carries it: confnode accepts SDES only over SIP/TLS (the negotiation
enforces that), and nothing in this module ever writes key material into a ``repr``, a ``str``
or an exception message. :meth:`CryptoAttribute.serialize` is the only way to get the key back
into text, and its result belongs in an SDP body, never in a log line.

Which suites are usable is decided by what pylibsrtp 1.0.0 can key and by policy
(REFERENCES §4): the AEAD suites of RFC 7714 first, then AES_CM_128_HMAC_SHA1_80. Refused:
the 32-bit tag suites (too short a tag for a call that may last an hour), F8 and NULL (no or
non-standard encryption), AES_192/256_CM (pylibsrtp exposes no profile for them, so the node
could not key the stream it had agreed to -- some SIP clients offer AES_256_CM first, and the
answer picks another offered suite instead), and any line whose session parameters switch off
encryption or authentication.

MKI is refused: pylibsrtp 1.0.0 offers no way to configure a master key identifier, and a peer
that sends MKI puts extra bytes in every SRTP packet that libsrtp (keyed without MKI) would read
as part of the authentication tag, so every packet would fail. A line with an MKI is therefore
unusable and the answerer skips it (RFC 4568 §7.1.2 lets the answerer pick any offered line it
supports). Since RFC 4568 allows several master keys on one line only together with MKIs,
lines with more than one key are unusable as well. A key lifetime, when given, must be at least
2^20 packets: the node does not rekey mid-call, and a lifetime below that would expire within
minutes of video.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from pylibsrtp import Policy

from confnode.errors import InvalidInput

REDACTED = "[redacted]"

#: The shortest key lifetime (in packets) a line may declare; see the module docstring.
MIN_LIFETIME = 2**20

RandomBytes = Callable[[int], bytes]


class SdesError(InvalidInput):
    """An ``a=crypto`` value that does not follow RFC 4568's grammar.

    The message names what was wrong, never the value itself (it may hold a key). A SIP answerer
    normally just skips such a line; if no usable line remains the offer gets 488.
    """

    code = "sdes_invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status = 488


class SdesSuite(StrEnum):
    """The SRTP crypto suites confnode accepts, in confnode's order of preference.

    Definition order *is* the preference order: the answerer walks this enum and takes the first
    suite that the offer also has, whatever order the offer lists them in.
    """

    AEAD_AES_256_GCM = "AEAD_AES_256_GCM"
    AEAD_AES_128_GCM = "AEAD_AES_128_GCM"
    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"

    @property
    def key_length(self) -> int:
        """Master key length in bytes (RFC 4568 §6.2.1, RFC 7714 §14.2)."""
        return 32 if self is SdesSuite.AEAD_AES_256_GCM else 16

    @property
    def salt_length(self) -> int:
        """Master salt length in bytes: 112 bits for AES-CM, 96 for AES-GCM (RFC 7714 §14.2)."""
        return 14 if self is SdesSuite.AES_CM_128_HMAC_SHA1_80 else 12

    @property
    def key_salt_length(self) -> int:
        """Length of the ``inline:`` value once decoded: key || salt."""
        return self.key_length + self.salt_length

    @property
    def srtp_profile(self) -> int:
        """The pylibsrtp ``Policy`` profile that keys this suite (key || salt is the policy key)."""
        match self:
            case SdesSuite.AEAD_AES_256_GCM:
                return Policy.SRTP_PROFILE_AEAD_AES_256_GCM
            case SdesSuite.AEAD_AES_128_GCM:
                return Policy.SRTP_PROFILE_AEAD_AES_128_GCM
            case SdesSuite.AES_CM_128_HMAC_SHA1_80:
                return Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        raise AssertionError(self)  # pragma: no cover - the match is exhaustive


#: Suites that are known and deliberately refused, with the reason (for the negotiation's log).
REFUSED_SUITES: MappingProxyType[str, str] = MappingProxyType({
    "AES_CM_128_HMAC_SHA1_32": "a 32-bit authentication tag is too short",
    "F8_128_HMAC_SHA1_80": "AES-f8 is not supported",
    "F8_128_HMAC_SHA1_32": "AES-f8 is not supported",
    "NULL_HMAC_SHA1_80": "the NULL cipher does not encrypt",
    "NULL_HMAC_SHA1_32": "the NULL cipher does not encrypt",
    "AES_192_CM_HMAC_SHA1_80": "pylibsrtp cannot key AES-192 counter mode",
    "AES_192_CM_HMAC_SHA1_32": "pylibsrtp cannot key AES-192 counter mode",
    "AES_256_CM_HMAC_SHA1_80": "pylibsrtp cannot key AES-256 counter mode",
    "AES_256_CM_HMAC_SHA1_32": "pylibsrtp cannot key AES-256 counter mode",
})

#: Session parameters that weaken SRTP; a line carrying any of them is refused (RFC 4568 §6.3).
REFUSED_SESSION_PARAMETERS = frozenset({
    "UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP",
})

_TAG = re.compile(r"[0-9]{1,9}")
_SUITE_NAME = re.compile(r"[A-Za-z0-9_]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LIFETIME = re.compile(r"(?:2\^([0-9]{1,2})|([0-9]{1,20}))")
_MKI = re.compile(r"([0-9]{1,39}):([0-9]{1,3})")
_SESSION_PARAMETER = re.compile(r"[\x21-\x7e]+")
_WSH = re.compile(r"WSH=[0-9]{1,9}")
_KDR = re.compile(r"KDR=([0-9]{1,2})")
_FEC_ORDER = re.compile(r"FEC_ORDER=(?:FEC_SRTP|SRTP_FEC)")


def suite_refusal(suite: str) -> str | None:
    """Why confnode will not use ``suite``, or ``None`` if it is an :class:`SdesSuite`."""
    if suite in SdesSuite.__members__:
        return None
    if suite in REFUSED_SUITES:
        return REFUSED_SUITES[suite]
    if suite.startswith("NULL_"):
        return "the NULL cipher does not encrypt"
    return "unknown crypto suite"


def generate_key(suite: SdesSuite, random_bytes: RandomBytes = secrets.token_bytes) -> bytes:
    """Fresh key || salt for ``suite`` from a CSPRNG (``random_bytes`` is a seam for tests)."""
    key = random_bytes(suite.key_salt_length)
    if len(key) != suite.key_salt_length:
        raise ValueError("random_bytes returned the wrong number of bytes")
    return key


@dataclass(frozen=True, slots=True)
class Mki:
    """A master key identifier (RFC 4568 §6.1): its value and its length in bytes on the wire."""

    value: int
    length: int


@dataclass(frozen=True, slots=True, repr=False)
class KeyParam:
    """One ``inline:<key||salt>[|lifetime][|MKI:length]`` key parameter."""

    key_salt: bytes
    lifetime: int | None = None
    mki: Mki | None = None

    def __repr__(self) -> str:
        return (f"KeyParam(key_salt={REDACTED} ({len(self.key_salt)} bytes), "
                f"lifetime={self.lifetime!r}, mki={self.mki!r})")

    def serialize(self) -> str:
        """The wire form -- it contains the key: for SDP bodies only."""
        text = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            exponent = self.lifetime.bit_length() - 1
            is_power = self.lifetime > 0 and self.lifetime == 1 << exponent
            text += f"|2^{exponent}" if is_power else f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki.value}:{self.mki.length}"
        return text

    @classmethod
    def parse(cls, text: str) -> KeyParam:
        method, colon, info = text.partition(":")
        if not colon or method.lower() != "inline":
            raise SdesError("crypto attribute: only the 'inline' key method is defined for SRTP")
        parts = info.split("|")
        if len(parts) > 3:
            raise SdesError("crypto attribute: too many '|' fields in a key parameter")
        key_salt = _decode_key(parts[0])
        lifetime: int | None = None
        mki: Mki | None = None
        for part in parts[1:]:
            # The lifetime and the MKI are both optional; only the MKI contains a colon.
            if ":" in part:
                if mki is not None:
                    raise SdesError("crypto attribute: more than one MKI in a key parameter")
                match = _MKI.fullmatch(part)
                if match is None or not 1 <= int(match[2]) <= 128:
                    raise SdesError("crypto attribute: malformed MKI")
                mki = Mki(int(match[1]), int(match[2]))
            else:
                if lifetime is not None or mki is not None:
                    raise SdesError("crypto attribute: misplaced key lifetime")
                match = _LIFETIME.fullmatch(part)
                if match is None:
                    raise SdesError("crypto attribute: malformed key lifetime")
                lifetime = 2 ** int(match[1]) if match[1] is not None else int(match[2])
        return cls(key_salt, lifetime, mki)


def _decode_key(text: str) -> bytes:
    # RFC 4568 asks for padded base64; some stacks drop the padding, which is unambiguous to add.
    if not _BASE64.fullmatch(text):
        raise SdesError("crypto attribute: key is not base64")
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise SdesError("crypto attribute: key is not base64") from None
    if not key:
        raise SdesError("crypto attribute: empty key")
    return key


@dataclass(frozen=True, slots=True, repr=False)
class CryptoAttribute:
    """The value of one ``a=crypto`` attribute: ``<tag> <suite> <key-params> [session-params]``.

    ``suite`` stays a string so unknown and refused suites parse too: the answerer must be able
    to see a line to skip it. :attr:`sdes_suite` and :meth:`refusal` say whether it is usable.
    """

    tag: int
    suite: str
    key_params: tuple[KeyParam, ...]
    session_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= 999_999_999:
            raise SdesError("crypto attribute: tag out of range")
        if not _SUITE_NAME.fullmatch(self.suite):
            raise SdesError("crypto attribute: malformed crypto suite name")
        if not self.key_params:
            raise SdesError("crypto attribute: no key parameter")
        suite = self.sdes_suite
        if suite is not None and any(len(k.key_salt) != suite.key_salt_length
                                     for k in self.key_params):
            raise SdesError(f"crypto attribute: key length does not match {suite.value}")
        for parameter in self.session_params:
            if not _SESSION_PARAMETER.fullmatch(parameter):
                raise SdesError("crypto attribute: malformed session parameter")

    def __repr__(self) -> str:
        return (f"CryptoAttribute(tag={self.tag}, suite={self.suite!r}, "
                f"key_params={self.key_params!r}, session_params={self.session_params!r})")

    @classmethod
    def generate(cls, tag: int, suite: SdesSuite,
                 random_bytes: RandomBytes = secrets.token_bytes) -> CryptoAttribute:
        """A line with a fresh key, no lifetime (the SRTP maximum) and no MKI."""
        return cls(tag, suite.value, (KeyParam(generate_key(suite, random_bytes)),))

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the text after ``a=crypto:``; raise :class:`SdesError` (without the value)."""
        fields = value.split()
        if len(fields) < 3:
            raise SdesError("crypto attribute: expected '<tag> <suite> <key-params>'")
        tag_text, suite, key_text, *session_params = fields
        if not _TAG.fullmatch(tag_text):
            raise SdesError("crypto attribute: malformed tag")
        key_params = tuple(KeyParam.parse(part) for part in key_text.split(";"))
        return cls(int(tag_text), suite, key_params, tuple(session_params))

    def serialize(self) -> str:
        """The attribute value -- it contains the key: for SDP bodies only, never for logs."""
        keys = ";".join(k.serialize() for k in self.key_params)
        return " ".join((str(self.tag), self.suite, keys, *self.session_params))

    @property
    def sdes_suite(self) -> SdesSuite | None:
        """The suite as an :class:`SdesSuite`, or ``None`` if confnode does not accept it."""
        return SdesSuite.__members__.get(self.suite)

    @property
    def key_salt(self) -> bytes:
        """The (first) master key || salt -- exactly what a pylibsrtp ``Policy`` takes as key."""
        return self.key_params[0].key_salt

    def refusal(self) -> str | None:
        """Why this line cannot be used, or ``None`` if the node can answer with it."""
        refused = suite_refusal(self.suite)
        if refused is not None:
            return refused
        if len(self.key_params) > 1:
            return "several master keys (needs MKI) are not supported"
        key = self.key_params[0]
        if key.mki is not None:
            return "MKI is not supported"
        if key.lifetime is not None and key.lifetime < MIN_LIFETIME:
            return "key lifetime is shorter than 2^20 packets"
        for parameter in self.session_params:
            refused = _session_parameter_refusal(parameter)
            if refused is not None:
                return refused
        return None


def _session_parameter_refusal(parameter: str) -> str | None:
    if parameter in REFUSED_SESSION_PARAMETERS:
        return f"session parameter {parameter} weakens SRTP"
    kdr = _KDR.fullmatch(parameter)
    if kdr is not None:
        # libsrtp derives session keys once; a key derivation rate other than "never" cannot
        # be honoured. KDR=0 is not in RFC 4568's range but some stacks send it for "default".
        return None if int(kdr[1]) == 0 else "a key derivation rate is not supported"
    if _WSH.fullmatch(parameter) or _FEC_ORDER.fullmatch(parameter):
        return None  # A replay window hint and the FEC order do not change the keying.
    if parameter.startswith("FEC_KEY="):
        return "separate FEC keys are not supported"
    if parameter.startswith("-"):
        return None  # RFC 4568 §6.3.7: a dash marks an optional extension, which may be ignored.
    return "unknown mandatory session parameter"  # RFC 4568 §6.3.7: the line is invalid.


def parse_crypto_lines(values: Iterable[str]) -> tuple[CryptoAttribute, ...]:
    """Parse ``a=crypto`` values, dropping malformed ones (an answerer skips what it can't read)."""
    parsed: list[CryptoAttribute] = []
    for value in values:
        try:
            parsed.append(CryptoAttribute.parse(value))
        except SdesError:
            continue
    return tuple(parsed)


def choose_crypto(offered: Iterable[CryptoAttribute],
                  preference: Sequence[SdesSuite] = tuple(SdesSuite)) -> CryptoAttribute | None:
    """The offered line to answer: best suite by *our* ``preference``, first line among equals.

    Follows the server's order, as WebRTC's DTLS-SRTP does (REFERENCES §4), rather than the
    offerer's: a client listing AES_CM_128_HMAC_SHA1_80 before AEAD_AES_256_GCM still gets GCM.
    """
    usable = [line for line in offered if line.refusal() is None]
    for suite in preference:
        for line in usable:
            if line.sdes_suite is suite:
                return line
    return None


def answer_crypto(chosen: CryptoAttribute, key_salt: bytes) -> CryptoAttribute:
    """Our answer line: the offer's tag and suite (RFC 4568 §7.1.2), our key, no lifetime/MKI."""
    return CryptoAttribute(chosen.tag, chosen.suite, (KeyParam(key_salt),))
