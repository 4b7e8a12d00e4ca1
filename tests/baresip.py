"""baresip (Debian) as a real SIP/TLS + SRTP endpoint for tests: config per REFERENCES §6, a
WAV tone as its microphone, its sndfile filter recording what it hears (baresip 1.0's aufile
cannot play to a file), commands over ctrl_tcp."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from nodeprocess import free_port

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")


def require_baresip() -> str:
    if BARESIP is None or not MODULES.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("baresip is not installed (scripts/test.sh installs it)")
        pytest.skip("baresip is not installed")
    return BARESIP


def write_tone(path: Path, hz: float | tuple[float, ...], seconds: float,
               rate: int = 8000) -> None:
    t = np.arange(int(rate * seconds)) / rate
    tones = hz if isinstance(hz, tuple) else (hz,)
    samples = (sum(np.sin(2 * np.pi * f * t) for f in tones) * 8000 / len(tones)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as data:
        frames = data.readframes(data.getnframes())
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        if data.getnchannels() == 2:
            samples = samples.reshape(-1, 2).mean(axis=1)
        return samples, data.getframerate()


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


class Baresip:
    def __init__(self, directory: Path, *, ca_file: Path,
                 tone_hz: float | tuple[float, ...] = 440, tone_rate: int = 8000,
                 mediaenc: str | None = "srtp-mand", codecs: str = "pcmu,pcma",
                 transport: str = "tls") -> None:
        """``tone_rate`` 16000 with ``codecs="g722"`` feeds baresip wideband audio."""
        self.directory = directory
        self.ctrl_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        write_tone(directory / "tone.wav", tone_hz, 30, tone_rate)
        # sip_listen on port 0: a port picked in advance can be taken before baresip binds it.
        (directory / "config").write_text(f"""
poll_method epoll
sip_listen 127.0.0.1:0
sip_cafile {ca_file}
audio_source aufile,{directory / 'tone.wav'}
audio_player aubridge,nil
audio_alert aubridge,nil
snd_path {directory}
module_path {MODULES}
module g711.so
module g722.so
module aufile.so
module aubridge.so
module sndfile.so
module srtp.so
{"module dtls_srtp.so" if (mediaenc or "").startswith("dtls") else ""}
module_tmp uuid.so
module_tmp account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
""")
        # mediaenc None: plain RTP/AVP (SIP over UDP/TCP on a trusted network).
        encryption = f"mediaenc={mediaenc};" if mediaenc else ""
        (directory / "accounts").write_text(
            f"<sip:caller@127.0.0.1;transport={transport}>;regint=0;{encryption}"
            f"audio_codecs={codecs};answermode=manual\n")

    def dial(self, uri: str, seconds: int) -> None:
        assert BARESIP is not None
        self.log = (self.directory / "baresip.log").open("wb")
        self.process = subprocess.Popen(
            [BARESIP, "-s", "-f", str(self.directory), "-t", str(seconds), "-e", f"/dial {uri}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    async def command(self, command: str, params: str = "") -> None:
        """A menu command through ctrl_tcp (netstring-framed JSON), e.g. sndcode 1234#."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        writer.write(f"{len(body)}:".encode() + body + b",")
        await writer.drain()
        await asyncio.wait_for(reader.read(4096), 5)
        writer.close()

    @property
    def recording(self) -> Path:
        """What baresip decoded from the node (its sndfile filter's dump of the rx path)."""
        dumps = sorted(self.directory.glob("dump-*-dec.wav"))
        assert dumps, f"baresip wrote no recording: {self.output()[-1500:]}"
        return dumps[-1]

    def heard_hz(self, rate: int) -> float:
        """The strongest frequency in the last two seconds baresip recorded of what it received
        (after the call: the WAV is complete once baresip has hung up)."""
        samples, recorded_rate = read_wav(self.recording)
        assert recorded_rate == rate and len(samples) > rate, (recorded_rate, len(samples))
        return peak_hz(samples[-rate * 2:], rate)

    def output(self) -> str:
        return (self.directory / "baresip.log").read_text(errors="replace")

    async def wait(self, seconds: float) -> int:
        assert self.process is not None
        for _ in range(int(seconds / 0.1)):
            if self.process.poll() is not None:
                return self.process.returncode
            await asyncio.sleep(0.1)
        self.process.terminate()
        return self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
