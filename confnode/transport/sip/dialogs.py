"""SIP dialogs as the UAS sees them (RFC 3261 §12, §13.3.1.4, §15), sans-IO.

A dialog is the peer-to-peer relationship an INVITE creates: Call-ID plus both tags identify it;
it remembers the peer's address for new requests (remote target, from Contact), the proxies that
asked to stay in the path (route set, from Record-Route), and both CSeq counters. The node is
always the UAS of its dialogs, which fixes the direction of everything: our tag goes in To of the
responses and in From of our requests, and the route set is the Record-Route in the order
received (a UAC would reverse it, §12.1.2).

:class:`AckWait` is the TU's half of the 2xx exchange: a 2xx ends the INVITE transaction, so the
UAS core itself retransmits it (T1 doubling up to T2, on unreliable transports only) until the ACK
arrives, and gives up after 64*T1, after which the session is ended with a BYE (§13.3.1.4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from confnode.errors import Conflict, InvalidInput
from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.headers import CSeq, Headers, NameAddr, Via
from confnode.transport.sip.message import SipRequest
from confnode.transport.sip.transactions import Address, TimerSettings
from confnode.transport.sip.uri import SipUri

DEFAULT_MAX_FORWARDS = 70
# RFC 3261 §19.1.1 table 1: parameters that may not appear in a Request-URI.
_NOT_IN_REQUEST_URI = ("method", "ttl", "maddr")


class DialogState(StrEnum):
    EARLY = "early"  # created by the INVITE, no 2xx yet
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID, our tag and the peer's (§12). An RFC 2543 peer sends no From tag: ``""``."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: SipRequest) -> DialogId | None:
        """The dialog an incoming request names; ``None`` when it has no To tag (it is not
        inside a dialog, §12.2.2)."""
        local_tag = request.to.tag
        if local_tag is None:
            return None
        return cls(request.call_id, local_tag, request.from_.tag or "")


def _is_sips(uri: SipUri) -> bool:
    return uri.scheme == "sips"


class Dialog:
    """One dialog on the UAS side."""

    def __init__(
        self,
        *,
        call_id: str,
        local_party: NameAddr,
        remote_party: NameAddr,
        remote_target: SipUri,
        route_set: tuple[NameAddr, ...] = (),
        remote_cseq: int | None = None,
        local_cseq: int | None = None,
        secure: bool = False,
        record_route: tuple[str, ...] = (),
    ) -> None:
        if local_party.tag is None:
            raise InvalidInput("A dialog needs our tag.")
        self.call_id = call_id
        self.local_party = local_party
        self.remote_party = remote_party
        self.remote_target = remote_target
        self.route_set = route_set
        self.remote_cseq = remote_cseq
        self.local_cseq = local_cseq
        self.secure = secure
        #: The Record-Route values as received, copied into dialog-creating responses (§12.1.1).
        self.record_route = record_route
        self.state = DialogState.EARLY

    @classmethod
    def from_request(cls, request: SipRequest, local_tag: str) -> Dialog:
        """The dialog an INVITE (or other dialog-creating request) opens at the UAS (§12.1.1).

        Raises :class:`SipParseError` (400) when there is no single Contact to send requests to.
        """
        contacts = request.contacts
        if len(contacts) != 1:
            raise SipParseError(400, "Missing Contact header" if not contacts
                                else "Multiple Contact headers")
        record_routes = request.record_routes
        # §12.1.1: "secure" if the request came to a SIPS URI, or its first hop asked for one.
        first_hop = record_routes[0].uri if record_routes else contacts[0].uri
        return cls(
            call_id=request.call_id,
            local_party=request.to.with_tag(local_tag),
            remote_party=request.from_,
            remote_target=contacts[0].uri,
            route_set=tuple(record_routes),
            remote_cseq=request.cseq.number,
            secure=_is_sips(request.uri) or _is_sips(first_hop),
            record_route=tuple(request.headers.get_all("Record-Route")),
        )

    @property
    def local_tag(self) -> str:
        tag = self.local_party.tag
        assert tag is not None
        return tag

    @property
    def remote_tag(self) -> str:
        return self.remote_party.tag or ""

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    def confirm(self) -> None:
        if self.state is DialogState.TERMINATED:
            raise Conflict("The dialog has ended.")
        self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # --- requests from the peer (§12.2.2) -------------------------------------------------

    def check_remote_cseq(self, request: SipRequest) -> bool:
        """Whether an in-dialog request is in order; records its CSeq if so.

        A CSeq lower than the last one is out of order and answered 500 (§12.2.2). ACK and
        CANCEL repeat the CSeq of the request they belong to and are not counted.
        """
        if request.method in ("ACK", "CANCEL"):
            return True
        number = request.cseq.number
        if self.remote_cseq is not None and number < self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def refresh_target(self, request: SipRequest) -> None:
        """A target refresh (re-INVITE, UPDATE) moves the remote target to its Contact, once
        accepted (§12.2.2, RFC 6141 §3.2); a request without one leaves it as it was."""
        contacts = request.contacts
        if len(contacts) == 1:
            self.remote_target = contacts[0].uri

    # --- our requests (§12.2.1.1) ----------------------------------------------------------

    def create_request(
        self,
        method: str,
        via: Via,
        *,
        max_forwards: int = DEFAULT_MAX_FORWARDS,
        extra_headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """A new request in this dialog: the next local CSeq, our tag in From, the peer's in To,
        and the Request-URI and Route the route set calls for. ``via`` carries a fresh branch."""
        if self.state is DialogState.TERMINATED:
            raise Conflict("The dialog has ended.")
        if not via.magic_cookie:
            raise InvalidInput("A new request needs an RFC 3261 branch.")
        # §12.2.1.1: the local sequence number starts wherever the UAS likes (< 2**31); a UAS
        # dialog has none until its first request.
        self.local_cseq = 1 if self.local_cseq is None else self.local_cseq + 1
        request_uri, routes = self._request_target()
        headers = Headers()
        headers.add("Via", str(via))
        headers.add("Max-Forwards", str(max_forwards))
        for route in routes:
            headers.add("Route", route)
        headers.add("From", str(self.local_party))
        headers.add("To", str(self.remote_party))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", str(CSeq(self.local_cseq, method)))
        for name, value in extra_headers:
            headers.add(name, value)
        if content_type is not None:
            headers.set("Content-Type", content_type)
        return SipRequest(method, request_uri, headers, body)

    def _request_target(self) -> tuple[SipUri, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if first.uri.lr:
            # Loose routing: the route set goes in Route as it is, the target in the URI.
            return self.remote_target, [str(route) for route in self.route_set]
        # Strict routing (RFC 2543 proxies): the first hop becomes the Request-URI, and the real
        # target travels as the last Route entry.
        uri = first.uri
        for name in _NOT_IN_REQUEST_URI:
            uri = uri.without_param(name)
        uri = replace(uri, headers=())
        routes = [str(route) for route in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return uri, routes


class AckWaitOutcome(StrEnum):
    NOTHING = "nothing"
    RETRANSMIT = "retransmit"
    EXPIRED = "expired"


class AckWait:
    """Waiting for the ACK of one 2xx to an INVITE (initial or re-INVITE).

    ``response`` is the serialized 2xx, resent on each :attr:`AckWaitOutcome.RETRANSMIT`. On a
    reliable transport nothing is resent (the hop does not lose it) but the 64*T1 limit still
    holds: a peer that never ACKs is gone.
    """

    def __init__(self, response: bytes, destination: Address, cseq: int, now: float, *,
                 reliable: bool, timers: TimerSettings) -> None:
        self.response = response
        self.destination = destination
        self.cseq = cseq
        self.retransmissions = 0
        self._t2 = timers.t2
        self._interval = timers.t1
        self._give_up_at = now + timers.timeout
        self._retransmit_at: float | None = None if reliable else now + timers.t1

    def get_timer(self) -> float:
        if self._retransmit_at is None:
            return self._give_up_at
        return min(self._retransmit_at, self._give_up_at)

    def handle_timer(self, now: float) -> AckWaitOutcome:
        if now >= self._give_up_at:
            self._retransmit_at = None
            return AckWaitOutcome.EXPIRED
        if self._retransmit_at is None or now < self._retransmit_at:
            return AckWaitOutcome.NOTHING
        self._interval = min(2 * self._interval, self._t2)
        self._retransmit_at = now + self._interval
        self.retransmissions += 1
        return AckWaitOutcome.RETRANSMIT
