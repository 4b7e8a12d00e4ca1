"""Call types: what the node does for a call decides its type (and its Pexip HD units)."""

from __future__ import annotations

import pytest

from confnode.media.call_types import HD_UNITS, CallType, classify_call, video_call_type


@pytest.mark.parametrize(("height", "kind"), [
    (360, CallType.SD), (448, CallType.SD), (576, CallType.SD), (720, CallType.HD),
    (900, CallType.HD), (1080, CallType.FULL_HD)])
def test_composed_picture_height_decides_sd_hd_full_hd(height: int, kind: CallType) -> None:
    assert video_call_type(height) is kind


def test_passthrough_wins_over_everything_else() -> None:
    for sip in (False, True):
        for video in (False, True):
            assert classify_call(sip=sip, video=video, passthrough=True, mixed=False,
                                 height=1080) is CallType.PASSTHROUGH


def test_a_call_neither_forwarded_nor_mixed_only_waits() -> None:
    assert classify_call(sip=False, video=True, passthrough=False, mixed=False,
                         height=1080) is CallType.WAITING
    assert classify_call(sip=True, video=False, passthrough=False, mixed=False,
                         height=720) is CallType.WAITING


def test_audio_only_calls_by_transport_and_video_calls_by_picture() -> None:
    assert classify_call(sip=False, video=False, passthrough=False, mixed=True,
                         height=720) is CallType.AUDIO
    assert classify_call(sip=True, video=False, passthrough=False, mixed=True,
                         height=720) is CallType.SIP_AUDIO
    assert classify_call(sip=True, video=True, passthrough=False, mixed=True,
                         height=720) is CallType.HD
    assert classify_call(sip=False, video=True, passthrough=False, mixed=True,
                         height=360) is CallType.SD


def test_hd_units_are_pexips_and_cover_every_type() -> None:
    assert set(HD_UNITS) == set(CallType)
    assert HD_UNITS[CallType.HD] == 1 and HD_UNITS[CallType.FULL_HD] == 2
    assert HD_UNITS[CallType.SD] == 0.5 and HD_UNITS[CallType.AUDIO] == 1 / 16
