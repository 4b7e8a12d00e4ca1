"""The media engine's pure cores: mixing, speaker detection, layouts, composition, routing.

Arrays in, arrays out; no sockets, clocks or codecs. The WebRTC and SIP shells decode RTP to PCM
and I420, call these once per tick, and encode what comes back: one encode per distinct output
(:class:`MixResult` and :meth:`Compositor.compose_views` group the receivers that share one).
"""

from confnode.media.compositor import (
    ComposedViews,
    Compositor,
    ViewKey,
    ViewSpec,
    black_frame,
    pack_i420,
    split_i420,
)
from confnode.media.layouts import (
    DEFAULT_LAYOUT,
    LayoutName,
    Tile,
    available_layouts,
    capacity,
    fit,
    has_self_view,
    layout,
    layout_name,
    next_layout,
    stage_order,
)
from confnode.media.mixer import (
    FRAME_SAMPLES,
    FULL_MIX,
    SAMPLE_RATE,
    SILENCE,
    SILENCE_DBOV,
    AudioMixer,
    MixResult,
    OutputKey,
    OutputKind,
)
from confnode.media.routing import (
    CodecPair,
    KeyframeNeeded,
    KeyframeReason,
    MediaRouter,
    RouteChanged,
    RouteEvent,
    RouteMode,
    RouteReason,
)
from confnode.media.speaker import ActiveSpeaker, SpeakerChanged

__all__ = [
    "DEFAULT_LAYOUT",
    "FRAME_SAMPLES",
    "FULL_MIX",
    "SAMPLE_RATE",
    "SILENCE",
    "SILENCE_DBOV",
    "ActiveSpeaker",
    "AudioMixer",
    "CodecPair",
    "ComposedViews",
    "Compositor",
    "KeyframeNeeded",
    "KeyframeReason",
    "LayoutName",
    "MediaRouter",
    "MixResult",
    "OutputKey",
    "OutputKind",
    "RouteChanged",
    "RouteEvent",
    "RouteMode",
    "RouteReason",
    "SpeakerChanged",
    "Tile",
    "ViewKey",
    "ViewSpec",
    "available_layouts",
    "black_frame",
    "capacity",
    "fit",
    "has_self_view",
    "layout",
    "layout_name",
    "next_layout",
    "pack_i420",
    "split_i420",
    "stage_order",
]
