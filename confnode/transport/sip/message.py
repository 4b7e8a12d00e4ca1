"""SIP requests and responses: bytes in, objects out; objects in, bytes out (RFC 3261 §7).

:func:`parse_message` reads one datagram (the stream framer in :mod:`.framing` feeds it framed
messages) and either returns a :class:`SipRequest` / :class:`SipResponse` whose transaction
headers are known to be well-formed, or raises :class:`SipParseError` with the status a server
should answer. What it accepts and refuses follows RFC 3261 §7 and §25 and the torture tests of
RFC 4475:

* Accepted liberally: header folding; any LWS around ``:``, ``;``, ``=``, ``/``; bare LF line
  ends; extra spaces in the start line (RFC 4475 §3.1.2.9, §3.1.2.10); leading CRLFs before the
  start line (§7.5); unknown methods (the TU answers 405/501); unknown headers, kept verbatim.
* Refused with 400: malformed start lines, a Request-URI in ``<>`` or with spaces or URI headers,
  missing or repeated To, From, Call-ID, CSeq (and a missing Via), malformed Via / From / To /
  Contact / Route / Record-Route / CSeq / Call-ID / Max-Forwards, a CSeq number of 2**31 or more,
  a CSeq method other than the request's, repeated, negative or non-numeric Content-Length, and a
  Content-Length larger than the datagram's body.
* 505 for a SIP version other than 2.0; 416 for a URI scheme other than sip, sips and tel; 414
  for a Request-URI longer than :data:`MAX_REQUEST_URI_LENGTH`; 413 above ``max_size``.

Max-Forwards is mandatory in requests (RFC 3261 §8.1.1.6) but RFC 2543 clients omit it, and a UAS
loses nothing by tolerating that, so a missing Max-Forwards parses and reads as ``None``.

A datagram body longer than Content-Length is cut to it (RFC 3261 §18.3: the rest is noise, RFC
4475 §3.1.1.8); with no Content-Length the rest of the datagram is the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from confnode.errors import InvalidInput
from confnode.transport.sip.errors import MessageKind, SipParseError
from confnode.transport.sip.headers import (
    MULTI_VALUE_HEADERS,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    is_token,
    parse_call_id,
    parse_content_length,
    parse_max_forwards,
    split_commas,
)
from confnode.transport.sip.uri import SipUri

SIP_VERSION = "SIP/2.0"
#: Longer Request-URIs are answered 414 (RFC 3261 §21.4.12) before any further parsing.
MAX_REQUEST_URI_LENGTH = 4096

REASON_PHRASES = MappingProxyType({
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 428: "Use Identity Header",
    429: "Provide Referrer Identity", 433: "Anonymity Disallowed", 436: "Bad Identity Info",
    437: "Unsupported Credential", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
    469: "Bad Info Package", 470: "Consent Needed", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    607: "Unwanted", 608: "Rejected",
})

_CLASS_PHRASES = ("Informational", "Success", "Redirection", "Client Error", "Server Error",
                  "Global Failure")


def reason_phrase(status: int) -> str:
    """The usual reason phrase for ``status``; the class name (``"Client Error"``) if unlisted."""
    return REASON_PHRASES.get(status) or _CLASS_PHRASES[status // 100 - 1]


# --- the message objects ----------------------------------------------------------------------


class _SipMessageBase:
    """Typed views of the headers every layer above needs.

    They parse on each access (the values are short) so they can never disagree with
    ``headers``; a parsed message is known to have well-formed transaction headers, so on one from
    :func:`parse_message` only the list accessors can meet an absent header (and return ``[]``).
    On a message built by hand a missing or malformed header raises :class:`SipParseError`.
    """

    __slots__ = ()
    headers: Headers

    def _one(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(400, f"Missing {name} header")
        return value

    @property
    def via(self) -> list[Via]:
        """Every Via hop, topmost (the latest sender) first."""
        return [Via.parse(value) for value in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(self._one("Via"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._one("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._one("To"))

    @property
    def call_id(self) -> str:
        return parse_call_id(self._one("Call-ID"))

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._one("CSeq"))

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_max_forwards(value)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact addresses; ``Contact: *`` is not one (see :attr:`contact_wildcard`)."""
        return [NameAddr.parse(v) for v in self.headers.get_all("Contact") if v != "*"]

    @property
    def contact_wildcard(self) -> bool:
        """``Contact: *``: remove all bindings (RFC 3261 §10.2.2)."""
        return "*" in self.headers.get_all("Contact")

    @property
    def routes(self) -> list[NameAddr]:
        return [NameAddr.parse(value) for value in self.headers.get_all("Route")]

    @property
    def record_routes(self) -> list[NameAddr]:
        return [NameAddr.parse(value) for value in self.headers.get_all("Record-Route")]

    @property
    def content_type(self) -> str | None:
        """The raw Content-Type value (``application/sdp``, possibly with parameters)."""
        return self.headers.get("Content-Type")


