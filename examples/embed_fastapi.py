"""Embedding a confnode node in your own FastAPI application.

The node brings its booking API, join links, waiting room and metrics as one ASGI app; your app
mounts it and starts/stops the node in its lifespan. Run with:

    .venv/bin/uvicorn examples.embed_fastapi:app --port 8000

then book through http://127.0.0.1:8000/video/api/v1/meetings with the token the node wrote to
``.confnode-embedded/admin-token``. Here the embedding app serves plain HTTP on loopback; put TLS in
front (or run ``confnode serve``) for anything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from confnode.config import HttpSettings, Settings
from confnode.licensing import LicenceKind
from confnode.node import Node

node = Node(Settings(
    data_dir=Path(".confnode-embedded"),
    http=HttpSettings(tls=False, public_url="http://127.0.0.1:8000/video"),
))


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with node:  # migrates the store, reconciles licences, runs the room timers
        yield


app = FastAPI(title="My practice system", lifespan=lifespan)
app.mount("/video", node.app)


@app.get("/")
async def home() -> dict[str, object]:
    """The host application can read the node directly, e.g. live rooms for a dashboard."""
    return {"live_rooms": len(node.rooms.all()),
            "port_licences_in_use": node.calls.ledger.in_use(LicenceKind.PORT)}
