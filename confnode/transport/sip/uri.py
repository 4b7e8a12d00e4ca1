"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966 for tel).

A URI keeps its parts exactly as they arrived, escapes included: a proxy or a dialog must send a
Request-URI or a remote target back byte for byte, and RFC 3261 §19.1.4 says ``%75ser`` and
``user`` name the same user, so escapes are resolved only when comparing (``==``) or when asked for
(:attr:`SipUri.unescaped_user`). Percent-escapes only exist in the user, password, parameters and
headers of SIP URIs; nowhere else in a message is ``%`` special (RFC 4475 §3.1.1.5).

Only ``sip``, ``sips`` and ``tel`` are parsed; any other scheme raises :class:`SipParseError` with
status 416, the answer RFC 3261 §8.2.2.1 gives for a Request-URI scheme a UAS does not serve.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote, unquote_to_bytes

from confnode.transport.sip.errors import SipParseError

Param = tuple[str, str | None]

SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_ESC = r"%[0-9A-Fa-f]{2}"
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER_RE = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|{_ESC})+")
# password = *( unreserved / escaped / & = + $ , )
_PASSWORD_RE = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|{_ESC})*")
# hostname or IPv4address. Underscores are outside RFC 1034 but common in lab and SRV names.
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*)")
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
_PARAMCHARS_RE = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|{_ESC})+")
# hnv-unreserved = [ ] / ? : + $
_HNAME_RE = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|{_ESC})+")
_HVALUE_RE = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|{_ESC})*")
# telephone-subscriber (RFC 3966): digits, hex for local numbers, * #, and visual separators.
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")
# Characters no URI part may hold once parsed; checked on every construction so a URI built from
# outside text can never smuggle a line break or a closing '>' into a serialized message.
_UNSAFE_RE = re.compile(r'[\x00-\x20\x7f<>"]')

# RFC 3261 §19.1.4: these parameters must match when either URI has them; other parameters are
# compared only when both URIs have them.
_MUST_MATCH_PARAMS = frozenset({"transport", "user", "ttl", "method", "maddr"})


def _bad(reason: str) -> SipParseError:
    return SipParseError(400, reason)


