"""Who is asking, and what their VDX role lets them do.

Roles follow the VDX Booking Module: ``meeting-user`` books and sees their own meetings,
``meeting-planner`` books on behalf of anyone in their organisation and sees the organisation's
meetings, ``meeting-admin`` also manages templates, users and the clinic queue. Nobody ever sees
across organisations; an object in another organisation is reported as not found, so its existence
does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from confnode.errors import NotFound, PermissionDenied


class StaffRole(StrEnum):
    USER = "meeting-user"
    PLANNER = "meeting-planner"
    ADMIN = "meeting-admin"


@dataclass(frozen=True)
class Principal:
    user_id: str
    org_id: str
    role: StaffRole
    email: str

    @property
    def is_planner(self) -> bool:
        return self.role in (StaffRole.PLANNER, StaffRole.ADMIN)

    def ensure_can_see(self, org_id: str, owner_ids: tuple[str, ...], what: str) -> None:
        """NotFound unless the object is in this org and is ours, or we plan for the org."""
        if org_id != self.org_id or (not self.is_planner and self.user_id not in owner_ids):
            raise NotFound(f"No such {what}.")

    def ensure_can_book_for(self, organizer_id: str) -> None:
        if organizer_id != self.user_id and not self.is_planner:
            raise PermissionDenied("Only a meeting-planner may book on behalf of others.")

    def ensure_admin(self) -> None:
        if self.role is not StaffRole.ADMIN:
            raise PermissionDenied("This needs the meeting-admin role.")
