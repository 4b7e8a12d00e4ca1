"""Cost of transcoding one 20 ms audio frame between a browser (Opus) and a SIP leg (G.711 or
G.722), through the node's own path (pytest-benchmark).

Run: .venv/bin/pytest bench/test_bench_audio_transcode.py --benchmark-only

One iteration is what the node does per participant per 20 ms in each direction: the RTP
endpoint's decoder (aiortc's, on libav), the room's resampling to the mixer's 48 kHz mono
(``room_media._mixer_frames``), and the node's encoder for the other leg's codec
(``encoders.audio_encoder``). Budget: 20 ms of audio for a whole node, so a transcode must cost
well under a hundredth of that to leave room for hundreds of legs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from pytest_benchmark.fixture import BenchmarkFixture

from confnode.live.room_media import Member, _mixer_frames
from confnode.transport.encoders import FRAME_SAMPLES, SAMPLE_RATE, audio_encoder

CODECS = {  # SDP name -> (RTP clock rate, channels as negotiated, RTP clock ticks per 20 ms)
    "opus": (48000, 2, 960), "PCMU": (8000, 1, 160), "G722": (8000, 1, 160),
}


def speech_like(frames: int) -> list[np.ndarray]:
    """Two tones and a little noise: the codecs' work does not depend on it being speech."""
    t = np.arange(FRAME_SAMPLES * frames) / SAMPLE_RATE
    rng = np.random.default_rng(3)
    signal = (np.sin(2 * np.pi * 300 * t) * 5000 + np.sin(2 * np.pi * 2100 * t) * 2000
              + rng.standard_normal(t.size) * 300).astype(np.int16)
    return [signal[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] for i in range(frames)]


def encoded(codec: str, frames: int = 50) -> list[bytes]:
    encoder = audio_encoder(codec, 32000)
    return [data for frame in speech_like(frames) if (data := encoder.encode(frame))]


@pytest.mark.parametrize(("source", "target"), [("opus", "PCMU"), ("PCMU", "opus"),
                                                ("opus", "G722"), ("G722", "opus")])
def test_transcode_one_frame(benchmark: BenchmarkFixture, source: str, target: str) -> None:
    clock, channels, step = CODECS[source]
    decoder = get_decoder(RTCRtpCodecParameters(mimeType=f"audio/{source}", clockRate=clock,
                                                channels=channels, payloadType=96))
    member = Member("leg", endpoint=None, connected=True, muted=False)  # type: ignore[arg-type]
    encoder = audio_encoder(target, 32000)
    packets = itertools.cycle(enumerate(encoded(source)))
    produced: list[bytes] = []

    def transcode() -> None:
        index, payload = next(packets)
        for frame in decoder.decode(JitterFrame(payload, index * step)):
            for chunk in _mixer_frames(member, frame):
                data = encoder.encode(chunk)
                if data:
                    produced.append(data)

    for _ in range(5):  # past the encoders' look-ahead, also when benchmarks are disabled
        transcode()
    benchmark(transcode)
    assert produced  # the output codec's payloads came out
    size = {"PCMU": 160, "G722": 160}.get(target)
    if size is not None:
        assert {len(p) for p in produced} == {size}
