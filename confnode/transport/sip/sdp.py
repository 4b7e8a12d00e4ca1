"""The Session Description Protocol as a typed model (RFC 8866, which obsoletes RFC 4566).

:func:`parse_sdp` turns an SDP body into a frozen :class:`SessionDescription`;
:meth:`SessionDescription.serialize` writes one back with CRLF line ends in RFC 8866 order.
The parser is strict where a mistake would change meaning (line syntax, ``o=``/``c=``/``m=``
fields, payload type numbers, the attributes the negotiation reads) and tolerant where real
endpoints differ harmlessly: LF or CRLF line ends, trailing blanks, ``s=`` left empty, base64
padding, attributes it does not know (kept verbatim and in order, so an answerer or a B2BUA can
still see them).

Refusals raise :class:`SdpError`, whose ``status`` tells the SIP layer what to answer: 400 for a
body that is not SDP at all (broken syntax, missing mandatory lines), 488 for well-formed SDP
the node cannot use (another SDP version, a network type other than IN, an unknown line type --
RFC 8866 §5 says a parser must ignore or reject a description with a type letter it does not
understand, and ignoring half a description is worse than refusing it).

SDP bodies may carry SRTP keys (``a=crypto``, RFC 4568) and MIKEY blobs (``a=key-mgmt``), so
every ``repr`` here redacts them and no error message echoes a line's content -- only its
number and type letter. The obsolete ``k=`` line (RFC 8866 §5.12) could hold a key in clear;
it is dropped at parse time and never kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from confnode.errors import InvalidInput
from confnode.transport.sip.sdes import REDACTED, CryptoAttribute, parse_crypto_lines

CRLF = "\r\n"

#: RTP transport protocols (RFC 3551, RFC 4585, RFC 3711, RFC 5124, RFC 5764).
RTP_PROTOCOLS = frozenset({
    "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF",
})


class SdpError(InvalidInput):
    """An SDP body the node refuses; ``status`` is the SIP response (400 or 488) to send.

    ``line`` is the 1-based line number, when one line is to blame. The message never contains
    the line itself: SDP lines can hold SRTP keys.
    """

    code = "sdp_invalid"

    def __init__(self, message: str, *, status: int = 400, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(message + where, status=status, line=line)
        self.status = status
        self.line = line


class Direction(StrEnum):
    """Media direction attributes (RFC 3264 §5.1), seen from the side that wrote the SDP."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def mirrored(self) -> Direction:
        """The answer to this offered direction (RFC 3264 §6.1): what they send, we receive."""
        return Direction.of(sends=self.receives, receives=self.sends)


class Attribute(NamedTuple):
    """One ``a=`` line: ``a=name`` (value ``None``) or ``a=name:value`` (value may be empty)."""

    name: str
    value: str | None = None

    def __repr__(self) -> str:
        return f"Attribute(name={self.name!r}, value={redact_attribute(self.name, self.value)!r})"

    def serialize(self) -> str:
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


_INLINE_KEY = re.compile(r"(inline:)[^|;\s]*", re.IGNORECASE)


