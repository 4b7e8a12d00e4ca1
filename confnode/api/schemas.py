"""Request and response bodies of the booking API (shaped after the VDX Booking Module API v2).

Free text is short and bounded (MedCom: practice systems cut long messages). Every model forbids
unknown fields, so a misspelt option is a 422 instead of silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from confnode.booking.meeting import GuestMicrophone, Meeting, MeetingStatus
from confnode.booking.principal import StaffRole
from confnode.booking.service import Booking
from confnode.booking.template import MAX_PIN_LENGTH, MIN_PIN_LENGTH

Pin = Annotated[str, StringConstraints(pattern=rf"^[0-9]{{{MIN_PIN_LENGTH},{MAX_PIN_LENGTH}}}$")]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(max_length=500)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=50)]
# Whitespace spelt out: ``\s`` means different characters to Python and to JSON Schema (ECMA)
# regexes (U+0085, U+FEFF), so a schema-valid address could be refused.
_NOT_SPACE = r"[^@ \t\r\n\f\v\u0085\u00a0\ufeff]+"
Email = Annotated[str, StringConstraints(
    max_length=254, pattern=rf"^{_NOT_SPACE}@{_NOT_SPACE}$", to_lower=True)]


_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"


def _usable_url(value: str) -> str:
    """A webhook target must be a URL the node can actually call: a parsable http(s) URL with a
    host, not merely something starting with ``http://``."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("needs an http(s) URL with a host")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeetingCreate(Strict):
    subject: Subject
    meeting_type: Literal["planned", "instant"] = Field(
        "planned", description="planned: start_time and end_time required. instant "
        "(straks-møde): opens now for the node's default duration, or until end_time.")
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    description: Description | None = None
    organizer_email: Email | None = Field(
        None, description="Book on behalf of this user (meeting-planner role).")
    template_id: str | None = Field(None, max_length=36)
    host_pin: Pin | None = None
    guest_pin: Pin | None = None
    host_pin_required: StrictBool | None = None
    guest_pin_required: StrictBool | None = None
    max_participants: int | None = Field(None, strict=True, ge=2, le=500)
    guest_microphone: GuestMicrophone | None = None
    guests_wait_for_host: StrictBool | None = None
    external_id: str | None = Field(None, min_length=1, max_length=100)
    labels: list[Label] = Field(default_factory=list, max_length=10)


class PermanentRoomCreate(Strict):
    subject: Subject
    description: Description | None = None
    organizer_email: Email | None = None
    host_pin: Pin | None = None
    guest_pin: Pin | None = None
    host_pin_required: StrictBool | None = None
    guest_pin_required: StrictBool | None = None
    max_participants: int | None = Field(None, strict=True, ge=2, le=500)
    guests_wait_for_host: StrictBool | None = None


class MeetingUpdate(Strict):
    end_time: AwareDatetime | None = Field(None, description="Extend (later only), also live.")
    subject: Subject | None = Field(None, description="Only before the room opens.")
    description: Description | None = Field(None, description="Only before the room opens.")


class MeetingOut(BaseModel):
    id: str
    meeting_type: str
    status: MeetingStatus
    subject: str
    description: str | None
    alias: str
    sip_uri: str
    start_time: datetime | None
    end_time: datetime | None
    opens_at: datetime | None
    closes_at: datetime | None
    organizer_id: str
    created_by_id: str
    host_pin_required: bool
    guest_pin_required: bool
    max_participants: int | None
    guest_microphone: GuestMicrophone
    guests_wait_for_host: bool
    external_id: str | None
    labels: list[str]
    created_at: datetime

    @classmethod
    def of(cls, meeting: Meeting, status: MeetingStatus, sip_uri: str) -> MeetingOut:
        return cls(
            id=meeting.id, meeting_type=_meeting_type(meeting), status=status,
            subject=meeting.subject, description=meeting.description, alias=meeting.alias,
            sip_uri=sip_uri, start_time=meeting.start_time, end_time=meeting.end_time,
            opens_at=meeting.opens_at, closes_at=meeting.closes_at,
            organizer_id=meeting.organizer_id, created_by_id=meeting.created_by_id,
            host_pin_required=meeting.host_pin_digest is not None,
            guest_pin_required=meeting.guest_pin_digest is not None,
            max_participants=meeting.max_participants,
            guest_microphone=meeting.guest_microphone,
            guests_wait_for_host=meeting.guests_wait_for_host, external_id=meeting.external_id,
            labels=list(meeting.labels), created_at=meeting.created_at)


class BookingOut(MeetingOut):
    """The booking answer: the only time links and PINs are ever shown."""

    host_link: str
    guest_link: str
    host_pin: str | None
    guest_pin: str | None

    @classmethod
    def of_booking(cls, booking: Booking, status: MeetingStatus) -> BookingOut:
        base = MeetingOut.of(booking.meeting, status, booking.sip_uri).model_dump()
        return cls(**base, host_link=booking.host_link, guest_link=booking.guest_link,
                   host_pin=booking.host_pin, guest_pin=booking.guest_pin)


def _meeting_type(meeting: Meeting) -> str:
    return {"scheduled": "planned"}.get(meeting.kind.value, meeting.kind.value)


class TemplateCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    is_default: StrictBool = False
    open_before_minutes: int = Field(15, strict=True, ge=0, le=24 * 60)
    close_after_minutes: int = Field(15, strict=True, ge=0, le=24 * 60)
    host_pin_required: StrictBool = False
    guest_pin_required: StrictBool = False
    pin_length: int = Field(6, strict=True, ge=MIN_PIN_LENGTH, le=MAX_PIN_LENGTH)
    max_participants: int | None = Field(None, strict=True, ge=2, le=500)
    guest_microphone: GuestMicrophone = GuestMicrophone.ON
    guests_wait_for_host: StrictBool = True


class TemplateOut(TemplateCreate):
    id: str
    created_at: datetime


class UserCreate(Strict):
    email: Email
    role: StaffRole = StaffRole.USER


class UserOut(BaseModel):
    id: str
    email: str
    role: StaffRole
    org_id: str


class TokenCreate(Strict):
    label: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "api"


class TokenOut(BaseModel):
    token: str = Field(description="Shown once; only its digest is stored.")
    user_id: str


class LinksOut(BaseModel):
    host_link: str
    guest_link: str


class QueueClose(Strict):
    mode: Literal["keep", "flush"] = Field(
        "keep", description="keep: no newcomers, the clinic works through who is waiting; "
        "flush: everyone waiting is removed.")


class QueueStart(Strict):
    number: int | None = Field(None, strict=True, ge=1,
                               description="A chosen patient; default: the next.")


class TicketCreate(Strict):
    call_when_ready: StrictBool = Field(False, description="Be called (webhook to the clinic's "
                                  "system) instead of watching the queue.")


class TicketUpdate(Strict):
    call_when_ready: StrictBool


class WebhookSet(Strict):
    url: Annotated[str, StringConstraints(
        max_length=500, pattern=r"^https?://[A-Za-z0-9.-]+(:" + _PORT + r")?(/[!-~]*)?$"),
                   AfterValidator(_usable_url)] | None
