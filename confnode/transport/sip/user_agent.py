"""The node's SIP user-agent core: calls into conference rooms, as a UAS (RFC 3261 §8.2, §13-15).

Sans-IO in the aioquic style. The shell feeds what a socket gave (:meth:`SipUserAgent.receive`
for datagrams; :meth:`SipUserAgent.receive_message` with what a :class:`StreamFramer` produced
per connection), sends :meth:`~SipUserAgent.datagrams_to_send`, reads
:meth:`~SipUserAgent.next_event`, and drives :meth:`~SipUserAgent.get_timer` /
:meth:`~SipUserAgent.handle_timer`. The application answers calls with the action methods.
Nothing a peer sends makes :meth:`~SipUserAgent.receive` raise: every malformed or unacceptable
request gets its SIP answer instead, and responses that make no sense are dropped.

What the core answers by itself, in the order of §8.2:

* 483 to a request with ``Max-Forwards: 0`` (OPTIONS aside: it is answered, so that a
  ``Max-Forwards: 0`` ping reaches the node itself; RFC 4475 §3.3.11);
* 405 with Allow to a method the node knows but does not take (REGISTER, SUBSCRIBE, MESSAGE,
  REFER...; §8.2.1), 501 to one it does not know;
* 482 to a merged request (§8.2.2.2), and to a new INVITE whose Call-ID is already a live call
  here (the Call-ID is the application's handle on a call, so one Call-ID is one call);
* 420 with Unsupported to a Require the node does not support (§8.2.2.3; not for CANCEL);
* 415 with Accept to an INVITE/UPDATE body that is not SDP (a ``multipart/mixed`` body with an
  ``application/sdp`` part is accepted, RFC 5621, since some gateways wrap SDP that way), and to
  a Content-Encoding other than identity (§8.2.3);
* 481 to BYE, INFO, UPDATE, re-INVITE, in-dialog OPTIONS or CANCEL for nothing known (§12.2.2,
  §9.2, §15.1.2);
* 500 with Retry-After to an out-of-order CSeq (§12.2.2), and to a new offer while one from the
  same peer is still unanswered (§14.2, RFC 3311 §5.2);
* 491 to a new offer (re-INVITE or UPDATE) while an offer of the node's own is unanswered -- the
  node's 2xx to an INVITE without an offer carries one, answered in the ACK: that is glare
  (§14.2, RFC 3311 §5.2), and the peer retries after a random wait (§14.1);
* 200 to OPTIONS (with Allow, Accept, Accept-Encoding, Supported), to CANCEL (plus 487 to the
  INVITE), to BYE, to INFO; the status a :class:`SipParseError` carries to malformed requests.

Session timers (RFC 4028), when ``"timer"`` is supported: if the caller supports them too, the 2xx
names the caller as refresher (``Session-Expires: N;refresher=uac`` and ``Require: timer``), and
a session that is not refreshed by ``N - min(32, N/3)`` seconds is ended with a BYE
(:attr:`EndReason.SESSION_EXPIRED`): a phone that died without a BYE no longer holds a licence.
The node never refreshes itself (it never sends offers), so a request asking for
``refresher=uas``, or from a caller without timer support, runs without a session timer.

Events name a call by its Call-ID. Events carry the caller's address, display name, SDP (which can
hold SDES keys) and DTMF digits (which can be PINs) only in fields left out of ``repr``: events can
be logged, those fields must not be.
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from confnode.errors import Conflict, InvalidInput, NotFound
from confnode.transport.sip.dialogs import (
    AckWait,
    AckWaitOutcome,
    Dialog,
    DialogId,
)
from confnode.transport.sip.dtmf import (
    DtmfVia,
    InfoDtmf,
    parse_application_dtmf,
    parse_dtmf_relay,
)
from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.framing import DEFAULT_MAX_MESSAGE_SIZE, is_keepalive
from confnode.transport.sip.headers import Via, is_token
from confnode.transport.sip.message import (
    SipRequest,
    SipResponse,
    make_error_response,
    make_response,
    parse_message,
    serialize,
)
from confnode.transport.sip.transactions import (
    Address,
    InviteServerTransaction,
    NonInviteClientTransaction,
    ServerTransaction,
    TimerSettings,
    TransactionLayer,
    TransactionState,
    response_destination,
    stamp_via,
)
from confnode.transport.sip.uri import SipUri

#: What the core implements; ``allow`` may narrow it but must keep the first four (§13, §15).
IMPLEMENTED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")
_MANDATORY_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE"})
# Methods a SIP element may meet that the node recognises and refuses with 405 (§8.2.1).
_RECOGNISED_METHODS = frozenset(IMPLEMENTED_METHODS) | {
    "REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH", "PRACK",
}
DEFAULT_SUPPORTED = frozenset({"timer"})
DEFAULT_SESSION_EXPIRES = 1800  # RFC 4028 §4 recommends 1800 s
DEFAULT_MIN_SE = 90  # RFC 4028 §5: the smallest Min-SE allowed
# What the node takes as session descriptions and as INFO bodies.
_SDP = "application/sdp"
_MULTIPART = "multipart/mixed"
_DTMF_RELAY = "application/dtmf-relay"
_DTMF = "application/dtmf"
_RETRY_AFTER_MAX = 10  # §14.2: a Retry-After "between 0 and 10 seconds"


def _random_token() -> str:
    return secrets.token_hex(8)


# --- events -------------------------------------------------------------------------------------


class CallState(StrEnum):
    OFFERED = "offered"  # INVITE received, no final answer yet (an early dialog)
    ACCEPTED = "accepted"  # 2xx sent, its ACK not yet received
    CONFIRMED = "confirmed"


class EndReason(StrEnum):
    BYE = "bye"  # the caller hung up
    ACK_TIMEOUT = "ack_timeout"  # our 2xx was never acknowledged (§13.3.1.4); we sent BYE
    SESSION_EXPIRED = "session_expired"  # RFC 4028: no refresh in time; we sent BYE


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE, already validated; answer it with ``ringing``/``accept``/``reject``.

    ``target_user`` is the Request-URI's user part, escapes resolved: the room's alias or
    numeric alias (``None`` when the URI has no user). ``caller`` is the From URI and
    ``display_name`` its display name: personal data, never logged. ``offer_sdp`` is ``None``
    for an INVITE without an offer: then ``accept`` sends the node's offer and the answer comes
    in :attr:`CallConfirmed.answer_sdp`.
    """

    call_id: str
    target_user: str | None
    caller: str = field(repr=False)
    offer_sdp: bytes | None = field(repr=False)
    content_type: str | None
    source: Address
    request_uri: str
    display_name: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CallCancelled:
    """The caller gave up before the call was answered; the call is gone (487 was sent)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The ACK for our 2xx: media may flow both ways. ``answer_sdp`` is the ACK's SDP, the
    answer to our offer when the INVITE had none."""

    call_id: str
    answer_sdp: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over for a reason the application did not cause (a local ``hangup`` raises
    no event)."""

    call_id: str
    reason: EndReason


@dataclass(frozen=True, slots=True)
class ReInvite:
    """A new offer in the call (``method`` ``INVITE`` or ``UPDATE``); answer with
    ``answer_reinvite``. ``offer_sdp`` is ``None`` for a re-INVITE without an offer: the node's
    2xx then carries its offer and the answer comes in :attr:`ReInviteConfirmed.answer_sdp`."""

    call_id: str
    offer_sdp: bytes | None = field(repr=False)
    method: str = "INVITE"


@dataclass(frozen=True, slots=True)
class ReInviteCancelled:
    """The peer cancelled its re-INVITE before it was answered; the old session stands."""

    call_id: str


@dataclass(frozen=True, slots=True)
class ReInviteConfirmed:
    """The ACK for our 2xx to a re-INVITE."""

    call_id: str
    answer_sdp: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    call_id: str
    digits: str = field(repr=False)  # may be a PIN
    via: DtmfVia = DtmfVia.INFO
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A request of ours (a BYE) got a final error or timed out (``status`` 408)."""

    call_id: str
    status: int
    method: str = "BYE"


