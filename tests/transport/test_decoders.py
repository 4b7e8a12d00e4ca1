"""Audio decoding on the receive paths: mono Opus, and corrupt frames from the network skipped."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame

from confnode.transport.decoders import MonoOpusDecoder, decode_audio

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def opus_payload() -> bytes:
    """One 20 ms Opus frame of a 500 Hz tone, from aiortc's own encoder (what a browser sends)."""
    encoder = get_encoder(OPUS)
    t = np.arange(960) / 48000
    tone = (np.sin(2 * np.pi * 500 * t) * 8000).astype(np.int16)
    frame = AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16",
                                    layout="stereo")
    frame.sample_rate, frame.pts = 48000, 0
    payloads, _ = encoder.encode(frame)
    return payloads[0]


def test_opus_decodes_to_one_mono_frame_of_20_ms() -> None:
    decoded = decode_audio(MonoOpusDecoder(), JitterFrame(opus_payload(), 0), "opus")
    assert len(decoded) == 1
    assert decoded[0].layout.name == "mono" and decoded[0].samples == 960


@pytest.mark.parametrize("garbage", [b"\x03\x00", b"\xff\xff\xff"])
def test_a_corrupt_frame_is_skipped_and_the_decoder_goes_on(
        garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    decoder = MonoOpusDecoder()
    with caplog.at_level(logging.WARNING, logger="confnode.transport.decoders"):
        assert decode_audio(decoder, JitterFrame(garbage, 0), "opus") == []
    assert "failed to decode opus frame" in caplog.text
    assert len(decode_audio(decoder, JitterFrame(opus_payload(), 960), "opus")) == 1
