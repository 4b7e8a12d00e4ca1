from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confnode.errors import InvalidInput
from confnode.media.layouts import (
    DEFAULT_LAYOUT,
    LayoutName,
    Tile,
    available_layouts,
    capacity,
    fit,
    has_self_view,
    layout,
    next_layout,
    stage_order,
)


def test_available_layouts_are_pexip_names_in_the_star_eight_order() -> None:
    assert [str(name) for name in available_layouts()] == [
        "1:7", "1:21", "2:21", "4:0", "9:0", "16:0", "25:0", "1:0", "1:33", "1:0+pip"]
    assert DEFAULT_LAYOUT == "1:7"


def test_next_layout_cycles() -> None:
    assert next_layout("1:7") == "1:21"
    assert next_layout("1:0+pip") == "1:7"


def test_capacities() -> None:
    assert {str(name): capacity(name) for name in available_layouts()} == {
        "1:0": 1, "1:7": 8, "1:21": 22, "2:21": 23, "1:33": 34,
        "4:0": 4, "9:0": 9, "16:0": 16, "25:0": 25, "1:0+pip": 2}


def test_unknown_layouts_and_bad_frames_are_refused() -> None:
    with pytest.raises(InvalidInput):
        layout("3:3", 4, 1280, 720)
    with pytest.raises(InvalidInput):
        layout("1:7", 4, 1279, 720)
    with pytest.raises(InvalidInput):
        layout("1:7", -1, 1280, 720)


def test_one_plus_seven_full_at_720p() -> None:
    tiles = layout("1:7", 8, 1280, 720)
    # Thumbnails: 1280/7 -> 182 wide, 16:9 -> 102 high, a centred row along the bottom.
    assert tiles[0] == Tile(0, 0, 1280, 618)
    assert tiles[1:] == [Tile(2 + 182 * i, 618, 182, 102) for i in range(7)]


def test_one_plus_seven_gives_the_speaker_the_whole_frame_when_alone() -> None:
    assert layout("1:7", 1, 1280, 720) == [Tile(0, 0, 1280, 720)]


def test_one_plus_seven_with_three_centres_the_two_thumbnails() -> None:
    tiles = layout("1:7", 3, 1280, 720)
    assert tiles == [Tile(0, 0, 1280, 618), Tile(458, 618, 182, 102), Tile(640, 618, 182, 102)]


def test_one_plus_twentyone_uses_only_the_rows_it_needs() -> None:
    assert layout("1:21", 9, 1280, 720)[0] == Tile(0, 0, 1280, 720 - 2 * 102)
    assert layout("1:21", 22, 1280, 720)[0] == Tile(0, 0, 1280, 720 - 3 * 102)


def test_two_plus_twentyone_has_two_stage_tiles_side_by_side() -> None:
    tiles = layout("2:21", 23, 1280, 720)
    assert tiles[:2] == [Tile(0, 0, 640, 414), Tile(640, 0, 640, 414)]
    assert len(tiles) == 23


def test_speaker_only() -> None:
    assert layout("1:0", 5, 640, 360) == [Tile(0, 0, 640, 360)]


def test_full_two_by_two_grid() -> None:
    assert layout("4:0", 4, 1280, 720) == [
        Tile(0, 0, 640, 360), Tile(640, 0, 640, 360),
        Tile(0, 360, 640, 360), Tile(640, 360, 640, 360)]


def test_two_people_in_a_grid_sit_side_by_side_in_wide_cells() -> None:
    assert layout("4:0", 2, 1280, 720) == [Tile(0, 180, 640, 360), Tile(640, 180, 640, 360)]