SipEvent = (IncomingCall | CallCancelled | CallConfirmed | CallEnded | ReInvite
            | ReInviteCancelled | ReInviteConfirmed | DtmfReceived | RequestFailed)


# --- internals ----------------------------------------------------------------------------------


class _Refusal(InvalidInput):
    """A request the core answers with an error status; raised by checks, caught by dispatch."""

    code = "sip_refusal"

    def __init__(self, status: int, reason: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(reason or str(status), status=status)
        self.status = status
        self.reason = reason
        self.headers = tuple(headers)


@dataclass(slots=True)
class _PendingOffer:
    """A re-INVITE or UPDATE the application has not answered yet."""

    transaction: ServerTransaction
    session_interval: int | None


@dataclass(slots=True)
class _Call:
    call_id: str
    dialog: Dialog
    invite: InviteServerTransaction
    peer: Address
    state: CallState = CallState.OFFERED
    session_interval: int | None = None
    session_deadline: float | None = None
    ack_wait: AckWait | None = None
    ack_wait_initial: bool = True
    pending: _PendingOffer | None = None
    hangup_after_ack: bool = False
    # Our 2xx carried an offer (the INVITE had none); its answer comes in the ACK.
    offer_outstanding: bool = False


def _media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip(" \t").lower()


_BOUNDARY_RE = re.compile(r';[ \t]*boundary[ \t]*=[ \t]*("([^"]+)"|[^; \t]+)', re.I)


def _multipart_sdp(body: bytes, content_type: str) -> bytes | None:
    """The first ``application/sdp`` part of a ``multipart/mixed`` body (RFC 2046 §5.1.1)."""
    match = _BOUNDARY_RE.search(content_type)
    if match is None:
        return None
    boundary = (match.group(2) or match.group(1)).encode("utf-8", "replace")
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        line_end = chunk.find(b"\r\n")  # transport padding after the delimiter
        if line_end < 0:
            continue
        part = chunk[line_end + 2 :]
        if part.startswith(b"\r\n"):
            head, content = b"", part[2:]
        else:
            head, sep, content = part.partition(b"\r\n\r\n")
            if not sep:
                continue
        part_type = "text/plain"  # RFC 2046 §5.1: the default
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() in ("content-type", "c"):
                part_type = value.strip()
        if _media_type(part_type) == _SDP:
            return content
    return None


_SESSION_EXPIRES_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]*((?:;.*)?)")


