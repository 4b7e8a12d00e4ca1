"""The browser join page: one static HTML page, its script and its stylesheet.

A patient clicking a join link gets a plain page that talks to the node's Pexip-compatible client
API, so no app and no build step are needed (a plain browser route must always work). The files are
package data in ``confnode.web``; only those three names are served, and the page carries a strict
Content-Security-Policy: everything comes from the node itself, nothing inline, no framing.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from confnode.errors import NotFound

router = APIRouter(tags=["join page"])

# ``media-src blob: mediastream:`` covers video elements fed from getUserMedia and from the
# PeerConnection; ``connect-src 'self'`` covers fetch, the event stream and the leave beacon.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_ASSETS = {
    "join.html": "text/html; charset=utf-8",
    "join.js": "text/javascript; charset=utf-8",
    "join.css": "text/css; charset=utf-8",
}


def _asset(name: str) -> Response:
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise NotFound("No such file.")
    body = resources.files("confnode.web").joinpath(name).read_bytes()
    headers = ({"Content-Security-Policy": CONTENT_SECURITY_POLICY}
               if name.endswith(".html") else None)
    return Response(body, media_type=content_type, headers=headers)


def join_page() -> Response:
    """The page a browser gets for a join link inside its window."""
    return _asset("join.html")


@router.get("/static/{name}", include_in_schema=False)
async def static_asset(name: str) -> Response:
    return _asset(name)
