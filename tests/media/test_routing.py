from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confnode.errors import Conflict, NotFound
from confnode.media.routing import (
    CodecPair,
    KeyframeNeeded,
    KeyframeReason,
    MediaRouter,
    RouteChanged,
    RouteEvent,
    RouteMode,
    RouteReason,
)

WEBRTC_AUDIO = ["opus", "PCMU", "PCMA"]
WEBRTC_VIDEO = ["VP8", "H264/42e01f/1"]


def drain(router: MediaRouter) -> list[RouteEvent]:
    events = []
    while (event := router.next_event()) is not None:
        events.append(event)
    return events


def keyframe(participant_id: str, reason: KeyframeReason) -> KeyframeNeeded:
    return KeyframeNeeded(participant_id=participant_id, reason=reason)


def test_a_lone_participant_is_mixed_and_needs_a_keyframe() -> None:
    router = MediaRouter()
    router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    assert router.route is RouteMode.MIXED
    assert router.reason is RouteReason.FEWER_THAN_TWO
    assert drain(router) == [keyframe("gp", KeyframeReason.JOINED)]


def test_two_webrtc_peers_go_passthrough_and_both_need_keyframes() -> None:
    router = MediaRouter()
    router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    drain(router)
    router.join("patient", ["opus"], ["h264/42E01F/1", "vp8"])
    assert router.route is RouteMode.PASSTHROUGH
    # The first joiner's preference order picks the codecs; names compare case-insensitively.
    assert router.passthrough_codecs == CodecPair("opus", "vp8")
    assert drain(router) == [
        RouteChanged(old=RouteMode.MIXED, new=RouteMode.PASSTHROUGH,
                     reason=RouteReason.TWO_COMPATIBLE),
        keyframe("gp", KeyframeReason.ROUTE_CHANGED),
        keyframe("patient", KeyframeReason.ROUTE_CHANGED),
    ]


def test_a_third_joiner_switches_to_mixing_and_back_when_they_leave() -> None:
    router = MediaRouter()
    router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    router.join("patient", WEBRTC_AUDIO, WEBRTC_VIDEO)
    drain(router)

    router.join("interpreter", WEBRTC_AUDIO, WEBRTC_VIDEO)
    assert router.route is RouteMode.MIXED
    assert router.passthrough_codecs is None
    assert drain(router) == [
        RouteChanged(old=RouteMode.PASSTHROUGH, new=RouteMode.MIXED,
                     reason=RouteReason.MORE_THAN_TWO),
        keyframe("gp", KeyframeReason.ROUTE_CHANGED),
        keyframe("patient", KeyframeReason.ROUTE_CHANGED),
        keyframe("interpreter", KeyframeReason.ROUTE_CHANGED),
    ]

    router.leave("interpreter")
    assert router.route is RouteMode.PASSTHROUGH
    assert drain(router) == [
        RouteChanged(old=RouteMode.MIXED, new=RouteMode.PASSTHROUGH,
                     reason=RouteReason.TWO_COMPATIBLE),
        keyframe("gp", KeyframeReason.ROUTE_CHANGED),
        keyframe("patient", KeyframeReason.ROUTE_CHANGED),
    ]


def test_a_fourth_joiner_keeps_mixing_and_only_they_need_a_keyframe() -> None:
    router = MediaRouter()
    for participant_id in ("a", "b", "c"):
        router.join(participant_id, WEBRTC_AUDIO, WEBRTC_VIDEO)
    drain(router)
    router.join("d", WEBRTC_AUDIO, WEBRTC_VIDEO)
    assert drain(router) == [keyframe("d", KeyframeReason.JOINED)]
    router.leave("a")
    assert router.route is RouteMode.MIXED
    assert drain(router) == []


def test_no_common_audio_codec_means_mixing() -> None:
    router = MediaRouter()
    router.join("gp", ["opus"], WEBRTC_VIDEO)
    router.join("phone", ["PCMA", "G722"], [])
    assert router.route is RouteMode.MIXED
    assert router.reason is RouteReason.NO_COMMON_CODEC
    assert drain(router) == [keyframe("gp", KeyframeReason.JOINED),
                             keyframe("phone", KeyframeReason.JOINED)]


