import dataclasses
from datetime import UTC, datetime

import pytest

from confnode.rooms.participant import (
    EndpointType,
    MediaKind,
    Participant,
    ParticipantState,
    Role,
    WaitingReason,
)

JOINED = datetime(2026, 3, 2, 9, 58, tzinfo=UTC)


def test_view_is_a_frozen_copy_that_does_not_follow_later_changes() -> None:
    record = Participant(
        participant_id="p1",
        display_name="Patient",
        role=Role.GUEST,
        endpoint_type=EndpointType.SIP,
        protocol="sip/tls",
        media=frozenset({MediaKind.AUDIO}),
        joined_at=JOINED,
        state=ParticipantState.WAITING,
        waiting_reason=WaitingReason.HOST_ABSENT,
        waiting_since=JOINED,
    )
    view = record.view()
    assert (view.state, view.waiting_reason, view.joined_at, view.protocol) == (
        ParticipantState.WAITING, WaitingReason.HOST_ABSENT, JOINED, "sip/tls",
    )
    record.state = ParticipantState.CONNECTED
    assert view.state is ParticipantState.WAITING
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.muted = True  # type: ignore[misc]
    assert not hasattr(view, "waiting_since")  # internal bookkeeping stays inside the room


def test_only_api_endpoints_are_control_only() -> None:
    def record(endpoint: EndpointType) -> Participant:
        return Participant("p", "n", Role.HOST, endpoint, "x", frozenset(), JOINED)

    assert [e for e in EndpointType if record(e).view().control_only] == [EndpointType.API]


def test_wire_values_are_the_documented_strings() -> None:
    assert [str(e) for e in EndpointType] == ["webrtc", "sip", "phone", "app", "api"]
    assert [str(s) for s in ParticipantState] == ["waiting", "connected", "left"]
    assert [str(r) for r in WaitingReason] == ["host_absent", "locked"]
    assert [str(r) for r in Role] == ["host", "guest"]
    assert [str(m) for m in MediaKind] == ["audio", "video", "presentation"]
