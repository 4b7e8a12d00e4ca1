"""Run a real ``confnode serve`` child process on loopback for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NodeProcess:
    def __init__(self, data_dir: Path, port: int | None = None,
                 command: list[str] | None = None, **env: str) -> None:
        self.data_dir = data_dir
        self.command = command or [sys.executable, "-m", "confnode.cli", "serve"]
        self.port = port or free_port()
        self.env = {**os.environ, "CONFNODE_DATA_DIR": str(data_dir),
                    "CONFNODE_HTTP__PORT": str(self.port), "CONFNODE_SIP__PORT": "0", **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"node-{self.port}.log"

    @property
    def url(self) -> str:
        scheme = "http" if self.env.get("CONFNODE_HTTP__TLS") == "false" else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def cert(self) -> str:
        return str(self.data_dir / "tls" / "node-cert.pem")

    @property
    def verify(self) -> ssl.SSLContext | bool:
        if self.url.startswith("http:"):
            return False
        return ssl.create_default_context(cafile=self.cert)

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def start(self, timeout: float = 30.0) -> NodeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited: {self.log.read_text()[-2000:]}")
            try:
                health = httpx.get(f"{self.url}/healthz", verify=self.verify, timeout=1)
                if health.status_code == 200:
                    return self
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node did not answer in {timeout}s: {self.log.read_text()[-2000:]}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=10,
                            headers={"Authorization": f"Bearer {self.token}"})

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, as an operator would; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
