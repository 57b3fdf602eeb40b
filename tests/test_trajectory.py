"""Trajectories: formats, resampling, Tora's flow front end against the official pipeline, bad input, nodes."""
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import flow_to_image

from references.trajectory_reference import official_pixel_tracks, official_scale_to_256, official_select, official_video
from scripts import harness

pack = harness.import_pack()
from motionkit.models.trajectory import control_video, data, exports, flow, formats, preview, resample  # noqa: E402
from motionkit.nodes import trajectory as nodes  # noqa: E402
from motionkit.nodes import trajectory_exports as export_nodes  # noqa: E402

ROOT = harness.ROOT
Track, Trajectories, TrajectoryError = data.Track, data.Trajectories, data.TrajectoryError


def _set(*tracks, width=240, height=160, frames=None):
    return Trajectories(width, height, [Track(list(p), f"t{i}") for i, p in enumerate(tracks)], frames)


# ---------------------------------------------------------------- formats
def test_motionkit_json_round_trip():
    original = Trajectories(720, 480, [Track([(1, 2), (3.5, 4)], "car", [0, 7]), Track([(5, 6), (7, 8)], "bird")])
    text = original.to_json()
    assert json.loads(text) == {"format": "motionkit.trajectories", "version": 2, "canvas": {"width": 720, "height": 480},
                                "tracks": [{"name": "car", "points": [[1, 2], [3.5, 4]], "frames": [0, 7]},
                                           {"name": "bird", "points": [[5, 6], [7, 8]]}]}
    assert formats.parse_trajectories(text) == original


def test_kjnodes_spline_strings_one_and_several():
    one = formats.parse_trajectories("[{'x': 10, 'y': 20}, {'x': 30, 'y': 40}]", "auto", 512, 256)
    assert (one.width, one.height, [t.points for t in one.tracks]) == (512, 256, [[(10, 20), (30, 40)]])
    assert one.tracks[0].frames is None and one.tracks[0].name == "track 1"
    several = formats.parse_trajectories('[[{"x": 1, "y": 2}, {"x": 3, "y": 4}], [{"x": 5.5, "y": 6}, {"x": 7, "y": 8}]]')
    assert [t.points for t in several.tracks] == [[(1, 2), (3, 4)], [(5.5, 6), (7, 8)]]


def test_wan_ati_tracks_get_frame_indices():
    text = '[[{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}], [{"x": 9, "y": 9}, {"x": 8, "y": 8}]]'
    loaded = formats.parse_trajectories(text, "wan_ati_tracks", 832, 480)
    assert [t.frames for t in loaded.tracks] == [[0, 1, 2], [0, 1]]
    single = formats.parse_trajectories('[{"x": 1, "y": 2}, {"x": 3, "y": 4}]', "wan_ati_tracks")
    assert [t.points for t in single.tracks] == [[(1, 2), (3, 4)]]


def test_point_lists_json_and_tora_txt_lines():
    assert [t.points for t in formats.parse_trajectories("[[1, 2], [3, 4]]").tracks] == [[(1, 2), (3, 4)]]
    assert [t.points for t in formats.parse_trajectories("[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]").tracks] == \
        [[(1, 2), (3, 4)], [(5, 6), (7, 8)]]
    lines = formats.parse_trajectories("12,200\n40,180\n\n90,100\n", "auto", 256, 256)
    assert (lines.width, [t.points for t in lines.tracks]) == (256, [[(12, 200), (40, 180), (90, 100)]])


# ---------------------------------------------------------------- resampling
@pytest.mark.parametrize("count,frames", [(100, 49), (49, 49), (60, 49), (2, 49), (5, 49), (3, 7), (200, 13)])
def test_tora_official_selection_matches_the_official_code(count, frames):
    rng = np.random.default_rng(count)
    points = [[int(x), int(y)] for x, y in rng.integers(0, 256, (count, 2))]
    expected = official_select(points, frames)
    assert [list(p) for p in resample.tora_official_points(points, frames)] == expected
    assert len(expected) == frames


def test_tora_official_drops_the_end_of_long_paths():
    points = [(i, 0) for i in range(100)]  # 100 points, 49 frames: skip 2, then cut to 49
    chosen = resample.tora_official_points(points, 49)
    assert chosen[0] == (0, 0) and chosen[-1] == (96, 0)


def test_arc_length_is_constant_speed_with_ends_kept():
    out = resample.resample(_set([(0, 0), (100, 0), (100, 50)], width=200, height=200), 7)
    points = out.tracks[0].points
    assert points[0] == (0, 0) and points[-1] == (100, 50) and out.num_frames == 7 and out.per_frame()
    steps = [math.dist(a, b) for a, b in zip(points, points[1:])]
    assert points[2] == (50, 0) and points[4] == (100, 0)
    assert all(abs(step - 25) < 1e-9 for step in steps)


