"""The meeting room state machine: lobby, lock, roles, mute and the usage window.

Semantics follow a Pexip Infinity Virtual Meeting Room:

* Guests wait in the lobby until a host is connected (``guests_wait_for_host``); when the first
  host connects, everyone waiting only for a host is let in.
* A locked room holds newly arriving guests in the lobby; hosts admit them one by one, and
  unlocking admits everyone the lock held. A host is never held: the host PIN bypasses the lock.
* A guest waiting longer than ``host_wait_timeout`` for a host is sent away; guests left alone
  after the last host leaves are sent away after ``guests_only_timeout`` (Pexip: 900 s / 60 s).
* A booked room is usable only within its ``RoomWindow``; when the window passes, the room ends
  and everyone leaves. A permanent room has no window.

Sans-IO: every input carries ``now``; outputs are queued events (``next_event()``) and one timer
(``get_timer()`` / ``handle_timer(now)``). Every method validates fully before it changes anything,
so a refused call (``PermissionDenied``, ``CapacityRefused``, …) leaves the room exactly as it was
and queues no event.

Once a participant leaves, the room forgets it (a permanent room would otherwise grow forever);
``leave`` returns the final ``LEFT`` snapshot for the call record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from confnode.errors import (
    CapacityRefused,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RoomClosed,
)
from confnode.rooms.events import (
    EndReason,
    LeaveReason,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    RoomEnded,
    RoomEvent,
    RoomExtended,
    RoomUpdated,
)
from confnode.rooms.participant import (
    EndpointType,
    MediaKind,
    Participant,
    ParticipantState,
    ParticipantView,
    Role,
    WaitingReason,
)
from confnode.rooms.window import RoomWindow, WindowState, require_aware

# Ids are minted by the node and names typed by people; the caps only stop a caller from parking
# arbitrary payloads in node memory. The API edge applies its own, tighter rules.
MAX_PARTICIPANT_ID_LENGTH = 128
MAX_DISPLAY_NAME_LENGTH = 256


_E = TypeVar("_E", bound=StrEnum)


class RoomKind(StrEnum):
    SCHEDULED = "scheduled"
    INSTANT = "instant"  # "straks-møde": booked for now, e.g. escalated from a phone call
    PERMANENT = "permanent"  # a doctor's own room with a dial-in number; no window
    WAITING_ROOM = "waiting_room"  # instant room started from the clinic's patient queue


class RoomState(StrEnum):
    OPEN = "open"
    ENDED = "ended"


@dataclass(frozen=True)
class RoomSettings:
    guests_wait_for_host: bool = True
    max_participants: int | None = None  # seats for people; control-only API links take none
    guests_muted_on_join: bool = False  # VDX ``guestMicrophone=muted``; guests may unmute
    host_wait_timeout: timedelta | None = timedelta(seconds=900)
    guests_only_timeout: timedelta | None = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.max_participants is not None and self.max_participants < 1:
            raise InvalidInput("max_participants must be at least 1.")
        for name in ("host_wait_timeout", "guests_only_timeout"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise InvalidInput(f"{name} must be positive, or None to disable it.")


class _Due(StrEnum):
    # Ordered by priority when two deadlines coincide: a window closing ends everything anyway,
    # and its reason is the more useful one in call records.
    WINDOW = "window"
    GUESTS_ONLY = "guests_only"
    HOST_WAIT = "host_wait"


_DUE_PRIORITY = {_Due.WINDOW: 0, _Due.GUESTS_ONLY: 1, _Due.HOST_WAIT: 2}


class Room:
    def __init__(
        self,
        room_id: str,
        kind: RoomKind,
        alias: str,
        window: RoomWindow | None,
        settings: RoomSettings | None = None,
    ) -> None:
        kind = RoomKind(kind)
        if (kind is RoomKind.PERMANENT) != (window is None):
            raise InvalidInput("A permanent room has no window; every other room needs one.")
        self.room_id = room_id
        self.kind = kind
        self.alias = alias
        self._window = window
        self._settings = settings if settings is not None else RoomSettings()
        self._state = RoomState.OPEN
        self._locked = False
        self._guests_muted = False
        self._participants: dict[str, Participant] = {}  # join order; LEFT ones are dropped
        self._events: deque[RoomEvent] = deque()
        # Host presence as of the last change, to notice the moment the last host goes.
        self._host_was_present = False
        self._guests_only_since: datetime | None = None

    # ----------------------------------------------------------------- queries

    @property
    def window(self) -> RoomWindow | None:
        return self._window

    @property
    def settings(self) -> RoomSettings:
        return self._settings

    @property
    def state(self) -> RoomState:
        return self._state

    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def guests_muted(self) -> bool:
        return self._guests_muted

    @property
    def host_present(self) -> bool:
        return any(
            p.role is Role.HOST and p.state is ParticipantState.CONNECTED
            for p in self._participants.values()
        )

    @property
    def connected_count(self) -> int:
        return sum(p.state is ParticipantState.CONNECTED for p in self._participants.values())

    def participants(self) -> list[ParticipantView]:
        """Everyone in the room or its lobby, in join order; all participants may see this."""
        return [p.view() for p in self._participants.values()]

    def participant(self, participant_id: str) -> ParticipantView:
        return self._get(participant_id).view()

    def next_event(self) -> RoomEvent | None:
        return self._events.popleft() if self._events else None

    # ----------------------------------------------------------------- joining and leaving

    def join(
        self,
        participant_id: str,
        display_name: str,
        role: Role,
        endpoint_type: EndpointType,
        protocol: str,
        media: Iterable[MediaKind],
        now: datetime,
    ) -> ParticipantView:
        """Let a participant in (or into the lobby) with the role its PIN granted."""
        require_aware(now)
        self._require_open()
        if self._window is not None:
            self._window.check(now)
        role = _coerce(Role, role, "role")
        endpoint_type = _coerce(EndpointType, endpoint_type, "endpoint_type")
        media_kinds = frozenset(_coerce(MediaKind, m, "media") for m in media)
        if not isinstance(participant_id, str) or not (
            0 < len(participant_id) <= MAX_PARTICIPANT_ID_LENGTH
        ):
            raise InvalidInput(
                f"participant_id must be 1 to {MAX_PARTICIPANT_ID_LENGTH} characters."
            )
        if not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME_LENGTH:
            raise InvalidInput(
                f"display_name must be at most {MAX_DISPLAY_NAME_LENGTH} characters."
            )
        if endpoint_type is EndpointType.API and media_kinds:
            raise InvalidInput("A control-only (api) participant carries no media.")
        if participant_id in self._participants:
            raise Conflict("This participant is already in the room.")
        limit = self._settings.max_participants
        if endpoint_type is not EndpointType.API and limit is not None:
            seated = sum(not p.control_only for p in self._participants.values())
            if seated >= limit:
                raise CapacityRefused(
                    f"The meeting room is full: it allows at most {limit} participants.",
                    max_participants=limit,
                )

        before = self._snapshot()
        participant = Participant(
            participant_id=participant_id,
            display_name=display_name,
            role=role,
            endpoint_type=endpoint_type,
            protocol=protocol,
            media=media_kinds,
            joined_at=now,
            # Guests start in the lobby; _reconcile lets them straight through when nothing holds
            # them, so the rule for "may a guest be connected" lives in one place.
            state=ParticipantState.CONNECTED if role is Role.HOST else ParticipantState.WAITING,
            muted=role is Role.GUEST
            and (self._settings.guests_muted_on_join or self._guests_muted),
        )
        self._participants[participant_id] = participant
        self._reconcile(now)
        self._emit(ParticipantJoined(room_id=self.room_id, at=now, view=participant.view()))
        self._emit_updates(before, now)
        return participant.view()

    def leave(
        self, participant_id: str, now: datetime, reason: str = LeaveReason.HANGUP
    ) -> ParticipantView:
        """The participant hung up (or its transport died); returns its final LEFT snapshot."""
        require_aware(now)
        participant = self._get(participant_id)
        before = self._snapshot()
        final = self._remove(participant, reason, now)
        self._reconcile(now)
        self._emit_updates(before, now)
        return final

    def disconnect(self, participant_id: str, by: str | None, now: datetime) -> ParticipantView:
        """A host (or the node) removes a participant; anyone may disconnect themselves."""
        require_aware(now)
        participant = self._get(participant_id)
        if by != participant_id:
            self._require_host(by, "disconnect other participants")
        reason = LeaveReason.HANGUP if by == participant_id else LeaveReason.DISCONNECTED
        before = self._snapshot()
        final = self._remove(participant, reason, now)
        self._reconcile(now)
        self._emit_updates(before, now)
        return final

    # ----------------------------------------------------------------- lobby and lock

    def lock(self, by: str | None, now: datetime) -> None:
        self._set_locked(True, by, now)

    def unlock(self, by: str | None, now: datetime) -> None:
        """Unlock; as in Pexip this admits everyone the lock held (not those awaiting a host)."""
        self._set_locked(False, by, now)

    def admit(self, participant_id: str, by: str | None, now: datetime) -> ParticipantView:
        """Let one waiting guest in, whatever held it (Pexip: participant ``unlock``).

        Admitting someone already connected is a no-op: two hosts clicking "admit" at once, or an
        admit racing the automatic admission when a host arrives, must not fail.
        """
        require_aware(now)
        self._require_open()
        self._require_host(by, "admit guests")
        participant = self._get(participant_id)
        if participant.state is ParticipantState.WAITING:
            before = self._snapshot()
            _connect(participant)
            self._reconcile(now)
            self._emit_updates(before, now)
        return participant.view()

    def admit_all(self, by: str | None, now: datetime) -> list[ParticipantView]:
        """Let every waiting guest in; returns those admitted, in join order."""
        require_aware(now)
        self._require_open()
        self._require_host(by, "admit guests")
        before = self._snapshot()
        admitted = [
            p for p in self._participants.values() if p.state is ParticipantState.WAITING
        ]
        for participant in admitted:
            _connect(participant)
        self._reconcile(now)
        self._emit_updates(before, now)
        return [p.view() for p in admitted]

    # ----------------------------------------------------------------- audio moderation

    def mute(self, participant_id: str, by: str | None, now: datetime) -> ParticipantView:
        """Anyone may mute themselves; muting someone else takes a host."""
        require_aware(now)
        participant = self._get(participant_id)
        if by != participant_id:
            self._require_host(by, "mute other participants")
        return self._set_muted(participant, True, now)

    def unmute(self, participant_id: str, by: str | None, now: datetime) -> ParticipantView:
        """Anyone may unmute themselves — except a guest while the host has muted all guests.

        "Mute guests" (Pexip DTMF ``*5``) is a room policy for lectures and noisy lines; if a guest
        could lift it for themselves it would mean nothing. A host may still unmute one guest
        (give them the floor) while the policy stands.
        """
        require_aware(now)
        participant = self._get(participant_id)
        if by is not None and by == participant_id:
            if participant.role is Role.GUEST and self._guests_muted:
                raise PermissionDenied("The host has muted all guests; only a host can unmute.")
        else:
            self._require_host(by, "unmute other participants")
        return self._set_muted(participant, False, now)

    def mute_guests(self, by: str | None, now: datetime) -> None:
        """Mute every guest, and every guest who joins while this stands."""
        self._set_guests_muted(True, by, now)

    def unmute_guests(self, by: str | None, now: datetime) -> None:
        self._set_guests_muted(False, by, now)

    # ----------------------------------------------------------------- hold

    def set_on_hold(self, participant_id: str, on_hold: bool, now: datetime) -> ParticipantView:
        """The participant's own endpoint held or resumed the call (never a host's action: a
        host who wants someone silent mutes them)."""
        require_aware(now)
        participant = self._get(participant_id)
        if participant.on_hold is not on_hold:
            participant.on_hold = on_hold
            self._emit(ParticipantUpdated(room_id=self.room_id, at=now, view=participant.view()))
        return participant.view()

    # ----------------------------------------------------------------- roles

    def set_role(
        self, participant_id: str, role: Role, by: str | None, now: datetime
    ) -> ParticipantView:
        """Promote or demote. A promoted lobby guest is connected at once (hosts never wait);
        a demoted host becomes subject to "mute guests"; demoting the last host starts the
        guests-only timeout exactly as if the host had left."""
        require_aware(now)
        self._require_open()
        self._require_host(by, "change roles")
        role = _coerce(Role, role, "role")
        participant = self._get(participant_id)
        if participant.role is role:
            return participant.view()
        before = self._snapshot()
        participant.role = role
        if role is Role.GUEST and self._guests_muted:
            participant.muted = True
        self._reconcile(now)
        self._emit_updates(before, now)
        return participant.view()

    # ----------------------------------------------------------------- lifetime

    def end(self, by: str | None, now: datetime) -> None:
        """A host (Pexip ``##``) or the booking system ends the meeting for everyone.

        Ending an ended room is a no-op, so a host's "end" racing the window closing is harmless.
        """
        require_aware(now)
        if self._state is RoomState.ENDED:
            return
        self._require_host(by, "end the meeting")
        self._end(EndReason.ENDED, now)

    def close(self, now: datetime, reason: str) -> None:
        """The node ends the room (window passed, shutdown, booking cancelled). Idempotent."""
        require_aware(now)
        if self._state is RoomState.ENDED:
            return
        self._end(reason, now)

    def extend(self, new_end: datetime, by: str | None, now: datetime) -> RoomWindow:
        """Move the booked end later (the doctor running over; VDX PATCH of ``endTime``).

        Allowed for every windowed kind — a consultation started from the waiting room is an
        instant meeting and may run over too. A room whose window has already passed cannot be
        revived, even if ``handle_timer`` has not closed it yet.
        """
        require_aware(now)
        self._require_open()
        self._require_host(by, "extend the meeting")
        if self._window is None:
            raise Conflict("A permanent room has no end to extend.")
        if self._window.state(now) is WindowState.AFTER:
            raise RoomClosed("The meeting room has closed.")
        self._window = self._window.extended_to(new_end)
        self._emit(RoomExtended(room_id=self.room_id, at=now, window=self._window))
        return self._window

    # ----------------------------------------------------------------- timers

    def get_timer(self) -> datetime | None:
        due = self._next_due()
        return due[0] if due is not None else None

    def handle_timer(self, now: datetime) -> None:
        """Apply every deadline at or before ``now``, earliest first.

        Earliest first matters when the shell wakes late: a guest whose host-wait ran out before
        the window closed is recorded as ``host_timeout``, not ``window_closed``. Events carry
        ``now``, the moment the node actually acted.
        """
        require_aware(now)
        while self._state is RoomState.OPEN:
            due = self._next_due()
            if due is None or due[0] > now:
                return
            _, kind, participant_id = due
            if kind is _Due.WINDOW:
                self._end(EndReason.WINDOW_CLOSED, now)
                return
            before = self._snapshot()
            if kind is _Due.GUESTS_ONLY:
                for participant in self._connected_guests():
                    self._remove(participant, LeaveReason.GUESTS_ONLY_TIMEOUT, now)
                self._guests_only_since = None
            else:
                assert participant_id is not None
                self._remove(
                    self._participants[participant_id], LeaveReason.HOST_TIMEOUT, now
                )
            self._reconcile(now)
            self._emit_updates(before, now)

    def _next_due(self) -> tuple[datetime, _Due, str | None] | None:
        if self._state is RoomState.ENDED:
            return None
        candidates: list[tuple[datetime, _Due, str | None]] = []
        if self._window is not None:
            candidates.append((self._window.closes_at, _Due.WINDOW, None))
        guests_only = self._settings.guests_only_timeout
        if (
            guests_only is not None
            and self._guests_only_since is not None
            and self._connected_guests()
        ):
            candidates.append((self._guests_only_since + guests_only, _Due.GUESTS_ONLY, None))
        host_wait = self._settings.host_wait_timeout
        if host_wait is not None:
            for p in self._participants.values():
                if p.waiting_reason is WaitingReason.HOST_ABSENT and p.waiting_since is not None:
                    deadline = p.waiting_since + host_wait
                    candidates.append((deadline, _Due.HOST_WAIT, p.participant_id))
        if not candidates:
            return None
        # min() keeps the first of equal keys, and candidates are in join order, so the guest
        # who has waited longest goes first among equal deadlines.
        return min(candidates, key=lambda c: (c[0], _DUE_PRIORITY[c[1]]))

    # ----------------------------------------------------------------- internals

    def _reconcile(self, now: datetime) -> None:
        """Bring the lobby and the guests-only clock in line with who is here now.

        The single place that decides whether a waiting guest may be connected: hosts never wait;
        a guest waits for a host first (``host_absent`` wins when both apply, since even an
        unlocked room would hold them) and for the lock second. Connected participants are never
        sent back to the lobby: the lock and host presence only gate the way in.
        """
        for p in self._participants.values():
            if p.state is ParticipantState.WAITING and p.role is Role.HOST:
                _connect(p)
        host_present = self.host_present
        for p in self._participants.values():
            if p.state is not ParticipantState.WAITING:
                continue
            reason = self._hold_reason(host_present)
            if reason is None:
                _connect(p)
            elif reason is not p.waiting_reason:
                p.waiting_reason = reason
                p.waiting_since = now

        if host_present:
            self._guests_only_since = None
        elif self._host_was_present:
            self._guests_only_since = now  # the last host just went
        if not self._connected_guests():
            # Nobody is left to time out; a guest arriving later meets the host-wait rule
            # (or, without it, an ordinary guests' room), not a stale deadline.
            self._guests_only_since = None
        self._host_was_present = host_present

    def _hold_reason(self, host_present: bool) -> WaitingReason | None:
        if self._settings.guests_wait_for_host and not host_present:
            return WaitingReason.HOST_ABSENT
        if self._locked:
            return WaitingReason.LOCKED
        return None

    def _connected_guests(self) -> list[Participant]:
        return [
            p
            for p in self._participants.values()
            if p.role is Role.GUEST and p.state is ParticipantState.CONNECTED
        ]

    def _set_locked(self, locked: bool, by: str | None, now: datetime) -> None:
        require_aware(now)
        self._require_open()
        self._require_host(by, "lock or unlock the meeting")
        if self._locked is locked:
            return
        before = self._snapshot()
        self._locked = locked
        self._emit_room_updated(now)
        self._reconcile(now)
        self._emit_updates(before, now)

    def _set_guests_muted(self, muted: bool, by: str | None, now: datetime) -> None:
        require_aware(now)
        self._require_open()
        self._require_host(by, "mute or unmute guests")
        before = self._snapshot()
        changed = self._guests_muted is not muted
        self._guests_muted = muted
        if changed:
            self._emit_room_updated(now)
        # Applied even when the flag was already set: re-muting catches guests a host unmuted
        # individually since.
        for p in self._participants.values():
            if p.role is Role.GUEST:
                p.muted = muted
        self._emit_updates(before, now)

    def _set_muted(self, participant: Participant, muted: bool, now: datetime) -> ParticipantView:
        if participant.muted is not muted:
            participant.muted = muted
            self._emit(ParticipantUpdated(room_id=self.room_id, at=now, view=participant.view()))
        return participant.view()

    def _end(self, reason: str, now: datetime) -> None:
        for participant in list(self._participants.values()):
            self._remove(participant, reason, now)
        self._state = RoomState.ENDED
        self._guests_only_since = None
        self._host_was_present = False
        self._emit(RoomEnded(room_id=self.room_id, at=now, reason=reason))

    def _remove(self, participant: Participant, reason: str, now: datetime) -> ParticipantView:
        del self._participants[participant.participant_id]
        participant.state = ParticipantState.LEFT
        participant.waiting_reason = None
        participant.waiting_since = None
        self._emit(
            ParticipantLeft(
                room_id=self.room_id, at=now, participant_id=participant.participant_id,
                reason=reason,
            )
        )
        return participant.view()

    def _get(self, participant_id: str) -> Participant:
        try:
            return self._participants[participant_id]
        except (KeyError, TypeError):
            raise NotFound("No such participant in this room.") from None

    def _require_open(self) -> None:
        if self._state is RoomState.ENDED:
            raise RoomClosed("The meeting has ended.")

    def _require_host(self, by: str | None, action: str) -> None:
        """``None`` is the node or booking system acting for itself, which may do anything."""
        if by is None:
            return
        if self._get(by).role is not Role.HOST:
            raise PermissionDenied(f"Only a host may {action}.")

    def _snapshot(self) -> dict[str, ParticipantView]:
        return {pid: p.view() for pid, p in self._participants.items()}

    def _emit_updates(self, before: dict[str, ParticipantView], now: datetime) -> None:
        """One ParticipantUpdated per participant whose snapshot changed, in join order."""
        for pid, participant in self._participants.items():
            old = before.get(pid)
            if old is None:
                continue  # joined in this call: its ParticipantJoined already has the final view
            view = participant.view()
            if view != old:
                self._emit(ParticipantUpdated(room_id=self.room_id, at=now, view=view))

    def _emit_room_updated(self, now: datetime) -> None:
        self._emit(
            RoomUpdated(
                room_id=self.room_id, at=now, locked=self._locked, guests_muted=self._guests_muted
            )
        )

    def _emit(self, event: RoomEvent) -> None:
        self._events.append(event)


def _connect(participant: Participant) -> None:
    participant.state = ParticipantState.CONNECTED
    participant.waiting_reason = None
    participant.waiting_since = None


def _coerce(enum: type[_E], value: object, name: str) -> _E:
    """Accept the enum or its string value, so the API edge can pass what it parsed."""
    try:
        return enum(value)
    except ValueError:
        raise InvalidInput(f"Unknown {name}: {value!r}.") from None
