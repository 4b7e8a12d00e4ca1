"""The participant object exactly as Pexip's SDK validates it (28 required fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from confnode.rooms import ParticipantState, ParticipantView, Role


def participant_json(view: ParticipantView, alias: str, *, has_media: bool,
                     audio_only: bool, spotlight: float = 0) -> dict[str, Any]:
    start = view.joined_at.timestamp() if isinstance(view.joined_at, datetime) else 0
    waiting = view.state is ParticipantState.WAITING
    return {
        "uuid": view.participant_id,
        "display_name": view.display_name,
        "overlay_text": view.display_name,
        "role": "chair" if view.role is Role.HOST else "guest",
        "service_type": "waiting_room" if waiting else "conference",
        "protocol": "sip" if view.endpoint_type.value == "sip" else "api",
        "call_direction": "in",
        "local_alias": alias,
        "uri": "",
        "vendor": "",
        "start_time": int(start),
        "buzz_time": 0,
        "spotlight": spotlight,
        "has_media": has_media,
        "is_audio_only_call": "YES" if has_media and audio_only else "NO",
        "is_video_call": "YES" if has_media and not audio_only else "NO",
        "is_muted": "YES" if view.muted else "NO",
        "is_client_muted": False,
        "is_video_muted": False,
        # Pexip's client participant has no hold field (and its validator refuses unknown keys);
        # a held endpoint's tile is blank, which is what ``is_video_silent`` reports.
        "is_video_silent": view.on_hold,
        "is_presenting": "NO",
        "is_streaming_conference": False,
        "is_external": False,
        "external_node_uuid": "",
        "encryption": "On",
        "rx_presentation_policy": "ALLOW",
        "mute_supported": "YES",
        "disconnect_supported": "YES",
        "transfer_supported": "NO",
        "fecc_supported": "NO",
        "presentation_supported": "NO",
        "supports_direct_chat": False,
        "can_receive_personal_mix": False,
        "receive_from_video_mix": {"mix_name": "main", "timestamp": 0},
    }
