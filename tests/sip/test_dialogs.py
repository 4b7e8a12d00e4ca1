"""UAS dialogs: creation from an INVITE, in-dialog checks, our BYE, and the 2xx ACK wait."""

from __future__ import annotations

import pytest

from confnode.errors import Conflict, InvalidInput
from confnode.transport.sip.dialogs import (
    AckWait,
    AckWaitOutcome,
    Dialog,
    DialogId,
    DialogState,
)
from confnode.transport.sip.errors import SipParseError
from confnode.transport.sip.headers import CSeq, Via
from confnode.transport.sip.message import SipRequest, parse_message, serialize
from confnode.transport.sip.transactions import TimerSettings
from confnode.transport.sip.uri import SipUri


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def invite(*, record_route: str = "", contact: str = "Contact: <sip:alice@192.0.2.10:5061;"
           "transport=tls>\n", uri: str = "sip:room-1234@node.example", to_tag: str = "",
           cseq: int = 21, method: str = "INVITE") -> SipRequest:
    to = "<sip:room-1234@node.example>" + (f";tag={to_tag}" if to_tag else "")
    message = parse_message(crlf(f"""{method} {uri} SIP/2.0
Via: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKd1;rport
Max-Forwards: 70
{record_route}From: "Alice" <sip:alice@example.com>;tag=from1
To: {to}
Call-ID: dlg1@192.0.2.10
CSeq: {cseq} {method}
{contact}Content-Length: 0

"""))
    assert isinstance(message, SipRequest)
    return message


VIA = Via("TLS", "node.example", 5061, (("branch", "z9hG4bKbye1"),))


def test_uas_dialog_from_invite() -> None:
    rr = ("Record-Route: <sip:p2.example.com;lr>\n"
          "Record-Route: <sip:p1.example.com;lr;ftag=x>\n")
    dialog = Dialog.from_request(invite(record_route=rr), "local9")
    assert dialog.id == DialogId("dlg1@192.0.2.10", "local9", "from1")
    assert dialog.state is DialogState.EARLY
    assert dialog.remote_target == SipUri.parse("sip:alice@192.0.2.10:5061;transport=tls")
    # §12.1.1: the UAS keeps the Record-Route order (a UAC reverses it).
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example.com;lr",
                                                     "sip:p1.example.com;lr;ftag=x"]
    assert dialog.record_route == ("<sip:p2.example.com;lr>", "<sip:p1.example.com;lr;ftag=x>")
    assert (dialog.remote_cseq, dialog.local_cseq) == (21, None)
    assert dialog.secure is False


def test_sips_request_uri_makes_a_secure_dialog() -> None:
    assert Dialog.from_request(invite(uri="sips:room@node.example"), "t").secure is True


def test_invite_without_contact_is_a_400() -> None:
    with pytest.raises(SipParseError) as caught:
        Dialog.from_request(invite(contact=""), "t")
    assert (caught.value.status, caught.value.reason) == (400, "Missing Contact header")


def test_dialog_id_of_request() -> None:
    assert DialogId.of_request(invite()) is None
    assert DialogId.of_request(invite(to_tag="local9")) == DialogId(
        "dlg1@192.0.2.10", "local9", "from1")


def test_remote_cseq_must_not_go_backwards() -> None:
    dialog = Dialog.from_request(invite(), "local9")
    assert dialog.check_remote_cseq(invite(to_tag="local9", cseq=22, method="INFO")) is True
    assert dialog.remote_cseq == 22
    assert dialog.check_remote_cseq(invite(to_tag="local9", cseq=20, method="BYE")) is False
    assert dialog.remote_cseq == 22
    # ACK repeats the INVITE's CSeq and is not counted.
    assert dialog.check_remote_cseq(invite(to_tag="local9", cseq=21, method="ACK")) is True
    assert dialog.remote_cseq == 22


