from __future__ import annotations

import numpy as np
import pytest

from confnode.errors import InvalidInput
from confnode.media.compositor import (
    BLACK_Y,
    BORDER_Y,
    NEUTRAL_CHROMA,
    Compositor,
    ViewSpec,
    black_frame,
    pack_i420,
    split_i420,
)
from confnode.media.layouts import Tile, fit, layout

BLACK = (BLACK_Y, NEUTRAL_CHROMA, NEUTRAL_CHROMA)


def solid(width: int, height: int, yuv: tuple[int, int, int]) -> np.ndarray:
    y = np.full((height, width), yuv[0], np.uint8)
    u = np.full((height // 2, width // 2), yuv[1], np.uint8)
    v = np.full((height // 2, width // 2), yuv[2], np.uint8)
    return pack_i420(y, u, v)


def colour(i: int) -> tuple[int, int, int]:
    """A distinct, recognisable colour per participant."""
    return (40 + 20 * i, 60 + 10 * i, 200 - 10 * i)


def pixel(frame: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    luma, u, v = split_i420(frame)
    return int(luma[y, x]), int(u[y // 2, x // 2]), int(v[y // 2, x // 2])


def centre(tile: Tile) -> tuple[int, int]:
    return tile.x + tile.w // 2, tile.y + tile.h // 2


def test_packed_layout_matches_pyav_yuv420p() -> None:
    """The packed array is exactly what PyAV's to_ndarray/from_ndarray use."""
    av = pytest.importorskip("av")
    source = solid(64, 36, (81, 90, 240))
    frame = av.VideoFrame.from_ndarray(source, format="yuv420p")
    assert bytes(frame.planes[0])[:64] == bytes([81] * 64)
    assert bytes(frame.planes[1])[:32] == bytes([90] * 32)
    assert bytes(frame.planes[2])[:32] == bytes([240] * 32)
    composed = Compositor().compose("1:0", [("gp", frame.to_ndarray(format="yuv420p"))], 128, 72)
    back = av.VideoFrame.from_ndarray(np.array(composed), format="yuv420p")
    np.testing.assert_array_equal(back.to_ndarray(format="yuv420p"), composed)
    assert pixel(composed, 64, 36) == (81, 90, 240)


def test_one_plus_seven_puts_each_participant_in_their_tile() -> None:
    entries = [(f"p{i}", solid(1280, 720, colour(i))) for i in range(8)]
    out = Compositor().compose("1:7", entries, 1280, 720)
    assert out.shape == (1080, 1280)
    assert out.dtype == np.uint8
    for i, tile in enumerate(layout("1:7", 8, 1280, 720)):
        assert pixel(out, *centre(tile)) == colour(i), f"tile {i}"
        # Every pixel of the fitted picture has the participant's colour, corners included.
        box = fit(1280, 720, tile)
        assert pixel(out, box.x, box.y) == colour(i)
        assert pixel(out, box.x + box.w - 1, box.y + box.h - 1) == colour(i)


def test_the_stage_picture_is_pillarboxed_in_black() -> None:
    # A 16:9 picture in the 1280x618 stage is 1098 wide, centred at x = 90.
    out = Compositor().compose("1:7", [("gp", solid(1280, 720, colour(1))),
                                       ("patient", solid(1280, 720, colour(2)))], 1280, 720)
    assert pixel(out, 88, 300) == BLACK
    assert pixel(out, 90, 300) == colour(1)
    assert pixel(out, 90 + 1097, 300) == colour(1)
    assert pixel(out, 90 + 1098, 300) == BLACK


def test_a_portrait_phone_is_pillarboxed_not_stretched() -> None:
    out = Compositor().compose("1:0", [("patient", solid(360, 640, colour(3)))], 1280, 720)
    luma, _, _ = split_i420(out)
    lit = np.flatnonzero(luma[360] == colour(3)[0])
    assert (lit[0], lit[-1]) == (438, 438 + 404 - 1)  # 720 * 9 / 16 = 405 -> 404 wide, centred
    assert pixel(out, 100, 360) == BLACK


def test_missing_pictures_leave_black_tiles() -> None:
    out = Compositor().compose("4:0", [("gp", solid(640, 360, colour(0))), ("patient", None),
                                       ("relative", solid(640, 360, colour(2)))], 1280, 720)
    tiles = layout("4:0", 3, 1280, 720)
    assert pixel(out, *centre(tiles[0])) == colour(0)
    assert pixel(out, *centre(tiles[1])) == BLACK
    assert pixel(out, *centre(tiles[2])) == colour(2)


def test_nobody_gives_a_black_frame() -> None:
    np.testing.assert_array_equal(Compositor().compose("1:7", [], 640, 360),
                                  black_frame(640, 360))


def test_entries_beyond_the_layout_are_not_shown() -> None:
    entries = [(f"p{i}", solid(320, 180, colour(i))) for i in range(6)]
    out = Compositor().compose("4:0", entries, 640, 360)
    luma, _, _ = split_i420(out)
    assert colour(4)[0] not in luma and colour(5)[0] not in luma


def test_enlarging_keeps_left_and_right_where_they_were() -> None:
    y = np.zeros((36, 64), np.uint8)
    y[:, :32], y[:, 32:] = 50, 200
    small = pack_i420(y, np.full((18, 32), 128, np.uint8), np.full((18, 32), 128, np.uint8))
    luma, _, _ = split_i420(Compositor().compose("1:0", [("gp", small)], 1280, 720))
    assert np.all(luma[:, :640] == 50)
    assert np.all(luma[:, 640:] == 200)


def test_shrinking_by_half_averages_instead_of_aliasing() -> None:
    # A one-pixel checkerboard: nearest-neighbour would pick all-0 or all-255 from it.
    rows, cols = np.indices((720, 1280))
    y = np.where((rows + cols) % 2 == 0, 0, 255).astype(np.uint8)
    chroma = np.full((360, 640), 128, np.uint8)
    board = pack_i420(y, chroma, chroma)
    out = Compositor().compose("4:0", [(f"p{i}", board) for i in range(4)], 1280, 720)
    luma, _, _ = split_i420(out)
    assert np.all(luma == 128)


def test_shrinking_a_thumbnail_keeps_coarse_detail() -> None:
    y = np.zeros((720, 1280), np.uint8)
    y[:360], y[360:] = 30, 220  # top half dark, bottom half bright
    chroma = np.full((360, 640), 128, np.uint8)
    picture = pack_i420(y, chroma, chroma)
    thumb = layout("1:7", 2, 1280, 720)[1]
    out = Compositor().compose("1:7", [("gp", None), ("patient", picture)], 1280, 720)
    luma, _, _ = split_i420(out)
    region = luma[thumb.y:thumb.y + thumb.h, thumb.x:thumb.x + thumb.w]
    assert np.all(region[: thumb.h // 2 - 1] == 30)
    assert np.all(region[thumb.h // 2 + 1:] == 220)


def test_self_view_inset_sits_on_the_other_party() -> None:
    out = Compositor().compose("1:0+pip", [("gp", solid(1280, 720, colour(1))),
                                           ("patient", solid(1280, 720, colour(2)))], 1280, 720)
    _, inset = layout("1:0+pip", 2, 1280, 720)
    assert pixel(out, *centre(inset)) == colour(2)
    assert pixel(out, 100, 100) == colour(1)
    assert pixel(out, inset.x - 2, inset.y - 2) == colour(1)


def test_borders_outline_each_tile_on_luma_only() -> None:
    out = Compositor().compose("4:0", [(f"p{i}", solid(640, 360, colour(i))) for i in range(4)],
                               1280, 720, borders=True)
    luma, u, _ = split_i420(out)
    assert np.all(luma[0, :] == BORDER_Y)
    assert np.all(luma[:, 639] == BORDER_Y) and np.all(luma[:, 640] == BORDER_Y)
    assert luma[1, 1] == colour(0)[0]
    assert u[0, 0] == colour(0)[1]


def test_composed_frames_are_read_only() -> None:
    out = Compositor().compose("1:0", [("gp", None)], 640, 360)
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0] = 1


def test_compose_views_composes_once_per_distinct_view() -> None:
    frames = {f"p{i}": solid(640, 360, colour(i)) for i in range(4)}
    shared = ViewSpec("1:7", 640, 360, ("p0", "p1", "p2"))
    views = {
        "p3": shared,
        "late": ViewSpec("1:7", 640, 360, ("p0", "p1", "p2")),  # equal spec, separate object
        "p0": ViewSpec("1:7", 640, 360, ("p1", "p2", "p3")),
        "phone": ViewSpec("1:7", 320, 180, ("p0", "p1", "p2")),
    }
    composed = Compositor().compose_views(views, frames)
    assert len(composed.frames) == 3
    assert composed.assignment["p3"] == composed.assignment["late"]
    assert composed.frames[composed.assignment["p3"]] is composed.frames[
        composed.assignment["late"]]
    big = layout("1:7", 3, 640, 360)[0]
    assert pixel(composed.frames[composed.assignment["p3"]], *centre(big)) == colour(0)
    assert pixel(composed.frames[composed.assignment["p0"]], *centre(big)) == colour(1)
    assert composed.frames[composed.assignment["phone"]].shape == (270, 320)
    frames_by_key, assignment = composed  # also unpacks as (frames, assignment)
    assert set(assignment.values()) == set(frames_by_key)


def test_compose_views_gives_the_same_pixels_as_composing_each_view_alone() -> None:
    rng = np.random.default_rng(5)
    joined = [f"p{i}" for i in range(10)]
    frames = {p: rng.integers(0, 256, (540, 640), dtype=np.uint8) for p in joined}
    frames["p4"] = rng.integers(0, 256, (960, 480), dtype=np.uint8)  # a portrait phone
    views = {
        viewer: ViewSpec(name, 640, 360, tuple(p for p in joined if p != viewer), borders=True)
        for viewer, name in zip(joined, ["1:7", "1:7", "4:0", "9:0", "2:21", "1:0+pip", "1:7",
                                         "16:0", "1:21", "1:7"], strict=True)}
    composed = Compositor().compose_views(views, frames)
    for viewer, spec in views.items():
        alone = Compositor().compose(spec.layout, [(p, frames[p]) for p in spec.participants],
                                     640, 360, borders=True)
        np.testing.assert_array_equal(composed.frames[composed.assignment[viewer]], alone)


def test_compose_views_shows_unknown_participants_as_black() -> None:
    composed = Compositor().compose_views({"gp": ViewSpec("1:0", 640, 360, ("ghost",))}, {})
    assert pixel(composed.frames[composed.assignment["gp"]], 320, 180) == BLACK


def test_view_spec_parses_the_layout_name() -> None:
    with pytest.raises(InvalidInput):
        ViewSpec("7:1", 640, 360, ())
    assert ViewSpec("4:0", 640, 360, ["a", "b"]) == ViewSpec("4:0", 640, 360, ("a", "b"))


@pytest.mark.parametrize("bad", [
    np.zeros((540, 640), np.uint16),  # wrong dtype
    np.zeros((541, 640), np.uint8),  # not h*3/2 rows
    np.zeros((540, 641), np.uint8),  # odd width
    np.zeros(1000, np.uint8),  # not 2-D
])
def test_malformed_frames_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInput):
        Compositor().compose("1:0", [("gp", bad)], 640, 360)


def test_planes_round_trip() -> None:
    frame = np.arange(36 * 64 * 3 // 2, dtype=np.uint32).astype(np.uint8).reshape(54, 64)
    np.testing.assert_array_equal(pack_i420(*split_i420(frame)), frame)


def test_a_strided_input_is_composed_like_a_contiguous_one() -> None:
    strided = np.zeros((54, 128), np.uint8)[:, ::2]  # every other byte of a wider buffer
    strided[...] = solid(64, 36, colour(5))
    assert not strided.flags.c_contiguous
    expected = Compositor().compose("1:0", [("gp", solid(64, 36, colour(5)))], 128, 72)
    np.testing.assert_array_equal(Compositor().compose("1:0", [("gp", strided)], 128, 72),
                                  expected)
    assert pixel(expected, 64, 36) == colour(5)
