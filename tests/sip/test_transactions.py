"""The transaction layer driven directly, with a fake clock (RFC 3261 §17, RFC 6026)."""

from __future__ import annotations

from unittest.mock import patch

import pytest

from confnode.errors import Conflict, InvalidInput
from confnode.transport.sip.headers import NameAddr, Via
from confnode.transport.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
)
from confnode.transport.sip.transactions import (
    InviteServerTransaction,
    ServerTransaction,
    TimerSettings,
    TransactionLayer,
    TransactionState,
    response_destination,
    server_transaction_key,
    stamp_via,
)

PEER = ("198.51.100.7", 5060)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def request(method: str = "INVITE", *, branch: str = "z9hG4bKinv1", cseq: int = 1,
            cseq_method: str | None = None, via: str | None = None, to_tag: str = "",
            transport: str = "UDP") -> SipRequest:
    via = via or f"SIP/2.0/{transport} 198.51.100.7:5060;branch={branch}"
    to = "<sip:room@node.example>" + (f";tag={to_tag}" if to_tag else "")
    message = parse_message(crlf(f"""{method} sip:room@node.example SIP/2.0
Via: {via}
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: {to}
Call-ID: c1@198.51.100.7
CSeq: {cseq} {cseq_method or method}
Content-Length: 0

"""))
    assert isinstance(message, SipRequest)
    return message


def response_bytes(layer: TransactionLayer) -> list[bytes]:
    return [data.split(b"\r\n", 1)[0] for data, _ in layer.datagrams_to_send()]


def answer(transaction: ServerTransaction, status: int, now: float) -> SipResponse:
    response = make_response(transaction.request, status, to_tag="t1")
    transaction.respond(response, now)
    return response


# --- INVITE server transaction ------------------------------------------------------------------


def test_invite_retransmission_gets_the_last_provisional_again() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.receive_request(request(), PEER, 0.0)
    assert isinstance(tx, InviteServerTransaction)
    assert tx.state is TransactionState.PROCEEDING
    assert layer.receive_request(request(), PEER, 0.1) is None  # absorbed, nothing to repeat
    assert layer.datagrams_to_send() == []
    answer(tx, 180, 0.2)
    assert response_bytes(layer) == [b"SIP/2.0 180 Ringing"]
    assert layer.receive_request(request(), PEER, 0.5) is None
    assert response_bytes(layer) == [b"SIP/2.0 180 Ringing"]


def test_non_2xx_final_is_retransmitted_by_timer_g_until_ack() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.receive_request(request(), PEER, 10.0)
    assert tx is not None
    answer(tx, 486, 10.0)
    assert response_bytes(layer) == [b"SIP/2.0 486 Busy Here"]
    assert tx.state is TransactionState.COMPLETED
    # Timer G: T1, then doubling, capped at T2.
    fired = []
    now = 10.0
    while (deadline := layer.get_timer()) is not None and deadline < 16.0:
        now = deadline
        layer.handle_timer(now)
        fired.append(round(now - 10.0, 3))
        assert response_bytes(layer) == [b"SIP/2.0 486 Busy Here"]
    assert fired == [0.5, 1.5, 3.5]
    # A retransmitted INVITE gets the final response again.
    assert layer.receive_request(request(), PEER, now) is None
    assert response_bytes(layer) == [b"SIP/2.0 486 Busy Here"]
    # The ACK is absorbed and moves to Confirmed; timer I (T4) ends it.
    ack = request("ACK", cseq_method="ACK", to_tag="t1")
    assert layer.receive_ack(ack, now) is True
    assert tx.state is TransactionState.CONFIRMED
    assert layer.receive_ack(ack, now + 0.1) is True  # retransmitted ACK, still absorbed
    assert layer.get_timer() == pytest.approx(now + 5.0)
    layer.handle_timer(now + 5.0)
    assert tx.state is TransactionState.TERMINATED
    assert layer.transaction_count == 0
    assert layer.datagrams_to_send() == []