def _session_expires(value: str) -> tuple[int, str | None]:
    """``Session-Expires: 1800;refresher=uac`` -> (1800, "uac")."""
    match = _SESSION_EXPIRES_RE.fullmatch(value)
    if match is None:
        raise _Refusal(400, "Malformed Session-Expires header")
    refresher = None
    for param in match.group(2).split(";")[1:]:
        name, _, param_value = param.partition("=")
        if name.strip(" \t").lower() == "refresher":
            refresher = param_value.strip(" \t").lower()
    return int(match.group(1)), refresher


def _warning_value(agent: str, warning: str | tuple[int, str]) -> str:
    """``Warning: 399 node.example "text"`` (§20.43); the text is quoted and escaped, so
    application text can never break the header."""
    code, text = (399, warning) if isinstance(warning, str) else warning
    if not 300 <= code <= 399:
        raise InvalidInput("A SIP warning code is 3xx.")
    escaped = re.sub(r'([\\"])', r"\\\1", re.sub(r"[\x00-\x1f\x7f]", " ", text))
    return f'{code} {agent} "{escaped}"'


# --- the user agent -----------------------------------------------------------------------------


class SipUserAgent:
    """The UAS core for one transport (one listening socket, UDP or a stream listener).

    ``local_contact`` is the node's address on that transport; it goes in Contact and in the Via
    of the node's requests. ``reliable`` is true for TCP and TLS. ``token_factory`` makes tags
    and branch identifiers (random by default; tests pass a counter).
    """

    def __init__(
        self,
        local_contact: SipUri,
        *,
        reliable: bool,
        supported: Collection[str] = DEFAULT_SUPPORTED,
        allow: Collection[str] = IMPLEMENTED_METHODS,
        timers: TimerSettings | None = None,
        session_expires: int = DEFAULT_SESSION_EXPIRES,
        min_se: int = DEFAULT_MIN_SE,
        via_transport: str | None = None,
        server: str | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        token_factory: Callable[[], str] = _random_token,
    ) -> None:
        unknown = set(allow) - set(IMPLEMENTED_METHODS)
        if unknown:
            raise InvalidInput(f"Methods the core does not implement: {sorted(unknown)}.")
        if not _MANDATORY_METHODS <= set(allow):
            raise InvalidInput("INVITE, ACK, CANCEL and BYE must be allowed.")
        if any(not is_token(tag) for tag in supported):
            raise InvalidInput("Option tags are tokens.")
        if not DEFAULT_MIN_SE <= min_se <= session_expires:
            raise InvalidInput("Session timers need 90 <= min_se <= session_expires.")
        if local_contact.scheme == "tel":
            raise InvalidInput("The local contact must be a sip: or sips: URI.")
        self.local_contact = local_contact
        self.reliable = reliable
        self._allow = tuple(m for m in IMPLEMENTED_METHODS if m in set(allow))
        self._supported = frozenset(supported)
        self._session_expires = session_expires
        self._min_se = min_se
        self._server = server
        self._max_message_size = max_message_size
        self._token = token_factory
        self._layer = TransactionLayer(reliable=reliable, timers=timers)
        self._via_transport = (via_transport or self._default_via_transport()).upper()
        self._calls: dict[str, _Call] = {}
        self._dialogs: dict[DialogId, str] = {}
        self._bye_calls: dict[NonInviteClientTransaction, str] = {}
        self._events: deque[SipEvent] = deque()

    def _default_via_transport(self) -> str:
        transport = self.local_contact.transport
        if transport is not None:
            return transport
        if self.local_contact.scheme == "sips":
            return "TLS"
        return "TCP" if self.reliable else "UDP"

    # --- the sans-IO surface ----------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """One UDP datagram (or one message already cut from a stream)."""
        if is_keepalive(data):
            return  # RFC 5626 CRLF keep-alive: nothing to answer on a datagram transport
        message: SipRequest | SipResponse | SipParseError
        try:
            message = parse_message(data, max_size=self._max_message_size)
        except SipParseError as error:
            message = error
        self.receive_message(message, source, now)

    def receive_message(self, message: SipRequest | SipResponse | SipParseError,
                        source: Address, now: float) -> None:
        """A parsed message or a parse error, e.g. from a :class:`StreamFramer`."""
        if isinstance(message, SipParseError):
            self._answer_parse_error(message, source)
        elif isinstance(message, SipResponse):
            self._receive_response(message, now)
        else:
            self._receive_request(message, source, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        return self._layer.datagrams_to_send()

    def next_event(self) -> SipEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [self._layer.get_timer()]
        for call in self._calls.values():
            if call.ack_wait is not None:
                deadlines.append(call.ack_wait.get_timer())
            deadlines.append(call.session_deadline)
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        for transaction in self._layer.handle_timer(now):
            if isinstance(transaction, NonInviteClientTransaction):
                call_id = self._bye_calls.pop(transaction, None)
                if call_id is not None:
                    self._events.append(RequestFailed(call_id, 408, transaction.method))
        for call in list(self._calls.values()):
            if call.ack_wait is not None:
                outcome = call.ack_wait.handle_timer(now)
                if outcome is AckWaitOutcome.RETRANSMIT:
                    self._layer.transmit(call.ack_wait.response, call.ack_wait.destination)
                elif outcome is AckWaitOutcome.EXPIRED:
                    # §13.3.1.4: the dialog is confirmed, but the session ends with a BYE.
                    call.ack_wait = None
                    self._bye(call, now, EndReason.ACK_TIMEOUT)
                    continue
            if call.session_deadline is not None and now >= call.session_deadline:
                self._bye(call, now, EndReason.SESSION_EXPIRED)

    # --- introspection ------------------------------------------------------------------------

    def call_state(self, call_id: str) -> CallState | None:
        call = self._calls.get(call_id)
        return None if call is None else call.state

    @property
    def call_ids(self) -> list[str]:
        return list(self._calls)

    @property
    def transaction_count(self) -> int:
        return self._layer.transaction_count

    # --- actions --------------------------------------------------------------------------------

    def ringing(self, call_id: str, *, now: float) -> None:
        """180 Ringing: the caller hears ringback while the room decides (an early dialog)."""
        call = self._offered(call_id)
        self._respond(call.invite, 180, now, to_tag=call.dialog.local_tag,
                      headers=self._dialog_headers(call, creating=True))

    def accept(self, call_id: str, answer_sdp: bytes, *, now: float) -> None:
        """200 OK with our SDP; retransmitted (on UDP) until the ACK, BYE if it never comes."""
        call = self._offered(call_id)
        request = call.invite.request
        headers = self._dialog_headers(call, creating=True)
        headers += self._session_timer_headers(call.session_interval)
        response = self._respond(call.invite, 200, now, to_tag=call.dialog.local_tag,
                                 headers=headers, body=answer_sdp, content_type=_SDP)
        call.dialog.confirm()
        call.state = CallState.ACCEPTED
        call.ack_wait = AckWait(serialize(response), call.invite.destination,
                                request.cseq.number, now, reliable=self.reliable,
                                timers=self._layer.timers)
        call.ack_wait_initial = True
        call.offer_outstanding = not request.body
        self._arm_session_timer(call, now)

    def reject(
        self,
        call_id: str,
        status: int,
        reason: str | None = None,
        *,
        warning: str | tuple[int, str] | None = None,
        retry_after: int | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        now: float,
    ) -> None:
        """A final error to an unanswered call: 404 for an unknown alias, 486/503 with
        ``retry_after`` when the node is full, 488 with a ``warning`` for an unusable offer,
        ``(code, text)`` for a warning code other than 399 (e.g. 304 or 305 for media)."""
        if not 300 <= status <= 699:
            raise InvalidInput("A call is rejected with a 3xx-6xx status.")
        call = self._offered(call_id)
        headers = self._error_headers(warning, retry_after, extra_headers)
        self._respond(call.invite, status, now, reason, to_tag=call.dialog.local_tag,
                      headers=headers)
        self._forget(call)

    def answer_reinvite(
        self,
        call_id: str,
        answer_sdp: bytes | None,
        status: int = 200,
        *,
        reason: str | None = None,
        warning: str | tuple[int, str] | None = None,
        now: float,
    ) -> None:
        """Answer the pending :class:`ReInvite`: 2xx with ``answer_sdp`` (the new session), or
        an error (488 and the like) that leaves the current session as it was."""
        call = self._get(call_id)
        pending = call.pending
        if pending is None:
            raise Conflict("There is no re-INVITE or UPDATE to answer.")
        if status < 200:
            raise InvalidInput("A re-INVITE is answered with a final status.")
        transaction = pending.transaction
        call.pending = None
        if status >= 300:
            self._respond(transaction, status, now, reason,
                          headers=self._error_headers(warning, None, ()))
            return
        request = transaction.request
        call.dialog.refresh_target(request)
        call.session_interval = pending.session_interval
        headers = self._dialog_headers(call, creating=False)
        headers += self._session_timer_headers(call.session_interval)
        response = self._respond(transaction, status, now, reason, headers=headers,
                                 body=answer_sdp or b"",
                                 content_type=_SDP if answer_sdp else None)
        if request.method == "INVITE":
            call.ack_wait = AckWait(serialize(response), transaction.destination,
                                    request.cseq.number, now, reliable=self.reliable,
                                    timers=self._layer.timers)
            call.ack_wait_initial = False
            call.offer_outstanding = not request.body and bool(answer_sdp)
        self._arm_session_timer(call, now)

    def hangup(self, call_id: str, *, now: float) -> None:
        """End the call from the node's side. Unanswered: 480. Answered: BYE, deferred until
        the ACK (or its timeout) if that has not come yet (§15). Raises no event."""
        call = self._get(call_id)
        if call.state is CallState.OFFERED:
            self._respond(call.invite, 480, now, to_tag=call.dialog.local_tag)
            self._forget(call)
        elif call.ack_wait is not None and call.ack_wait_initial:
            call.hangup_after_ack = True
        else:
            self._bye(call, now, None)

    # --- receiving --------------------------------------------------------------------------

    def _answer_parse_error(self, error: SipParseError, source: Address) -> None:
        found = error.headers
        if found is not None:
            # An ACK is never answered (§17.2.1), however broken.
            cseq = (found.get("CSeq") or "").split()
            if cseq and cseq[-1] == "ACK":
                return
        try:
            answer = make_error_response(error, to_tag=self._token())
            if answer is None:
                return
            data = serialize(answer)
        except InvalidInput:
            return  # what was salvaged cannot even be echoed
        destination = source
        top_via = answer.headers.get("Via")
        if top_via is not None:
            try:
                destination = response_destination(Via.parse(top_via), source,
                                                   reliable=self.reliable)
            except SipParseError:
                pass
        self._layer.transmit(data, destination)

    def _receive_response(self, response: SipResponse, now: float) -> None:
        transaction = self._layer.receive_response(response, now)
        if transaction is None or response.status < 200:
            return
        call_id = self._bye_calls.pop(transaction, None)
        if call_id is not None and response.status >= 300:
            self._events.append(RequestFailed(call_id, response.status, transaction.method))

    def _receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        request = stamp_via(request, source)
        if request.method == "ACK":
            self._receive_ack(request, now)
            return
        transaction = self._layer.receive_request(request, source, now)
        if transaction is None:
            return  # a retransmission, answered by its transaction
        try:
            self._dispatch(request, transaction, source, now)
        except InvalidInput as error:
            if transaction.final_sent:
                return  # every refusal is raised before any final answer; never two finals
            if isinstance(error, _Refusal):
                self._respond(transaction, error.status, now, error.reason,
                              headers=list(error.headers))
            elif isinstance(error, SipParseError):
                # A header only read here (Contact, Require...) turned out malformed.
                self._respond(transaction, error.status, now, error.reason)
            else:
                self._respond(transaction, 400, now)

    def _receive_ack(self, ack: SipRequest, now: float) -> None:
        if self._layer.receive_ack(ack, now):
            return  # the ACK for a non-2xx, absorbed by its transaction
        call = self._call_for(ack)
        if call is None or call.ack_wait is None or call.ack_wait.cseq != ack.cseq.number:
            return  # a retransmitted or stray ACK: never answered
        initial = call.ack_wait_initial
        call.ack_wait = None
        call.offer_outstanding = False
        sdp = ack.body if ack.body and _media_type(ack.content_type) == _SDP else None
        if initial:
            call.state = CallState.CONFIRMED
            if call.hangup_after_ack:
                self._bye(call, now, None)
                return
            self._events.append(CallConfirmed(call.call_id, sdp))
        else:
            self._events.append(ReInviteConfirmed(call.call_id, sdp))

    def _dispatch(self, request: SipRequest, transaction: ServerTransaction, source: Address,
                  now: float) -> None:
        method = request.method
        if request.max_forwards == 0 and method != "OPTIONS":
            raise _Refusal(483)
        if method not in self._allow:
            # §8.2.1: 405 (with Allow) for what we know and refuse, 501 for what we do not know.
            status = 405 if method in _RECOGNISED_METHODS else 501
            raise _Refusal(status, headers=[("Allow", self._allow_value())])
        in_dialog = request.to.tag is not None
        if not in_dialog and self._layer.is_merged(request):
            raise _Refusal(482)
        if method != "CANCEL":
            unsupported = [tag for tag in request.headers.get_list("Require")
                           if tag not in self._supported]
            if unsupported:
                raise _Refusal(420, headers=[("Unsupported", ", ".join(unsupported))])
        if method == "CANCEL":
            self._on_cancel(request, transaction, now)
        elif not in_dialog:
            if method == "OPTIONS":
                self._respond(transaction, 200, now, headers=self._capabilities())
                return
            if method != "INVITE":
                raise _Refusal(481)  # BYE, INFO, UPDATE outside a dialog (§15.1.2)
            assert isinstance(transaction, InviteServerTransaction)
            self._on_invite(request, transaction, source, now)
        else:
            call = self._call_for(request)
            if call is None:
                raise _Refusal(481)
            if not call.dialog.check_remote_cseq(request):
                raise _Refusal(500, headers=[("Retry-After", self._retry_after())])
            if method == "OPTIONS":
                # In a dialog, OPTIONS is the peer asking whether the dialog still lives: a 481
                # above says it does not.
                self._respond(transaction, 200, now, headers=self._capabilities())
            elif method == "BYE":
                self._on_bye(call, transaction, now)
            elif method == "INFO":
                self._on_info(call, request, transaction, now)
            else:
                self._on_offer(call, request, transaction, now)

    # --- per method -------------------------------------------------------------------------

    def _on_invite(self, request: SipRequest, transaction: InviteServerTransaction,
                   source: Address, now: float) -> None:
        call_id = request.call_id
        if call_id in self._calls:
            raise _Refusal(482)
        offer = self._session_offer(request)
        interval = self._negotiate_session_timer(request)
        dialog = Dialog.from_request(request, self._token())
        # Our requests in the dialog go where its responses go: the connection on a stream,
        # and on UDP the source (rport) or the Via port (§18.2.2). There is no resolver here,
        # and the caller is usually behind NAT, or behind a proxy that is the first Route hop.
        call = _Call(call_id, dialog, transaction, transaction.destination,
                     session_interval=interval)
        self._calls[call_id] = call
        self._dialogs[dialog.id] = call_id
        # §17.2.1: a 100 at once, since the application's answer may take longer than 200 ms.
        self._respond(transaction, 100, now)
        self._events.append(IncomingCall(
            call_id=call_id,
            target_user=request.uri.unescaped_user,
            caller=str(request.from_.uri),
            offer_sdp=offer,
            content_type=_SDP if offer is not None else None,
            source=source,
            request_uri=str(request.uri),
            display_name=request.from_.display_name,
        ))

    def _on_cancel(self, cancel: SipRequest, transaction: ServerTransaction,
                   now: float) -> None:
        invite = self._layer.find_invite(cancel)
        if invite is None:
            raise _Refusal(481)
        call = next((c for c in self._calls.values()
                     if c.invite is invite
                     or (c.pending is not None and c.pending.transaction is invite)), None)
        # §9.2: the CANCEL's 200 carries the To tag of the INVITE's responses.
        to_tag = call.dialog.local_tag if call is not None else self._token()
        self._respond(transaction, 200, now, to_tag=to_tag)
        if invite.final_sent:
            return  # too late: the INVITE stands, the caller will BYE
        self._respond(invite, 487, now, to_tag=to_tag)
        if call is None:
            return
        if call.invite is invite:
            self._forget(call)
            self._events.append(CallCancelled(call.call_id))
        else:
            call.pending = None
            self._events.append(ReInviteCancelled(call.call_id))

    def _on_bye(self, call: _Call, transaction: ServerTransaction, now: float) -> None:
        self._respond(transaction, 200, now)
        # §15.1.2: whatever is still pending in the dialog is answered 487.
        if call.state is CallState.OFFERED:
            self._respond(call.invite, 487, now, to_tag=call.dialog.local_tag)
        if call.pending is not None:
            self._respond(call.pending.transaction, 487, now)
        self._forget(call)
        self._events.append(CallEnded(call.call_id, EndReason.BYE))

    def _on_info(self, call: _Call, request: SipRequest, transaction: ServerTransaction,
                 now: float) -> None:
        if "Info-Package" in request.headers:
            # RFC 6086 §4.2.2: the node registered no Info Packages (legacy INFO only).
            raise _Refusal(469, headers=[("Recv-Info", "")])
        if not request.body:
            self._respond(transaction, 200, now)  # an empty INFO is a keep-alive probe
            return
        media_type = _media_type(request.content_type)
        parser = {_DTMF_RELAY: parse_dtmf_relay, _DTMF: parse_application_dtmf}.get(
            media_type or "")
        if parser is None:
            raise _Refusal(415, headers=[("Accept", f"{_DTMF_RELAY}, {_DTMF}")])
        try:
            signal: InfoDtmf = parser(request.body)
        except InvalidInput:
            raise _Refusal(400, "Malformed DTMF body") from None
        self._respond(transaction, 200, now)
        if signal.digit is not None:
            self._events.append(DtmfReceived(call.call_id, signal.digit, DtmfVia.INFO,
                                             signal.duration_ms))

    def _on_offer(self, call: _Call, request: SipRequest, transaction: ServerTransaction,
                  now: float) -> None:
        """re-INVITE or UPDATE."""
        offer = self._session_offer(request)
        if request.method == "UPDATE" and offer is None:
            # A refresh (RFC 4028) or target refresh without a new offer: answered here.
            interval = self._negotiate_session_timer(request)
            call.dialog.refresh_target(request)
            if call.state is not CallState.OFFERED:
                call.session_interval = interval
                self._arm_session_timer(call, now)
            self._respond(transaction, 200, now, headers=self._dialog_headers(call, creating=False)
                          + self._session_timer_headers(call.session_interval))
            return
        if call.offer_outstanding and call.ack_wait is not None:
            # Glare: both sides have an offer in flight; ours is answered in the ACK.
            raise _Refusal(491)
        if (call.pending is not None or call.ack_wait is not None
                or call.state is not CallState.CONFIRMED):
            # §14.2, RFC 3311 §5.2: the peer's previous offer (or our answer's ACK) is still
            # outstanding; one offer/answer exchange at a time.
            raise _Refusal(500, headers=[("Retry-After", self._retry_after())])
        interval = self._negotiate_session_timer(request)
        call.pending = _PendingOffer(transaction, interval)
        self._events.append(ReInvite(call.call_id, offer, request.method))

    # --- checks -----------------------------------------------------------------------------

    def _session_offer(self, request: SipRequest) -> bytes | None:
        """The SDP a request carries, ``None`` without a body; 415 for anything else."""
        if not request.body:
            return None
        accept = [("Accept", f"{_SDP}, {_MULTIPART}")]
        encodings = [e.lower() for e in request.headers.get_list("Content-Encoding")]
        if any(e != "identity" for e in encodings):
            raise _Refusal(415, headers=[*accept, ("Accept-Encoding", "identity")])
        content_type = request.content_type
        media_type = _media_type(content_type)
        if media_type == _SDP:
            return request.body
        if media_type == _MULTIPART and content_type is not None:
            sdp = _multipart_sdp(request.body, content_type)
            if sdp is not None:
                return sdp
        raise _Refusal(415, headers=accept)

    def _negotiate_session_timer(self, request: SipRequest) -> int | None:
        """The session interval to run with, or ``None`` for no session timer (RFC 4028 §9)."""
        if "timer" not in self._supported:
            return None
        caller_supports = "timer" in (request.headers.get_list("Supported")
                                      + request.headers.get_list("Require"))
        offered = request.headers.get("Session-Expires")
        interval, refresher = (None, None) if offered is None else _session_expires(offered)
        if not caller_supports or refresher == "uas":
            return None
        if interval is not None and interval < self._min_se:
            raise _Refusal(422, headers=[("Min-SE", str(self._min_se))])
        if interval is not None:
            return interval
        floor = self._min_se
        min_se = request.headers.get("Min-SE")
        if min_se is not None:
            match = _SESSION_EXPIRES_RE.fullmatch(min_se)
            if match is None:
                raise _Refusal(400, "Malformed Min-SE header")
            floor = max(floor, int(match.group(1)))
        return max(self._session_expires, floor)

    # --- helpers ----------------------------------------------------------------------------

    def _get(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            # Also a call whose CallCancelled/CallEnded is queued: a race the shell tolerates.
            raise NotFound("No such SIP call.")
        return call

    def _offered(self, call_id: str) -> _Call:
        call = self._get(call_id)
        if call.state is not CallState.OFFERED:
            raise Conflict("The call has already been answered.")
        return call

    def _call_for(self, request: SipRequest) -> _Call | None:
        dialog_id = DialogId.of_request(request)
        call_id = None if dialog_id is None else self._dialogs.get(dialog_id)
        return None if call_id is None else self._calls.get(call_id)

    def _forget(self, call: _Call) -> None:
        call.dialog.terminate()
        self._calls.pop(call.call_id, None)
        self._dialogs.pop(call.dialog.id, None)

    def _bye(self, call: _Call, now: float, reason: EndReason | None) -> None:
        """Send BYE and end the call (§15.1.1: the session is over once the BYE is sent);
        ``reason`` is the :class:`CallEnded` to report, ``None`` when the application asked."""
        if call.pending is not None:
            self._respond(call.pending.transaction, 487, now)
            call.pending = None
        report = reason is not None and not call.hangup_after_ack
        via = Via(self._via_transport, self.local_contact.host, self.local_contact.port,
                  (("branch", f"{Via.MAGIC_COOKIE}{self._token()}"), ("rport", None)))
        extra = [("User-Agent", self._server)] if self._server else []
        bye = call.dialog.create_request("BYE", via, extra_headers=extra)
        self._forget(call)
        transaction = self._layer.send_request(bye, call.peer, now)
        if transaction.state is not TransactionState.TERMINATED:
            self._bye_calls[transaction] = call.call_id
        if report:
            assert reason is not None
            self._events.append(CallEnded(call.call_id, reason))

    def _respond(
        self,
        transaction: ServerTransaction,
        status: int,
        now: float,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        extra = list(headers)
        if self._server:
            extra.append(("Server", self._server))
        # §8.2.6.2: every response but 100 carries a To tag; a request already in a dialog has
        # one and keeps it.
        response = make_response(transaction.request, status, reason,
                                 to_tag=to_tag or self._token(), extra_headers=extra,
                                 body=body, content_type=content_type)
        transaction.respond(response, now)
        return response

    def _contact(self, call: _Call) -> str:
        uri = self.local_contact
        if call.dialog.secure and uri.scheme != "sips":
            # §12.1.1: a dialog set up over SIPS gets a SIPS Contact.
            uri = replace(uri, scheme="sips").without_param("transport")
        return f"<{uri}>"

    def _dialog_headers(self, call: _Call, *, creating: bool) -> list[tuple[str, str]]:
        headers = []
        if creating:
            headers += [("Record-Route", value) for value in call.dialog.record_route]
        headers.append(("Contact", self._contact(call)))
        headers.append(("Allow", self._allow_value()))
        if self._supported:
            headers.append(("Supported", ", ".join(sorted(self._supported))))
        return headers

    def _capabilities(self) -> list[tuple[str, str]]:
        """What OPTIONS advertises (§11.2)."""
        headers = [
            ("Allow", self._allow_value()),
            ("Accept", f"{_SDP}, {_MULTIPART}, {_DTMF_RELAY}, {_DTMF}"),
            ("Accept-Encoding", "identity"),
        ]
        if self._supported:
            headers.append(("Supported", ", ".join(sorted(self._supported))))
        return headers

    def _session_timer_headers(self, interval: int | None) -> list[tuple[str, str]]:
        if interval is None:
            return []
        return [("Session-Expires", f"{interval};refresher=uac"), ("Require", "timer")]

    def _arm_session_timer(self, call: _Call, now: float) -> None:
        interval = call.session_interval
        # RFC 4028 §10: the side that does not refresh sends its BYE at
        # interval - min(32, interval / 3) after the last refresh.
        call.session_deadline = (None if interval is None
                                 else now + interval - min(32, interval / 3))

    def _error_headers(self, warning: str | tuple[int, str] | None, retry_after: int | None,
                       extra: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        headers = list(extra)
        if retry_after is not None:
            if retry_after < 0:
                raise InvalidInput("Retry-After is a number of seconds.")
            headers.append(("Retry-After", str(retry_after)))
        if warning is not None:
            headers.append(("Warning", _warning_value(self._warn_agent(), warning)))
        return headers

    def _warn_agent(self) -> str:
        port = "" if self.local_contact.port is None else f":{self.local_contact.port}"
        return f"{self.local_contact.host}{port}"

    def _allow_value(self) -> str:
        return ", ".join(self._allow)

    def _retry_after(self) -> str:
        return str(secrets.randbelow(_RETRY_AFTER_MAX + 1))
