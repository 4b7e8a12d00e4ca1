"""SIP transactions (RFC 3261 §17, with RFC 6026's fix for 2xx to INVITE), sans-IO.

A transaction is the request/response exchange one hop sees, with the retransmissions that make it
reliable over UDP. The layer here holds three kinds:

* INVITE server transaction (§17.2.1 + RFC 6026 §7.1): Proceeding -> Accepted (2xx) or
  Completed (300-699) -> Confirmed (ACK) -> Terminated. A retransmitted INVITE gets the last
  provisional or the final non-2xx again; the ACK for a non-2xx is absorbed here. A 2xx is sent
  once and the *TU* retransmits it until its ACK arrives (§13.3.1.4, :class:`dialogs.AckWait`):
  the 2xx ACK is a new transaction that the TU matches by dialog.
* non-INVITE server transaction (§17.2.2): Trying -> Proceeding -> Completed -> Terminated.
* non-INVITE client transaction (§17.1.2) for the node's own BYE: timers E, F, K; a timeout is
  reported to the caller, which then treats it as 408.

There is no INVITE client transaction: the node never places calls.

On a reliable transport (TCP, TLS) the retransmission timers A/E/G are never armed and the
absorbing timers I, J, K are zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2); the timeouts B/F/H
still run, so a silent peer is still noticed.

Time is a float of seconds from any monotonic clock: SIP timers are intervals, and a wall clock
that jumps would fire or starve every retransmission at once.

On UDP every answered non-INVITE request stays for 64*T1 (timer J) to absorb its retransmissions,
so the live transactions number the request rate times 32 s. Nothing here walks them all per
message: deadlines sit in a heap and merged-request detection looks up an index, so the cost of a
datagram does not grow with the traffic before it.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, replace
from enum import StrEnum

from confnode.errors import Conflict, InvalidInput
from confnode.transport.sip.headers import CSeq, Headers, Via
from confnode.transport.sip.message import SipRequest, SipResponse, serialize

#: Where a message came from or goes to. On a stream transport it names the connection.
Address = tuple[str, int]

_DEFAULT_PORT = 5060


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """RFC 3261 table 4. ``t1`` is the round-trip estimate, ``t2`` the cap on non-INVITE
    retransmission intervals, ``t4`` how long a message may linger in the network."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0:
            raise InvalidInput("SIP timers need 0 < T1 <= T2 and T4 > 0.")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J and L, and the TU's wait for the ACK of a 2xx."""
        return 64 * self.t1