def test_a_partial_last_grid_row_is_centred() -> None:
    tiles = layout("9:0", 7, 1284, 720)
    assert tiles[6] == Tile(642 - 428 // 2, 480, 428, 240)


def test_grids_cap_at_their_size() -> None:
    assert len(layout("9:0", 30, 1280, 720)) == 9
    assert len(layout("25:0", 30, 1280, 720)) == 25


def test_self_view_is_an_inset_in_the_bottom_right() -> None:
    tiles = layout("1:0+pip", 2, 1280, 720)
    assert tiles[0] == Tile(0, 0, 1280, 720)
    assert tiles[1] == Tile(1280 - 320 - 32, 720 - 180 - 32, 320, 180)
    assert has_self_view("1:0+pip")
    assert not has_self_view("1:7")


def test_nobody_gets_no_tiles() -> None:
    assert layout("1:7", 0, 1280, 720) == []


def test_fit_pillarboxes_a_portrait_phone_picture() -> None:
    # A 720x1280 portrait picture in a 1280x618 stage: 618 high -> 347.6 wide -> 346.
    assert fit(720, 1280, Tile(0, 0, 1280, 618)) == Tile(466, 0, 346, 618)


def test_fit_letterboxes_a_wide_picture_in_a_4_3_tile() -> None:
    assert fit(1280, 720, Tile(100, 50, 640, 480)) == Tile(100, 50 + 60, 640, 360)


def test_fit_of_a_nearly_matching_aspect_fills_the_tile() -> None:
    # 182x102 is 1 % wider than 16:9; two pixels of pillarbox would only be a black line.
    assert fit(1280, 720, Tile(2, 618, 182, 102)) == Tile(2, 618, 182, 102)
    assert fit(1280, 960, Tile(2, 618, 182, 102)) == Tile(24, 618, 136, 102)


@given(st.sampled_from(list(LayoutName)), st.integers(0, 40),
       st.sampled_from([(1280, 720), (640, 360), (1920, 1080), (320, 180), (1024, 768)]))
def test_property_tiles_are_even_inside_and_apart(name: LayoutName, count: int,
                                                   size: tuple[int, int]) -> None:
    width, height = size
    tiles = layout(name, count, width, height)
    assert len(tiles) == min(count, capacity(name))
    for tile in tiles:
        assert tile.x % 2 == tile.y % 2 == tile.w % 2 == tile.h % 2 == 0
        assert tile.w > 0 and tile.h > 0
        assert tile.x >= 0 and tile.y >= 0
        assert tile.x + tile.w <= width and tile.y + tile.h <= height
    overlay = 1 if has_self_view(name) else 0  # only the self-view inset sits on another tile
    for i, a in enumerate(tiles):
        for b in tiles[i + 1:]:
            assert not a.overlaps(b) or overlay
    if tiles and name not in (LayoutName.GRID_2X2, LayoutName.GRID_3X3, LayoutName.GRID_4X4,
                              LayoutName.GRID_5X5):
        assert all(tiles[0].area >= tile.area for tile in tiles)


@given(st.integers(2, 4000), st.integers(2, 4000), st.integers(1, 640), st.integers(1, 360))
def test_property_fit_is_even_centred_and_inside(src_w: int, src_h: int, half_w: int,
                                                 half_h: int) -> None:
    tile = Tile(10, 20, 2 * half_w + 2, 2 * half_h + 2)
    box = fit(src_w, src_h, tile)
    assert box.x % 2 == box.y % 2 == box.w % 2 == box.h % 2 == 0
    assert tile.x <= box.x and box.x + box.w <= tile.x + tile.w
    assert tile.y <= box.y and box.y + box.h <= tile.y + tile.h
    # The picture touches the tile's edges on at least one axis (up to even-rounding).
    assert tile.w - box.w <= 2 or tile.h - box.h <= 2 or min(box.w, box.h) == 2


# --- who goes where ----------------------------------------------------------------------------

JOINED = ["gp", "patient", "relative", "nurse"]


def test_stage_order_puts_the_speaker_on_stage_and_the_rest_in_join_order() -> None:
    assert stage_order("patient", JOINED, "1:7", speaker="nurse") == ("nurse", "gp", "relative")


def test_the_speaker_sees_the_previous_speaker_not_themselves() -> None:
    assert stage_order("nurse", JOINED, "1:7", speaker="nurse",
                       previous_speaker="relative") == ("relative", "gp", "patient")
    assert stage_order("nurse", JOINED, "1:7", speaker="nurse") == ("gp", "patient", "relative")


def test_two_plus_twentyone_puts_the_previous_speaker_on_the_second_stage_tile() -> None:
    assert stage_order("gp", JOINED, "2:21", speaker="nurse",
                       previous_speaker="relative") == ("nurse", "relative", "patient")


def test_grids_keep_join_order_but_always_show_the_speaker() -> None:
    joined = [f"p{i}" for i in range(8)]
    assert stage_order("p0", joined, "4:0", speaker="p2") == ("p1", "p2", "p3", "p4")
    assert stage_order("p0", joined, "4:0", speaker="p7") == ("p1", "p2", "p3", "p7")


def test_self_view_layout_shows_the_other_party_and_the_viewer() -> None:
    assert stage_order("patient", ["gp", "patient"], "1:0+pip", speaker=None) == (
        "gp", "patient")


def test_alone_shows_nobody() -> None:
    assert stage_order("gp", ["gp"], "1:7", speaker="gp") == ()


def test_viewers_outside_the_picture_get_identical_orders() -> None:
    joined = [f"p{i:02}" for i in range(16)]
    orders = {viewer: stage_order(viewer, joined, "1:7", speaker="p03") for viewer in joined}
    outside = {orders[v] for v in joined[8:]}
    assert outside == {("p03", "p00", "p01", "p02", "p04", "p05", "p06", "p07")}
    assert len(set(orders.values())) == 9  # the 8 on screen each see a different picture


@given(st.lists(st.sampled_from([f"p{i}" for i in range(30)]), min_size=1, max_size=30,
                unique=True).flatmap(lambda joined: st.tuples(
                    st.just(joined), st.sampled_from(joined),
                    st.none() | st.sampled_from(joined), st.sampled_from(list(LayoutName)))))
def test_property_a_viewer_is_on_stage_only_in_the_self_view_inset(
        case: tuple[list[str], str, str | None, LayoutName]) -> None:
    joined, viewer, speaker, name = case
    order = stage_order(viewer, joined, name, speaker=speaker)
    assert len(order) == len(set(order)) <= capacity(name)
    if has_self_view(name):
        assert viewer not in order[:1]
    else:
        assert viewer not in order
    if speaker not in (None, viewer) and name not in (LayoutName.SPEAKER_WITH_SELF_VIEW,):
        assert speaker in order
