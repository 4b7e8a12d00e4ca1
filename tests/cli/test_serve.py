"""A real ``confnode serve`` process: HTTPS with its own certificate, the API, the CLI."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nodeprocess import NodeProcess

from confnode.security.certificate import describe_certificate

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path_factory.mktemp("served") / "data").start()
    yield node
    assert node.stop() == 0, node.log.read_text()[-2000:]


def cli(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confnode.cli", *args, "--data-dir", str(node.data_dir),
         "--url", node.url], capture_output=True, text=True, timeout=60, check=False)


def test_healthz_and_docs_over_https(served: NodeProcess) -> None:
    with httpx.Client(verify=served.verify) as client:
        health = client.get(f"{served.url}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["strict-transport-security"].startswith("max-age=63072000")
        assert client.get(f"{served.url}/docs").status_code == 200


def test_self_signed_certificate_is_ecdsa_p256(served: NodeProcess) -> None:
    info = describe_certificate(Path(served.cert))
    assert info.key_type == "EC P-256"
    assert "IP:127.0.0.1" in info.sans or "127.0.0.1" in " ".join(info.sans)
    assert (Path(served.data_dir) / "tls" / "node-key.pem").stat().st_mode & 0o077 == 0


def test_tls_is_1_3(served: NodeProcess) -> None:
    context = ssl.create_default_context(cafile=served.cert)
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.3"


def test_cli_book_meetings_licences_queue(served: NodeProcess) -> None:
    booked = cli(served, "book", "--subject", "Konsultation", "--instant",
                 "--guest-pin-required")
    assert booked.returncode == 0, booked.stderr
    assert "Guest link https://127.0.0.1:" in booked.stdout
    assert "Guest PIN" in booked.stdout
    listed = cli(served, "meetings", "--json")
    assert listed.returncode == 0
    assert [m["subject"] for m in json.loads(listed.stdout)] == ["Konsultation"]
    licences = cli(served, "licences")
    assert licences.returncode == 0 and "port" in licences.stdout
    assert cli(served, "queue", "open").returncode == 0
    empty = cli(served, "queue", "start")
    assert empty.returncode == 1 and "Nobody is waiting" in empty.stderr


def test_cli_errors_have_exit_codes(served: NodeProcess, tmp_path: Path) -> None:
    bad = cli(served, "book", "--subject", "x", "--start", "2030-01-01T10:00:00+01:00",
              "--end", "2030-01-01T09:00:00+01:00")
    assert bad.returncode == 1 and "422" in bad.stderr
    missing = cli(served, "book", "--subject", "x")
    assert missing.returncode == 2
    unreachable = subprocess.run(
        [sys.executable, "-m", "confnode.cli", "meetings", "--url", "https://127.0.0.1:9",
         "--token", "x", "--data-dir", str(tmp_path)], capture_output=True, text=True,
        timeout=60, check=False)
    assert unreachable.returncode == 3


def test_access_log_holds_no_capability_tokens(served: NodeProcess) -> None:
    with served.client() as client:
        booking = client.post("/api/v1/meetings",
                              json={"subject": "Log check", "meeting_type": "instant"}).json()
        client.get(booking["guest_link"].replace(served.url, ""))
    token = booking["guest_link"].rsplit("/", 1)[1]
    log = served.log.read_text()
    assert token not in log and served.token not in log


def test_readme_run_command_starts_a_node(tmp_path: Path) -> None:
    """README command (a), as written, on a checkout whose .venv the test command made."""
    repo = Path(__file__).parents[2]
    node = NodeProcess(tmp_path / "data", command=["bash", str(repo / "scripts" / "serve.sh")])
    node.start(timeout=180)
    try:
        with httpx.Client(verify=node.verify) as client:
            assert client.get(f"{node.url}/healthz").json()["status"] == "ok"
            assert client.get(f"{node.url}/docs").status_code == 200
    finally:
        assert node.stop() == 0
