"""The HTTPS context, checked with real handshakes on 127.0.0.1 (threads, bounded timeouts)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from confnode.security import tls
from confnode.security.certificate import ensure_self_signed
from confnode.security.tls import (
    FALLBACK_GROUP,
    HSTS_HEADER,
    MODERN_GROUPS,
    https_server_context,
    restrict_key_exchange_groups,
)

TIMEOUT = 5.0
MOZILLA_MODERN_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                         "TLS_CHACHA20_POLY1305_SHA256"}
OPENSSL = shutil.which("openssl")


@dataclass
class ServerSide:
    port: int
    version: str | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    # The client verifies validity against the machine's clock, so this one fixture needs it.
    ensure_self_signed(cert_path, key_path, ["node.example"], datetime.now(UTC))
    return cert_path, key_path


@pytest.fixture
def context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return https_server_context(*certificate)


@contextmanager
def tls_server(context: ssl.SSLContext, connections: int = 1) -> Iterator[ServerSide]:
    """Accept ``connections`` handshakes on 127.0.0.1 in a thread; record what happened."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    side = ServerSide(port=listener.getsockname()[1])

    def serve() -> None:
        try:
            for _ in range(connections):
                connection, _ = listener.accept()
                connection.settimeout(TIMEOUT)
                try:
                    with context.wrap_socket(connection, server_side=True) as tls:
                        side.version = tls.version()
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError) as error:
                    side.error = error
        except OSError as error:  # accept timed out or the listener closed
            side.error = side.error or error
        finally:
            side.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield side
    finally:
        listener.close()
        thread.join(TIMEOUT)


def client_context(cert_path: Path) -> ssl.SSLContext:
    client = ssl.create_default_context(cafile=str(cert_path))
    # The checks Python 3.13 turns on by default; our certificate must pass them already.
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    return client


def handshake(client: ssl.SSLContext, port: int, server_hostname: str) -> tuple[str, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
            client.wrap_socket(raw, server_hostname=server_hostname) as tls:
        version, cipher = tls.version(), tls.cipher()
        assert version is not None and cipher is not None
        return version, cipher[0], tls.recv(2)


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "node.example"])
def test_tls13_handshake_verifies_the_self_signed_certificate(
        certificate: tuple[Path, Path], context: ssl.SSLContext, hostname: str) -> None:
    with tls_server(context) as server:
        version, suite, data = handshake(client_context(certificate[0]), server.port, hostname)
        assert server.done.wait(TIMEOUT)
    assert version == "TLSv1.3"
    assert server.version == "TLSv1.3"
    assert suite in MOZILLA_MODERN_SUITES
    assert data == b"ok"


def test_a_tls12_only_client_is_refused(certificate: tuple[Path, Path],
                                        context: ssl.SSLContext) -> None:
    client = client_context(certificate[0])
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_server(context) as server:
        with pytest.raises(ssl.SSLError, match=r"(?i)protocol version|unsupported protocol"):
            handshake(client, server.port, "localhost")
        assert server.done.wait(TIMEOUT)
    assert server.version is None
    assert isinstance(server.error, ssl.SSLError)


def test_a_client_offering_only_a_group_outside_the_profile_is_refused(
        certificate: tuple[Path, Path], context: ssl.SSLContext) -> None:
    client = client_context(certificate[0])
    assert restrict_key_exchange_groups(client, ("secp521r1",)) == ("secp521r1",)
    with tls_server(context) as server:
        with pytest.raises(ssl.SSLError, match=r"(?i)handshake failure"):
            handshake(client, server.port, "localhost")
        assert server.done.wait(TIMEOUT)
    assert server.version is None


def test_context_settings(context: ssl.SSLContext) -> None:
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    # Mozilla modern: the client chooses the suite.
    assert not context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    tls13 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"}
    assert tls13 == MOZILLA_MODERN_SUITES


