"""Organisation administration: templates, users and their API tokens, the clinic webhook."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request

from confnode.api.auth import CurrentPrincipal, node_of
from confnode.api.schemas import (
    TemplateCreate,
    TemplateOut,
    TokenCreate,
    TokenOut,
    UserCreate,
    UserOut,
    WebhookSet,
)
from confnode.booking.template import SchedulingTemplate
from confnode.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["administration"])


def _template_out(t: SchedulingTemplate) -> TemplateOut:
    return TemplateOut(
        id=t.id, created_at=t.created_at, name=t.name, is_default=t.is_default,
        open_before_minutes=int(t.open_before.total_seconds() // 60),
        close_after_minutes=int(t.close_after.total_seconds() // 60),
        host_pin_required=t.host_pin_required, guest_pin_required=t.guest_pin_required,
        pin_length=t.pin_length, max_participants=t.max_participants,
        guest_microphone=t.guest_microphone, guests_wait_for_host=t.guests_wait_for_host)


@router.get("/templates", response_model=list[TemplateOut])
async def list_templates(request: Request, principal: CurrentPrincipal) -> list[TemplateOut]:
    templates = await node_of(request).meetings.list_templates(principal.org_id)
    return [_template_out(t) for t in templates]


@router.post("/templates", status_code=201, response_model=TemplateOut)
async def create_template(body: TemplateCreate, request: Request,
                          principal: CurrentPrincipal) -> TemplateOut:
    principal.ensure_admin()
    template = SchedulingTemplate(
        id=str(uuid.uuid4()), org_id=principal.org_id, name=body.name,
        open_before=timedelta(minutes=body.open_before_minutes),
        close_after=timedelta(minutes=body.close_after_minutes),
        host_pin_required=body.host_pin_required, guest_pin_required=body.guest_pin_required,
        pin_length=body.pin_length, max_participants=body.max_participants,
        guest_microphone=body.guest_microphone, guests_wait_for_host=body.guests_wait_for_host,
        is_default=body.is_default, created_at=node_of(request).now())
    await node_of(request).meetings.insert_template(template)
    return _template_out(template)


@router.get("/users", response_model=list[UserOut])
async def list_users(request: Request, principal: CurrentPrincipal) -> list[UserOut]:
    principal.ensure_admin()
    users = await node_of(request).directory.list_users(principal.org_id)
    return [UserOut(id=u.user_id, email=u.email, role=u.role, org_id=u.org_id) for u in users]


@router.post("/users", status_code=201, response_model=UserOut)
async def create_user(body: UserCreate, request: Request,
                      principal: CurrentPrincipal) -> UserOut:
    principal.ensure_admin()
    node = node_of(request)
    user = await node.directory.create_user(principal.org_id, body.email, body.role, node.now())
    return UserOut(id=user.user_id, email=user.email, role=user.role, org_id=user.org_id)


@router.post("/users/{user_id}/tokens", status_code=201, response_model=TokenOut)
async def issue_token(user_id: str, body: TokenCreate, request: Request,
                      principal: CurrentPrincipal) -> TokenOut:
    node = node_of(request)
    if user_id != principal.user_id:
        principal.ensure_admin()
    try:
        user = await node.directory.user(user_id)
    except NotFound:
        raise NotFound("No such user.") from None
    if user.org_id != principal.org_id:
        raise NotFound("No such user.")
    issued = await node.directory.issue_token(user.user_id, body.label, node.now())
    return TokenOut(token=issued.token, user_id=issued.user_id)


@router.put("/webhook", summary="Where 'call me when ready' notifications are sent")
async def set_webhook(body: WebhookSet, request: Request,
                      principal: CurrentPrincipal) -> dict[str, str | None]:
    principal.ensure_admin()
    await node_of(request).directory.set_webhook(principal.org_id, body.url)
    return {"url": body.url}
