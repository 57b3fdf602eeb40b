"""Trajectory exports: Wan ATI tracks (read back by core WanTrackToVideo's own code), KJNodes spline coordinates
(read the way CogVideoXWrapper's Tora nodes read them), control videos (EasyAnimate V5.1's official rendering)."""
import json
import logging

import numpy as np
import pytest
import torch

from references.easyanimate_trajectory import official_control_video, official_heatmap
from references.trajectory_reference import official_pixel_tracks, official_scale_to_256, official_video
from scripts import harness

harness.import_pack()
from motionkit.models.trajectory import control_video, exports, flow, formats  # noqa: E402
from motionkit.models.trajectory.data import Track, Trajectories  # noqa: E402
from motionkit.nodes import trajectory as trajectory_nodes  # noqa: E402
from motionkit.nodes import trajectory_exports as nodes  # noqa: E402


def _drawn():
    return Trajectories(720, 480, [Track([(40, 400), (360, 100), (700, 300)], "car"),
                                   Track([(600, 50), (100, 60)], "bird", [3, 20]),
                                   Track([(360, 240)], "anchor")], num_frames=25)


# ---------------------------------------------------------------- Wan ATI
@pytest.mark.host
@pytest.mark.parametrize("length", [81, 49, 17, 5, 2])
def test_wan_tracks_give_wan_track_to_video_the_per_frame_positions(length):
    from comfy_extras import nodes_wan

    width, height = 832, 480
    text = nodes.MotionKitTrajectoriesToWanTracks().export(_drawn(), width, height, length)[0]
    # core WanTrackToVideo's own reading: parse_json_tracks, pad_pts, process_tracks(tracks, (W, H), length - 1)
    parsed = nodes_wan.parse_json_tracks(text)
    tracks_np = np.stack([nodes_wan.pad_pts(track) for track in parsed], axis=0)
    processed = nodes_wan.process_tracks(tracks_np, (width, height), length - 1)  # [frames, tracks, 4]
    assert processed.shape == (length, 3, 4)
    short_edge = min(width, height)
    xy = processed[..., 1:3] * short_edge / 2 + torch.tensor([width / 2, height / 2])
    expected = exports.per_frame_positions(_drawn(), width, height, length).transpose(1, 0, 2)
    assert np.abs(xy.numpy() - expected).max() < 1e-3
    assert (processed[..., 3] == 1).all()  # every sample visible
    assert np.allclose(expected[:, 2], [(360 * 832 / 720, 240)])  # the anchor stays
    assert len(parsed[0]) == exports.ATI_SAMPLES


@pytest.fixture(scope="module")
def random_wan_vae(models_dir):
    path = harness.write_random_wan_vae(models_dir)
    yield path
    path.unlink()


@pytest.mark.host
def test_wan_example_workflow_runs_to_wan_track_to_video(comfy_server, random_wan_vae, tmp_path):
    # The shipped workflow through the real frontend up to WanTrackToVideo's output (no Wan model).
    workflow = json.loads((harness.ROOT / "example_workflows" / f"{harness.WAN_ATI_EXAMPLE}.json").read_text())
    path = tmp_path / "wan_ci.json"
    path.write_text(json.dumps(harness.wan_ati_up_to_conditioning(workflow)))
    outputs = comfy_server.run_ui_workflow(path)
    texts = [text for output in outputs.values() for text in output.get("text", [])]
    assert len(texts) == 1 and "concat_latent_image" in texts[0] and "concat_mask" in texts[0]
    images = [f for f in comfy_server.output_files(outputs) if f.suffix == ".png"]
    assert len(images) == 1 and images[0].is_file()


def test_ati_sample_of_frame_is_the_core_formula():
    # 81 frames: F = 80, a = 3, b = 2; frame j reads sample 1 + (1 + 3 (j - 1)) // 2, the last one 120
    picked = exports.ati_sample_of_frame(81)
    assert picked[:4].tolist() == [0, 1, 3, 4] and picked[-1] == 120 and len(picked) == 81