class TransactionState(StrEnum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026: 2xx sent to an INVITE, its ACK is the TU's business
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# --- the transport's part: Via stamping and response routing (§18.2) -------------------------


def _same_host(via_host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(via_host.strip("[]")) == ipaddress.ip_address(address)
    except ValueError:
        return via_host.lower() == address.lower()


def stamp_via(request: SipRequest, source: Address) -> SipRequest:
    """The request with ``received`` and ``rport`` filled into its top Via (§18.2.1, RFC 3581
    §4), so that every response copies where the request really came from. A source that is no
    IP address (a stream connection's name that is not a token) is left out rather than refused.
    """
    via = request.top_via
    stamped = via
    try:
        wants_rport = via.has_param("rport") and via.param("rport") is None
        if wants_rport or not _same_host(via.host, source[0]):
            stamped = stamped.with_param("received", source[0])
        if wants_rport:
            stamped = stamped.with_param("rport", str(source[1]))
    except InvalidInput:
        return request
    if stamped is via:
        return request
    headers = Headers()
    replaced = False
    for name, value in request.headers:
        if name == "Via" and not replaced:
            value, replaced = str(stamped), True
        headers.add(name, value)
    return replace(request, headers=headers)


def response_destination(via: Via, source: Address, *, reliable: bool) -> Address:
    """Where responses to a request go (§18.2.2, RFC 3581 §4). On a stream: back on the
    connection it came in on. On UDP: the source address, and the source port only if the client
    asked for it with ``rport``; otherwise the port it put in its Via. ``maddr`` (multicast) is
    not honoured: a conference node answers unicast."""
    if reliable or via.has_param("rport"):
        return source
    return (source[0], via.port or _DEFAULT_PORT)


# --- keys (§17.1.3, §17.2.3) --------------------------------------------------------------------


def server_transaction_key(request: SipRequest, method: str | None = None) -> Hashable:
    """The server transaction ``request`` belongs to, for ``method`` (default: its own; an ACK
    and a CANCEL look up the INVITE). RFC 3261 branches identify the transaction together with
    the sent-by; for RFC 2543 clients, whose branches are not unique, the request's identity
    fields stand in (§17.2.3)."""
    via = request.top_via
    method = method or request.method
    if via.magic_cookie:
        assert via.branch is not None
        return ("3261", via.branch.lower(), via.host.lower(), via.port, method)
    return ("2543", str(request.uri), request.from_.tag or "", request.call_id,
            request.cseq.number, via.host.lower(), via.port, via.branch or "", method)


def request_identity(request: SipRequest) -> tuple[str | None, str, CSeq]:
    """From tag, Call-ID and CSeq: what two copies of one request share however they travelled,
    for the merged-request check of §8.2.2.2."""
    return (request.from_.tag, request.call_id, request.cseq)


# --- transactions -------------------------------------------------------------------------------


class _Transaction:
    """What every transaction shares: a deadline, a destination and the layer it sends through."""

    def __init__(self, layer: TransactionLayer, request: SipRequest, destination: Address,
                 state: TransactionState) -> None:
        self._layer = layer
        self.request = request
        self.destination = destination
        self.state = state
        self.timed_out = False
        self._due: float | None = None

    @property
    def _deadline(self) -> float | None:
        return self._due

    @_deadline.setter
    def _deadline(self, when: float | None) -> None:
        self._due = when
        if when is not None:
            self._layer._schedule(self, when)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def reliable(self) -> bool:
        return self._layer.reliable

    @property
    def timers(self) -> TimerSettings:
        return self._layer.timers

    def get_timer(self) -> float | None:
        return self._due

    def handle_timer(self, now: float) -> None:
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        self._layer.transmit(data, self.destination)

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self._deadline = None
        self._layer._forget(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state}>"


class ServerTransaction(_Transaction):
    """A request received; the TU answers through :meth:`respond`."""

    def __init__(self, layer: TransactionLayer, key: Hashable, request: SipRequest,
                 destination: Address, state: TransactionState) -> None:
        super().__init__(layer, request, destination, state)
        self.key = key
        self.identity = request_identity(request)
        self.last_response: SipResponse | None = None
        self._last_bytes: bytes | None = None

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def respond(self, response: SipResponse, now: float) -> None:
        raise NotImplementedError

    def _retransmission(self, now: float) -> None:
        raise NotImplementedError

    def _check_can_respond(self, response: SipResponse) -> bytes:
        if self.final_sent or self.state is TransactionState.TERMINATED:
            raise Conflict("This request has already been answered.")
        data = serialize(response)
        self.last_response = response
        self._last_bytes = data
        return data


class InviteServerTransaction(ServerTransaction):
    def __init__(self, layer: TransactionLayer, key: Hashable, request: SipRequest,
                 destination: Address) -> None:
        super().__init__(layer, key, request, destination, TransactionState.PROCEEDING)
        self._interval = 0.0
        self._timeout_at = 0.0

    def respond(self, response: SipResponse, now: float) -> None:
        data = self._check_can_respond(response)
        self._send(data)
        if response.status < 200:
            return
        if response.status < 300:
            # RFC 6026 §7.1: stay around 64*T1 (timer L) to absorb INVITE retransmissions,
            # instead of letting them look like new calls.
            self.state = TransactionState.ACCEPTED
            self._deadline = now + self.timers.timeout
            return
        self.state = TransactionState.COMPLETED
        self._timeout_at = now + self.timers.timeout  # timer H
        if self.reliable:
            self._deadline = self._timeout_at
        else:
            self._interval = self.timers.t1  # timer G
            self._deadline = now + self._interval

    def _retransmission(self, now: float) -> None:
        # Proceeding: the last provisional again (§17.2.1); Completed: the final again.
        # Accepted: absorbed, the TU's own 2xx retransmissions cover it (RFC 6026 §8.5).
        if self.state in (TransactionState.PROCEEDING, TransactionState.COMPLETED) and (
            self._last_bytes is not None
        ):
            self._send(self._last_bytes)

    def receive_ack(self, now: float) -> bool:
        """An ACK with this transaction's branch: True when absorbed here (the ACK for a
        non-2xx); False when it is the TU's (a 2xx ACK that reused the INVITE's branch)."""
        if self.state is TransactionState.ACCEPTED:
            return False
        if self.state is TransactionState.COMPLETED:
            self.state = TransactionState.CONFIRMED
            if self.reliable:
                self._terminate()
            else:
                self._deadline = now + self.timers.t4  # timer I
        return True

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        if self.state is TransactionState.COMPLETED:
            if now >= self._timeout_at:
                # Timer H: the ACK never came; the TU learns nothing it could act on.
                self.timed_out = True
                self._terminate()
                return
            assert self._last_bytes is not None
            self._send(self._last_bytes)  # timer G
            self._interval = min(2 * self._interval, self.timers.t2)
            self._deadline = min(now + self._interval, self._timeout_at)
            return
        self._terminate()  # timer I (Confirmed) or L (Accepted)


class NonInviteServerTransaction(ServerTransaction):
    def __init__(self, layer: TransactionLayer, key: Hashable, request: SipRequest,
                 destination: Address) -> None:
        super().__init__(layer, key, request, destination, TransactionState.TRYING)

    def respond(self, response: SipResponse, now: float) -> None:
        data = self._check_can_respond(response)
        self._send(data)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return
        self.state = TransactionState.COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self._deadline = now + self.timers.timeout  # timer J

    def _retransmission(self, now: float) -> None:
        # Trying: nothing to repeat yet, the request is simply absorbed (§17.2.2).
        if self.state is not TransactionState.TRYING and self._last_bytes is not None:
            self._send(self._last_bytes)

    def handle_timer(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            self._terminate()


class NonInviteClientTransaction(_Transaction):
    """The node's own BYE (or any non-INVITE request): retransmitted on UDP until answered."""

    def __init__(self, layer: TransactionLayer, request: SipRequest, destination: Address,
                 now: float) -> None:
        super().__init__(layer, request, destination, TransactionState.TRYING)
        branch = request.top_via.branch
        if branch is None or not request.top_via.magic_cookie:
            raise InvalidInput("A client transaction needs an RFC 3261 branch.")
        self.key: Hashable = (branch, request.method)
        self.last_response: SipResponse | None = None
        self._data = serialize(request)
        self._timeout_at = now + self.timers.timeout  # timer F
        self._interval = self.timers.t1  # timer E
        self._send(self._data)
        self._deadline = self._timeout_at if self.reliable else now + self._interval

    def receive_response(self, response: SipResponse, now: float) -> bool:
        """True when the response is news for the TU (first final, or a provisional)."""
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return False  # Completed: a retransmitted final, absorbed
        self.last_response = response
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return True
        self.state = TransactionState.COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self._deadline = now + self.timers.t4  # timer K
        return True

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        if self.state is TransactionState.COMPLETED:
            self._terminate()  # timer K
            return
        if now >= self._timeout_at:
            self.timed_out = True  # timer F
            self._terminate()
            return
        self._send(self._data)  # timer E
        if self.state is TransactionState.TRYING:
            self._interval = min(2 * self._interval, self.timers.t2)
        else:
            self._interval = self.timers.t2
        self._deadline = min(now + self._interval, self._timeout_at)


# --- the layer ----------------------------------------------------------------------------------


class TransactionLayer:
    """Every live transaction of one transport, the matching rules, and the outgoing queue.

    The TU (the user-agent core) hands it each received request and response and gets back the
    transaction it belongs to, or ``None`` when the layer dealt with it (a retransmission).
    """

    def __init__(self, *, reliable: bool, timers: TimerSettings | None = None) -> None:
        self.reliable = reliable
        self.timers = timers or TimerSettings()
        self._server: dict[Hashable, ServerTransaction] = {}
        self._client: dict[Hashable, NonInviteClientTransaction] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        # Server transaction keys by request identity, for is_merged.
        self._identities: dict[tuple[str | None, str, CSeq], set[Hashable]] = {}
        # (deadline, tie-breaker, transaction); an entry whose deadline is no longer the
        # transaction's is stale and skipped when it comes up.
        self._timers: list[tuple[float, int, _Transaction]] = []
        self._sequence = itertools.count()

    # --- server side ----------------------------------------------------------------------

    def receive_request(self, request: SipRequest, source: Address,
                        now: float) -> ServerTransaction | None:
        """The new transaction for ``request``, or ``None`` if it was a retransmission (then
        answered here as §17.2 says). Not for ACK: see :meth:`receive_ack`."""
        if request.method == "ACK":
            raise InvalidInput("An ACK never creates a transaction.")
        key = server_transaction_key(request)
        existing = self._server.get(key)
        if existing is not None:
            existing._retransmission(now)
            return None
        destination = response_destination(request.top_via, source, reliable=self.reliable)
        transaction: ServerTransaction
        if request.method == "INVITE":
            transaction = InviteServerTransaction(self, key, request, destination)
        else:
            transaction = NonInviteServerTransaction(self, key, request, destination)
        self._server[key] = transaction
        self._identities.setdefault(transaction.identity, set()).add(key)
        return transaction

    def receive_ack(self, ack: SipRequest, now: float) -> bool:
        """True if the ACK belonged to a non-2xx and was absorbed; False if it is the TU's."""
        transaction = self._server.get(server_transaction_key(ack, "INVITE"))
        if not isinstance(transaction, InviteServerTransaction):
            return False
        return transaction.receive_ack(now)

    def find_invite(self, cancel: SipRequest) -> InviteServerTransaction | None:
        """The INVITE transaction a CANCEL cancels (§9.2: same matching, method aside)."""
        transaction = self._server.get(server_transaction_key(cancel, "INVITE"))
        return transaction if isinstance(transaction, InviteServerTransaction) else None

    def is_merged(self, request: SipRequest) -> bool:
        """§8.2.2.2: a request without a To tag whose From tag, Call-ID and CSeq equal those of
        a live transaction it does not belong to reached us twice by different paths (a fork
        merged again, or a loop)."""
        keys = self._identities.get(request_identity(request), set())
        return bool(keys - {server_transaction_key(request)})

    # --- client side ----------------------------------------------------------------------

    def send_request(self, request: SipRequest, destination: Address,
                     now: float) -> NonInviteClientTransaction:
        if request.method in ("INVITE", "ACK"):
            raise InvalidInput("The node places no calls: only non-INVITE requests are sent.")
        transaction = NonInviteClientTransaction(self, request, destination, now)
        if transaction.state is not TransactionState.TERMINATED:
            self._client[transaction.key] = transaction
        return transaction

    def receive_response(self, response: SipResponse,
                         now: float) -> NonInviteClientTransaction | None:
        """The transaction whose TU should see ``response`` (§17.1.3: top Via branch and CSeq
        method), or ``None`` for a retransmission or a stray."""
        branch = response.top_via.branch
        if branch is None:
            return None
        transaction = self._client.get((branch, response.cseq.method))
        if transaction is None or not transaction.receive_response(response, now):
            return None
        return transaction

    # --- sending and timers ---------------------------------------------------------------

    def transmit(self, data: bytes, destination: Address) -> None:
        """Queue bytes outside any transaction: stateless answers, the TU's 2xx retransmissions."""
        self._outbox.append((data, destination))

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, _, transaction = timers[0]
            if transaction.get_timer() == deadline:
                return deadline
            heapq.heappop(timers)  # stale: re-armed or terminated since
        return None

    def handle_timer(self, now: float) -> list[_Transaction]:
        """Run every due timer once; returns the transactions that timed out (timers F and H)."""
        due: dict[int, _Transaction] = {}
        while self._timers and self._timers[0][0] <= now:
            deadline, _, transaction = heapq.heappop(self._timers)
            if transaction.get_timer() == deadline:
                due[id(transaction)] = transaction
        timed_out: list[_Transaction] = []
        for transaction in due.values():
            transaction.handle_timer(now)
            if transaction.timed_out:
                timed_out.append(transaction)
        return timed_out

    def _schedule(self, transaction: _Transaction, deadline: float) -> None:
        heapq.heappush(self._timers, (deadline, next(self._sequence), transaction))

    @property
    def transaction_count(self) -> int:
        return len(self._server) + len(self._client)

    def _forget(self, transaction: _Transaction) -> None:
        if isinstance(transaction, ServerTransaction):
            if self._server.get(transaction.key) is transaction:
                del self._server[transaction.key]
                keys = self._identities.get(transaction.identity)
                if keys is not None:
                    keys.discard(transaction.key)
                    if not keys:
                        del self._identities[transaction.identity]
        elif isinstance(transaction, NonInviteClientTransaction):
            self._client.pop(transaction.key, None)