def test_groups_are_restricted_to_the_full_modern_list_on_this_stack() -> None:
    # CPython on Linux with a shared _ssl: the ctypes path works, so no single-group fallback.
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    options_before = scratch.options
    assert restrict_key_exchange_groups(scratch, MODERN_GROUPS) == MODERN_GROUPS
    assert scratch.options == options_before
    assert FALLBACK_GROUP in MODERN_GROUPS


def test_unknown_groups_are_an_error_not_a_silent_default() -> None:
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match="no-such-group"):
        restrict_key_exchange_groups(scratch, ("X25519", "no-such-group"))
    with pytest.raises(ValueError):
        restrict_key_exchange_groups(scratch, ())


def test_python_315_set_groups_is_preferred() -> None:
    class ContextWithSetGroups:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def set_groups(self, groups: str) -> None:
            self.calls.append(groups)

    fake = ContextWithSetGroups()
    assert restrict_key_exchange_groups(fake, MODERN_GROUPS) == MODERN_GROUPS  # type: ignore[arg-type]
    assert fake.calls == ["X25519:prime256v1:secp384r1"]


def test_hsts_header() -> None:
    assert HSTS_HEADER == "max-age=63072000; includeSubDomains"


def s_client(port: int, *arguments: str) -> str:
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *arguments],
        input=b"", capture_output=True, timeout=TIMEOUT * 2, check=False)
    return (result.stdout + result.stderr).decode(errors="replace")


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
@pytest.mark.parametrize(("group", "temp_key"), [
    ("X25519", "X25519, 253 bits"),
    ("prime256v1", "ECDH, prime256v1, 256 bits"),
    ("secp384r1", "ECDH, secp384r1, 384 bits"),
])
def test_openssl_client_each_modern_group_is_accepted(context: ssl.SSLContext, group: str,
                                                      temp_key: str) -> None:
    with tls_server(context) as server:
        output = s_client(server.port, "-tls1_3", "-groups", group)
        assert server.done.wait(TIMEOUT)
    assert "Protocol version: TLSv1.3" in output
    assert f"Server Temp Key: {temp_key}" in output


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
@pytest.mark.parametrize("group", ["secp521r1", "X448", "ffdhe2048"])
def test_openssl_client_groups_outside_the_profile_are_refused(context: ssl.SSLContext,
                                                               group: str) -> None:
    # A default Python server context accepts all three; the Mozilla check fails on them.
    with tls_server(context) as server:
        output = s_client(server.port, "-tls1_3", "-groups", group)
        assert server.done.wait(TIMEOUT)
    assert "Protocol version" not in output
    assert "handshake failure" in output
    assert server.version is None


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_openssl_client_chooses_the_suite(context: ssl.SSLContext) -> None:
    with tls_server(context) as server:
        output = s_client(server.port, "-tls1_3", "-ciphersuites",
                          "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384")
        assert server.done.wait(TIMEOUT)
    assert "Ciphersuite: TLS_CHACHA20_POLY1305_SHA256" in output


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_openssl_client_tls12_is_refused(context: ssl.SSLContext) -> None:
    with tls_server(context) as server:
        output = s_client(server.port, "-tls1_2")
        assert server.done.wait(TIMEOUT)
    assert "Protocol version" not in output
    assert "protocol version" in output  # the server's protocol_version alert (70)


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_without_the_openssl_call_only_prime256v1_remains(certificate: tuple[Path, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # What a Python without set_groups and without a reachable libssl gets: one group, the one
    # RFC 8446 makes mandatory; X25519-only clients are refused, which is why it is a fallback.
    monkeypatch.setattr(tls, "_set_groups_via_openssl", lambda context, group_list: None)
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert restrict_key_exchange_groups(scratch, MODERN_GROUPS) == (FALLBACK_GROUP,)
    context = https_server_context(*certificate)
    with tls_server(context, connections=2) as server:
        accepted = s_client(server.port, "-tls1_3", "-groups", "prime256v1")
        refused = s_client(server.port, "-tls1_3", "-groups", "X25519")
        assert server.done.wait(TIMEOUT)
    assert "Server Temp Key: ECDH, prime256v1, 256 bits" in accepted
    assert "handshake failure" in refused