def redact_attribute(name: str, value: str | None) -> str | None:
    """An attribute value fit for logs: SDES ``inline:`` keys and MIKEY blobs replaced."""
    if value is None:
        return None
    lowered = name.lower()
    if lowered == "crypto":
        return _INLINE_KEY.sub(r"\g<1>" + REDACTED, value)
    if lowered == "key-mgmt":
        return REDACTED
    return value


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: int
    session_version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    def serialize(self) -> str:
        return (f"o={self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (TTL only for IPv4 multicast)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0``: the RFC 2543 way to put a call on hold (RFC 3264 §8.4); ``::`` likewise.

        Nothing can be sent to such an address, whatever the direction attribute says.
        """
        return self.address in ("0.0.0.0", "::")  # noqa: S104 - compared, not bound

    def serialize(self) -> str:
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.count is not None:
            address += f"/{self.count}"
        return f"c={self.nettype} {self.addrtype} {address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` -- AS and CT in kbit/s, TIAS in bit/s (RFC 3890)."""

    bwtype: str
    value: int

    def serialize(self) -> str:
        return f"b={self.bwtype}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` repeat lines kept verbatim. SIP uses ``t=0 0``."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def serialize_lines(self) -> list[str]:
        return [f"t={self.start} {self.stop}", *(f"r={r}" for r in self.repeats)]


class RtpMap(NamedTuple):
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``; channels default to 1."""

    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True, slots=True)
class RtcpAddress:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int
    address: str | None = None
    addrtype: str | None = None
    nettype: str | None = None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash function> <hex:hex:...>`` of a DTLS certificate (RFC 8122)."""

    algorithm: str
    value: str

    def serialize_value(self) -> str:
        return f"{self.algorithm} {self.value}"


#: RFC 3551 static payload types, used when an offer lists one without an ``a=rtpmap``.
STATIC_PAYLOAD_TYPES: MappingProxyType[int, RtpMap] = MappingProxyType({
    0: RtpMap("PCMU", 8000), 3: RtpMap("GSM", 8000), 4: RtpMap("G723", 8000),
    5: RtpMap("DVI4", 8000), 6: RtpMap("DVI4", 16000), 7: RtpMap("LPC", 8000),
    8: RtpMap("PCMA", 8000), 9: RtpMap("G722", 8000), 10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100), 12: RtpMap("QCELP", 8000), 13: RtpMap("CN", 8000),
    14: RtpMap("MPA", 90000), 15: RtpMap("G728", 8000), 16: RtpMap("DVI4", 11025),
    17: RtpMap("DVI4", 22050), 18: RtpMap("G729", 8000), 25: RtpMap("CelB", 90000),
    26: RtpMap("JPEG", 90000), 28: RtpMap("nv", 90000), 31: RtpMap("H261", 90000),
    32: RtpMap("MPV", 90000), 33: RtpMap("MP2T", 90000), 34: RtpMap("H263", 90000),
})

_DIRECTIONS = frozenset(d.value for d in Direction)
_SETUP_ROLES = frozenset({"active", "passive", "actpass", "holdconn"})


def _attributes_named(attributes: Iterable[Attribute], name: str) -> Iterable[str | None]:
    return (a.value for a in attributes if a.name == name)


def _first_value(attributes: Iterable[Attribute], name: str) -> str | None:
    return next((v for v in _attributes_named(attributes, name) if v is not None), None)


def _direction_of(attributes: Iterable[Attribute]) -> Direction | None:
    # The last direction attribute wins if a sender wrote several; RFC 3264 allows only one.
    found: Direction | None = None
    for attribute in attributes:
        if attribute.name in _DIRECTIONS:
            found = Direction(attribute.name)
    return found


def _fingerprints_of(attributes: Iterable[Attribute]) -> tuple[Fingerprint, ...]:
    found: list[Fingerprint] = []
    for value in _attributes_named(attributes, "fingerprint"):
        if value is not None:
            algorithm, _, digest = value.partition(" ")
            found.append(Fingerprint(algorithm.lower(), digest.strip()))
    return tuple(found)


def _setup_of(attributes: Iterable[Attribute]) -> str | None:
    value = _first_value(attributes, "setup")
    return value.lower() if value is not None else None


