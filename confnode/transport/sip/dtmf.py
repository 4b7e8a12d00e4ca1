"""DTMF as it reaches a conference node: RFC 4733 telephone-events in RTP, and SIP INFO bodies.

DTMF digits are how a SIP caller types a conference PIN or a host command (``*7`` lock, ``##``
end), so each key press must become exactly one digit: not zero (a lost packet) and not two (the
redundancy RFC 4733 builds in on purpose).

RFC 4733 sends one event as a run of packets that all carry the RTP timestamp of the moment the
key went down (§2.5.1.2): a start packet, updates with a growing duration, and an end packet that
is sent three times (§2.5.1.4). Any of them may be lost, duplicated or reordered, so the one thing
that identifies a key press is its timestamp: :class:`DtmfDetector` reports a digit on the first
packet it sees with a new timestamp, whichever packet that is, and never again for that timestamp.
Reporting on the first packet (not on the end packet) means a digit whose end packets are all lost
is still typed.

An event longer than the 16-bit duration field (about 8 s at 8 kHz) is split into segments, each
starting a new timestamp 0xFFFF units after the previous one with the previous segment never
ended (§2.5.1.3); the detector treats such a segment as the same key press.

SIP INFO carries DTMF without an RFC: ``application/dtmf-relay`` (Cisco's ``Signal=5`` /
``Duration=160`` lines, sent by linphone, Asterisk, Cisco and Polycom) and ``application/dtmf``
(a body of just the key). Both are parsed here into :class:`InfoDtmf`.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from confnode.errors import InvalidInput

#: RFC 4733 §3.2 event codes 0-15 in order; 16 is hook flash, which is not a digit.
DTMF_EVENTS = "0123456789*#ABCD"
FLASH_EVENT = 16
_TIMESTAMP_MODULUS = 2**32
_MAX_DURATION = 0xFFFF
_LONG_EVENT = 0x8000
# Enough to cover any reordering window: events are typed one after another, so only the last
# few timestamps can still see late packets.
_HISTORY = 32


class DtmfVia(StrEnum):
    """How a digit reached the node."""

    INFO = "info"
    RFC4733 = "rfc4733"


def event_to_digit(event: int) -> str | None:
    """``0``-``9``, ``*``, ``#``, ``A``-``D`` for RFC 4733 events 0-15; ``None`` otherwise."""
    return DTMF_EVENTS[event] if 0 <= event < len(DTMF_EVENTS) else None


def digit_to_event(digit: str) -> int:
    index = DTMF_EVENTS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise InvalidInput("Not a DTMF digit.")
    return index


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 payload: event code, end bit, volume (0..63, -dBm0) and duration (in
    RTP timestamp units, at the payload type's clock rate)."""

    event: int
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise InvalidInput("A telephone-event code is 0..255.")
        if not 0 <= self.volume <= 63:
            raise InvalidInput("A telephone-event volume is 0..63.")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise InvalidInput("A telephone-event duration is 0..65535.")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """The first event of ``payload``; anything after the first four octets belongs to RFC
        2198 redundancy, which the media layer unpacks before calling this."""
        if len(payload) < 4:
            raise InvalidInput("A telephone-event payload is at least 4 octets.")
        # The R bit (0x40) is reserved: senders set it to zero and receivers ignore it.
        return cls(payload[0], bool(payload[1] & 0x80), payload[1] & 0x3F,
                   (payload[2] << 8) | payload[3])

    def serialize(self) -> bytes:
        return bytes((self.event, (0x80 if self.end else 0) | self.volume,
                      self.duration >> 8, self.duration & 0xFF))

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)


@dataclass(slots=True)
class _Seen:
    event: int
    timestamp: int
    ended: bool
    longest: int


@dataclass(slots=True)
class DtmfDetector:
    """Turns the telephone-event packets of one RTP stream into key presses, each exactly once.

    Feed every telephone-event packet with its RTP timestamp, in arrival order; :meth:`feed`
    returns the digit when the packet is the first one seen of a new key press, else ``None``.
    Non-digit events (hook flash, tones) are swallowed the same way but never returned.
    """

    _seen: deque[_Seen] = field(default_factory=lambda: deque(maxlen=_HISTORY))

    def feed(self, payload: bytes, timestamp: int) -> str | None:
        return self.feed_event(TelephoneEvent.parse(payload), timestamp)

    def feed_event(self, event: TelephoneEvent, timestamp: int) -> str | None:
        timestamp %= _TIMESTAMP_MODULUS
        for seen in self._seen:
            if seen.timestamp == timestamp:
                seen.ended = seen.ended or event.end
                seen.longest = max(seen.longest, event.duration)
                return None
        previous = self._seen[-1] if self._seen else None
        self._seen.append(_Seen(event.event, timestamp, event.end, event.duration))
        if (
            previous is not None
            and previous.event == event.event
            and not previous.ended
            and previous.longest >= _LONG_EVENT
            and 0 < (timestamp - previous.timestamp) % _TIMESTAMP_MODULUS <= _MAX_DURATION + 1
        ):
            # §2.5.1.3: the next segment of a key held longer than the duration field allows.
            # Only an unended event that ran past half the field qualifies, so a fresh press of
            # the same key is never swallowed unless it follows a 4-second hold whose three end
            # packets were all lost.
            previous.ended = True
            return None
        return event.digit


# --- SIP INFO bodies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfoDtmf:
    """One key from a SIP INFO body. ``digit`` is ``None`` for a hook flash (a valid signal
    that types nothing). ``duration_ms`` is as the sender stated it, if it did."""

    digit: str | None
    duration_ms: int | None = None


_RELAY_LINE_RE = re.compile(r"[ \t]*([A-Za-z\-]+)[ \t]*=[ \t]*(\S*)[ \t]*")
_DURATION_RE = re.compile(r"[0-9]{1,9}")


def _signal(value: str) -> InfoDtmf:
    if value == "!" or value == str(FLASH_EVENT):
        return InfoDtmf(None)
    if len(value) == 1 and value.upper() in DTMF_EVENTS:
        return InfoDtmf(value.upper())
    # Some gateways send the RFC 4733 event number: Signal=10 for '*', 11 for '#'.
    if value.isascii() and value.isdigit() and len(value) <= 2 and int(value) < len(DTMF_EVENTS):
        return InfoDtmf(DTMF_EVENTS[int(value)])
    raise InvalidInput("Not a DTMF signal.")


def parse_dtmf_relay(body: bytes) -> InfoDtmf:
    """``application/dtmf-relay``: ``Signal=5`` and optionally ``Duration=160`` (milliseconds),
    one per line, in any order and letter case; other lines are ignored."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput("A dtmf-relay body is ASCII.") from None
    signal: str | None = None
    duration: int | None = None
    for line in text.splitlines():
        match = _RELAY_LINE_RE.fullmatch(line)
        if match is None:
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name == "signal":
            signal = value
        elif name == "duration" and _DURATION_RE.fullmatch(value):
            duration = int(value)
    if signal is None:
        raise InvalidInput("A dtmf-relay body has no Signal.")
    return InfoDtmf(_signal(signal).digit, duration)


def parse_application_dtmf(body: bytes) -> InfoDtmf:
    """``application/dtmf``: the key alone, surrounding whitespace allowed."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidInput("An application/dtmf body is ASCII.") from None
    return _signal(text)
