"""The one error a SIP parser raises, carrying what a server needs to answer it.

RFC 3261 asks a server to answer most unparsable requests rather than drop them: 400 Bad Request for
syntax, 505 for a SIP version other than 2.0 (§21.5.6), 416 for a Request-URI scheme it cannot
serve (§8.2.2.1), 413 and 414 for sizes it refuses (§21.4.11, §21.4.12). An answer must carry
the request's Via, From, To, Call-ID and CSeq (§8.2.6.2) so the client can match it to its
transaction, which is why the error keeps whatever of those the parser managed to read.

Responses are never answered: ``message_kind`` tells the caller to drop those silently.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from confnode.errors import InvalidInput

if TYPE_CHECKING:
    from confnode.transport.sip.headers import Headers

# Statuses a parse error can carry; anything else would be a bug in the parser.
_ERROR_STATUSES = frozenset({400, 413, 414, 416, 505})


class MessageKind(StrEnum):
    REQUEST = "request"
    RESPONSE = "response"


class SipParseError(InvalidInput):
    """Bytes that are not an acceptable SIP message.

    ``status`` and ``reason`` form the status line a server should answer with; ``reason`` is a
    fixed phrase written by the parser, never text taken from the message, so it is safe to send
    back and to log (SIP headers hold display names and addresses: personal data).

    ``message_kind`` is ``None`` when not even the start line could be read. ``headers`` holds the
    raw Via (all of them, in order), From, To, Call-ID and CSeq values that were found, compact
    names expanded, once the start line was read; ``None`` otherwise.
    """

    code = "sip_parse_error"

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        message_kind: MessageKind | None = None,
        headers: Headers | None = None,
    ) -> None:
        if status not in _ERROR_STATUSES:
            raise ValueError(f"not a SIP parse error status: {status}")
        if "\r" in reason or "\n" in reason:
            raise ValueError("a reason phrase must be a single line")
        super().__init__(reason, status=status)
        self.status = status
        self.reason = reason
        self.message_kind = message_kind
        self.headers = headers

    def __repr__(self) -> str:
        return (f"SipParseError({self.status}, {self.reason!r}, "
                f"message_kind={self.message_kind!r})")