def test_timer_g_intervals() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.receive_request(request(), PEER, 0.0)
    assert tx is not None
    answer(tx, 404, 0.0)
    layer.datagrams_to_send()
    times = []
    while (deadline := layer.get_timer()) is not None and tx.state is TransactionState.COMPLETED:
        layer.handle_timer(deadline)
        times.append(deadline)
    # G at 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s until H = 32 s.
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert times[-1] == 32.0
    assert tx.timed_out is True  # timer H: the ACK never came
    assert len(layer.datagrams_to_send()) == len(times) - 1


def test_reliable_transport_never_retransmits_and_ends_on_ack() -> None:
    layer = TransactionLayer(reliable=True)
    tx = layer.receive_request(request(transport="TLS"), ("conn", 7), 0.0)
    assert tx is not None
    assert tx.destination == ("conn", 7)
    answer(tx, 603, 0.0)
    assert layer.get_timer() == 32.0  # only timer H
    layer.datagrams_to_send()
    assert layer.receive_ack(request("ACK", cseq_method="ACK", to_tag="t1", transport="TLS"),
                             1.0) is True
    assert tx.state is TransactionState.TERMINATED  # timer I is zero on TLS
    assert layer.get_timer() is None


def test_2xx_moves_to_accepted_and_lets_the_tu_have_the_ack() -> None:
    """RFC 6026: the 2xx is sent once; INVITE retransmissions are absorbed for 64*T1 and an ACK
    with the INVITE's branch goes to the TU."""
    layer = TransactionLayer(reliable=False)
    tx = layer.receive_request(request(), PEER, 0.0)
    assert tx is not None
    answer(tx, 200, 1.0)
    assert response_bytes(layer) == [b"SIP/2.0 200 OK"]
    assert tx.state is TransactionState.ACCEPTED
    assert layer.receive_request(request(), PEER, 1.5) is None
    assert layer.datagrams_to_send() == []
    assert layer.receive_ack(request("ACK", cseq_method="ACK", to_tag="t1"), 2.0) is False
    assert layer.get_timer() == 33.0  # timer L
    layer.handle_timer(33.0)
    assert tx.state is TransactionState.TERMINATED
    assert tx.timed_out is False


def test_cannot_answer_twice() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.receive_request(request(), PEER, 0.0)
    assert tx is not None
    answer(tx, 200, 0.0)
    with pytest.raises(Conflict):
        answer(tx, 487, 0.0)


# --- non-INVITE server transaction --------------------------------------------------------------


def test_non_invite_server_transaction_timer_j() -> None:
    layer = TransactionLayer(reliable=False)
    bye = request("BYE", branch="z9hG4bKbye1", cseq=2, to_tag="t1")
    tx = layer.receive_request(bye, PEER, 0.0)
    assert tx is not None and tx.state is TransactionState.TRYING
    assert layer.receive_request(bye, PEER, 0.2) is None
    assert layer.datagrams_to_send() == []  # Trying: absorbed silently
    answer(tx, 200, 1.0)
    assert response_bytes(layer) == [b"SIP/2.0 200 OK"]
    assert layer.receive_request(bye, PEER, 2.0) is None
    assert response_bytes(layer) == [b"SIP/2.0 200 OK"]
    assert layer.get_timer() == 33.0
    layer.handle_timer(33.0)
    assert tx.state is TransactionState.TERMINATED
    # After timer J the same request is a new transaction.
    assert layer.receive_request(bye, PEER, 34.0) is not None


def test_non_invite_server_transaction_on_tls_ends_at_once() -> None:
    layer = TransactionLayer(reliable=True)
    tx = layer.receive_request(request("OPTIONS", transport="TLS"), PEER, 0.0)
    assert tx is not None
    answer(tx, 200, 0.0)
    assert tx.state is TransactionState.TERMINATED
    assert layer.transaction_count == 0


# --- matching -----------------------------------------------------------------------------------


