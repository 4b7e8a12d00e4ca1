"""Bearer API tokens for staff and practice systems (OIDC can sit in front later)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from confnode.booking.principal import Principal
from confnode.errors import Unauthenticated

if TYPE_CHECKING:
    from confnode.node import Node

_bearer = HTTPBearer(auto_error=False, description="API token issued by `confnode` or an admin.")


def node_of(request: Request) -> Node:
    return request.app.state.node  # type: ignore[no-any-return]


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("An API token is required (Authorization: Bearer …).")
    principal = await node_of(request).directory.principal_for_token(credentials.credentials)
    if principal is None:
        raise Unauthenticated("The API token is not valid.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
