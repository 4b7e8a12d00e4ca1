"""Scheduling templates: an organisation's defaults for the rooms it books (VDX templates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from confnode.booking.meeting import GuestMicrophone
from confnode.errors import InvalidInput

MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 12


@dataclass(frozen=True)
class SchedulingTemplate:
    id: str
    org_id: str
    name: str
    open_before: timedelta
    close_after: timedelta
    host_pin_required: bool
    guest_pin_required: bool
    pin_length: int
    max_participants: int | None
    guest_microphone: GuestMicrophone
    guests_wait_for_host: bool
    is_default: bool
    created_at: datetime

    def __post_init__(self) -> None:
        if not MIN_PIN_LENGTH <= self.pin_length <= MAX_PIN_LENGTH:
            raise InvalidInput(f"pin_length must be {MIN_PIN_LENGTH}-{MAX_PIN_LENGTH} digits.")
        if self.max_participants is not None and self.max_participants < 2:
            raise InvalidInput("max_participants must allow at least two endpoints.")
