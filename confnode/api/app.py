"""The node's ASGI application: small routers composed behind two pieces of middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from confnode.api import admin, health, join_page, links, meetings, queue, reports
from confnode.api.client.app import create_client_app
from confnode.api.errors import ERROR_RESPONSES, install_error_handlers
from confnode.api.personal_data_guard import PersonalDataGuard
from confnode.api.security_headers import SecurityHeaders
from confnode.security.rate_limit import RateLimit, RateLimiter

if TYPE_CHECKING:
    from confnode.node import Node

DESCRIPTION = """\
Booking API of a confnode conferencing node, shaped after the VDX Booking Module API v2.
Authenticate with `Authorization: Bearer <API token>`. One `POST /api/v1/meetings` books a room and
returns its host link, short guest link, SIP address and PINs — shown only in that answer.
Fields that could carry a CPR number are refused with 422 and never echoed.
"""


def create_app(node: Node) -> FastAPI:
    app = FastAPI(title="confnode", version=node.version, description=DESCRIPTION,
                  responses=ERROR_RESPONSES)
    app.state.node = node
    install_error_handlers(app)
    for module in (health, meetings, admin, queue, reports, links, join_page):
        app.include_router(module.router)
    app.mount("/api/client/v2", create_client_app(node))
    app.add_middleware(PersonalDataGuard, exempt=("/api/client/v2/",))
    settings = node.settings
    app.add_middleware(RateLimit, limiter=RateLimiter(settings.rate_limit_per_minute,
                                                      settings.rate_limit_burst)
                       if settings.rate_limit_per_minute else None)
    app.add_middleware(SecurityHeaders, hsts=node.settings.http.tls)
    return app
