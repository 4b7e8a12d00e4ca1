"""The node's telephony audio encoders against libav's decoders (as the RTP endpoint uses them),
proven by FFT: G.722 carries wideband speech (a 6 kHz tone) that G.711 cannot."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from confnode.transport.encoders import G711Encoder, G722Encoder, audio_encoder

FRAMES = 50  # one second of 20 ms frames at the mixer's 48 kHz


def tones(*hz: float) -> np.ndarray:
    t = np.arange(960 * FRAMES) / 48000
    return (sum(np.sin(2 * np.pi * f * t) for f in hz) * 6000).astype(np.int16)


def round_trip(encoder: G711Encoder | G722Encoder, name: str, samples: np.ndarray,
               clock_step: int) -> tuple[np.ndarray, int, list[int]]:
    """Encode 20 ms at a time, decode each payload as it would arrive by RTP."""
    decoder = get_decoder(RTCRtpCodecParameters(mimeType=f"audio/{name}", clockRate=8000,
                                                channels=1, payloadType=9))
    pcm, sizes, rate = [], [], 0
    for i in range(FRAMES):
        payload = encoder.encode(samples[i * 960:(i + 1) * 960])
        assert payload is not None
        sizes.append(len(payload))
        for frame in decoder.decode(JitterFrame(payload, i * clock_step)):
            rate = frame.sample_rate
            pcm.append(frame.to_ndarray().reshape(-1))
    return np.concatenate(pcm).astype(np.float64), rate, sizes


def level_at(samples: np.ndarray, rate: int, hz: float) -> float:
    """Spectral magnitude within ±50 Hz of ``hz``, relative to the strongest bin."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    band = (freqs > hz - 50) & (freqs < hz + 50)
    return float(spectrum[band].max() / spectrum.max())


def test_g722_carries_500_hz_and_6_khz() -> None:
    decoded, rate, sizes = round_trip(G722Encoder(), "G722", tones(500, 6000), clock_step=160)
    assert rate == 16000  # sampled at 16 kHz although its RTP clock says 8000
    assert set(sizes) == {160}  # 64 kbit/s: 320 samples in 160 bytes per 20 ms
    assert len(decoded) == 320 * FRAMES
    steady = decoded[1600:]  # past the filters' start-up
    assert level_at(steady, rate, 500) > 0.5
    assert level_at(steady, rate, 6000) > 0.3  # wideband: survives (G.722 passes 50-7000 Hz)
    assert level_at(steady, rate, 2500) < 0.02  # and nothing where no tone was


def test_g711_loses_the_6_khz_tone_that_g722_keeps() -> None:
    decoded, rate, _ = round_trip(G711Encoder("PCMU"), "PCMU", tones(500, 6000), clock_step=160)
    assert rate == 8000
    steady = decoded[800:]
    assert level_at(steady, rate, 500) > 0.5
    # 6 kHz is above G.711's Nyquist: filtered out, not folded back to 2 kHz either.
    assert level_at(steady, rate, 2000) < 0.02


@pytest.mark.parametrize(("codec", "kind"), [("opus", "OpusEncoder"), ("G722", "G722Encoder"),
                                             ("g722", "G722Encoder"), ("PCMU", "G711Encoder"),
                                             ("PCMA", "G711Encoder")])
def test_audio_encoder_by_sdp_name(codec: str, kind: str) -> None:
    assert type(audio_encoder(codec, 32000)).__name__ == kind