def _redacted_attributes(attributes: Iterable[Attribute]) -> str:
    return "(" + ", ".join(repr(a) for a in attributes) + ")"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class MediaDescription:
    """One ``m=`` section with its ``i=``, ``c=``, ``b=`` and ``a=`` lines.

    ``formats`` stay strings because only RTP protocols use payload type numbers (BFCP uses
    ``*``, T.38 ``t38``); :attr:`payload_types` gives the numbers for RTP lines.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    attributes: tuple[Attribute, ...] = ()

    def __repr__(self) -> str:
        return (f"MediaDescription(media={self.media!r}, port={self.port}, proto={self.proto!r}, "
                f"formats={self.formats!r}, port_count={self.port_count!r}, "
                f"information={self.information!r}, connection={self.connection!r}, "
                f"bandwidths={self.bandwidths!r}, "
                f"attributes={_redacted_attributes(self.attributes)})")

    # -- generic attribute access -------------------------------------------------------------

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value``; ``None`` if absent or valueless."""
        return _first_value(self.attributes, name)

    def attribute_values(self, name: str) -> tuple[str, ...]:
        return tuple(v for v in _attributes_named(self.attributes, name) if v is not None)

    # -- RTP ----------------------------------------------------------------------------------

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in RTP_PROTOCOLS

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload types, in offer order (empty for non-RTP lines)."""
        return tuple(int(f) for f in self.formats) if self.is_rtp else ()

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> (encoding, clock rate, channels) for every listed payload type.

        An ``a=rtpmap`` wins; a listed static payload type without one gets its RFC 3551
        meaning. Dynamic types without an rtpmap, and rtpmaps for unlisted types, are left out.
        """
        listed = set(self.payload_types)
        maps: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            pt = int(pt_text)
            if pt in listed and pt not in maps:
                name, clock, *rest = encoding.strip().split("/")
                maps[pt] = RtpMap(name, int(clock), int(rest[0]) if rest else 1)
        for pt in self.payload_types:
            if pt not in maps and pt in STATIC_PAYLOAD_TYPES:
                maps[pt] = STATIC_PAYLOAD_TYPES[pt]
        return {pt: maps[pt] for pt in self.payload_types if pt in maps}

    def fmtp(self, pt: int | str) -> str | None:
        """The format parameters of one payload type, verbatim (``a=fmtp:<pt> <params>``)."""
        wanted = str(pt)
        for value in self.attribute_values("fmtp"):
            fmt, _, params = value.partition(" ")
            if fmt == wanted:
                return params.strip()
        return None

    def fmtp_parameters(self, pt: int | str) -> dict[str, str]:
        """``key=value;key=value`` format parameters as a dict (keys lower-cased, RFC 6184 style).

        A parameter without ``=`` (telephone-event's ``0-15``) is kept as key with value ``""``.
        """
        return parse_fmtp_parameters(self.fmtp(pt))

    def rtcp_feedback(self, pt: int) -> tuple[str, ...]:
        """``a=rtcp-fb`` values that apply to ``pt`` (its own and the ``*`` wildcard; RFC 4585)."""
        found: list[str] = []
        for value in self.attribute_values("rtcp-fb"):
            fmt, _, feedback = value.partition(" ")
            if fmt in (str(pt), "*") and feedback.strip():
                found.append(feedback.strip())
        return tuple(dict.fromkeys(found))

    @property
    def telephone_event_pt(self) -> int | None:
        """The first listed RFC 4733 ``telephone-event`` payload type, if any."""
        return next((pt for pt, m in self.rtpmaps().items()
                     if m.encoding.lower() == "telephone-event"), None)

    def telephone_event_pt_for(self, clock_rate: int) -> int | None:
        """The telephone-event payload type at ``clock_rate`` (RFC 4733 §2.1: same as the audio)."""
        return next((pt for pt, m in self.rtpmaps().items()
                     if m.encoding.lower() == "telephone-event" and m.clock_rate == clock_rate),
                    None)

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in whole milliseconds (a few stacks write ``20.0``)."""
        value = self.attribute("ptime")
        return int(float(value)) if value is not None else None

    @property
    def maxptime(self) -> int | None:
        value = self.attribute("maxptime")
        return int(float(value)) if value is not None else None

    @property
    def max_bandwidth_kbps(self) -> int | None:
        """What the writer is willing to receive: ``b=AS`` (kbit/s) or ``b=TIAS`` (bit/s)."""
        for bandwidth in self.bandwidths:
            if bandwidth.bwtype.upper() == "AS":
                return bandwidth.value
        for bandwidth in self.bandwidths:
            if bandwidth.bwtype.upper() == "TIAS":
                return bandwidth.value // 1000
        return None

    # -- transport ----------------------------------------------------------------------------

    @property
    def direction(self) -> Direction | None:
        """This section's own direction (None: the session default applies)."""
        return _direction_of(self.attributes)

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` (RFC 5761): RTP and RTCP share one port."""
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp(self) -> RtcpAddress | None:
        """``a=rtcp`` (RFC 3605): where RTCP goes when it is not RTP port + 1."""
        value = self.attribute("rtcp")
        if value is None:
            return None
        port, *rest = value.split()
        if rest:
            return RtcpAddress(int(port), rest[2], rest[1], rest[0])
        return RtcpAddress(int(port))

    @property
    def crypto(self) -> tuple[CryptoAttribute, ...]:
        """The well-formed ``a=crypto`` lines (RFC 4568); malformed ones are skipped."""
        return parse_crypto_lines(self.attribute_values("crypto"))

    @property
    def fingerprints(self) -> tuple[Fingerprint, ...]:
        """This section's own fingerprints; see :meth:`SessionDescription.media_fingerprints`."""
        return _fingerprints_of(self.attributes)

    @property
    def setup(self) -> str | None:
        """This section's own ``a=setup`` role (RFC 4145), lower-cased."""
        return _setup_of(self.attributes)

    @property
    def mid(self) -> str | None:
        return self.attribute("mid")

    @property
    def content(self) -> str | None:
        """``a=content`` (RFC 4796): ``main``, ``slides`` (presentation), ``speaker``, ..."""
        return self.attribute("content")

    def serialize_lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [" ".join((f"m={self.media}", port, self.proto, *self.formats))]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.connection is not None:
            lines.append(self.connection.serialize())
        lines.extend(b.serialize() for b in self.bandwidths)
        lines.extend(a.serialize() for a in self.attributes)
        return lines


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionDescription:
    """A whole SDP body. Session-level attributes are defaults for every media section."""

    origin: Origin
    version: int = 0
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = field(default_factory=lambda: (Timing(),))
    time_zones: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def __repr__(self) -> str:
        return (f"SessionDescription(version={self.version}, origin={self.origin!r}, "
                f"session_name={self.session_name!r}, information={self.information!r}, "
                f"uri={self.uri!r}, emails={self.emails!r}, phones={self.phones!r}, "
                f"connection={self.connection!r}, bandwidths={self.bandwidths!r}, "
                f"timings={self.timings!r}, time_zones={self.time_zones!r}, "
                f"attributes={_redacted_attributes(self.attributes)}, media={self.media!r})")

    def attribute(self, name: str) -> str | None:
        return _first_value(self.attributes, name)

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> Direction:
        """The session-level direction, ``sendrecv`` when none is given (RFC 3264 §5.1)."""
        return _direction_of(self.attributes) or Direction.SENDRECV

    @property
    def fingerprints(self) -> tuple[Fingerprint, ...]:
        return _fingerprints_of(self.attributes)

    @property
    def setup(self) -> str | None:
        return _setup_of(self.attributes)

    def media_direction(self, media: MediaDescription) -> Direction:
        """A section's own direction, else the session's."""
        return media.direction or self.direction

    def media_connection(self, media: MediaDescription) -> Connection | None:
        """A section's own ``c=``, else the session's."""
        return media.connection or self.connection

    def media_fingerprints(self, media: MediaDescription) -> tuple[Fingerprint, ...]:
        """A section's fingerprints, else the session-level ones (RFC 8122 §5 allows both)."""
        return media.fingerprints or self.fingerprints

    def media_setup(self, media: MediaDescription) -> str | None:
        return media.setup or self.setup

    def serialize(self) -> str:
        """The wire form, CRLF line ends. It contains any SDES keys: SDP bodies only, not logs."""
        # RFC 8866 recommends "s= " for a session without a name; it parses back as "".
        lines = [f"v={self.version}", self.origin.serialize(), f"s={self.session_name or ' '}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines.extend(f"e={e}" for e in self.emails)
        lines.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            lines.append(self.connection.serialize())
        lines.extend(b.serialize() for b in self.bandwidths)
        for timing in self.timings:
            lines.extend(timing.serialize_lines())
        if self.time_zones is not None:
            lines.append(f"z={self.time_zones}")
        lines.extend(a.serialize() for a in self.attributes)
        for media in self.media:
            lines.extend(media.serialize_lines())
        return CRLF.join(lines) + CRLF


# -- parsing -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_DIGITS = re.compile(r"[0-9]{1,20}")
_PROTO = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.+-]*")
_PORT = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_FINGERPRINT = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+ [0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([^/\s]+)/([0-9]{1,9})(?:/([0-9]{1,2}))?")
_FMTP = re.compile(r"([^\s]+)(?: .*)?")

# RFC 8866 §5 line types; m= sections take only i, c, b, k and a.
_KNOWN_TYPES = frozenset("vosiuepcbtrzkam")
_MEDIA_TYPES = frozenset("icbka")


def _ensure(condition: bool, message: str, line: int, status: int = 400) -> None:
    if not condition:
        raise SdpError(message, status=status, line=line)


def _int_field(text: str, what: str, line: int, maximum: int | None = None) -> int:
    _ensure(bool(_DIGITS.fullmatch(text)), f"{what} is not a number", line)
    value = int(text)
    _ensure(maximum is None or value <= maximum, f"{what} is out of range", line)
    return value


def _net_fields(nettype: str, addrtype: str, line: int) -> None:
    _ensure(nettype == "IN", "only network type IN is supported", line, status=488)
    _ensure(addrtype in ("IP4", "IP6"), "only address types IP4 and IP6 are supported", line,
            status=488)


def _parse_origin(value: str, line: int) -> Origin:
    fields = value.split()
    _ensure(len(fields) == 6, "o= needs six fields", line)
    username, session_id, session_version, nettype, addrtype, address = fields
    _net_fields(nettype, addrtype, line)
    return Origin(username, _int_field(session_id, "o= session id", line),
                  _int_field(session_version, "o= session version", line), address, addrtype,
                  nettype)


def _parse_connection(value: str, line: int) -> Connection:
    fields = value.split()
    _ensure(len(fields) == 3, "c= needs three fields", line)
    nettype, addrtype, address_text = fields
    _net_fields(nettype, addrtype, line)
    address, *suffix = address_text.split("/")
    _ensure(bool(address), "c= has no address", line)
    numbers = [_int_field(s, "c= TTL or address count", line) for s in suffix]
    if addrtype == "IP6":
        # IPv6 multicast has no TTL field: a single suffix is the address count (RFC 8866 §5.7).
        _ensure(len(numbers) <= 1, "c= IP6 address takes at most a count", line)
        return Connection(address, addrtype, nettype, None, numbers[0] if numbers else None)
    _ensure(len(numbers) <= 2, "c= has too many '/' fields", line)
    ttl = numbers[0] if numbers else None
    count = numbers[1] if len(numbers) == 2 else None
    return Connection(address, addrtype, nettype, ttl, count)


def _parse_bandwidth(value: str, line: int) -> Bandwidth:
    bwtype, colon, amount = value.partition(":")
    _ensure(bool(colon) and bool(_TOKEN.fullmatch(bwtype)), "b= needs <type>:<value>", line)
    return Bandwidth(bwtype, _int_field(amount, "b= bandwidth", line))


def _parse_timing(value: str, line: int) -> Timing:
    fields = value.split()
    _ensure(len(fields) == 2, "t= needs two fields", line)
    return Timing(_int_field(fields[0], "t= start", line), _int_field(fields[1], "t= stop", line))


def _parse_media_line(value: str, line: int) -> MediaDescription:
    fields = value.split()
    _ensure(len(fields) >= 3, "m= needs media, port, protocol and formats", line)
    media, port_text, proto, *formats = fields
    _ensure(bool(_TOKEN.fullmatch(media)), "m= media type is not a token", line)
    port_match = _PORT.fullmatch(port_text)
    _ensure(port_match is not None, "m= port is not a number", line)
    assert port_match is not None
    port = int(port_match[1])
    _ensure(port <= 65535, "m= port is out of range", line)
    port_count = int(port_match[2]) if port_match[2] is not None else None
    _ensure(bool(_PROTO.fullmatch(proto)), "m= protocol is malformed", line)
    # RFC 8866 wants at least one format; rejected lines in the wild sometimes have none.
    _ensure(bool(formats) or port == 0, "m= lists no formats", line)
    for fmt in formats:
        _ensure(bool(_TOKEN.fullmatch(fmt)), "m= format is not a token", line)
        if proto.upper() in RTP_PROTOCOLS:
            _int_field(fmt, "m= RTP payload type", line, maximum=127)
    return MediaDescription(media=media, port=port, proto=proto, formats=tuple(formats),
                            port_count=port_count)


def _parse_attribute(value: str, line: int) -> Attribute:
    name, colon, attribute_value = value.partition(":")
    _ensure(bool(_TOKEN.fullmatch(name)), "a= attribute name is not a token", line)
    attribute = Attribute(name, attribute_value if colon else None)
    _check_known_attribute(attribute, line)
    return attribute


def _check_known_attribute(attribute: Attribute, line: int) -> None:
    """Validate the attributes the negotiation reads, so helpers never meet garbage later."""
    name, value = attribute
    if name in _DIRECTIONS or name == "rtcp-mux":
        _ensure(value is None, f"a={name} takes no value", line)
        return
    if name not in ("rtpmap", "fmtp", "rtcp", "ptime", "maxptime", "fingerprint", "setup"):
        return
    _ensure(value is not None, f"a={name} needs a value", line)
    assert value is not None
    if name == "rtpmap":
        match = _RTPMAP.fullmatch(value)
        _ensure(match is not None and int(match[1]) <= 127 and int(match[3]) > 0,
                "a=rtpmap is malformed", line)
    elif name == "fmtp":
        _ensure(_FMTP.fullmatch(value) is not None, "a=fmtp is malformed", line)
    elif name == "rtcp":
        fields = value.split()
        _ensure(len(fields) in (1, 4), "a=rtcp needs a port and optionally an address", line)
        _int_field(fields[0], "a=rtcp port", line, maximum=65535)
        if len(fields) == 4:
            _net_fields(fields[1], fields[2], line)
    elif name in ("ptime", "maxptime"):
        _ensure(bool(_DECIMAL.fullmatch(value)), f"a={name} is not a number", line)
    elif name == "fingerprint":
        _ensure(bool(_FINGERPRINT.fullmatch(value)), "a=fingerprint is malformed", line)
    elif name == "setup":
        _ensure(value.lower() in _SETUP_ROLES, "a=setup role is unknown", line, status=488)


def _split_lines(text: str) -> list[str]:
    if "\x00" in text:
        raise SdpError("SDP contains a NUL character")
    lines = [raw.removesuffix("\r") for raw in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    cleaned: list[str] = []
    for number, raw in enumerate(lines, start=1):
        _ensure("\r" not in raw, "bare CR inside a line", number)
        line = raw.rstrip(" \t")
        _ensure(bool(line), "empty line inside the description", number)
        cleaned.append(line)
    return cleaned


def parse_sdp(text: str | bytes) -> SessionDescription:
    """Parse an SDP body (LF or CRLF line ends) or raise :class:`SdpError` with a SIP status."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not UTF-8") from None
    lines = _split_lines(text)
    if not lines:
        raise SdpError("SDP body is empty")
    parsed: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        _ensure(len(line) >= 2 and line[1] == "=" and line[0].islower() and line[0].isascii(),
                "line is not <type>=<value>", number)
        _ensure(line[0] in _KNOWN_TYPES, "unknown SDP line type", number, status=488)
        parsed.append((number, line[0], line[2:]))
    return _build(parsed)


@dataclass
class _SectionBuilder:
    """Lines collected for one media section while parsing (local to one parse call)."""

    line: MediaDescription
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)

    def add(self, kind: str, value: str, number: int) -> None:
        _ensure(kind in _MEDIA_TYPES, f"{kind}= is not allowed in a media section", number)
        if kind == "i":
            _ensure(self.information is None, "more than one i= line", number)
            self.information = value
        elif kind == "c":
            # Several c= lines per media mean layered multicast, which the node does not do.
            _ensure(self.connection is None, "more than one c= line", number, status=488)
            self.connection = _parse_connection(value, number)
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value, number))
        elif kind == "a":
            self.attributes.append(_parse_attribute(value, number))
        # k= is obsolete and may hold a key in clear: dropped, never kept (module docstring).

    def build(self) -> MediaDescription:
        return replace(self.line, information=self.information, connection=self.connection,
                       bandwidths=tuple(self.bandwidths), attributes=tuple(self.attributes))


@dataclass
class _SessionBuilder:
    """Session-level lines collected while parsing (local to one parse call)."""

    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    time_zones: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    def add(self, kind: str, value: str, number: int) -> None:
        _ensure(kind not in ("v", "o", "s"), f"more than one {kind}= line", number)
        if kind == "i":
            _ensure(self.information is None, "more than one i= line", number)
            self.information = value
        elif kind == "u":
            _ensure(self.uri is None, "more than one u= line", number)
            self.uri = value
        elif kind == "e":
            self.emails.append(value)
        elif kind == "p":
            self.phones.append(value)
        elif kind == "c":
            _ensure(self.connection is None, "more than one c= line", number)
            self.connection = _parse_connection(value, number)
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value, number))
        elif kind == "t":
            self.timings.append(_parse_timing(value, number))
        elif kind == "r":
            _ensure(bool(self.timings), "r= without a preceding t=", number)
            last = self.timings[-1]
            self.timings[-1] = replace(last, repeats=(*last.repeats, value))
        elif kind == "z":
            _ensure(self.time_zones is None, "more than one z= line", number)
            self.time_zones = value
        elif kind == "a":
            self.attributes.append(_parse_attribute(value, number))
        # k= is obsolete and may hold a key in clear: dropped, never kept (module docstring).


def _build(parsed: Sequence[tuple[int, str, str]]) -> SessionDescription:
    for position, kind in enumerate(("v", "o", "s")):
        _ensure(len(parsed) > position and parsed[position][1] == kind,
                f"SDP must begin with v=, o=, s= (missing {kind}=)",
                parsed[min(position, len(parsed) - 1)][0])
    number, _, version_text = parsed[0]
    _ensure(version_text == "0", "only SDP version 0 is supported", number, status=488)
    origin = _parse_origin(parsed[1][2], parsed[1][0])
    session = _SessionBuilder()
    sections: list[_SectionBuilder] = []
    for number, kind, value in parsed[3:]:
        if kind == "m":
            sections.append(_SectionBuilder(_parse_media_line(value, number)))
        elif sections:
            sections[-1].add(kind, value, number)
        else:
            session.add(kind, value, number)

    last_line = parsed[-1][0]
    _ensure(bool(session.timings), "SDP has no t= line", last_line)
    media = tuple(section.build() for section in sections)
    for index, section in enumerate(media):
        _ensure(section.port == 0 or section.connection is not None
                or session.connection is not None,
                f"media section {index} has no connection address", last_line)
    return SessionDescription(
        version=0, origin=origin, session_name=parsed[2][2], information=session.information,
        uri=session.uri, emails=tuple(session.emails), phones=tuple(session.phones),
        connection=session.connection, bandwidths=tuple(session.bandwidths),
        timings=tuple(session.timings), time_zones=session.time_zones,
        attributes=tuple(session.attributes), media=media)


def parse_fmtp_parameters(text: str | None) -> dict[str, str]:
    """``key=value;key=value`` format parameters as a dict (keys lower-cased, RFC 6184 style);
    a parameter without ``=`` is kept with value ``""``, no text gives an empty dict."""
    params: dict[str, str] = {}
    for item in (text or "").split(";"):
        key, _, value = item.strip().partition("=")
        if key:
            params[key.strip().lower()] = value.strip()
    return params