def test_matching_needs_branch_sent_by_and_method() -> None:
    layer = TransactionLayer(reliable=False)
    assert layer.receive_request(request(), PEER, 0.0) is not None
    # Same branch from another sent-by: a different transaction.
    other = request(via="SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bKinv1")
    assert layer.receive_request(other, PEER, 0.0) is not None
    # Same branch, other method (a CANCEL): a different transaction...
    cancel = request("CANCEL")
    assert layer.receive_request(cancel, PEER, 0.0) is not None
    # ...that finds the INVITE it cancels.
    invite_tx = layer.find_invite(cancel)
    assert invite_tx is not None and invite_tx.request.method == "INVITE"
    assert layer.find_invite(request("CANCEL", branch="z9hG4bKnone")) is None


def test_rfc2543_requests_match_on_their_identity() -> None:
    """No magic cookie: Request-URI, From tag, Call-ID, CSeq and top Via identify the request."""
    old = request(via="SIP/2.0/UDP 198.51.100.7:5060")
    layer = TransactionLayer(reliable=False)
    tx = layer.receive_request(old, PEER, 0.0)
    assert tx is not None
    assert layer.receive_request(old, PEER, 0.1) is None
    assert layer.receive_request(request(via="SIP/2.0/UDP 198.51.100.7:5060", cseq=2),
                                 PEER, 0.1) is not None
    answer(tx, 404, 0.2)
    assert layer.receive_ack(request("ACK", via="SIP/2.0/UDP 198.51.100.7:5060",
                                      cseq_method="ACK", to_tag="t1"), 0.3) is True


def test_branch_matching_ignores_case() -> None:
    assert server_transaction_key(request(branch="z9hG4bKAbC")) == server_transaction_key(
        request(branch="z9hG4bKabc"))


def test_merged_request_is_detected() -> None:
    """§8.2.2.2: same From tag, Call-ID and CSeq arriving by another path (another branch)."""
    layer = TransactionLayer(reliable=False)
    first = request(branch="z9hG4bKpath1")
    assert layer.receive_request(first, PEER, 0.0) is not None
    assert layer.is_merged(first) is False
    second = request(branch="z9hG4bKpath2")
    assert layer.receive_request(second, PEER, 0.0) is not None
    assert layer.is_merged(second) is True
    assert layer.is_merged(request(branch="z9hG4bKpath3", cseq=2)) is False


def test_merged_state_ends_with_the_transaction() -> None:
    layer = TransactionLayer(reliable=False)
    first = layer.receive_request(request("OPTIONS", branch="z9hG4bKp1"), PEER, 0.0)
    assert first is not None
    answer(first, 200, 0.0)
    layer.handle_timer(32.0)  # timer J
    assert layer.transaction_count == 0
    assert layer.receive_request(request("OPTIONS", branch="z9hG4bKp2"), PEER, 33.0) is not None
    assert layer.is_merged(request("OPTIONS", branch="z9hG4bKp2")) is False


def test_a_message_costs_the_same_however_many_transactions_are_live() -> None:
    """On UDP timer J keeps every answered request for 32 s: at 1,000 requests a second that is
    32,000 live transactions. Merged-request detection and the timers must not look at each of
    them per message (they did: a few hundred live transactions slowed the node to a crawl)."""
    layer = TransactionLayer(reliable=False)
    for number in range(1, 1001):
        tx = layer.receive_request(request("OPTIONS", branch=f"z9hG4bKo{number}", cseq=number),
                                   PEER, number / 1000)
        assert tx is not None
        answer(tx, 200, number / 1000)
    layer.datagrams_to_send()
    assert layer.transaction_count == 1000
    with patch.object(NameAddr, "parse", wraps=NameAddr.parse) as parses, \
            patch.object(ServerTransaction, "get_timer", autospec=True,
                         side_effect=ServerTransaction.get_timer) as timers:
        latest = request("OPTIONS", branch="z9hG4bKlast", cseq=5000)
        assert layer.receive_request(latest, PEER, 1.5) is not None
        assert layer.is_merged(latest) is False
        assert layer.get_timer() == pytest.approx(32.001)
        assert layer.handle_timer(1.5) == []
    assert parses.call_count <= 4
    assert timers.call_count <= 4
    # The heap still runs every timer J in order.
    layer.handle_timer(32.5)
    assert layer.transaction_count == 501  # 0.501 s .. 1.0 s and the latest remain
    assert layer.get_timer() == pytest.approx(32.501)