@dataclass
class SipRequest(_SipMessageBase):
    method: str
    uri: SipUri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION


@dataclass
class SipResponse(_SipMessageBase):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION


SipMessage = SipRequest | SipResponse


# --- parsing ----------------------------------------------------------------------------------

_LINE_SPLIT_RE = re.compile(r"\r?\n")
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE_RE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:(.*)", re.S)
_RESPONSE_START_RE = re.compile(r"SIP/[0-9]", re.I | re.A)
_REQUEST_START_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]")
_VERSION_RE = re.compile(r"SIP/([0-9]+)\.([0-9]+)", re.I | re.A)
_STATUS_LINE_RE = re.compile(
    r"(SIP/[0-9]+\.[0-9]+)[ \t]+([0-9]{3})(?:[ \t](.*))?", re.I | re.A | re.S
)
_WS_RE = re.compile(r"[ \t]+")
_REASON_RE = re.compile(r"[^\r\n]*")
_SERIALIZE_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+")

# The transaction headers a server needs to answer (RFC 3261 §8.2.6.2); Via comes first.
_ANSWER_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_SINGLE_HEADERS = ("From", "To", "Call-ID", "CSeq")


@dataclass(slots=True)
class _Head:
    """A header section split into its start line and unfolded ``(canonical name, value)``
    fields. ``defect`` is the first line-level problem; it is raised only after the start line
    was judged, so a bad version still answers 505 and the salvage still sees every field."""

    kind: MessageKind | None
    start_line: str
    fields: list[tuple[str, str]]
    defect: SipParseError | None


def _read_head(head: bytes) -> _Head:
    defect: SipParseError | None = None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("utf-8", "replace")
        defect = SipParseError(400, "Header section is not valid UTF-8")
    lines = _LINE_SPLIT_RE.split(text)
    start_line = lines[0]
    kind: MessageKind | None = None
    if _RESPONSE_START_RE.match(start_line):
        kind = MessageKind.RESPONSE
    elif _REQUEST_START_RE.match(start_line):
        kind = MessageKind.REQUEST
    if "\r" in start_line:
        defect = defect or SipParseError(400, "Bare CR in start line")
    folded: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if "\r" in line:
            # A CR not followed by LF ends a line for some parsers and not for others: refuse it
            # rather than let two elements disagree on where a header ends.
            defect = defect or SipParseError(400, "Bare CR in header section")
            continue
        if line[0] in " \t":
            if folded:
                folded[-1].append(line)
            else:
                defect = defect or SipParseError(400, "Continuation line before the first header")
            continue
        match = _HEADER_LINE_RE.fullmatch(line)
        if match is None:
            defect = defect or SipParseError(400, "Malformed header line")
            continue
        folded.append([match.group(1), match.group(2)])
    fields: list[tuple[str, str]] = []
    for name, *parts in folded:
        # RFC 3261 §7.3.1: a fold is LWS, and LWS may be replaced by a single SP.
        value = parts[0] if len(parts) == 1 else " ".join(p.strip(" \t") for p in parts)
        fields.append((canonical_name(name), value.strip(" \t")))
    return _Head(kind, start_line, fields, defect)


def _salvage(head: _Head) -> Headers:
    """The transaction headers as found, unvalidated, for answering a broken request."""
    entries: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for name, value in head.fields:
        if name == "Via":
            entries += (("via", "Via", item) for item in split_commas(value) if item)
        elif name in _ANSWER_HEADERS and name not in seen:
            seen.add(name)
            entries.append((name.lower(), name, value))
    return Headers._trusted(entries)


def _attach_context(error: SipParseError, head: _Head) -> SipParseError:
    if error.message_kind is None:
        error.message_kind = head.kind
    if error.headers is None and head.kind is not None:
        error.headers = _salvage(head)
    return error


def _parse_version(text: str) -> str:
    match = _VERSION_RE.fullmatch(text)
    if match is None:
        raise SipParseError(400, "Malformed SIP version")
    # "SIP/02.00" is 2.0 (the numbers are decimal); compare on the strings so that a
    # 5000-digit version costs nothing and never reaches int().
    if (match.group(1).lstrip("0"), match.group(2).lstrip("0")) != ("2", ""):
        raise SipParseError(505, "Version Not Supported")
    return SIP_VERSION


