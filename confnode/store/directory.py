"""Organisations, staff users and their API tokens."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from confnode.booking.principal import Principal, StaffRole
from confnode.errors import Conflict, NotFound
from confnode.security.capability import new_token, token_digest
from confnode.store.database import Database
from confnode.store.schema import api_tokens, organisations, users


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    region: str
    webhook_url: str | None
    created_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    """An API token in clear — exists only in the response that created it."""

    token: str
    user_id: str


PRINCIPAL_CACHE_SECONDS = 10.0
PRINCIPAL_CACHE_SIZE = 4096


class Directory:
    def __init__(self, database: Database) -> None:
        self._db = database
        # API tokens are checked on every request; a short-lived cache by digest spares the
        # store. Revoking through this directory drops the entry at once.
        self._principals: dict[str, tuple[float, Principal]] = {}

    async def is_empty(self) -> bool:
        async with self._db.connect() as conn:
            return (await conn.scalar(select(func.count()).select_from(organisations))) == 0

    async def create_organisation(self, org_id: str, name: str, region: str,
                                  now: datetime) -> Organisation:
        try:
            async with self._db.begin() as conn:
                await conn.execute(organisations.insert().values(
                    id=org_id, name=name, region=region, created_at=now))
        except IntegrityError as exc:
            raise Conflict(f"Organisation {org_id!r} already exists.") from exc
        return Organisation(org_id, name, region, None, now)

    async def organisation(self, org_id: str) -> Organisation:
        async with self._db.connect() as conn:
            row = (await conn.execute(
                organisations.select().where(organisations.c.id == org_id))).one_or_none()
        if row is None:
            raise NotFound("No such organisation.")
        return Organisation(row.id, row.name, row.region, row.webhook_url, row.created_at)

    async def list_organisations(self) -> list[Organisation]:
        async with self._db.connect() as conn:
            rows = (await conn.execute(organisations.select().order_by(organisations.c.id))).all()
        return [Organisation(r.id, r.name, r.region, r.webhook_url, r.created_at) for r in rows]

    async def set_webhook(self, org_id: str, url: str | None) -> None:
        async with self._db.begin() as conn:
            await conn.execute(organisations.update().where(organisations.c.id == org_id)
                               .values(webhook_url=url))

    async def create_user(self, org_id: str, email: str, role: StaffRole,
                          now: datetime) -> Principal:
        user_id = str(uuid.uuid4())
        try:
            async with self._db.begin() as conn:
                await conn.execute(users.insert().values(
                    id=user_id, org_id=org_id, email=email.lower(), role=role.value,
                    created_at=now))
        except IntegrityError as exc:
            raise Conflict("A user with that e-mail already exists.") from exc
        return Principal(user_id, org_id, role, email.lower())

    async def user(self, user_id: str) -> Principal:
        async with self._db.connect() as conn:
            row = (await conn.execute(users.select().where(users.c.id == user_id))).one_or_none()
        if row is None:
            raise NotFound("No such user.")
        return Principal(row.id, row.org_id, StaffRole(row.role), row.email)

    async def user_by_email(self, email: str) -> Principal:
        async with self._db.connect() as conn:
            row = (await conn.execute(
                users.select().where(users.c.email == email.lower()))).one_or_none()
        if row is None:
            raise NotFound("No such user.")
        return Principal(row.id, row.org_id, StaffRole(row.role), row.email)

    async def list_users(self, org_id: str) -> list[Principal]:
        async with self._db.connect() as conn:
            rows = (await conn.execute(users.select().where(users.c.org_id == org_id)
                                       .order_by(users.c.email))).all()
        return [Principal(r.id, r.org_id, StaffRole(r.role), r.email) for r in rows]

    async def issue_token(self, user_id: str, label: str, now: datetime) -> IssuedToken:
        token = new_token()
        async with self._db.begin() as conn:
            await conn.execute(api_tokens.insert().values(
                digest=token_digest(token), user_id=user_id, label=label, created_at=now))
        return IssuedToken(token, user_id)

    async def principal_for_token(self, token: str) -> Principal | None:
        # The lookup is by digest (an index probe on a hash of a 128-bit secret): timing reveals
        # nothing usable about the token itself.
        digest = token_digest(token)
        cached = self._principals.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.connect() as conn:
            row = (await conn.execute(
                select(users).join(api_tokens, api_tokens.c.user_id == users.c.id)
                .where(api_tokens.c.digest == digest,
                       api_tokens.c.revoked_at.is_(None)))).one_or_none()
        if row is None:
            return None
        principal = Principal(row.id, row.org_id, StaffRole(row.role), row.email)
        if len(self._principals) >= PRINCIPAL_CACHE_SIZE:
            self._principals.clear()
        self._principals[digest] = (time.monotonic() + PRINCIPAL_CACHE_SECONDS, principal)
        return principal

    async def revoke_token(self, token: str, now: datetime) -> bool:
        self._principals.pop(token_digest(token), None)
        async with self._db.begin() as conn:
            result = await conn.execute(
                api_tokens.update().where(api_tokens.c.digest == token_digest(token),
                                          api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now))
        return result.rowcount == 1

    async def set_queue_digest(self, org_id: str, digest: str) -> None:
        async with self._db.begin() as conn:
            result = await conn.execute(organisations.update().where(
                organisations.c.id == org_id).values(queue_digest=digest))
        if result.rowcount != 1:
            raise NotFound("No such organisation.")

    async def org_for_queue(self, digest: str) -> str | None:
        async with self._db.connect() as conn:
            return await conn.scalar(select(organisations.c.id)
                                     .where(organisations.c.queue_digest == digest))
