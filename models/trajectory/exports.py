"""Trajectories for the other models that take them, as the text their nodes read.

- Wan 2.1 ATI (core ComfyUI `WanTrackToVideo`, comfy_extras/nodes_wan.py): a JSON list of tracks, each a list of
  {"x", "y"} in video pixels. The node reads 121 samples per track (`pad_pts`: fewer are padded with invisible
  points, more are cut) and `process_tracks` picks, for a video of `length` frames (F = length - 1), sample 0 for
  frame 0 and sample 1 + (1 + (j - 1) * a) // b for frame j >= 1, where a = 120 / gcd(120, F), b = F / gcd(120, F).
  The export writes each frame's position at exactly that sample (linear in between), so WanTrackToVideo sees the
  trajectory's own per-frame positions.
- KJNodes' Spline Editor `coord_str` (nodes/curve_nodes.py `splinedata`): JSON of {"x": int, "y": int} with
  int(round()) coordinates on the mask canvas, one list for one spline, a list of lists for several. CogVideoXWrapper's
  Tora nodes (ToraEncodeTrajectory) read one such string, or a Python list of one string per spline (what KJNodes'
  AppendStringsToList makes, fewer than 10 of them); both are given.
"""
from __future__ import annotations

import json
import logging
import math

import numpy as np

from .data import Trajectories, TrajectoryError, plain_number
from .resample import resample

log = logging.getLogger("MotionKit")
ATI_SAMPLES = 121
"""Samples per track WanTrackToVideo reads (comfy_extras/nodes_wan.py FIXED_LENGTH)."""
TORA_WRAPPER_MAX_SPLINES = 9
"""CogVideoXWrapper's ToraEncodeTrajectory treats a coordinates value shorter than 10 as a list of splines."""


def per_frame_positions(trajectories: Trajectories, width: int, height: int, frames: int,
                        what: str = "trajectories") -> np.ndarray:
    """[tracks, frames, 2] float64 positions in pixels of a width x height video: tracks resampled to `frames`
    (arc length, timing kept, out-of-canvas points clamped) unless they already have one point per frame, then
    scaled from their canvas to the video. Single-point tracks stay where they are."""
    if width < 1 or height < 1:
        raise TrajectoryError(f"width/height: the video is {width}x{height}; give the video's size in pixels")
    if not (trajectories.per_frame() and trajectories.num_frames == frames):
        trajectories = resample(trajectories, frames, "arc_length", "clamp", what)
    points = np.array([track.points for track in trajectories.tracks], dtype=np.float64)
    return points * np.array([width / trajectories.width, height / trajectories.height])


def ati_sample_of_frame(length: int) -> np.ndarray:
    """For each of `length` video frames, the index of the ATI track sample WanTrackToVideo's process_tracks reads."""
    steps = length - 1
    if steps < 1:
        return np.zeros(1, dtype=np.int64)
    a, b = 120 // math.gcd(120, steps), steps // math.gcd(120, steps)
    picked = [0] + [1 + (1 + k * a) // b for k in range(steps)]
    return np.minimum(np.array(picked, dtype=np.int64), ATI_SAMPLES - 1)


def wan_ati_tracks(trajectories: Trajectories, width: int, height: int, length: int) -> str:
    """The `tracks` JSON of WanTrackToVideo for a width x height video of `length` frames (see module docstring)."""
    if length < 2:
        raise TrajectoryError(f"length: {length} frames; WanTrackToVideo needs at least 2 (Wan uses 4n + 1, e.g. 81)")
    if length > ATI_SAMPLES:
        log.warning("MotionKit: WanTrackToVideo reads %d samples per track; a %d-frame video repeats some of them",
                    ATI_SAMPLES, length)
    positions = per_frame_positions(trajectories, width, height, length)
    sample = ati_sample_of_frame(length)
    # the samples frames land on, each once (the last frame wins where a long video repeats one)
    landed, first = np.unique(sample[::-1], return_index=True)
    frame_of = len(sample) - 1 - first
    grid = np.arange(ATI_SAMPLES)
    tracks = []
    for track in positions:
        xs = np.interp(grid, landed, track[frame_of, 0])
        ys = np.interp(grid, landed, track[frame_of, 1])
        tracks.append([{"x": plain_number(round(float(x), 4)), "y": plain_number(round(float(y), 4))} for x, y in zip(xs, ys)])
    return json.dumps(tracks)


def spline_coordinates(trajectories: Trajectories, width: int, height: int, frames: int) -> tuple[str, list[str]]:
    """(KJNodes Spline Editor `coord_str`, one such string per track): `frames` points per track on a width x height
    canvas, int(round()) as KJNodes writes them."""
    positions = per_frame_positions(trajectories, width, height, frames)
    splines = [[{"x": int(round(float(x))), "y": int(round(float(y)))} for x, y in track] for track in positions]
    if len(splines) > TORA_WRAPPER_MAX_SPLINES:
        log.warning("MotionKit: %d tracks; CogVideoXWrapper's Tora nodes read at most %d splines from a list",
                    len(splines), TORA_WRAPPER_MAX_SPLINES)
    coord_str = json.dumps(splines if len(splines) > 1 else splines[0])
    return coord_str, [json.dumps(spline) for spline in splines]