def _parse_request_line(line: str) -> tuple[str, SipUri, str]:
    parts = _WS_RE.split(line.strip(" \t"))
    if len(parts) != 3:
        # Also a Request-URI with LWS in it (RFC 4475 §3.1.2.8).
        raise SipParseError(400, "Malformed Request-Line")
    method, uri_text, version_text = parts
    if not is_token(method):
        raise SipParseError(400, "Malformed method")
    version = _parse_version(version_text)
    if len(uri_text) > MAX_REQUEST_URI_LENGTH:
        raise SipParseError(414, "Request-URI Too Long")
    if uri_text.startswith("<"):
        raise SipParseError(400, "Request-URI must not be enclosed in angle brackets")
    uri = SipUri.parse(uri_text)
    if uri.headers:
        # RFC 3261 §19.1.1, table 1: headers are not allowed in a Request-URI.
        raise SipParseError(400, "Request-URI must not contain headers")
    return method, uri, version


def _parse_status_line(line: str) -> tuple[str, int, str]:
    match = _STATUS_LINE_RE.fullmatch(line)
    if match is None:
        raise SipParseError(400, "Malformed Status-Line")
    version = _parse_version(match.group(1))
    status = int(match.group(2))
    if not 100 <= status <= 699:
        raise SipParseError(400, "Status code out of range")
    return version, status, match.group(3) or ""


def _build(head: _Head, body: bytes) -> SipRequest | SipResponse:
    """A message from a read header section and the bytes after its blank line."""
    if head.kind is None:
        raise SipParseError(400, "Malformed start line")
    if head.kind is MessageKind.REQUEST:
        method, uri, version = _parse_request_line(head.start_line)
    else:
        version, status, reason = _parse_status_line(head.start_line)
    if head.defect is not None:
        raise head.defect

    entries: list[tuple[str, str, str]] = []
    by_key: dict[str, list[str]] = {}
    for name, value in head.fields:
        key = name.lower()
        values = by_key.get(key)
        if values is None:
            values = by_key[key] = []
        if key in MULTI_VALUE_HEADERS and "," in value:
            items = split_commas(value)
            entries.extend([(key, name, item) for item in items])
            values.extend(items)
        else:
            entries.append((key, name, value))
            values.append(value)
    headers = Headers._trusted(entries)
    empty: list[str] = []

    lengths = by_key.get("content-length", empty)
    if len(lengths) > 1:
        # Two lengths leave no way to find the body (RFC 4475 §3.3.9).
        raise SipParseError(400, "Multiple Content-Length headers")
    if lengths:
        length = parse_content_length(lengths[0])
        if length > len(body):
            raise SipParseError(400, "Content-Length larger than the message body")
        if length < len(body):
            body = body[:length]

    vias = by_key.get("via", empty)
    if not vias:
        raise SipParseError(400, "Missing Via header")
    for name in _SINGLE_HEADERS:
        count = len(by_key.get(name.lower(), empty))
        if count != 1:
            raise SipParseError(
                400, f"Missing {name} header" if count == 0 else f"Multiple {name} headers")
    for via in vias:
        Via.parse(via)
    NameAddr.parse(by_key["from"][0])
    NameAddr.parse(by_key["to"][0])
    parse_call_id(by_key["call-id"][0])
    cseq = CSeq.parse(by_key["cseq"][0])
    max_forwards = by_key.get("max-forwards", empty)
    if len(max_forwards) > 1:
        raise SipParseError(400, "Multiple Max-Forwards headers")
    if max_forwards:
        parse_max_forwards(max_forwards[0])
    contacts = by_key.get("contact", empty)
    if "*" in contacts and len(contacts) > 1:
        raise SipParseError(400, "Contact: * must be the only Contact")
    for value in contacts:
        if value != "*":
            NameAddr.parse(value)
    for key in ("route", "record-route"):
        for value in by_key.get(key, empty):
            NameAddr.parse(value)

    if head.kind is MessageKind.REQUEST:
        if cseq.method != method:
            raise SipParseError(400, "CSeq method does not match the request method")
        return SipRequest(method, uri, headers, body, version)
    return SipResponse(status, reason, headers, body, version)


def parse_message(data: bytes, *, max_size: int | None = None) -> SipRequest | SipResponse:
    """Parse one datagram's worth of SIP; raise :class:`SipParseError` for anything unacceptable.

    ``max_size`` (bytes) answers larger datagrams 413. The error's ``message_kind`` and
    ``headers`` are filled in whenever the start line could be read (see
    :func:`make_error_response`).
    """
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    data = data.lstrip(b"\r\n")
    match = _BLANK_LINE_RE.search(data)
    head = _read_head(data if match is None else data[: match.start()])
    try:
        if max_size is not None and len(data) > max_size:
            raise SipParseError(413, "Request Entity Too Large")
        if match is None:
            raise SipParseError(400, "Missing empty line after the header section")
        return _build(head, data[match.end() :])
    except SipParseError as error:
        raise _attach_context(error, head) from None


