"""SIP header fields: the ordered multi-map and the parsed forms the upper layers rely on.

:class:`Headers` keeps raw values, one entry per value, in message order: a proxy or a response must
copy Via and Record-Route in order, unknown headers must pass through untouched (RFC 3261 §7.3,
RFC 4475 §3.1.1.1), and a header whose grammar is unknown cannot be split safely. Names are
case-insensitive, compact forms (``v``, ``i``, ``m``...) are expanded, and known names get their
canonical spelling (``CSeq``, ``Call-ID``, ``WWW-Authenticate``).

Comma-separated lists are split only for headers whose grammar is a list of elements that never
hold a bare comma (:data:`MULTI_VALUE_HEADERS`), and never inside a quoted string or ``<...>``.
``Date``, ``WWW-Authenticate``, ``Authorization`` and friends contain commas in a single value and
are never split.

Parsed forms (:class:`Via`, :class:`NameAddr`, :class:`CSeq`, Content-Length, Max-Forwards,
Call-ID) raise :class:`SipParseError` (400) on anything RFC 3261 §25 does not allow; their
``str()`` is the canonical serialization.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import ClassVar

from confnode.errors import InvalidInput
from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.uri import Param, Parameterised, SipUri, parse_hostport

# --- names ------------------------------------------------------------------------------------

#: RFC 3261 §7.3.3 and the registry of compact forms (RFC 3265, 3515, 3892, 3841, 4028, 8224).
COMPACT_FORMS = MappingProxyType({
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
})

_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To",
    "Referred-By", "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition", "Require",
    "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "Subject",
    "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate",
)
# Lower-cased name or compact letter -> canonical spelling, so a lookup is one dict access.
_CANONICAL = MappingProxyType(
    {name.lower(): name for name in _KNOWN_NAMES} | dict(COMPACT_FORMS)
)

#: Headers whose value is a comma-separated list of elements (canonical names, lower-cased).
MULTI_VALUE_HEADERS = frozenset({
    "via", "contact", "route", "record-route", "allow", "supported", "require", "proxy-require",
    "unsupported", "accept", "accept-encoding", "accept-language", "allow-events",
    "content-encoding", "content-language", "in-reply-to", "path", "service-route",
})

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"  # noqa: S105 (a grammar rule, not a secret)
_TOKEN_RE = re.compile(_TOKEN)
# quoted-string: qdtext or quoted-pair; CR and LF cannot occur once lines are unfolded.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_QUOTED_RE = re.compile(_QUOTED, re.S)
_LINE_BREAK_RE = re.compile(r"[\r\n]")


def canonical_name(name: str) -> str:
    """``"v"`` -> ``"Via"``, ``"call-id"`` -> ``"Call-ID"``; unknown names are kept as given."""
    return _CANONICAL.get(name.lower(), name)


def split_commas(value: str) -> list[str]:
    """Split a list-valued header at commas outside quoted strings and ``<...>``; elements are
    stripped but empty ones are kept, so that a caller can reject ``a,,b`` where it must."""
    if "," not in value:
        return [value.strip(" \t")]
    if '"' not in value and "<" not in value:
        return [item.strip(" \t") for item in value.split(",")]
    items: list[str] = []
    start = 0
    quoted = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            items.append(value[start:i].strip(" \t"))
            start = i + 1
        i += 1
    items.append(value[start:].strip(" \t"))
    return items


def split_header_values(name: str, value: str) -> list[str]:
    """The values one header line carries: split for list-valued headers, whole otherwise."""
    if canonical_name(name).lower() in MULTI_VALUE_HEADERS:
        return split_commas(value)
    return [value]


# --- the multi-map -----------------------------------------------------------------------------


class Headers:
    """An ordered, case-insensitive multi-map of header name to raw value.

    Each entry is one value (a Via line with two comma-separated hops is two entries). Iteration
    yields ``(canonical name, value)`` in order. Values can never contain CR or LF, so whatever is
    put here cannot inject a header line when serialized.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str, str]] = []
        for name, value in fields:
            self.add(name, value)

    @staticmethod
    def _entry(name: str, value: str) -> tuple[str, str, str]:
        if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
            raise InvalidInput("A SIP header name must be a non-empty token.")
        if not isinstance(value, str) or _LINE_BREAK_RE.search(value):
            raise InvalidInput("A SIP header value must be a single line of text.")
        canonical = canonical_name(name)
        return (canonical.lower(), canonical, value)

    @classmethod
    def _trusted(cls, fields: list[tuple[str, str, str]]) -> Headers:
        """Adopt entries the parser already validated (hot path: no re-checking)."""
        headers = cls.__new__(cls)
        headers._fields = fields
        return headers

    def add(self, name: str, value: str) -> None:
        """Append ``value`` as one entry, as given. ``add("Allow", "INVITE, ACK")`` stays one
        entry (and serializes as one line); add list elements one by one for one per entry.
        :meth:`get_list` reads both the same."""
        self._fields.append(self._entry(name, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert one value before every other header (a new top Via, RFC 3261 §8.1.1.7)."""
        self._fields.insert(0, self._entry(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by ``value``, at the position of the first one."""
        entry = self._entry(name, value)
        key = entry[0]
        for index, (k, _, _) in enumerate(self._fields):
            if k == key:
                self._fields[index] = entry
                self._fields[index + 1 :] = [f for f in self._fields[index + 1 :] if f[0] != key]
                return
        self._fields.append(entry)

    def remove(self, name: str) -> int:
        """Remove every value of ``name``; returns how many were removed."""
        key = canonical_name(name).lower()
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        return before - len(self._fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``."""
        key = canonical_name(name).lower()
        for k, _, value in self._fields:
            if k == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [value for k, _, value in self._fields if k == key]

    def get_list(self, name: str) -> list[str]:
        """Every list element of ``name`` across its values, empty elements dropped
        (``Supported: timer, 100rel`` and ``Supported:`` both read naturally)."""
        return [item for value in self.get_all(name) for item in split_commas(value) if item]

    def copy(self) -> Headers:
        return Headers._trusted(list(self._fields))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name).lower()
        return any(k == key for k, _, _ in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._fields] == [(k, v) for k, _, v in other._fields]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


# --- parameters shared by Via and name-addr headers -------------------------------------------

# SEMI = SWS ";" SWS; generic-param = token [ EQUAL gen-value ]; gen-value = token / host /
# quoted-string. Host covers IPv6 references, which are not tokens, and Via's received= takes a
# bare IPv6 address (RFC 3261 §20.42), tried first since its leading hex digits are a token.
_IPV6_VALUE = r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]+"
_PARAM_RE = re.compile(
    rf"[ \t]*;[ \t]*({_TOKEN})"
    rf"(?:[ \t]*=[ \t]*({_IPV6_VALUE}|{_TOKEN}|{_QUOTED}|\[[0-9A-Fa-f:.]+\]))?[ \t]*",
    re.S,
)


def _parse_params(text: str, pos: int, what: str) -> tuple[Param, ...]:
    """Parameters from ``pos`` to the end of ``text``; an empty ``;;`` or stray text is a 400
    (RFC 4475 §3.1.2.1). Quoted values keep their quotes, so they serialize back unchanged."""
    params: list[Param] = []
    n = len(text)
    while pos < n:
        match = _PARAM_RE.match(text, pos)
        if match is None:
            raise SipParseError(400, f"Malformed {what} header parameters")
        params.append((match.group(1), match.group(2)))
        pos = match.end()
    return tuple(params)


def _format_params(params: tuple[Param, ...]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _check_param(name: str, value: str | None) -> None:
    if not _TOKEN_RE.fullmatch(name):
        raise InvalidInput("A SIP header parameter name must be a token.")
    if value is not None and not (
        _TOKEN_RE.fullmatch(value) or _QUOTED_RE.fullmatch(value)
        or re.fullmatch(rf"\[[0-9A-Fa-f:.]+\]|{_IPV6_VALUE}", value)
    ):
        raise InvalidInput("A SIP header parameter value must be a token, host or quoted string.")
    if value is not None and _LINE_BREAK_RE.search(value):
        raise InvalidInput("A SIP header parameter value must be a single line of text.")


# --- Via ---------------------------------------------------------------------------------------

_ASCII_DIGITS_RE = re.compile(r"[0-9]+")
_VIA_RE = re.compile(
    rf"({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


class _HeaderParameters(Parameterised):
    """Header values also build new parameter lists, checked as header grammar."""

    __slots__ = ()

    def _with_param(self, name: str, value: str | None) -> tuple[Param, ...]:
        _check_param(name, value)
        key = name.lower()
        return (*((n, v) for n, v in self.params if n.lower() != key), (name, value))


@dataclass(frozen=True, slots=True)
class Via(_HeaderParameters):
    """One Via hop: ``SIP/2.0/UDP host:port;branch=...`` (RFC 3261 §20.42).

    ``transport`` is upper-cased (``UDP``, ``TCP``, ``TLS``, ``SCTP``, ``WS``...; unknown ones are
    kept). ``rport`` without a value is a request for symmetric response routing (RFC 3581): see
    ``has_param("rport")``; :attr:`rport` is its numeric value once a server filled it in.
    """

    transport: str
    host: str
    port: int | None = None
    params: tuple[Param, ...] = ()
    protocol: str = "SIP/2.0"

    MAGIC_COOKIE: ClassVar[str] = "z9hG4bK"

    @classmethod
    def parse(cls, text: str) -> Via:
        text = text.strip(" \t")
        match = _VIA_RE.match(text)
        if match is None:
            raise SipParseError(400, "Malformed Via header")
        name, version, transport, host_text, port_text = match.groups()
        host, _ = parse_hostport(host_text)
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise SipParseError(400, "Malformed Via header")
        params = _parse_params(text, match.end(), "Via")
        for pname, pvalue in params:
            lowered = pname.lower()
            if lowered == "rport" and pvalue is not None and not (
                _ASCII_DIGITS_RE.fullmatch(pvalue) and bounded_int(pvalue, 65535) is not None
            ):
                raise SipParseError(400, "Malformed Via rport parameter")
            if lowered == "ttl" and not (
                pvalue is not None and _ASCII_DIGITS_RE.fullmatch(pvalue)
                and bounded_int(pvalue, 255) is not None
            ):
                raise SipParseError(400, "Malformed Via ttl parameter")
            if lowered == "branch" and (pvalue is None or pvalue.startswith('"')):
                raise SipParseError(400, "Malformed Via branch parameter")
        return cls(transport.upper(), host, port, params, f"{name}/{version}")

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def magic_cookie(self) -> bool:
        """Whether the branch starts with ``z9hG4bK``: an RFC 3261 transaction id (§8.1.1.7)
        that can be matched on its own; otherwise RFC 2543 matching rules apply (§17.2.3)."""
        branch = self.branch
        return branch is not None and branch.startswith(self.MAGIC_COOKIE)

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def rport(self) -> int | None:
        value = self.param("rport")
        if value is None or not _ASCII_DIGITS_RE.fullmatch(value):
            return None
        return bounded_int(value, 65535)

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.param("ttl")
        if value is None or not _ASCII_DIGITS_RE.fullmatch(value):
            return None
        return bounded_int(value, 255)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return (self.host, self.port)

    def with_param(self, name: str, value: str | None = None) -> Via:
        """A copy with ``name`` set or added: ``received=``/``rport=`` (RFC 3261 §18.2.1)."""
        return replace(self, params=self._with_param(name, value))


# --- name-addr (From, To, Contact, Route, Record-Route...) --------------------------------------

_DISPLAY_TOKENS_RE = re.compile(rf"{_TOKEN}(?:[ \t]+{_TOKEN})*")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
# quoted-pair can carry any char except CR and LF; those are dropped, the rest escaped.
_NEEDS_ESCAPE_RE = re.compile(r'([\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f])')


def _quote(text: str) -> str:
    return '"' + _NEEDS_ESCAPE_RE.sub(r"\\\1", text.replace("\r", "").replace("\n", "")) + '"'


@dataclass(frozen=True, slots=True)
class NameAddr(_HeaderParameters):
    """``"Display" <uri>;params`` or a bare ``uri;params`` (RFC 3261 §20.10, §20.20, §20.39).

    ``display_name`` is the unquoted text (``None`` when absent). In the bare form any ``;`` after
    the URI starts a header parameter, never a URI parameter (RFC 4475 §3.3.12), so
    ``sip:a@b;tag=1`` has a ``tag`` here and no URI parameters. ``str()`` always writes the
    ``<...>`` form, which is unambiguous whatever the URI holds.
    """

    uri: SipUri
    display_name: str | None = None
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        s = text.strip(" \t")
        display: str | None = None
        if s.startswith('"'):
            match = _QUOTED_RE.match(s)
            if match is None:
                raise SipParseError(400, "Unbalanced quotes in display name")
            display = _QUOTED_PAIR_RE.sub(r"\1", match.group(0)[1:-1])
            lt = match.end()
            while lt < len(s) and s[lt] in " \t":
                lt += 1
            if lt >= len(s) or s[lt] != "<":
                raise SipParseError(400, "Malformed name-addr")
        else:
            lt = s.find("<")
            if lt > 0:
                name_part = s[:lt].strip(" \t")
                if name_part:
                    # Unquoted display names are tokens; "Bell, Alexander" is not (RFC 4475
                    # §3.1.2.15). No LWS before '<' is tolerated (RFC 4475 §3.1.1.6).
                    if not _DISPLAY_TOKENS_RE.fullmatch(name_part):
                        raise SipParseError(400, "Malformed display name")
                    display = " ".join(name_part.split())
        if lt >= 0:
            gt = s.find(">", lt + 1)
            if gt < 0:
                raise SipParseError(400, "Unbalanced angle brackets")
            uri_text = s[lt + 1 : gt]
            pos = gt + 1
        else:
            semi = s.find(";")
            uri_text = (s if semi < 0 else s[:semi]).rstrip(" \t")
            pos = len(s) if semi < 0 else semi
            # RFC 3261 §20: a URI with a comma, '?' or ';' must be in angle brackets.
            if "?" in uri_text or "," in uri_text:
                raise SipParseError(400, "URI with headers must be enclosed in angle brackets")
        if not uri_text or uri_text[0] in " \t" or uri_text[-1] in " \t":
            raise SipParseError(400, "Whitespace inside an addr-spec")
        uri = SipUri.parse(uri_text)
        params = _parse_params(s, pos, "address")
        tag = next((v for n, v in params if n.lower() == "tag"), "")
        if tag is None or tag.startswith('"'):
            raise SipParseError(400, "Malformed tag parameter")
        return cls(uri, display, params)

    def __str__(self) -> str:
        display = "" if self.display_name is None else _quote(self.display_name) + " "
        return f"{display}<{self.uri}>{_format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with ``tag`` set: the UAS's To tag (RFC 3261 §8.2.6.2, §19.3)."""
        return self.with_param("tag", tag)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=self._with_param(name, value))


# --- scalar headers ----------------------------------------------------------------------------

_CSEQ_RE = re.compile(rf"[ \t]*([0-9]+)[ \t]+({_TOKEN})[ \t]*")
_DIGITS_RE = re.compile(r"[ \t]*([0-9]+)[ \t]*")
# RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
CSEQ_MAX = 2**31 - 1


def bounded_int(digits: str, maximum: int) -> int | None:
    """``int(digits)`` if it is at most ``maximum``, else ``None``. Leading zeros are legal
    (RFC 4475 §3.1.1.1) and overlong values are not (§3.1.2.4); both are handled on the string,
    because ``int()`` refuses more than 4300 digits with a ValueError, and that must never escape
    a parser as anything but a 400."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(maximum)):
        return None
    value = int(significant or "0")
    return value if value <= maximum else None


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16). Leading zeros are accepted (RFC 4475 §3.1.1.1)."""

    number: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.number <= CSEQ_MAX:
            raise InvalidInput("A CSeq number must be between 0 and 2**31 - 1.")
        if not _TOKEN_RE.fullmatch(self.method):
            raise InvalidInput("A SIP method must be a token.")

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = _CSEQ_RE.fullmatch(text)
        if match is None:
            raise SipParseError(400, "Malformed CSeq header")
        number = bounded_int(match.group(1), CSEQ_MAX)
        if number is None:
            raise SipParseError(400, "CSeq number out of range")
        return cls(number, match.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


# Far above any message a node accepts (the stream framer's limit is 64 KiB by default).
CONTENT_LENGTH_MAX = 2**31 - 1


def parse_content_length(text: str) -> int:
    """Content-Length (RFC 3261 §20.14): a non-negative decimal; ``-999`` and ``five`` are 400s
    (RFC 4475 §3.1.2.3), and so is anything above :data:`CONTENT_LENGTH_MAX`."""
    match = _DIGITS_RE.fullmatch(text)
    length = None if match is None else bounded_int(match.group(1), CONTENT_LENGTH_MAX)
    if length is None:
        raise SipParseError(400, "Malformed Content-Length header")
    return length


def parse_max_forwards(text: str) -> int:
    """Max-Forwards (RFC 3261 §20.22): 0..255. Zero is valid to parse; acting on it (483 Too Many
    Hops, or answering an OPTIONS) is the TU's business (RFC 4475 §3.3.11)."""
    match = _DIGITS_RE.fullmatch(text)
    hops = None if match is None else bounded_int(match.group(1), 255)
    if hops is None:
        raise SipParseError(400, "Malformed Max-Forwards header")
    return hops


# callid = word [ "@" word ]; word holds most printable characters but no whitespace.
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?")


def parse_call_id(text: str) -> str:
    """Call-ID (RFC 3261 §20.8), compared byte for byte; ``%`` and quotes are plain characters
    here (RFC 4475 §3.1.1.2)."""
    value = text.strip(" \t")
    if not _CALL_ID_RE.fullmatch(value):
        raise SipParseError(400, "Malformed Call-ID header")
    return value


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 3261 token (methods, header names, tags, option tags)."""
    return _TOKEN_RE.fullmatch(text) is not None
