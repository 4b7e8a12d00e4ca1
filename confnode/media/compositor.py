"""The video compositor: participants' decoded pictures into one picture per layout (sans-IO).

Frames are I420 (YUV 4:2:0, 8 bit) in the *packed* layout that PyAV gives and takes:
``VideoFrame.to_ndarray(format="yuv420p")`` returns one ``(h * 3 // 2, w)`` uint8 array holding
the Y plane (``h`` rows) followed by the U and V planes (``h/2 x w/2`` each) back to back, and
``VideoFrame.from_ndarray(array, format="yuv420p")`` takes the same array, so the shells hand
decoder output straight in and composed output straight to the encoder. :func:`split_i420` and
:func:`pack_i420` convert from and to three separate planes. PyAV is not needed here.

Scaling is table-driven nearest-neighbour, made decent by supersampling when shrinking: a tile
at most half the source's size in both directions averages four taps at the quarter points of
each output pixel's footprint. That is a cheap box prefilter, not a full area average: it removes
most of the moiré of thumbnails cut from a 720p picture (and is the exact 2x2 average at a 2:1
ratio), but detail close to the source's pixel pitch can still alias at larger ratios, which
decoded camera video seldom has. Stage tiles (shrunk less than 2x, or enlarged) use plain
nearest-neighbour. Row and column tables and scratch buffers are cached per (source size, tile
size) on the :class:`Compositor`: gathering into freshly allocated arrays or straight into the
strided tile view costs two to three times more than the gathers themselves (measured).

Colours are BT.601 limited range, as libvpx and x264 expect: black is Y=16, U=V=128, and tiles
without a picture (camera off, nothing decoded yet) stay black.

Shared outputs: :meth:`Compositor.compose_views` composes once per distinct :class:`ViewSpec`
(layout, size, participant order, borders), so every viewer with the same picture shares one
array, and the shell can give them one encoder. Returned arrays are read-only for that reason.
Within one call each participant's picture is also scaled only once per tile size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from confnode.errors import InvalidInput
from confnode.media.layouts import Tile, fit, layout, layout_name

Plane = NDArray[np.uint8]

BLACK_Y = 16
NEUTRAL_CHROMA = 128
BORDER_Y = 80  # a dark grey line; luma only, so chroma stays neutral and 4:2:0 needs no care

# Resampling tables are small (a few kB) but a node serving many sizes should not hoard them.
_MAX_CACHED_RESAMPLERS = 256


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """Everything that decides one composed picture; equal specs give identical pixels."""

    layout: str  # a Pexip layout name; stored as its LayoutName
    width: int
    height: int
    participants: tuple[str, ...]  # tile order, as ``layouts.stage_order`` gives it
    borders: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", layout_name(self.layout))
        object.__setattr__(self, "participants", tuple(self.participants))


ViewKey = ViewSpec  # a view's spec is its own dedupe key

# (participant, width, height) -> that participant's picture scaled to that size, Y/U/V planes.
_ScaledPictures = dict[tuple[str, int, int], tuple[Plane, Plane, Plane]]


class ComposedViews(NamedTuple):
    frames: dict[ViewKey, Plane]  # one composed (h*3/2, w) picture per distinct spec
    assignment: dict[str, ViewKey]  # viewer -> the picture (and encoder) they share


def split_i420(frame: Plane) -> tuple[Plane, Plane, Plane]:
    """Views of the Y, U and V planes of a packed I420 frame (no copy when contiguous)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 2:
        raise InvalidInput("A video frame must be a 2-D uint8 array in packed yuv420p layout.")
    rows, width = frame.shape
    height = rows * 2 // 3
    if rows % 3 or height % 2 or width % 2 or height == 0:
        raise InvalidInput("A packed yuv420p frame has h*3/2 rows with even width and height.",
                           shape=list(frame.shape))
    flat = np.ascontiguousarray(frame).reshape(-1)
    luma = height * width
    chroma = luma // 4
    return (flat[:luma].reshape(height, width),
            flat[luma:luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma:luma + 2 * chroma].reshape(height // 2, width // 2))


def pack_i420(y: Plane, u: Plane, v: Plane) -> Plane:
    """Three planes into the packed layout ``VideoFrame.from_ndarray(..., "yuv420p")`` takes."""
    height, width = y.shape
    if u.shape != (height // 2, width // 2) or v.shape != u.shape or height % 2 or width % 2:
        raise InvalidInput("I420 planes must be even-sized with half-size chroma planes.")
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(-1, width)


def black_frame(width: int, height: int) -> Plane:
    frame = np.empty((height * 3 // 2, width), dtype=np.uint8)
    frame[:height] = BLACK_Y
    frame[height:] = NEUTRAL_CHROMA
    return frame


class _Resampler:
    """Index tables and scratch buffers that scale one plane size to one tile size."""

    def __init__(self, src_h: int, src_w: int, dst_h: int, dst_w: int) -> None:
        self.supersample = src_h >= 2 * dst_h and src_w >= 2 * dst_w
        offsets = (0.25, 0.75) if self.supersample else (0.5,)
        self._rows = [_taps(src_h, dst_h, o) for o in offsets]
        self._cols = [_taps(src_w, dst_w, o) for o in offsets]
        self._row_buffers = [np.empty((dst_h, src_w), dtype=np.uint8) for _ in offsets]
        self._gathered = np.empty((dst_h, dst_w), dtype=np.uint8)
        # Supersampling sums the two row taps first, then gathers two column taps of that sum:
        # two gathers instead of four, and no mixed-type (slow) additions.
        sum_rows, sum_cols = (dst_h, dst_w) if self.supersample else (0, 0)
        self._row_sum = np.empty((sum_rows, src_w), dtype=np.uint16)
        self._sum = np.empty((sum_rows, sum_cols), dtype=np.uint16)
        self._other = np.empty((sum_rows, sum_cols), dtype=np.uint16)

    def scale_into(self, plane: Plane, dst: Plane) -> None:
        # Gathering with mode="clip" (the tables are in range anyway) into contiguous scratch
        # buffers lets numpy skip its bounds-checking buffer; the final copy into the strided
        # tile view is a plain memcpy per row.
        for rows, buffer in zip(self._rows, self._row_buffers, strict=True):
            np.take(plane, rows, axis=0, out=buffer, mode="clip")
        if not self.supersample:
            np.take(self._row_buffers[0], self._cols[0], axis=1, out=self._gathered, mode="clip")
            dst[...] = self._gathered
            return
        np.add(self._row_buffers[0], self._row_buffers[1], out=self._row_sum, dtype=np.uint16)
        np.take(self._row_sum, self._cols[0], axis=1, out=self._sum, mode="clip")
        np.take(self._row_sum, self._cols[1], axis=1, out=self._other, mode="clip")
        np.add(self._sum, self._other, out=self._sum)
        np.add(self._sum, 2, out=self._sum)  # rounds the mean of the four taps to nearest
        np.right_shift(self._sum, 2, out=self._sum)
        dst[...] = self._sum


def _taps(src: int, dst: int, offset: float) -> NDArray[np.intp]:
    positions = ((np.arange(dst) + offset) * (src / dst)).astype(np.intp)
    return np.minimum(positions, src - 1)


@dataclass(slots=True)
class Compositor:
    """Composes layouts; owns only caches, so one per node (or per room) is fine."""

    _resamplers: dict[tuple[int, int, int, int], _Resampler] = field(default_factory=dict)

    def compose(self, name: str, entries: Sequence[tuple[str, Plane | None]], width: int,
                height: int, *, borders: bool = False) -> Plane:
        """One packed I420 picture: ``entries`` fill the layout's tiles in order.

        Entries beyond the layout's capacity are not shown; ``None`` (or a participant without
        a picture) leaves a black tile. Each picture keeps its aspect ratio inside its tile.
        """
        return self._compose(name, entries, width, height, borders, None)

    def compose_views(self, views: Mapping[str, ViewSpec],
                      frames: Mapping[str, Plane | None]) -> ComposedViews:
        """Compose each distinct view once; viewers with equal specs share the picture.

        Distinct views still show mostly the same people at the same tile sizes (everyone's
        thumbnail is the same size in every 1+7 view), so each participant's picture is scaled
        once per size for the whole call and only copied into each view.
        """
        composed: dict[ViewKey, Plane] = {}
        assignment: dict[str, ViewKey] = {}
        scaled: _ScaledPictures = {}
        for viewer_id, spec in views.items():
            if spec not in composed:
                entries = [(pid, frames.get(pid)) for pid in spec.participants]
                composed[spec] = self._compose(spec.layout, entries, spec.width, spec.height,
                                               spec.borders, scaled)
            assignment[viewer_id] = spec
        return ComposedViews(composed, assignment)

    def _compose(self, name: str, entries: Sequence[tuple[str, Plane | None]], width: int,
                 height: int, borders: bool, scaled: _ScaledPictures | None) -> Plane:
        tiles = layout(name, len(entries), width, height)
        out = black_frame(width, height)
        canvas = split_i420(out)
        for tile, (participant_id, frame) in zip(tiles, entries, strict=False):
            self._draw(canvas, tile, participant_id, frame, scaled)
            if borders:
                _outline(canvas[0], tile)
        out.flags.writeable = False
        return out

    def _draw(self, canvas: tuple[Plane, Plane, Plane], tile: Tile, participant_id: str,
              frame: Plane | None, scaled: _ScaledPictures | None) -> None:
        y, u, v = canvas
        # Tiles may overlap (the self-view inset sits on the stage), so clear first.
        y[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w] = BLACK_Y
        cx, cy, cw, ch = tile.x // 2, tile.y // 2, tile.w // 2, tile.h // 2
        u[cy:cy + ch, cx:cx + cw] = NEUTRAL_CHROMA
        v[cy:cy + ch, cx:cx + cw] = NEUTRAL_CHROMA
        if frame is None:
            return
        src = split_i420(frame)
        box = fit(src[0].shape[1], src[0].shape[0], tile)
        bx, by, bw, bh = box.x // 2, box.y // 2, box.w // 2, box.h // 2
        targets = (y[box.y:box.y + box.h, box.x:box.x + box.w],
                   u[by:by + bh, bx:bx + bw], v[by:by + bh, bx:bx + bw])
        if scaled is None:
            for plane, target in zip(src, targets, strict=True):
                self._scale(plane, target)
            return
        key = (participant_id, box.w, box.h)
        if key not in scaled:
            pictures = (np.empty_like(targets[0]), np.empty_like(targets[1]),
                        np.empty_like(targets[2]))
            for plane, picture in zip(src, pictures, strict=True):
                self._scale(plane, picture)
            scaled[key] = pictures
        for picture, target in zip(scaled[key], targets, strict=True):
            target[...] = picture

    def _scale(self, plane: Plane, dst: Plane) -> None:
        if plane.shape == dst.shape:
            dst[...] = plane
            return
        key = (*plane.shape, *dst.shape)
        resampler = self._resamplers.get(key)
        if resampler is None:
            if len(self._resamplers) >= _MAX_CACHED_RESAMPLERS:
                self._resamplers.clear()
            resampler = self._resamplers[key] = _Resampler(*key)
        resampler.scale_into(plane, dst)


def _outline(y: Plane, tile: Tile) -> None:
    bottom, right = tile.y + tile.h - 1, tile.x + tile.w - 1
    y[tile.y, tile.x:right + 1] = BORDER_Y
    y[bottom, tile.x:right + 1] = BORDER_Y
    y[tile.y:bottom + 1, tile.x] = BORDER_Y
    y[tile.y:bottom + 1, right] = BORDER_Y
