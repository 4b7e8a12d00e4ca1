"""The HTTPS listener: uvicorn (uvloop, httptools) serving the node's ASGI app.

A thin shell: the TLS context comes from ``confnode.security.tls`` and the certificate, unless the
operator gives one, is the self-signed ECDSA P-256 one made on first start. Uvicorn's own access
log is off — it would write capability tokens from join-link paths; the redacting filter guards
every other log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from confnode.node import Node
from confnode.security.certificate import ensure_self_signed
from confnode.security.tls import https_server_context

log = logging.getLogger(__name__)


def certificate_paths(node: Node) -> tuple[Path, Path]:
    http = node.settings.http
    if http.cert_file and http.key_file:
        return http.cert_file, http.key_file
    data = node.settings.data_dir
    hostnames = [http.host, "localhost", "127.0.0.1", "::1"]
    public_host = urlsplit(node.settings.public_url).hostname
    if public_host:
        hostnames.append(public_host)
    cert, key = data / "tls" / "node-cert.pem", data / "tls" / "node-key.pem"
    wildcard = ("0.0.0.0", "::")  # noqa: S104 - names to leave out of the certificate, not binds
    ensure_self_signed(cert, key, [h for h in dict.fromkeys(hostnames) if h not in wildcard],
                       node.now())
    return cert, key


class HttpsListener:
    """Serves ``node.app`` until ``stop()``; ``bound_port`` tells where when port 0 was asked."""

    def __init__(self, node: Node) -> None:
        self.node = node
        http = node.settings.http
        self._ssl_context: ssl.SSLContext | None = None
        if http.tls:
            cert, key = certificate_paths(node)
            self._ssl_context = https_server_context(cert, key, node.settings.security_profile)
        config = uvicorn.Config(node.app, host=http.host, port=http.port, loop="none",
                                http="httptools", lifespan="off", access_log=False,
                                log_config=None, server_header=False, proxy_headers=False)
        self._server = uvicorn.Server(config)

    async def serve(self) -> None:
        config = self._server.config
        if not config.loaded:
            config.load()
        if self._ssl_context is not None:
            # uvicorn builds its context from file names; hand it ours, built from the profile.
            config.ssl = self._ssl_context
        await self._server.serve()

    @property
    def bound_port(self) -> int | None:
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None

    def stop(self) -> None:
        self._server.should_exit = True


async def serve(node: Node) -> None:
    """Run a standalone node until SIGINT/SIGTERM, then shut down cleanly (licences released)."""
    listener = HttpsListener(node)
    async with node:
        if node.settings.sip.enabled:
            await node.start_sip(*certificate_paths(node))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, listener.stop)
        log.info("Listening on %s", node.settings.public_url)
        await listener.serve()