# ---------------------------------------------------------------- KJNodes spline coordinates
def test_spline_coordinates_are_kjnodes_coord_strings():
    coord_str, per_track = nodes.MotionKitTrajectoriesToSplineCoordinates().export(_drawn(), 720, 480, 25)
    splines = json.loads(coord_str)
    assert len(splines) == 3 and all(len(s) == 25 for s in splines)
    assert all(isinstance(p["x"], int) and isinstance(p["y"], int) and list(p) == ["x", "y"] for s in splines for p in s)
    assert [json.loads(t) for t in per_track] == splines
    assert splines[0][0] == {"x": 40, "y": 400} and splines[0][-1] == {"x": 700, "y": 300}
    assert splines[2] == [{"x": 360, "y": 240}] * 25
    one = Trajectories(720, 480, [Track([(10.6, 20.5), (30.5, 40.4)], "a")])
    single, _ = nodes.MotionKitTrajectoriesToSplineCoordinates().export(one, 720, 480, 2)
    assert single == '[{"x": 11, "y": 20}, {"x": 30, "y": 40}]'  # one spline: a flat list, round half to even
    # 0 frames: the count the trajectories carry (25 here)
    assert nodes.MotionKitTrajectoriesToSplineCoordinates().export(_drawn(), 720, 480, 0)[0] == coord_str
    assert nodes.MotionKitTrajectoriesToControlVideo().render(_drawn(), 72, 48, 0, "shapes", "circle", 2.0, "white",
                                                              "black")[0].shape == (25, 48, 72, 3)
    assert len(json.loads(nodes.MotionKitTrajectoriesToWanTracks().export(_drawn(), 72, 48, 0)[0])[0]) == 121
    reloaded = formats.parse_trajectories(coord_str, "kjnodes_spline", 720, 480)
    assert [len(t.points) for t in reloaded.tracks] == [25, 25, 25]


def test_spline_coordinates_drive_tora_as_cogvideox_wrapper_reads_them():
    # CogVideoXWrapper ToraEncodeTrajectory with a list of per-spline strings: json.loads(s.replace("'", '"')),
    # scale_traj_list_to_256(coords, width, height), then Tora's process_traj; the pack's tora_app mode is that path
    width, height, frames = 96, 64, 9
    drawn = Trajectories(width, height, [Track([(5, 60), (50, 10), (90, 40)], "a"), Track([(80, 5), (10, 30)], "b")])
    _, per_track = nodes.MotionKitTrajectoriesToSplineCoordinates().export(drawn, width, height, frames)
    coords_list = [official_scale_to_256([(c["x"], c["y"]) for c in json.loads(s.replace("'", '"'))], width, height)
                   for s in per_track]
    pixels = official_pixel_tracks(coords_list, frames, height, width)
    ref_rgb, ref_flow = official_video(pixels, frames, height, width)
    loaded = [formats.parse_trajectories(s, "kjnodes_spline", width, height).tracks[0] for s in per_track]
    video = trajectory_nodes.MotionKitTrajectoriesToFlow().flow(
        Trajectories(width, height, loaded), width, height, frames, "tora_app", "global")[0]
    field = flow.flow_field(torch.tensor(pixels), height, width)
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    rgb = (video * 255).round().to(torch.uint8)
    assert torch.equal(rgb[~seam], ref_rgb[~seam]) and (ref_rgb != 255).any()


# ---------------------------------------------------------------- control videos
@pytest.mark.parametrize("width,height", [(384, 256), (200, 120)])
def test_easyanimate_mode_renders_what_the_official_workflow_renders(width, height):
    # tracks near the edges (clipped, squeezed heatmaps), crossing (maximum), one off the canvas (clamped), an anchor
    drawn = Trajectories(width, height, [Track([(0, 0), (width - 1, height - 1)], "diagonal"),
                                         Track([(width - 3, 5), (10, height - 2)], "cross"),
                                         Track([(width / 2, height / 2)], "anchor"),
                                         Track([(2, height / 2), (width / 2, height / 3)], "left")])
    frames = 13
    _, per_track = nodes.MotionKitTrajectoriesToSplineCoordinates().export(drawn, width, height, frames)
    expected = official_control_video(per_track, height, width)
    video = nodes.MotionKitTrajectoriesToControlVideo().render(drawn, width, height, frames, "easyanimate_v5.1",
                                                                "circle", 16.0, "#ffffff", "#000000")[0]
    assert video.dtype == torch.float32 and video.shape == (frames, height, width, 3)
    assert torch.equal(video, torch.from_numpy(expected).to(torch.float32))
    assert video.max() > 0.9 and (video == 0).float().mean() > 0.3