def test_target_refresh_takes_the_new_contact() -> None:
    dialog = Dialog.from_request(invite(), "local9")
    dialog.refresh_target(invite(to_tag="local9", cseq=22,
                                 contact="Contact: <sip:alice@192.0.2.99:5061;transport=tls>\n"))
    assert dialog.remote_target.host == "192.0.2.99"
    dialog.refresh_target(invite(to_tag="local9", cseq=23, contact=""))
    assert dialog.remote_target.host == "192.0.2.99"


def test_bye_without_route_set() -> None:
    dialog = Dialog.from_request(invite(), "local9")
    dialog.confirm()
    bye = dialog.create_request("BYE", VIA)
    assert serialize(bye) == crlf("""BYE sip:alice@192.0.2.10:5061;transport=tls SIP/2.0
Via: SIP/2.0/TLS node.example:5061;branch=z9hG4bKbye1
Max-Forwards: 70
From: <sip:room-1234@node.example>;tag=local9
To: "Alice" <sip:alice@example.com>;tag=from1
Call-ID: dlg1@192.0.2.10
CSeq: 1 BYE
Content-Length: 0

""")
    assert dialog.create_request("INFO", VIA).cseq == CSeq(2, "INFO")


def test_bye_with_loose_route_set() -> None:
    rr = "Record-Route: <sip:p2.example.com;lr>\nRecord-Route: <sip:p1.example.com;lr>\n"
    dialog = Dialog.from_request(invite(record_route=rr), "local9")
    bye = dialog.create_request("BYE", VIA)
    assert str(bye.uri) == "sip:alice@192.0.2.10:5061;transport=tls"
    assert bye.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]


def test_bye_with_strict_route_set() -> None:
    """§12.2.1.1: a strict router's URI becomes the Request-URI; the target goes last in Route."""
    rr = "Record-Route: <sip:p2.example.com;maddr=192.0.2.1>\nRecord-Route: <sip:p1.example.com>\n"
    dialog = Dialog.from_request(invite(record_route=rr), "local9")
    bye = dialog.create_request("BYE", VIA)
    assert str(bye.uri) == "sip:p2.example.com"
    assert bye.headers.get_all("Route") == [
        "<sip:p1.example.com>", "<sip:alice@192.0.2.10:5061;transport=tls>"]


def test_no_requests_on_a_terminated_dialog() -> None:
    dialog = Dialog.from_request(invite(), "local9")
    dialog.terminate()
    with pytest.raises(Conflict):
        dialog.create_request("BYE", VIA)
    with pytest.raises(Conflict):
        dialog.confirm()


def test_new_requests_need_a_real_branch() -> None:
    dialog = Dialog.from_request(invite(), "local9")
    with pytest.raises(InvalidInput):
        dialog.create_request("BYE", Via("TLS", "node.example", 5061, (("branch", "x1"),)))


# --- AckWait ------------------------------------------------------------------------------------


def run(wait: AckWait, until: float) -> list[tuple[float, AckWaitOutcome]]:
    seen = []
    while (deadline := wait.get_timer()) <= until:
        outcome = wait.handle_timer(deadline)
        seen.append((deadline, outcome))
        if outcome is AckWaitOutcome.EXPIRED:
            break
    return seen


def test_ack_wait_on_udp_doubles_to_t2_and_expires_at_64_t1() -> None:
    wait = AckWait(b"SIP/2.0 200 OK", ("192.0.2.10", 5060), 21, 0.0, reliable=False,
                   timers=TimerSettings())
    seen = run(wait, 100.0)
    assert [t for t, o in seen if o is AckWaitOutcome.RETRANSMIT] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert seen[-1] == (32.0, AckWaitOutcome.EXPIRED)
    assert wait.retransmissions == 10


def test_ack_wait_on_tls_only_expires() -> None:
    wait = AckWait(b"SIP/2.0 200 OK", ("conn", 1), 21, 5.0, reliable=True,
                   timers=TimerSettings())
    assert run(wait, 100.0) == [(37.0, AckWaitOutcome.EXPIRED)]


def test_ack_wait_early_call_does_nothing() -> None:
    wait = AckWait(b"x", ("conn", 1), 1, 0.0, reliable=False, timers=TimerSettings())
    assert wait.handle_timer(0.2) is AckWaitOutcome.NOTHING