def test_video_on_one_side_only_means_mixing() -> None:
    router = MediaRouter()
    router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    router.join("phone", ["PCMU"], [])
    assert router.route is RouteMode.MIXED
    assert router.reason is RouteReason.NO_COMMON_CODEC


def test_no_common_video_codec_means_mixing() -> None:
    router = MediaRouter()
    router.join("gp", ["opus"], ["VP8"])
    router.join("room-system", ["opus"], ["H264/42e01f/1"])
    assert router.route is RouteMode.MIXED


def test_two_audio_only_phones_are_forwarded() -> None:
    router = MediaRouter()
    router.join("gp-phone", ["PCMA", "PCMU"], [])
    router.join("patient-phone", ["PCMU", "PCMA"])
    assert router.route is RouteMode.PASSTHROUGH
    assert router.passthrough_codecs == CodecPair("pcma", None)


def test_the_second_to_last_leaving_falls_back_to_mixing_for_the_one_left() -> None:
    router = MediaRouter()
    router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    router.join("patient", WEBRTC_AUDIO, WEBRTC_VIDEO)
    drain(router)
    router.leave("patient")
    assert router.route is RouteMode.MIXED
    assert drain(router) == [
        RouteChanged(old=RouteMode.PASSTHROUGH, new=RouteMode.MIXED,
                     reason=RouteReason.FEWER_THAN_TWO),
        keyframe("gp", KeyframeReason.ROUTE_CHANGED),
    ]


def test_renegotiation_can_change_the_route_and_the_forwarded_codec() -> None:
    router = MediaRouter()
    router.join("gp", ["opus"], ["VP8", "H264/42e01f/1"])
    router.join("patient", ["opus"], ["VP8", "H264/42e01f/1"])
    drain(router)
    router.update("patient", ["opus"], ["H264/42e01f/1"])
    assert router.route is RouteMode.PASSTHROUGH
    assert router.passthrough_codecs == CodecPair("opus", "h264/42e01f/1")
    assert drain(router) == [keyframe("gp", KeyframeReason.CODECS_CHANGED),
                             keyframe("patient", KeyframeReason.CODECS_CHANGED)]
    router.update("patient", ["opus"], ["VP9"])
    assert router.route is RouteMode.MIXED
    assert isinstance(drain(router)[0], RouteChanged)
    router.update("patient", ["opus"], ["VP9"])
    assert drain(router) == []


def test_errors_are_typed() -> None:
    router = MediaRouter()
    router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    with pytest.raises(Conflict):
        router.join("gp", WEBRTC_AUDIO, WEBRTC_VIDEO)
    with pytest.raises(NotFound):
        router.leave("ghost")
    with pytest.raises(NotFound):
        router.update("ghost", WEBRTC_AUDIO)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c", "d"])), max_size=30))
def test_property_passthrough_exactly_when_two_compatible_and_events_track_the_route(
        steps: list[tuple[bool, str]]) -> None:
    router = MediaRouter()
    present: list[str] = []
    route = RouteMode.MIXED
    for joining, participant_id in steps:
        if joining and participant_id not in present:
            router.join(participant_id, WEBRTC_AUDIO, WEBRTC_VIDEO)
            present.append(participant_id)
        elif not joining and participant_id in present:
            router.leave(participant_id)
            present.remove(participant_id)
        else:
            continue
        expected = RouteMode.PASSTHROUGH if len(present) == 2 else RouteMode.MIXED
        assert router.route is expected
        events = drain(router)
        changes = [e for e in events if isinstance(e, RouteChanged)]
        if expected is not route:
            assert changes == [RouteChanged(old=route, new=expected, reason=router.reason)]
            # Every participant still present gets a fresh keyframe, in join order.
            assert [e.participant_id for e in events[1:]] == present
        else:
            assert changes == []
            assert events == ([keyframe(participant_id, KeyframeReason.JOINED)] if joining
                              else [])
        route = expected