def test_easyanimate_heatmap_is_the_official_one():
    assert np.array_equal(control_video.easyanimate_heatmap(), official_heatmap())
    assert control_video.easyanimate_box_half_side(720, 480) == 30
    assert control_video.easyanimate_box_half_side(1280, 720) == 50


def test_shapes_follow_the_tracks_with_their_colour():
    drawn = Trajectories(200, 100, [Track([(20, 50), (180, 50)], "a"), Track([(100, 20)], "anchor")])
    node = nodes.MotionKitTrajectoriesToControlVideo()
    video = node.render(drawn, 200, 100, 5, "shapes", "circle", 6.0, "#ff0000", "rgb(0, 0, 255)")[0]
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    assert torch.equal(video[0, 50, 20], red) and torch.equal(video[4, 50, 180], red)
    assert torch.equal(video[2, 50, 100], red) and torch.equal(video[0, 50, 100], blue)
    assert all(torch.equal(video[f, 20, 100], red) for f in range(5))  # the anchor stays
    assert torch.equal(video[0, 50, 27], blue) and torch.equal(video[0, 56, 26], blue)  # outside the radius
    square = node.render(drawn, 200, 100, 5, "shapes", "square", 6.0, "white", "black")[0]
    assert torch.equal(square[0, 56, 26], torch.ones(3))  # the square's corner
    frames = torch.full((2, 40, 80, 3), 0.5)
    over = node.render(drawn, 200, 100, 3, "shapes", "circle", 3.0, "#00ff00", "#000000", frames)[0]
    assert over.shape == (3, 40, 80, 3) and torch.equal(over[2, 0, 79], torch.full((3,), 128 / 255))
    assert torch.equal(over[0, 20, 8], torch.tensor([0, 1.0, 0]))


def test_too_many_splines_for_cogvideox_wrapper_are_logged(caplog):
    many = Trajectories(64, 48, [Track([(i, 5), (i, 40)], f"t{i}") for i in range(10)])
    with caplog.at_level(logging.WARNING, logger="MotionKit"):
        exports.spline_coordinates(many, 64, 48, 5)
    assert "read at most 9 splines" in caplog.text


def _workflow_tracks(name):
    workflow = json.loads((harness.ROOT / "example_workflows" / name).read_text())
    loader = next(n for n in workflow["nodes"] if n["type"] == "MotionKitLoadTrajectories" and n["widgets_values"][0])
    return formats.parse_trajectories(loader["widgets_values"][0])


@pytest.mark.host
def test_spline_coordinates_example_workflow(comfy_server):
    outputs = comfy_server.run_ui_workflow(harness.ROOT / "example_workflows" / "trajectory_spline_coordinates.json")
    texts = [text for output in outputs.values() for text in output.get("text", [])]
    coord_str, per_track = exports.spline_coordinates(_workflow_tracks("trajectory_spline_coordinates.json"), 720, 480, 49)
    assert len(texts) == 2 and coord_str in texts and len(json.loads(coord_str)) == 3
    # PreviewAny writes the Python list of per-track strings as JSON
    assert json.loads(next(text for text in texts if text != coord_str)) == per_track
    images = [f for f in comfy_server.output_files(outputs) if f.suffix == ".png"]
    assert len(images) == 1 and images[0].is_file()


@pytest.mark.host
def test_control_video_example_workflow(comfy_server):
    outputs = comfy_server.run_ui_workflow(harness.ROOT / "example_workflows" / "trajectory_control_video.json")
    videos = {f.name.split("_0")[0]: f for f in comfy_server.output_files(outputs) if f.suffix == ".mp4"}
    assert sorted(videos) == ["motionkit_control_easyanimate", "motionkit_control_shapes"]
    drawn = _workflow_tracks("trajectory_control_video.json")
    for name, mode in (("motionkit_control_shapes", "shapes"), ("motionkit_control_easyanimate", "easyanimate_v5.1")):
        frames = comfy_server.video_frames(videos[name])
        expected = control_video.trajectories_to_control_video(drawn, 720, 480, 49, mode, "circle", 24.0)
        assert len(frames) == 49 and frames[0].shape == (480, 720, 3)
        decoded = torch.from_numpy(np.stack(frames[::12])).float() / 255
        assert (decoded - expected[::12]).abs().mean() < 0.02  # up to video compression