def test_timed_points_hold_and_interpolate():
    timed = Trajectories(100, 100, [Track([(0, 0), (40, 0)], "t", [2, 6])], num_frames=9)
    points = resample.resample(timed, 9).tracks[0].points
    assert points == [(0, 0), (0, 0), (0, 0), (10, 0), (20, 0), (30, 0), (40, 0), (40, 0), (40, 0)]


# ---------------------------------------------------------------- flow against the official pipeline
def _parity_case(tracks, frames, height, width, mode, per_frame=False, path="auto"):
    trajectories = resample.resample(Trajectories(width, height, [Track(p, "t") for p in tracks]), frames, mode)
    pixels = flow.track_pixels(trajectories, width, height)
    ref_rgb, ref_flow = official_video(pixels.tolist(), frames, height, width, per_frame)
    field = flow.flow_field(pixels, height, width, path=path)
    video = flow.trajectories_to_flow_video(trajectories, width, height, "per_frame" if per_frame else "global",
                                            path=path)
    rgb = (video * 255).round().to(torch.uint8)
    assert torch.equal(video, rgb.float() / 255.0)
    return field, ref_flow, rgb, ref_rgb


@pytest.mark.parametrize("path", ["windows", "banded"])
@pytest.mark.parametrize("mode,per_frame", [("arc_length", False), ("tora_official", False), ("arc_length", True)])
def test_flow_video_equals_official_processing(mode, per_frame, path):
    tracks = [[(20, 30), (120, 30), (230, 30)],           # pure horizontal: the colour wheel's seam
              [(200, 150), (120, 100), (5, 140)],          # near borders: reflect-101 folding
              [(60, 5), (60, 150), (180, 150), (60, 10)],  # vertical, then crossing the others
              [(100, 80), (100, 80)]]                      # still: zero flow
    field, ref_flow, rgb, ref_rgb = _parity_case(tracks, 13, 160, 240, mode, per_frame, path)
    assert (field - ref_flow).abs().max() < 1e-4
    assert (ref_flow.abs() > 0.1).any(dim=-1).sum() > 1000
    # The seam: rightward motion whose vertical component is exactly zero here and +-1e-16 in cv2.filter2D's
    # DFT; atan2 then puts it at either end of the wheel (index 0 or 54).
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    different = (rgb != ref_rgb).any(-1)
    assert not (different & ~seam).any(), "RGB differs off the seam"
    assert torch.equal(rgb[~seam], ref_rgb[~seam])
    assert different.sum() > 0, "the case should exercise the seam"
    # on the seam, the official pixel is the same flow coloured from the other side of the wheel
    f, y, x = torch.nonzero(different, as_tuple=True)
    u = field[f, y, x, 0]
    maxima = (field.square().sum(-1).sqrt().flatten(1).max(1).values[f] if per_frame
              else field.square().sum(-1).sqrt().max().expand_as(u))
    other_side = flow.colorize(u, torch.full_like(u, -1e-30), maxima, flow.middlebury_colorwheel())
    assert torch.equal(other_side, ref_rgb[f, y, x])


def test_tora_txt_end_to_end_equals_the_official_process_traj():
    # Tora's .txt tracks (256x256 canvas): one longer than the video (its end is dropped), one shorter
    long = [(10 + 7 * i, 200 - 3 * i) for i in range(30)]
    short = [(240, 20), (128, 128), (30, 60)]
    text = json.dumps([[list(p) for p in long], [list(p) for p in short]])
    frames, height, width = 13, 96, 128
    loaded = nodes.MotionKitLoadTrajectories().load(text, "point_list", 256, 256)[0]
    video = nodes.MotionKitTrajectoriesToFlow().flow(loaded, width, height, frames, "tora_official", "global")[0]
    pixels = [[[int(width * x / 256), int(height * y / 256)] for x, y in official_select(track, frames)]
              for track in (long, short)]
    ref_rgb, ref_flow = official_video(pixels, frames, height, width)
    field = flow.flow_field(torch.tensor(pixels), height, width)
    assert (field - ref_flow).abs().max() < 1e-4
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    rgb = (video * 255).round().to(torch.uint8)
    assert torch.equal(rgb[~seam], ref_rgb[~seam]) and (ref_rgb != 255).any()


def _assert_same_video(video, pixels, frames, height, width):
    ref_rgb, ref_flow = official_video(pixels, frames, height, width)
    field = flow.flow_field(torch.tensor(pixels), height, width)
    assert (field - ref_flow).abs().max() < 1e-4
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    rgb = (video * 255).round().to(torch.uint8)
    assert torch.equal(rgb[~seam], ref_rgb[~seam])
    return ref_rgb


