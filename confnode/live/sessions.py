"""Client API sessions: the short-lived ``token`` a browser or app holds while in a room.

As in Pexip's client API, ``request_token`` hands out a token valid for ``expires`` seconds, clients
refresh it at half-life, and a token that is neither refreshed nor released expires — which is an
exit path like any other: the participant leaves and their calls (and licences) end. Tokens are
128-bit random and kept only as digests; they die with the room.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from confnode.errors import Unauthenticated
from confnode.rooms import Role
from confnode.security.capability import new_token, token_digest

TOKEN_LIFETIME = timedelta(seconds=120)


@dataclass(frozen=True)
class ClientSession:
    digest: str
    meeting_id: str
    participant_id: str
    role: Role
    display_name: str
    expires_at: datetime
    calls: frozenset[str] = field(default_factory=frozenset)


class ClientSessions:
    def __init__(self, lifetime: timedelta = TOKEN_LIFETIME) -> None:
        self.lifetime = lifetime
        self._by_digest: dict[str, ClientSession] = {}

    def issue(self, meeting_id: str, participant_id: str, role: Role, display_name: str,
              now: datetime) -> tuple[str, ClientSession]:
        token = new_token()
        session = ClientSession(token_digest(token), meeting_id, participant_id, role,
                                display_name, now + self.lifetime)
        self._by_digest[session.digest] = session
        return token, session

    def get(self, token: str | None, now: datetime) -> ClientSession:
        session = self._by_digest.get(token_digest(token)) if token else None
        if session is None or session.expires_at <= now:
            raise Unauthenticated("Invalid or expired token.")
        return session

    def refresh(self, token: str, now: datetime) -> tuple[str, ClientSession]:
        """A new token replaces the old one (Pexip's refresh_token returns a fresh token)."""
        old = self.get(token, now)
        del self._by_digest[old.digest]
        fresh = new_token()
        session = replace(old, digest=token_digest(fresh), expires_at=now + self.lifetime)
        self._by_digest[session.digest] = session
        return fresh, session

    def update(self, session: ClientSession, **changes: object) -> ClientSession:
        updated = replace(session, **changes)  # type: ignore[arg-type]
        if session.digest in self._by_digest:
            self._by_digest[session.digest] = updated
        return updated

    def release(self, token: str) -> ClientSession | None:
        return self._by_digest.pop(token_digest(token), None)

    def for_participant(self, participant_id: str) -> ClientSession | None:
        return next((s for s in self._by_digest.values() if s.participant_id == participant_id),
                    None)

    def drop_participant(self, participant_id: str) -> None:
        for digest in [d for d, s in self._by_digest.items() if s.participant_id == participant_id]:
            del self._by_digest[digest]

    def drop_meeting(self, meeting_id: str) -> None:
        for digest in [d for d, s in self._by_digest.items() if s.meeting_id == meeting_id]:
            del self._by_digest[digest]

    def expire(self, now: datetime) -> list[ClientSession]:
        """Remove and return the sessions whose token ran out (their participants must leave)."""
        expired = [s for s in self._by_digest.values() if s.expires_at <= now]
        for session in expired:
            del self._by_digest[session.digest]
        return expired
