"""Conference layouts: Pexip's layout names mapped to tile geometry on an output frame.

The names are the ones Pexip Infinity's client API (``transform_layout``, ``available_layouts``)
and its DTMF ``*8`` cycle use, so clients written against Pexip can switch layouts unchanged:
``1:0`` (speaker only), ``1:7`` (the default "1+7"), ``1:21``, ``2:21``, ``1:33`` and the equal
grids ``4:0``, ``9:0``, ``16:0``, ``25:0``. ``1:0+pip`` is confnode's own addition for two-party
consultations with a SIP room system that has no local self-view: the other party fills the frame
and the viewer's own picture sits in a small picture-in-picture.

The geometry is confnode's, not a copy of Pexip's pixels:

* Speaker layouts (``1:7``, ``1:21``, ``2:21``, ``1:33``) put the small tiles in rows along the
  bottom (7 per row, 11 for ``1:33``), each a 16:9 thumbnail of ``width / per_row``. Only the rows
  that are actually used are reserved, and the stage (one big tile, or two side by side for
  ``2:21``) takes all the height above them, so a 1+7 with three people gives the speaker far more
  room than one with eight. Thumbnails never cover the speaker (Pexip overlays them; a GP's face
  half-hidden behind a strip of thumbnails is the wrong trade for a consultation).
* Grids adapt to the number of people: the smallest near-square grid that holds them, capped at
  the layout's size (``4:0`` is at most 2x2), with cells of the output's aspect ratio, the block
  centred and a partial last row centred. Two people in ``4:0`` therefore sit side by side, not in
  two quarters of an otherwise black frame.

Every tile is even in position and size because the compositor writes YUV 4:2:0, whose chroma
planes are subsampled 2x2: an odd edge would split a chroma sample between two tiles. Tiles are
areas; the picture keeps its own aspect ratio inside one (see :func:`fit`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from confnode.errors import InvalidInput


class LayoutName(StrEnum):
    # Declared in Pexip's default DTMF *8 cycle order (Adaptive Composition is not implemented);
    # confnode's self-view layout comes last so cycling never lands on it by surprise.
    ONE_PLUS_SEVEN = "1:7"
    ONE_PLUS_TWENTYONE = "1:21"
    TWO_PLUS_TWENTYONE = "2:21"
    GRID_2X2 = "4:0"
    GRID_3X3 = "9:0"
    GRID_4X4 = "16:0"
    GRID_5X5 = "25:0"
    SPEAKER_ONLY = "1:0"
    ONE_PLUS_THIRTYTHREE = "1:33"
    SPEAKER_WITH_SELF_VIEW = "1:0+pip"


DEFAULT_LAYOUT = LayoutName.ONE_PLUS_SEVEN


@dataclass(frozen=True, slots=True)
class Tile:
    """An even-aligned rectangle of the output frame, in luma pixels."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def overlaps(self, other: Tile) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


@dataclass(frozen=True, slots=True)
class _SpeakerShape:
    stage: int  # big tiles
    per_row: int  # thumbnails per row
    thumbnails: int  # at most this many small tiles


@dataclass(frozen=True, slots=True)
class _GridShape:
    side: int  # at most side x side cells


_SHAPES: dict[LayoutName, _SpeakerShape | _GridShape] = {
    LayoutName.SPEAKER_ONLY: _SpeakerShape(stage=1, per_row=7, thumbnails=0),
    LayoutName.ONE_PLUS_SEVEN: _SpeakerShape(stage=1, per_row=7, thumbnails=7),
    LayoutName.ONE_PLUS_TWENTYONE: _SpeakerShape(stage=1, per_row=7, thumbnails=21),
    LayoutName.TWO_PLUS_TWENTYONE: _SpeakerShape(stage=2, per_row=7, thumbnails=21),
    LayoutName.ONE_PLUS_THIRTYTHREE: _SpeakerShape(stage=1, per_row=11, thumbnails=33),
    LayoutName.GRID_2X2: _GridShape(side=2),
    LayoutName.GRID_3X3: _GridShape(side=3),
    LayoutName.GRID_4X4: _GridShape(side=4),
    LayoutName.GRID_5X5: _GridShape(side=5),
}

# The self-view inset: a quarter of the frame's width, kept off the edges so an endpoint's
# overscan or on-screen controls do not eat it.
_PIP_WIDTH_FRACTION = 4
_PIP_MARGIN_FRACTION = 40


def available_layouts() -> tuple[LayoutName, ...]:
    """The layout names a client may ask for, in the order the DTMF ``*8`` cycle visits them."""
    return tuple(LayoutName)


def next_layout(current: str) -> LayoutName:
    """The layout after ``current`` in the ``*8`` cycle (wrapping), for DTMF layout control."""
    names = available_layouts()
    return names[(names.index(layout_name(current)) + 1) % len(names)]


def layout_name(name: str) -> LayoutName:
    """Parse a client-supplied layout name; unknown names are the caller's error, not ours."""
    try:
        return LayoutName(name)
    except ValueError:
        raise InvalidInput(f"Unknown layout {name!r}.", layout=name) from None


def capacity(name: str) -> int:
    """How many participants the layout can show at once."""
    shape = _SHAPES.get(layout_name(name))
    if shape is None:  # the self-view layout: the other party and the viewer
        return 2
    if isinstance(shape, _SpeakerShape):
        return shape.stage + shape.thumbnails
    return shape.side * shape.side


def has_self_view(name: str) -> bool:
    """True when the layout's last tile is meant for the viewer's own picture."""
    return layout_name(name) is LayoutName.SPEAKER_WITH_SELF_VIEW