def _parse_host(text: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise _bad("Malformed IPv6 reference in URI")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise _bad("Malformed IPv6 reference in URI") from None
        return text
    if not _HOSTNAME_RE.fullmatch(text):
        raise _bad("Malformed host in URI")
    return text


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (RFC 3261 hostport); the port must be 0..65535."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad("Malformed IPv6 reference in URI")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _bad("Malformed host in URI")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    host = _parse_host(host)
    if port_text is None:
        return host, None
    if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
        raise _bad("Malformed port in URI")
    return host, int(port_text)


def _parse_uri_params(text: str) -> tuple[Param, ...]:
    params: list[Param] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not _PARAMCHARS_RE.fullmatch(name):
            raise _bad("Malformed URI parameter")
        if eq:
            if not _PARAMCHARS_RE.fullmatch(value):
                raise _bad("Malformed URI parameter")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def _parse_uri_headers(text: str) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or not _HNAME_RE.fullmatch(name) or not _HVALUE_RE.fullmatch(value):
            raise _bad("Malformed URI header")
        headers.append((name, value))
    return tuple(headers)


def _unescaped_bytes(text: str | None) -> bytes | None:
    return None if text is None else unquote_to_bytes(text)


def _host_key(host: str) -> str:
    if host.startswith("["):
        # [::1] and [0:0::1] are one host; ipaddress gives the canonical spelling.
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            pass
    return host.lower()


def _param_key(value: str | None) -> bytes | None:
    return None if value is None else unquote_to_bytes(value).lower()


class Parameterised:
    """Case-insensitive ``;name=value`` parameter lookup, shared by URIs and header values."""

    __slots__ = ()
    params: tuple[Param, ...]

    def has_param(self, name: str) -> bool:
        key = name.lower()
        return any(n.lower() == key for n, _ in self.params)

    def param(self, name: str) -> str | None:
        """The value of ``name``; ``None`` when absent or valueless (see :meth:`has_param`)."""
        key = name.lower()
        for n, value in self.params:
            if n.lower() == key:
                return value
        return None



@dataclass(frozen=True, eq=False, slots=True)
class SipUri(Parameterised):
    """A ``sip:``, ``sips:`` or ``tel:`` URI.

    ``user``, ``password``, parameter names and values and header names and values are kept in
    their escaped, received form. For ``tel:`` URIs the subscriber number is in ``user`` and
    ``host`` is empty. ``port`` is ``None`` when absent, which is not the same URI as port 5060
    (RFC 3261 §19.1.4).

    ``==`` is URI equivalence per RFC 3261 §19.1.4 (case-insensitive scheme, host and parameters;
    escapes resolved; ``transport``, ``user``, ``ttl``, ``method`` and ``maddr`` must match if
    either side has them; other parameters only if both do; URI headers must all match). It is
    not transitive, so the hash covers only what every equivalent URI shares.
    """

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: tuple[Param, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.scheme not in SUPPORTED_SCHEMES:
            raise SipParseError(416, "Unsupported URI Scheme")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise _bad("Malformed port in URI")
        texts = [self.host, self.user or "", self.password or ""]
        for name, value in self.params:
            texts += (name, value or "")
        for name, value in self.headers:
            texts += (name, value)
        if _UNSAFE_RE.search("".join(texts)):
            raise _bad("Malformed URI")

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a URI with no surrounding whitespace or angle brackets."""
        match = _SCHEME_RE.match(text)
        if match is None:
            raise _bad("Malformed URI")
        scheme = match.group(1).lower()
        if scheme not in SUPPORTED_SCHEMES:
            raise SipParseError(416, "Unsupported URI Scheme")
        rest = text[match.end() :]
        if scheme == "tel":
            return cls._parse_tel(rest)
        return cls._parse_sip(scheme, rest)

    @classmethod
    def _parse_tel(cls, rest: str) -> SipUri:
        number, semi, params_text = rest.partition(";")
        if not _TEL_NUMBER_RE.fullmatch(number):
            raise _bad("Malformed tel URI")
        params = _parse_uri_params(params_text) if semi else ()
        return cls("tel", "", user=number, params=params)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> SipUri:
        user: str | None = None
        password: str | None = None
        # '@' is neither a user, parameter nor header character, so the first one ends userinfo;
        # the user part itself may hold ';' and '?' (RFC 4475 §3.1.1.2 and §3.1.1.9).
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user, colon, password_text = userinfo.partition(":")
            if not _USER_RE.fullmatch(user):
                raise _bad("Malformed user in URI")
            if colon:
                if not _PASSWORD_RE.fullmatch(password_text):
                    raise _bad("Malformed password in URI")
                password = password_text
        rest, qmark, headers_text = rest.partition("?")
        hostport, semi, params_text = rest.partition(";")
        host, port = parse_hostport(hostport)
        params = _parse_uri_params(params_text) if semi else ()
        headers = _parse_uri_headers(headers_text) if qmark else ()
        return cls(scheme, host, user, password, port, params, headers)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts += (":", self.password)
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts += (":", str(self.port))
        for name, value in self.params:
            parts += (";", name) if value is None else (";", name, "=", value)
        if self.headers:
            parts += ("?", "&".join(f"{name}={value}" for name, value in self.headers))
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    # --- parameters -------------------------------------------------------------------------


    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with ``name`` set (replacing any existing value) or added at the end."""
        if not _PARAMCHARS_RE.fullmatch(name) or (
            value is not None and not _PARAMCHARS_RE.fullmatch(value)
        ):
            raise _bad("Malformed URI parameter")
        key = name.lower()
        kept = [(n, v) for n, v in self.params if n.lower() != key]
        return replace(self, params=(*kept, (name, value)))

    def without_param(self, name: str) -> SipUri:
        key = name.lower()
        return replace(self, params=tuple((n, v) for n, v in self.params if n.lower() != key))

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def lr(self) -> bool:
        """Loose routing (RFC 3261 §19.1.1): a Route entry a proxy keeps rather than rewrites."""
        return self.has_param("lr")

    @property
    def unescaped_user(self) -> str | None:
        """The user with %-escapes resolved (as UTF-8, undecodable bytes replaced): for lookups
        such as a room alias, never for forwarding."""
        return None if self.user is None else unquote(self.user, errors="replace")

    # --- equivalence (RFC 3261 §19.1.4) -----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipUri):
            return NotImplemented
        if (
            self.scheme != other.scheme
            or self.port != other.port
            or _unescaped_bytes(self.user) != _unescaped_bytes(other.user)
            or _unescaped_bytes(self.password) != _unescaped_bytes(other.password)
            or _host_key(self.host) != _host_key(other.host)
        ):
            return False
        mine = {_param_key(n): _param_key(v) for n, v in self.params}
        theirs = {_param_key(n): _param_key(v) for n, v in other.params}
        for key in mine.keys() | theirs.keys():
            both = key in mine and key in theirs
            if both and mine[key] != theirs[key]:
                return False
            if not both and key is not None and key.decode("latin-1") in _MUST_MATCH_PARAMS:
                return False
        mine_h = {_param_key(n): _unescaped_bytes(v) for n, v in self.headers}
        theirs_h = {_param_key(n): _unescaped_bytes(v) for n, v in other.headers}
        return mine_h == theirs_h

    def __hash__(self) -> int:
        return hash((self.scheme, _unescaped_bytes(self.user), _host_key(self.host), self.port))