# --- non-INVITE client transaction --------------------------------------------------------------


def bye_request() -> SipRequest:
    return request("BYE", branch="z9hG4bKours1", via="SIP/2.0/UDP node.example:5060;"
                   "branch=z9hG4bKours1;rport", cseq=1, to_tag="a1")


def test_client_transaction_retransmits_with_timer_e_and_times_out_with_f() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.send_request(bye_request(), PEER, 100.0)
    assert response_bytes(layer) == [b"BYE sip:room@node.example SIP/2.0"]
    sent_at = []
    while (deadline := layer.get_timer()) is not None:
        timed_out = layer.handle_timer(deadline)
        if layer.datagrams_to_send():
            sent_at.append(deadline - 100.0)
        if timed_out:
            assert timed_out == [tx]
            break
    assert sent_at[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert deadline == 132.0
    assert tx.timed_out is True
    assert layer.transaction_count == 0


def test_client_transaction_provisional_then_final() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.send_request(bye_request(), PEER, 0.0)
    layer.datagrams_to_send()
    trying = make_response(tx.request, 100)
    assert layer.receive_response(trying, 0.1) is tx
    assert tx.state is TransactionState.PROCEEDING
    # In Proceeding, E fires every T2.
    layer.handle_timer(0.5)
    assert len(layer.datagrams_to_send()) == 1
    assert layer.get_timer() == 4.5
    ok = make_response(tx.request, 200)
    assert layer.receive_response(ok, 1.0) is tx
    assert tx.state is TransactionState.COMPLETED and tx.last_response is ok
    assert layer.receive_response(ok, 1.1) is None  # retransmitted final: absorbed
    assert layer.get_timer() == 6.0  # timer K = T4
    layer.handle_timer(6.0)
    assert tx.state is TransactionState.TERMINATED
    assert layer.receive_response(ok, 7.0) is None  # a stray now


def test_client_transaction_on_tls_sends_once() -> None:
    layer = TransactionLayer(reliable=True)
    tx = layer.send_request(bye_request(), ("conn", 1), 0.0)
    assert len(layer.datagrams_to_send()) == 1
    assert layer.get_timer() == 32.0
    assert layer.receive_response(make_response(tx.request, 200), 1.0) is tx
    assert tx.state is TransactionState.TERMINATED


def test_response_must_match_branch_and_method() -> None:
    layer = TransactionLayer(reliable=False)
    tx = layer.send_request(bye_request(), PEER, 0.0)
    wrong_method = make_response(tx.request, 200)
    wrong_method.headers.set("CSeq", "1 INFO")
    assert layer.receive_response(wrong_method, 0.1) is None
    assert tx.state is TransactionState.TRYING


def test_the_node_sends_no_invite() -> None:
    with pytest.raises(InvalidInput):
        TransactionLayer(reliable=False).send_request(request(), PEER, 0.0)


# --- transport helpers ----------------------------------------------------------------------


def test_stamp_via_fills_received_and_rport() -> None:
    stamped = stamp_via(request(via="SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx;rport"),
                        ("203.0.113.5", 40123))
    assert stamped.headers.get("Via") == (
        "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx;received=203.0.113.5;rport=40123")


def test_stamp_via_leaves_a_truthful_via_alone() -> None:
    original = request()
    assert stamp_via(original, ("198.51.100.7", 5060)) is original


def test_response_destination() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKx")
    assert response_destination(via, ("203.0.113.5", 40000), reliable=False) == (
        "203.0.113.5", 5070)
    assert response_destination(via.with_param("rport", "40000"), ("203.0.113.5", 40000),
                                reliable=False) == ("203.0.113.5", 40000)
    assert response_destination(via, ("conn", 3), reliable=True) == ("conn", 3)
    assert response_destination(Via.parse("SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx"),
                                ("203.0.113.5", 1), reliable=False) == ("203.0.113.5", 5060)


def test_timer_settings_are_checked() -> None:
    assert TimerSettings().timeout == 32.0
    with pytest.raises(InvalidInput):
        TimerSettings(t1=5.0, t2=4.0)