# --- serialization ----------------------------------------------------------------------------


def serialize(message: SipRequest | SipResponse) -> bytes:
    """The wire form: CRLF line ends, one header value per line, canonical names, and a
    Content-Length (last) that matches the body, whatever the headers said before."""
    if isinstance(message, SipRequest):
        if not is_token(message.method):
            raise InvalidInput("A SIP method must be a token.")
        start = f"{message.method} {message.uri} {message.version}"
    else:
        if not 100 <= message.status <= 699:
            raise InvalidInput("A SIP status code must be between 100 and 699.")
        if not _REASON_RE.fullmatch(message.reason):
            raise InvalidInput("A SIP reason phrase must be a single line of text.")
        start = f"{message.version} {message.status} {message.reason}"
    if not _SERIALIZE_VERSION_RE.fullmatch(message.version):
        raise InvalidInput("A SIP version looks like SIP/2.0.")
    lines = [start]
    lines += [f"{name}: {value}" for name, value in message.headers if name != "Content-Length"]
    lines.append(f"Content-Length: {len(message.body)}\r\n\r\n")
    return "\r\n".join(lines).encode("utf-8") + message.body


# --- responses --------------------------------------------------------------------------------


def _with_to_tag(to_value: str, to_tag: str | None) -> str:
    """Add a To tag unless there is one. Appending ``;tag=`` keeps the rest of the value byte for
    byte, and is right in both forms: after ``>``, or after a bare addr-spec, whose trailing
    parameters are header parameters (RFC 3261 §20.10)."""
    if to_tag is None:
        return to_value
    if not is_token(to_tag):
        raise InvalidInput("A SIP tag must be a token.")
    try:
        if NameAddr.parse(to_value).tag is not None:
            return to_value
    except SipParseError:
        return to_value  # answering a broken To as it came is all a 400 can do
    return f"{to_value};tag={to_tag}"


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """A response to ``request`` per RFC 3261 §8.2.6: every Via in order (with whatever
    ``received``/``rport`` the transport added), From, To, Call-ID and CSeq copied.

    ``to_tag`` is added to To when the request had none (out-of-dialog); a request already in a
    dialog keeps its To tag. It is ignored for 100 Trying, which never carries one (§8.2.6.1),
    and a 100 copies the request's Timestamp. Record-Route copying for dialog-creating responses
    (§12.1.1) is the dialog layer's, via ``extra_headers``.
    """
    if not 100 <= status <= 699:
        raise InvalidInput("A SIP status code must be between 100 and 699.")
    if reason is not None and not _REASON_RE.fullmatch(reason):
        raise InvalidInput("A SIP reason phrase must be a single line of text.")
    headers = Headers()
    for name in _ANSWER_HEADERS:
        for value in request.headers.get_all(name):
            if name == "To" and status != 100:
                value = _with_to_tag(value, to_tag)
            headers.add(name, value)
    if status == 100:
        for value in request.headers.get_all("Timestamp"):
            headers.add("Timestamp", value)
    for name, value in extra_headers:
        headers.add(name, value)
    if content_type is not None:
        headers.set("Content-Type", content_type)
    return SipResponse(status, reason_phrase(status) if reason is None else reason, headers, body)


def make_error_response(error: SipParseError, *, to_tag: str | None = None) -> SipResponse | None:
    """The answer to a request that failed to parse, or ``None`` when there must be none.

    A client matches a response to its transaction by the top Via's branch and the CSeq method
    (RFC 3261 §17.1.3), so a request with a Via and a CSeq is answered even if From, To or Call-ID
    are missing (RFC 4475 §3.3.1: ideally a 400); whichever of those exist are copied
    as they came. Responses, unreadable start lines, and requests without Via or CSeq get
    ``None``: there is nowhere to send an answer, or no client could match it.
    """
    if error.message_kind is not MessageKind.REQUEST or error.headers is None:
        return None
    found = error.headers
    if "Via" not in found or "CSeq" not in found:
        return None
    headers = Headers()
    for name in _ANSWER_HEADERS:
        for value in found.get_all(name):
            headers.add(name, _with_to_tag(value, to_tag) if name == "To" else value)
    return SipResponse(error.status, error.reason, headers)
