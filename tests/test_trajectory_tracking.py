"""Trajectories from Video (pyramidal LK + forward-backward check) and Tora's TrajError, on synthetic clips
whose true motion is known exactly."""
import math

import cv2
import numpy as np
import pytest
import torch

from scripts import harness

harness.import_pack()
from motionkit.models.trajectory import data, tracking  # noqa: E402
from motionkit.models.trajectory.data import TrajectoryError  # noqa: E402
from motionkit.nodes import trajectory_tracking as nodes  # noqa: E402

FRAMES, SPEED = 10, 2  # the texture moves SPEED pixels right per frame


def _texture(height=200, width=400, seed=0):
    noise = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2)
    return (noise - noise.min()) / (noise.max() - noise.min())


def _clip(frames=FRAMES, speed=SPEED, height=120, width=200):
    texture = _texture()
    stack = np.stack([np.roll(texture, speed * t, axis=1)[20:20 + height, 20:20 + width] for t in range(frames)])
    return torch.from_numpy(np.repeat(stack[..., None], 3, -1))


def test_corners_follow_the_motion():
    result = tracking.tracks_from_video(_clip(), "corners", max_corners=12)
    assert (result.width, result.height, result.num_frames) == (200, 120, FRAMES)
    assert len(result.tracks) >= 6
    for track in result.tracks:
        if track.lost_at is None:
            assert track.frames == list(range(FRAMES))
        x0, y0 = track.points[0]
        for f, (x, y) in zip(track.frames, track.points):
            # within 0.01 px while the 21-pixel window is inside the frame; near the edge LK drifts a little
            tolerance = 0.01 if x0 + SPEED * f <= 200 - 1 - 10 else 0.5
            assert abs(x - (x0 + SPEED * f)) < tolerance and abs(y - y0) < tolerance


def test_grid_and_seed_points():
    grid = tracking.grid_points(200, 120, 5)
    assert grid.shape == (15, 2) and tuple(grid[0]) == (20.0, 20.0) and tuple(grid[-1]) == (180.0, 100.0)
    out = nodes.MotionKitTrajectoriesFromVideo().track(_clip(), "seed_points", 8, 16, "60,50\n100,70", 21, 3, 1.0)[0]
    assert [t.name for t in out.tracks] == ["point 1", "point 2"]
    assert abs(out.tracks[0].points[-1][0] - (60 + SPEED * (FRAMES - 1))) < 0.05
    assert abs(out.tracks[1].points[-1][1] - 70) < 0.05


def test_points_leaving_the_frame_are_marked_lost_not_invented():
    # a point at x=185 moving 4 px/frame leaves the 200-pixel-wide frame after frame 3 (x = 197 -> 201)
    out = tracking.tracks_from_video(_clip(speed=4), "seed_points", seed_points=[(185.0, 60.0), (40.0, 60.0)])
    edge, inner = out.tracks
    assert edge.lost_at == 4 and edge.frames == [0, 1, 2, 3] and len(edge.points) == 4
    assert inner.lost_at is None and len(inner.points) == FRAMES
    assert '"lost_at": 4' in out.to_json()


def test_a_cut_loses_the_points():
    flat = _clip()
    flat[5:] = 0.5  # nothing to track from frame 5
    out = tracking.tracks_from_video(flat, "grid", grid_per_row=6)
    assert len(out.tracks) == 24 and all(t.lost_at == 5 and len(t.points) == 5 for t in out.tracks)
    cut = _clip()
    cut[5:] = torch.from_numpy(np.repeat(_texture(seed=7)[:120, :200, None], 3, -1))  # unrelated content
    out = tracking.tracks_from_video(cut, "grid", grid_per_row=6)
    # LK with the forward-backward check catches nearly all (22 of 24 here); a check, not a guarantee
    assert sum(t.lost_at == 5 for t in out.tracks) >= 0.9 * len(out.tracks)


def test_trajectory_error_has_the_closed_form():
    # requested: straight down 20 pixels over the clip; the video moves right SPEED px/frame
    requested = data.Trajectories(200, 120, [data.Track([(50, 60), (50, 80)], "a"), data.Track([(120, 30), (120, 50)], "b")])
    mean, per_frame, tracked = tracking.trajectory_error(_clip(), requested)
    expected = np.array([k * math.hypot(SPEED, 20 / (FRAMES - 1)) for k in range(FRAMES)])
    assert np.abs(per_frame - expected).max() < 0.05
    assert abs(mean - expected.mean()) < 0.05 and tracked.tolist() == [2] * FRAMES
    matching = data.Trajectories(400, 240, [data.Track([(100, 120), (100 + 2 * SPEED * (FRAMES - 1), 120)], "a")])
    assert tracking.trajectory_error(_clip(), matching)[0] < 0.01  # canvas twice the video size: scaled


def test_trajectory_error_node_outputs():
    requested = data.Trajectories(200, 120, [data.Track([(50, 60), (50 + SPEED * (FRAMES - 1), 60)], "a")])
    value, plot, text = nodes.MotionKitTrajectoryError().measure(_clip(), requested, 21, 3, 1.0)
    assert value < 0.01 and plot.shape == (1, 320, 640, 3) and len(text.split(", ")) == FRAMES
    assert plot[0, 160:300, 60:620].max() > 0.5  # the curve is drawn


@pytest.mark.parametrize("kwargs,message", [
    (dict(seed="seed_points", seed_points=None), "seed_points: give the points to track"),
    (dict(seed="seed_points", seed_points=[(500.0, 10.0)]), "seed_points: (500, 10) is outside the 200x120 video"),
    (dict(seed="spiral"), "seed: 'spiral' is not one of grid, corners, seed_points"),
])
def test_tracking_bad_input(kwargs, message):
    with pytest.raises(TrajectoryError) as error:
        tracking.tracks_from_video(_clip(), **kwargs)
    assert message in str(error.value)


def test_one_frame_is_refused():
    with pytest.raises(TrajectoryError, match=r"images: expected a video of at least 2 frames"):
        tracking.tracks_from_video(_clip()[:1], "grid")


def test_trajectory_error_of_a_one_frame_video_names_the_video_input():
    requested = data.Trajectories(200, 120, [data.Track([(50, 60), (90, 60)], "a")])
    with pytest.raises(TrajectoryError) as error:
        nodes.MotionKitTrajectoryError().measure(_clip()[:1], requested, 21, 3, 1.0)
    message = str(error.value)
    assert message.startswith("images:") and "(1, 120, 200, 3)" in message and "trajectories" not in message


def test_trajectory_error_with_an_anchor_is_zero_on_a_still_video():
    still = _clip(speed=0)
    requested = data.Trajectories(200, 120, [data.Track([(80, 60)], "anchor")])
    mean, per_frame, tracked = tracking.trajectory_error(still, requested)
    assert mean < 0.05 and tracked.tolist() == [1] * FRAMES
