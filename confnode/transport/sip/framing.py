"""Finding SIP messages in a TCP or TLS byte stream (RFC 3261 §18.3, RFC 5626 §3.5.1).

On a stream, Content-Length is the only thing that says where a body ends, so it is mandatory: a
message without a usable one leaves no way to find the next start line, and the connection is
beyond repair (:attr:`StreamFramer.broken`; the shell answers the error if it can and closes).
A malformed message that *can* be framed costs only itself: its :class:`SipParseError` is
returned in sequence and the stream goes on.

Between messages, CRLFs are skipped (RFC 3261 §7.5). A double CRLF there is an RFC 5626 keep-alive
ping that the server must answer with a single CRLF pong; the framer counts them
(:meth:`StreamFramer.take_pings`) because writing is the shell's job.
"""

from __future__ import annotations

from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.headers import parse_content_length
from confnode.transport.sip.message import (
    _BLANK_LINE_RE,
    SipRequest,
    SipResponse,
    _attach_context,
    _build,
    _Head,
    _read_head,
)

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
_CR, _LF = 13, 10


def is_keepalive(datagram: bytes) -> bool:
    """A datagram of nothing but CR/LF: a keep-alive to ignore, not a message to answer 400."""
    return bool(datagram) and not datagram.strip(b"\r\n")


def _stream_content_length(head: _Head) -> int:
    values = [value for name, value in head.fields if name == "Content-Length"]
    if not values:
        raise SipParseError(400, "Missing Content-Length on a stream transport")
    if len(values) > 1:
        raise SipParseError(400, "Multiple Content-Length headers")
    return parse_content_length(values[0])


class StreamFramer:
    """Feed it whatever the socket gave, in any chunking (byte by byte works), and get back the
    complete messages and per-message parse errors in stream order."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._max = max_message_size
        self._buffer = bytearray()
        # Where to resume looking for the blank line: a few bytes before the old end, since
        # "\r\n\r\n" may straddle two chunks.
        self._scan_from = 0
        self._head: _Head | None = None
        self._body_start = 0
        self._end = 0
        self._crlf_run = ""
        self._pings = 0
        self._untaken_pings = 0
        self._broken = False

    @property
    def broken(self) -> bool:
        """True once framing is lost (missing or bad Content-Length, or a message over the size
        limit): every later byte is ignored and the connection should be closed."""
        return self._broken

    @property
    def pings_received(self) -> int:
        """Double-CRLF keep-alive pings seen between messages, in total."""
        return self._pings

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buffer)

    def take_pings(self) -> int:
        """Pings seen since the last call: write one ``b"\\r\\n"`` pong for each."""
        pings, self._untaken_pings = self._untaken_pings, 0
        return pings

    def feed(self, data: bytes) -> list[SipRequest | SipResponse | SipParseError]:
        if self._broken:
            return []
        self._buffer += data
        out: list[SipRequest | SipResponse | SipParseError] = []
        while True:
            if self._head is None and not self._frame_next(out):
                break
            if len(self._buffer) < self._end:
                break
            head = self._head
            assert head is not None
            body = bytes(self._buffer[self._body_start : self._end])
            del self._buffer[: self._end]
            self._head = None
            self._scan_from = 0
            try:
                out.append(_build(head, body))
            except SipParseError as error:
                out.append(_attach_context(error, head))
        return out

    def _frame_next(self, out: list[SipRequest | SipResponse | SipParseError]) -> bool:
        """Find the next header section and its length; False when more bytes are needed or the
        stream just broke."""
        if not self._skip_keepalives():
            return False
        match = _BLANK_LINE_RE.search(self._buffer, self._scan_from)
        if match is None:
            if len(self._buffer) > self._max:
                self._break(out, SipParseError(413, "Request Entity Too Large"),
                            _read_head(bytes(self._buffer[: self._max])))
            else:
                self._scan_from = max(0, len(self._buffer) - 3)
            return False
        head = _read_head(bytes(self._buffer[: match.start()]))
        try:
            length = _stream_content_length(head)
        except SipParseError as error:
            self._break(out, error, head)
            return False
        if match.end() + length > self._max:
            self._break(out, SipParseError(413, "Request Entity Too Large"), head)
            return False
        self._head = head
        self._body_start = match.end()
        self._end = match.end() + length
        return True

    def _skip_keepalives(self) -> bool:
        """Drop CR/LF at a message boundary, counting "\\r\\n\\r\\n" pings; False if nothing else
        is buffered yet."""
        buffer = self._buffer
        skipped = 0
        while skipped < len(buffer) and buffer[skipped] in (_CR, _LF):
            self._crlf_run = self._crlf_run[-3:] + ("\r" if buffer[skipped] == _CR else "\n")
            if self._crlf_run == "\r\n\r\n":
                self._pings += 1
                self._untaken_pings += 1
                self._crlf_run = ""
            skipped += 1
        if skipped:
            del buffer[:skipped]
        if not buffer:
            return False
        self._crlf_run = ""
        return True

    def _break(self, out: list[SipRequest | SipResponse | SipParseError],
               error: SipParseError, head: _Head) -> None:
        self._broken = True
        self._buffer.clear()
        out.append(_attach_context(error, head))