def test_tora_app_drawing_gives_the_apps_flow_video():
    # clicks on the app's 720x480 canvas (ints, as gradio's evt.index): a short path and one longer than the video
    rng = np.random.default_rng(5)
    short = [(15, 460), (300, 250), (719, 479), (400, 10)]
    long = [tuple(int(v) for v in p) for p in rng.integers(0, [720, 480], (70, 2))]
    drawn = Trajectories(720, 480, [Track(list(short), "a"), Track(list(long), "b"), Track([(360, 200)], "anchor")])
    video = nodes.MotionKitTrajectoriesToFlow().flow(drawn, 720, 480, 49, "tora_app", "global")[0]
    pixels = official_pixel_tracks([official_scale_to_256(t, 720, 480) for t in (short, long, [(360, 200)])],
                                   49, 480, 720)
    ref_rgb = _assert_same_video(video, pixels, 49, 480, 720)
    assert (ref_rgb != 255).any()


@pytest.mark.parametrize("track", [[(200, 100), (256, 100)], [(10, 250), (60, 256)], [(256, 256), (3, 3)]])
def test_tora_official_points_on_the_canvas_edge_interpolate_first(track):
    # Tora's .txt canvas is 256x256: a point at 256 is on its edge; the official code interpolates from it
    loaded = Trajectories(256, 256, [Track(list(track), "edge"), Track([(30, 40), (120, 90)], "inside")])
    frames, height, width = 13, 96, 128
    expected = official_pixel_tracks([track, [(30, 40), (120, 90)]], frames, height, width)
    trajectories = resample.resample(loaded, frames, "tora_official")
    assert flow.track_pixels(trajectories, width, height).tolist() == expected
    if track[0] == (256, 256):  # the first source lies past the edge: officially an IndexError; clamped here
        with pytest.raises(IndexError):
            official_video(expected, frames, height, width)
        assert flow.flow_sources(torch.tensor(expected), width, height).x.max() == width - 1
        return
    video = nodes.MotionKitTrajectoriesToFlow().flow(loaded, width, height, frames, "tora_official", "global")[0]
    _assert_same_video(video, expected, frames, height, width)


def test_negative_coordinates_are_clamped_where_the_official_code_wraps_around(caplog):
    loaded = Trajectories(256, 256, [Track([(-40, 100), (100, 100)], "left")])
    with caplog.at_level(logging.WARNING, logger="MotionKit"):
        trajectories = resample.resample(loaded, 9, "tora_official")
        sources = flow.flow_sources(flow.track_pixels(trajectories, 128, 96), 128, 96)
    assert trajectories.tracks[0].points[0] == (-40, 100)  # kept for the selection, as officially
    assert "kept for the official selection" in caplog.text and "clamped to its edge" in caplog.text
    assert sources.x.min() == 0  # officially index -20 would write at column 108 of the 128


@pytest.mark.parametrize("path", ["windows", "banded"])
def test_flow_on_a_video_smaller_than_the_kernel(path):
    field, ref_flow, rgb, ref_rgb = _parity_case([[(3, 3), (30, 20)], [(35, 2), (1, 22)]], 6, 24, 40, "arc_length",
                                                 path=path)
    assert (field - ref_flow).abs().max() < 1e-4
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    assert torch.equal(rgb[~seam], ref_rgb[~seam])


