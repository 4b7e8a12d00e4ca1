"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from confnode.api.auth import node_of

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Is the node up and its store reachable")
async def healthz(request: Request) -> dict[str, object]:
    node = node_of(request)
    await node.check_store()
    return {"status": "ok", "version": node.version, "live_rooms": len(node.rooms.all())}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    node = node_of(request)
    node.metrics.refresh(node)
    return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)