def layout(name: str, n_participants: int, width: int, height: int) -> list[Tile]:
    """Tiles for up to ``capacity(name)`` participants, in placement order.

    For speaker layouts the first tile (two for ``2:21``) is the stage and the rest are
    thumbnails; for grids the order is row by row. Fewer tiles than ``n_participants`` come back
    when the layout cannot show them all; an empty list for nobody.
    """
    parsed = layout_name(name)
    _check_frame(width, height)
    if n_participants < 0:
        raise InvalidInput("The participant count cannot be negative.")
    count = min(n_participants, capacity(parsed))
    if count == 0:
        return []
    if parsed is LayoutName.SPEAKER_WITH_SELF_VIEW:
        return _self_view(count, width, height)
    shape = _SHAPES[parsed]
    if isinstance(shape, _SpeakerShape):
        return _speaker(shape, count, width, height)
    return _grid(shape.side, count, width, height)


def fit(src_width: int, src_height: int, tile: Tile) -> Tile:
    """The largest even-aligned rectangle of the source's aspect ratio centred in ``tile``.

    The rest of the tile stays background (letterbox or pillarbox): cropping would cut off a
    face at the edge of a phone's portrait picture, and stretching distorts it. A bar of at most
    two pixels, which is only even-rounding (a 182x102 thumbnail is not exactly 16:9), is not
    worth a black line: then the picture fills the tile, distorted by about one per cent.
    """
    if src_width <= 0 or src_height <= 0:
        raise InvalidInput("A picture must have a positive size.")
    scale = min(tile.w / src_width, tile.h / src_height)
    w = min(tile.w, _even(src_width * scale))
    h = min(tile.h, _even(src_height * scale))
    if tile.w - w <= 2 and tile.h - h <= 2:
        return tile
    w, h = max(w, 2), max(h, 2)
    return Tile(tile.x + _even((tile.w - w) / 2), tile.y + _even((tile.h - h) / 2), w, h)


def _speaker(shape: _SpeakerShape, count: int, width: int, height: int) -> list[Tile]:
    stage = min(shape.stage, count)
    small = count - stage
    thumb_w = _even(width / shape.per_row)
    thumb_h = _even(thumb_w * height / width)
    rows = math.ceil(small / shape.per_row)
    stage_h = height - rows * thumb_h
    stage_w = _even(width / stage)
    tiles = [Tile(i * stage_w, 0, stage_w, stage_h) for i in range(stage)]
    for row in range(rows):
        in_row = min(shape.per_row, small - row * shape.per_row)
        left = _even((width - in_row * thumb_w) / 2)
        y = stage_h + row * thumb_h
        tiles.extend(Tile(left + i * thumb_w, y, thumb_w, thumb_h) for i in range(in_row))
    return tiles


def _grid(side: int, count: int, width: int, height: int) -> list[Tile]:
    cols = min(side, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / cols)
    # Cells keep the frame's aspect ratio (pictures are mostly 16:9 like the frame), so a
    # 2x1 grid uses two wide cells with bars above and below instead of two tall slivers.
    cell_w = _even(min(width / cols, height / rows * width / height))
    cell_h = _even(cell_w * height / width)
    top = _even((height - rows * cell_h) / 2)
    tiles: list[Tile] = []
    for row in range(rows):
        in_row = min(cols, count - row * cols)
        left = _even((width - in_row * cell_w) / 2)
        tiles.extend(Tile(left + i * cell_w, top + row * cell_h, cell_w, cell_h)
                     for i in range(in_row))
    return tiles


def _self_view(count: int, width: int, height: int) -> list[Tile]:
    tiles = [Tile(0, 0, width, height)]
    if count > 1:
        pip_w = _even(width / _PIP_WIDTH_FRACTION)
        pip_h = _even(pip_w * height / width)
        margin = _even(width / _PIP_MARGIN_FRACTION)
        tiles.append(Tile(width - pip_w - margin, height - pip_h - margin, pip_w, pip_h))
    return tiles


def _check_frame(width: int, height: int) -> None:
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise InvalidInput("An output frame must be even-sized and at least 64x64.",
                           width=width, height=height)


def _even(value: float) -> int:
    return int(value) & ~1


def stage_order(viewer_id: str, joined: Sequence[str], name: str, *, speaker: str | None,
                previous_speaker: str | None = None) -> tuple[str, ...]:
    """Who a viewer sees, tile by tile, as the compositor's participant order.

    The viewer is never on stage: when they are the active speaker they see whoever spoke before
    them (Pexip does the same), or the first to join. The rest follow in join order, so
    thumbnails do not jump about when someone else starts talking. In grids the speaker is
    swapped into the last visible cell when join order would leave them out. Only the self-view
    layout shows the viewer, in its inset. Viewers who are not themselves visible get identical
    orders, which is what lets the compositor compose (and the shell encode) once for all of them.
    """
    parsed = layout_name(name)
    others = [p for p in joined if p != viewer_id]
    if not others:
        return ()
    limit = capacity(parsed)
    if parsed is LayoutName.SPEAKER_WITH_SELF_VIEW:
        return (_main_speaker(others, speaker, previous_speaker), viewer_id)
    shape = _SHAPES[parsed]
    if isinstance(shape, _GridShape):
        visible = others[:limit]
        if speaker in others and speaker not in visible:
            visible[-1] = speaker
        return tuple(visible)
    stage = [_main_speaker(others, speaker, previous_speaker)]
    if (shape.stage == 2 and previous_speaker is not None and previous_speaker in others
            and previous_speaker not in stage):
        stage.append(previous_speaker)
    return tuple(stage + [p for p in others if p not in stage])[:limit]


def _main_speaker(others: list[str], speaker: str | None, previous_speaker: str | None) -> str:
    for candidate in (speaker, previous_speaker):
        if candidate in others:
            return candidate
    return others[0]