@pytest.mark.parametrize("path", ["windows", "banded"])
@pytest.mark.parametrize("height,width", [(2, 2), (5, 7), (3, 60), (49, 51), (130, 50)])
def test_kernels_larger_than_the_video_fold_like_opencv(height, width, path):
    pixels = torch.tensor([[[0, 0], [width - 1, height - 1], [width // 2, height // 2]]])
    reference = official_video(pixels.tolist(), 3, height, width)[1]
    field = flow.flow_field(pixels, height, width, path=path)
    assert ((field - reference).abs() <= 1e-6 * reference.abs().max()).all()


def test_many_tracks_choose_the_banded_path_and_match_the_official_pipeline():
    # 300 tracks crossing a 120x200 video: the later frames take the banded path (cheaper than 300 windows each)
    rng = np.random.default_rng(3)
    starts, ends = rng.uniform(0, [199, 119], (300, 2)), rng.uniform(0, [199, 119], (300, 2))
    drawn = Trajectories(200, 120, [Track([tuple(a), tuple(b)], "t") for a, b in zip(starts, ends)])
    trajectories = resample.resample(drawn, 5)
    pixels = flow.track_pixels(trajectories, 200, 120)
    sources = flow.flow_sources(pixels, 200, 120)
    smoothed = flow.smoothed_flow(sources, 5, 120, 200)
    assert sorted(smoothed.blocks) == [1, 2, 3, 4] and smoothed.sparse[0].numel() == 0
    ref_rgb, ref_flow = official_video(pixels.tolist(), 5, 120, 200)
    assert (smoothed.dense() - ref_flow).abs().max() < 1e-4
    video = flow.trajectories_to_flow_video(trajectories, 200, 120)
    rgb = (video * 255).round().to(torch.uint8)
    field = smoothed.dense()
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    assert torch.equal(rgb[~seam], ref_rgb[~seam])
    # per frame, the path of lower estimated cost: a frame of 2 sources in a large video takes the windows
    few_pixels = flow.track_pixels(resample.resample(Trajectories(720, 480, drawn.tracks[:2]), 5), 720, 480)
    few = flow.smoothed_flow(flow.flow_sources(few_pixels, 720, 480), 5, 480, 720)
    sources = flow.flow_sources(few_pixels, 720, 480)
    for f in range(1, 5):
        x, y, _ = sources.of_frame(f)
        windows = flow._window_cost(x.numel(), 99) <= flow._banded_cost(y, 480, 720, 49)
        assert (f in few.blocks) != windows


def test_frame_zero_and_still_tracks_are_white():
    video = flow.trajectories_to_flow_video(resample.resample(_set([(10, 10), (10, 10)]), 5), 240, 160)
    assert torch.equal(video, torch.ones(5, 160, 240, 3))


def test_colorize_equals_flow_to_image_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    u, v = torch.randn(20000, generator=generator) * 3, torch.randn(20000, generator=generator) * 3
    u[::7], v[::7], v[::11], u[::13] = 0, 0, 0, -1e-30  # zero flow, the seam, a tiny negative
    expected = flow_to_image(torch.stack([u, v]).view(1, 2, 1, -1))[0, :, 0].T
    ours = flow.colorize(u, v, (u * u + v * v).sqrt().max(), flow.middlebury_colorwheel())
    assert torch.equal(ours, expected)


def test_colorwheel_is_torchvisions():
    """Every wheel colour and the blends between neighbours, against torchvision.utils.flow_to_image itself."""
    from torchvision.utils import flow_to_image

    wheel = flow.middlebury_colorwheel()
    assert wheel.shape == (55, 3)
    # unit vectors at 8 angles per wheel segment, and shorter ones (the colour fades to white with the norm)
    angles = torch.arange(54 * 8, dtype=torch.float32) / (54 * 8) * 2 * torch.pi - torch.pi
    radii = torch.tensor([1.0, 0.6, 0.2])
    u = (radii[:, None] * torch.cos(angles)[None]).flatten()
    v = (radii[:, None] * torch.sin(angles)[None]).flatten()
    expected = flow_to_image(torch.stack([u, v])[None, :, None, :])[0, :, 0].T
    ours = flow.colorize(u, v, (u.square() + v.square()).sqrt().max(), wheel)
    assert torch.equal(ours, expected)
    assert len({tuple(c) for c in expected.tolist()}) > 300


# ---------------------------------------------------------------- bad input: every case of the issue
def _flow_of(trajectories, frames=9):
    return nodes.MotionKitTrajectoriesToFlow().flow(trajectories, 240, 160, frames, "arc_length", "global")[0]


def _exported():
    return _set([(10, 10), (200, 100)], [(50, 60)])


_DRAWN = Trajectories(720, 480, [Track([(1, 2), (30, 40)], "a")]).to_json()


def _v2(fields):
    track = {"name": "a", "points": [[1, 2], [30, 40]], **fields}
    return formats.parse_trajectories(json.dumps({"format": "motionkit.trajectories", "version": 2,
                                                  "canvas": {"width": 720, "height": 480}, "tracks": [track]}))


BAD_INPUT = [
    # (case, action, expected error text or None for a documented clamp checked in the test)
    ("empty track", lambda: _flow_of(_set([], [(1, 1), (5, 5)])), "track 1 ('t0') is empty; give it at least one point"),
    ("single-point track", None, None),
    ("NaN coordinate", lambda: formats.parse_trajectories("[[1, 2], [NaN, 4]]"), "point 2 is (nan, 4.0); coordinates must be finite numbers"),
    ("huge coordinate", lambda: formats.parse_trajectories("[[1, 2], [1e9, 4]]"), "coordinates beyond 16384 pixels are not accepted"),
    ("outside the canvas, error mode", lambda: resample.resample(_set([(1, 2), (300, -5)]), 5, "arc_length", "error"),
     "1 point(s) lie outside the 240x160 canvas, first track 1 point 2 at (300, -5); move them inside or set out_of_frame to clamp"),
    ("no tracks", lambda: _flow_of(_set()), "there are no tracks; draw or load at least one track"),
    ("frame count 0", lambda: resample.resample(_set([(1, 1), (5, 5)]), 0), "the frame count is 0; it must be at least 2"),
    ("frame count 1", lambda: resample.resample(_set([(1, 1), (5, 5)]), 1), "the frame count is 1; it must be at least 2"),
    ("1x1 canvas", lambda: formats.parse_trajectories("[[0, 0], [0, 0]]", "point_list", 1, 1), "the canvas is 1x1 pixels; it must be at least 2x2"),
    ("1x1 video", lambda: flow.trajectories_to_flow_video(resample.resample(_set([(1, 1), (5, 5)]), 3), 1, 1), "the video is 1x1; it must be at least 2x2"),
    ("malformed MotionKit JSON", lambda: formats.parse_trajectories('{"format": "motionkit.trajectories", "version": 1,\n "tracks": [}'),
     "expected MotionKit trajectory JSON ({\"format\": \"motionkit.trajectories\", \"version\": 2, ...}); the text breaks at line 2, column 13"),
    ("malformed KJNodes string", lambda: formats.parse_trajectories("[{'x': 1, 'y': 2}, {'x': 3 'y': 4}]"),
     "expected KJNodes Spline Editor coordinates ([{'x': .., 'y': ..}, ...] or a list of those lists); the text breaks at line 1, column 28"),
    ("malformed ATI tracks", lambda: formats.parse_trajectories('[[{"x": 1, "y": 2}, {"x": 3}]]', "wan_ati_tracks"),
     "track 1, point 2: expected a point {\"x\": .., \"y\": ..}, got {\"x\": 3}"),
    ("malformed point lines", lambda: formats.parse_trajectories("1,2\n3;4;5\n"), "the text breaks at line 2: '3;4;5' is not 'x,y'"),
    ("empty text", lambda: formats.parse_trajectories("  "), "the text is empty"),
    ("10,000-deep nested JSON", lambda: formats.parse_trajectories("[" * 10000 + "]" * 10000),
     "text: the text nests lists/objects too deeply to read"),
    ("10,000-deep nested seed points", lambda: formats.parse_points("[" * 10000 + "]" * 10000, "seed_points"),
     "seed_points: the text nests lists/objects too deeply to read"),
    ("900-deep nested MotionKit JSON", lambda: formats.parse_trajectories(
        '{"format": "motionkit.trajectories", "version": 1, "canvas": {"width": 9, "height": 9}, "tracks": [{"points": '
        + "[" * 900 + "]" * 900 + "}]}"), "text: "),
    ("unsupported JSON version", lambda: formats.parse_trajectories('{"format": "motionkit.trajectories", "version": 7}'),
     "trajectory JSON version 7 is not supported; this MotionKit reads versions 1 and 2"),
    ("Draw: width 0", lambda: nodes.MotionKitDrawTrajectories().draw(0, 480, 49, _DRAWN),
     "width is 0; the canvas must be at least 2 pixels in each direction: set width to the video's width"),
    ("Draw: height 0", lambda: nodes.MotionKitDrawTrajectories().draw(720, 0, 49, _DRAWN), "height is 0"),
    ("Draw: num_frames 1", lambda: nodes.MotionKitDrawTrajectories().draw(720, 480, 1, _DRAWN),
     "num_frames is 1; a trajectory needs at least 2 frames (a start and a frame to move to): set num_frames"),
    ("Draw: num_frames 0", lambda: nodes.MotionKitDrawTrajectories().draw(720, 480, 0, _DRAWN), "num_frames is 0"),
    ("num_frames 0 without a frame count", lambda: nodes.MotionKitResampleTrajectories().resample(
        _set([(1, 1), (5, 5)]), 0, "arc_length", "clamp"), "num_frames is 0 (take the frame count from the trajectories), "
     "but these trajectories carry none (e.g. loaded from a point list); set num_frames"),
    ("unknown interpolation", lambda: _v2({"interpolation": "bezier"}), "interpolation 'bezier' is not one of polyline, spline"),
    ("tension out of range", lambda: _v2({"interpolation": "spline", "tension": 2}), "tension 2.0 must be a number from 0"),
    ("unknown easing", lambda: _v2({"easing": "bounce"}), "easing 'bounce' is not one of linear, ease-in, ease-out, ease-in-out"),
    ("end before start", lambda: _v2({"start_frame": 9, "end_frame": 3}), "end_frame 3 is before start_frame 9"),
    ("negative start", lambda: _v2({"start_frame": -1}), "start_frame -1 must be a frame index"),
    ("start_frame not an integer", lambda: _v2({"start_frame": 1.5}), "tracks[0].start_frame must be a frame index (an integer), got 1.5"),
    ("frames and start_frame", lambda: _v2({"frames": [0, 4], "start_frame": 2}),
     "has both per-point frames and start_frame/end_frame; keep one"),
    # the export nodes' inputs
    ("colour not a colour", lambda: export_nodes.MotionKitTrajectoriesToControlVideo().render(
        _exported(), 64, 48, 5, "shapes", "circle", 4.0, "#12345", "#000000"), "colour: '#12345' is not a colour"),
    ("background not a colour", lambda: export_nodes.MotionKitTrajectoriesToControlVideo().render(
        _exported(), 64, 48, 5, "shapes", "circle", 4.0, "white", "night"), "background: 'night' is not a colour"),
    ("size 0", lambda: export_nodes.MotionKitTrajectoriesToControlVideo().render(
        _exported(), 64, 48, 5, "shapes", "circle", 0.0, "white", "black"), "size: 0.0; give the shape's radius"),
    ("unknown control mode", lambda: control_video.trajectories_to_control_video(_exported(), 64, 48, 5, "vace"),
     "mode: 'vace' is not one of shapes, easyanimate_v5.1"),
    ("unknown shape", lambda: control_video.trajectories_to_control_video(_exported(), 64, 48, 5, "shapes", "star"),
     "shape: 'star' is not one of circle, square"),
    ("Wan length 1", lambda: exports.wan_ati_tracks(_exported(), 64, 48, 1), "length: 1 frames; WanTrackToVideo needs at least 2"),
    ("export size 0", lambda: exports.spline_coordinates(_exported(), 0, 48, 5), "width/height: the video is 0x48"),
    ("outside the canvas, clamp mode", None, None),
    ("more tracks than colours", None, None),
]


@pytest.mark.parametrize("case,action,message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_table(case, action, message, caplog):
    if case == "outside the canvas, clamp mode":  # documented clamp: logged, points on the edge, flow still right
        with caplog.at_level(logging.WARNING, logger="MotionKit"):
            out = resample.resample(_set([(1, 2), (300, -5)]), 3)
        assert out.tracks[0].points == [(1, 2), (120, 1), (239, 0)]
        assert "clamped to the canvas edge" in caplog.text
        return
    if case == "single-point track":  # documented: an anchor, the object stays there
        anchored = _set([(3, 4)], [(10, 10), (200, 100)])
        assert _flow_of(anchored).shape == (9, 160, 240, 3)
        assert resample.resample(anchored, 4).tracks[0].points == [(3, 4)] * 4
        return
    if case == "more tracks than colours":  # there is no colour limit: every track gets its own colour
        many = _set(*[[(5 + 10 * i, 5), (5 + 10 * i, 100)] for i in range(20)])
        colors = preview.track_colors(20)
        assert len(set(colors)) == 20
        image = nodes.MotionKitPreviewTrajectories().preview(many, 3)[0]
        assert image.shape == (1, 160, 240, 3)
        assert _flow_of(many).shape == (9, 160, 240, 3)
        return
    with pytest.raises(TrajectoryError) as error:
        action()
    assert message in str(error.value)


def test_clamped_points_give_the_flow_of_the_clamped_track():
    outside = _flow_of(_set([(10, 10), (400, 10)]))
    inside = _flow_of(_set([(10, 10), (239, 10)]))
    assert torch.equal(outside, inside)


# ---------------------------------------------------------------- nodes
def test_draw_node_scales_to_its_canvas_and_outputs_the_tracks():
    state = Trajectories(360, 240, [Track([(36, 24), (180, 120)], "a")]).to_json()
    result = nodes.MotionKitDrawTrajectories().draw(720, 480, 49, state)
    out = result["result"][0]
    assert (out.width, out.height, out.tracks[0].points, out.tracks[0].name) == (720, 480, [(72, 48), (360, 240)], "a")


@pytest.mark.host
def test_draw_node_shows_the_reference_image_in_the_browser():
    state = Trajectories(64, 48, [Track([(1, 2), (30, 40)], "a")]).to_json()
    reference = torch.zeros(2, 48, 64, 3)
    reference[0, :, :32] = 1.0
    result = nodes.MotionKitDrawTrajectories().draw(64, 48, 9, state, reference)
    [shown] = result["ui"]["reference"]
    assert shown["type"] == "temp" and shown["subfolder"] == ""
    with Image.open(Path(nodes.host.temp_directory()) / shown["filename"]) as image:
        pixels = np.asarray(image)
    assert pixels.shape == (48, 64, 3) and pixels[:, :32].min() == 255 and pixels[:, 32:].max() == 0


def test_preview_draws_colours_and_current_positions():
    trajectories = resample.resample(_set([(20, 80), (220, 80)], [(120, 10), (120, 150)]), 3)
    frames = torch.zeros(3, 160, 240, 3)
    out = nodes.MotionKitPreviewTrajectories().preview(trajectories, 3, frames)[0]
    colors = preview.track_colors(2)
    assert out.shape == (3, 160, 240, 3)
    line = torch.tensor(colors[0], dtype=torch.float32) * 230 / 255  # the line is drawn at alpha 230 over black
    assert ((out[1, 80, 60] * 255) - line).abs().max() <= 1
    # the current-position dot moves: centre of track 0 at frame 0 is (20, 80), at frame 2 (220, 80)
    assert (out[0, 80, 20] * 255 - torch.tensor(colors[0], dtype=torch.float32)).abs().max() < 2
    assert (out[2, 80, 220] * 255 - torch.tensor(colors[0], dtype=torch.float32)).abs().max() < 2
    assert out[0, 80, 220].sum() < out[2, 80, 220].sum()


# ---------------------------------------------------------------- the real ComfyUI
@pytest.mark.host
def test_example_workflow_outputs(comfy_server):
    outputs = comfy_server.run_ui_workflow(ROOT / "example_workflows" / "trajectory_flow_preview.json")
    files = comfy_server.output_files(outputs)
    videos = [f for f in files if f.suffix == ".mp4"]
    images = [f for f in files if f.suffix == ".png"]
    assert len(videos) == 1 and len(images) == 1
    frames = comfy_server.video_frames(videos[0])
    assert len(frames) == 25 and frames[0].shape == (240, 360, 3)
    assert frames[0].min() > 240  # frame 0 has no motion: white (up to video compression)
    assert any(frame.min() < 128 for frame in frames[1:])
    with Image.open(images[0]) as preview_image:
        assert preview_image.size == (720, 480)


def test_preview_of_timed_tracks_follows_their_timing():
    timed = Trajectories(240, 160, [Track([(20, 80), (220, 80)], "t", [0, 2])], num_frames=5)
    out = preview.draw_trajectories(timed, torch.zeros(5, 160, 240, 3))
    color = torch.tensor(preview.track_colors(1)[0], dtype=torch.float32)
    assert (out[1, 80, 120] * 255 - color).abs().max() < 2  # halfway at frame 1
    assert (out[4, 80, 220] * 255 - color).abs().max() < 2  # held at the end after frame 2


# ---------------------------------------------------------------- timing (version 2) and the shared placement
def _track(points, **fields):
    return Track([tuple(p) for p in points], "t", **fields)


def test_version_1_files_load_and_version_2_fields_round_trip():
    old = formats.parse_trajectories('{"format": "motionkit.trajectories", "version": 1, "canvas": {"width": 64, '
                                     '"height": 48}, "tracks": [{"name": "a", "points": [[1, 2], [3, 4]], "frames": [0, 5]}]}')
    assert old.tracks[0] == Track([(1, 2), (3, 4)], "a", [0, 5])
    # a version-1 file's unknown keys are not read as version-2 fields
    ignored = formats.parse_trajectories('{"format": "motionkit.trajectories", "version": 1, "canvas": {"width": 64, '
                                         '"height": 48}, "tracks": [{"points": [[1, 2], [3, 4]], "easing": "ease-in"}]}')
    assert ignored.tracks[0].easing == "linear"
    new = Trajectories(64, 48, [_track([(1, 2), (3, 4), (9, 9)], interpolation="spline", tension=0.25, start_frame=3,
                                       end_frame=7, easing="ease-out"),
                                _track([(5, 5), (6, 6)], frames=[0, 4], lost_at=5, easing="ease-in")], 9)
    text = new.to_json()
    assert json.loads(text)["tracks"][0] == {"name": "t", "points": [[1, 2], [3, 4], [9, 9]], "interpolation": "spline",
                                             "tension": 0.25, "start_frame": 3, "end_frame": 7, "easing": "ease-out"}
    assert formats.parse_trajectories(text) == new


def test_easing_curves():
    for easing in data.EASINGS:
        assert resample.ease(easing, 0.0) == 0.0 and resample.ease(easing, 1.0) == 1.0
        assert all(resample.ease(easing, i / 20) <= resample.ease(easing, (i + 1) / 20) for i in range(20))
    assert resample.ease("ease-in", 0.5) == 0.125 and resample.ease("ease-out", 0.5) == 0.875
    assert resample.ease("ease-in-out", 0.5) == 0.5 and resample.ease("ease-in-out", 0.25) == 0.0625
    assert resample.ease("ease-in-out", 0.75) == 1 - 0.0625


def test_spline_passes_through_its_points_and_tension_1_is_the_polyline():
    points = [(10, 10), (60, 80), (120, 20), (200, 90)]
    path = resample.path_points(points, "spline", 0.0)
    assert len(path) == 3 * resample.SPLINE_STEPS + 1
    assert [path[i * resample.SPLINE_STEPS] for i in range(4)] == [(10.0, 10.0), (60.0, 80.0), (120.0, 20.0), (200.0, 90.0)]
    # Catmull-Rom (tension 0) at the middle of segment 1: (-p0 + 9 p1 + 9 p2 - p3) / 16 (the cubic's closed form)
    mid = path[resample.SPLINE_STEPS + resample.SPLINE_STEPS // 2]
    expected = [(-a + 9 * b + 9 * c - d) / 16 for a, b, c, d in zip(*points)]
    assert max(abs(m - e) for m, e in zip(mid, expected)) < 1e-12
    straight = resample.path_points(points, "spline", 1.0)
    for i in range(3):
        (x0, y0), (x1, y1) = points[i], points[i + 1]
        for x, y in straight[i * resample.SPLINE_STEPS:(i + 1) * resample.SPLINE_STEPS]:
            assert abs((x - x0) * (y1 - y0) - (y - y0) * (x1 - x0)) < 1e-9  # on the straight segment
    assert resample.path_points(points[:2], "spline", 0.0) == [(10.0, 10.0), (60.0, 80.0)]


def test_start_end_and_easing_place_the_object():
    line = [(0, 0), (80, 0)]
    linear = resample.track_positions(_track(line, start_frame=2, end_frame=6), 9)
    assert linear == [(0, 0)] * 3 + [(20, 0), (40, 0), (60, 0)] + [(80, 0)] * 3
    eased = [x for x, _ in resample.track_positions(_track(line, start_frame=2, end_frame=6, easing="ease-in-out"), 9)]
    assert eased == [0, 0, 0, 80 * 0.0625, 40, 80 * (1 - 0.0625), 80, 80, 80]
    # timed tracks pass each point at its frame whatever the easing, eased in between
    timed = resample.track_positions(_track([(0, 0), (40, 0), (40, 40)], frames=[1, 3, 7], easing="ease-in"), 9)
    assert timed[1] == (0, 0) and timed[3] == (40, 0) and timed[7] == (40, 40)
    assert timed[2] == (40 * 0.125, 0) and timed[5] == (40, 40 * 0.125)
    # a spline track moves at constant speed along the (flattened) curve: equal arc length per frame
    path = resample.path_points([(0, 0), (50, 60), (100, 0)], "spline")
    lengths = resample.cumulative_lengths(path)
    curve = resample.track_positions(_track([(0, 0), (50, 60), (100, 0)], interpolation="spline"), 17)
    arcs = []
    for x, y in curve:
        k = min(range(len(path) - 1), key=lambda k: math.dist(path[k], (x, y)) + math.dist((x, y), path[k + 1]) - lengths[k + 1] + lengths[k])
        arcs.append(lengths[k] + math.dist(path[k], (x, y)))
    assert all(abs(b - a - lengths[-1] / 16) < 1e-9 for a, b in zip(arcs, arcs[1:]))


def test_resampling_to_other_frame_counts_scales_the_timing():
    drawn = Trajectories(100, 100, [_track([(0, 0), (80, 0)], start_frame=2, end_frame=6, easing="ease-out"),
                                    _track([(0, 50), (40, 50), (80, 50)], frames=[0, 2, 8])], num_frames=9)
    same = resample.resample(drawn, 9)
    double = resample.resample(drawn, 17)
    for a, b in zip(same.tracks, double.tracks):
        assert all(math.dist(a.points[f], b.points[2 * f]) < 1e-9 for f in range(9))


def test_drawn_trajectories_carry_their_frame_count_and_are_not_taken_as_resampled():
    state = Trajectories(100, 100, [_track([(i * 10, 0) for i in range(9)])]).to_json()
    drawn = nodes.MotionKitDrawTrajectories().draw(100, 100, 9, state)["result"][0]
    assert drawn.num_frames == 9 and not drawn.per_frame()  # 9 points, 9 frames: still a drawing
    resampled = nodes.MotionKitResampleTrajectories().resample(drawn, 0, "arc_length", "clamp")[0]
    assert resampled.num_frames == 9 and resampled.per_frame()
    video = nodes.MotionKitTrajectoriesToFlow().flow(drawn, 0, 0, 0, "arc_length", "global")[0]
    assert video.shape == (9, 100, 100, 3)
    explicit = nodes.MotionKitTrajectoriesToFlow().flow(drawn, 50, 40, 5, "arc_length", "global")[0]
    assert explicit.shape == (5, 40, 50, 3)
