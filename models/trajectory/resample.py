"""Resampling tracks to one point per video frame.

`arc_length` (default): the object moves at constant speed along the drawn
polyline, first and last points kept. Tracks with frame indices move at
constant speed between their timed points instead (held before the first and
after the last).

`tora_official`: the point selection of Tora's `sat/utils/flow_utils.py`
(`read_points` then `process_points`), kept exactly, quirks included: the
coordinates are truncated to integers with `int()` first; with more points
than frames it keeps every (n // frames)-th point and then cuts the list to
`frames` points, so the end of a long path is DROPPED; with fewer points it
inserts points evenly between consecutive drawn points (earlier segments get
the remainder), truncated with `int()`. Frame indices are ignored in this mode.
Points outside the canvas are NOT clamped here: the official code selects and
interpolates first (a path ending on the canvas edge keeps its last step);
Trajectories to Flow then clamps a flow source outside the video to its edge,
where the official code fails (past the right/bottom edge) or wraps around
(negative coordinates index from the other side).

`tora_app`: Tora's gradio app (`sat/app.py`): points drawn on its 720x480
canvas go onto the 256x256 grid with `int(x * (256 / 720))`,
`int(y * (256 / 480))` (`scale_traj_list_to_256`, here with the trajectories'
own canvas), then through `tora_official`. The result is on a 256x256 canvas.

A track of a single point is an anchor: the object stays there (zero flow for
Tora; the official code, given fewer than two points, holds the track at
(128, 128), which gives the same zero flow).
"""
from __future__ import annotations

import logging
import math

from .data import Track, Trajectories, TrajectoryError, clamp_to_canvas, out_of_canvas, validate

log = logging.getLogger("MotionKit")
MODES = ("arc_length", "tora_official", "tora_app")
TORA_GRID = 256
"""The side of the square grid Tora's sampling code reads its trajectories on (`xy_range` in process_traj)."""
OUT_OF_FRAME = ("clamp", "error")


def tora_official_points(points: list, frames: int) -> list:
    """Tora's `read_points` + `process_points` selection of `frames` points (see module docstring)."""
    points = [(int(x), int(y)) for x, y in points]
    if len(points) == 1:  # an anchor
        return points * frames
    if len(points) > frames:
        points = points[::len(points) // frames]
    points = points[:frames]
    if len(points) >= frames:
        return points[:frames - 1] + points[-1:]
    inserts = frames - len(points)
    segments = len(points) - 1
    per_segment = [inserts // segments + (1 if i < inserts % segments else 0) for i in range(segments)]
    result = []
    for i in range(segments):
        (x0, y0), (x1, y1) = points[i], points[i + 1]
        result.append(points[i])
        n = per_segment[i]
        for j in range(n):
            result.append((int(x0 + (j + 1) / (n + 1) * (x1 - x0)), int(y0 + (j + 1) / (n + 1) * (y1 - y0))))
    result.append(points[-1])
    return result


def to_tora_grid(trajectories: Trajectories) -> Trajectories:
    """Tora's app: every point onto the 256x256 grid as `scale_traj_list_to_256` does, int(x * (256 / width))."""
    scale_x, scale_y = TORA_GRID / trajectories.width, TORA_GRID / trajectories.height
    tracks = [Track([(int(x * scale_x), int(y * scale_y)) for x, y in t.points], t.name,
                    None if t.frames is None else list(t.frames), t.lost_at) for t in trajectories.tracks]
    return Trajectories(TORA_GRID, TORA_GRID, tracks, trajectories.num_frames)


def arc_length_points(points: list, frames: int) -> list[tuple[float, float]]:
    """`frames` points at constant speed along the polyline, ends kept (Tora paper, Sec. 3.2: trajectories as point sequences)."""
    lengths = [math.dist(a, b) for a, b in zip(points, points[1:])]
    total = sum(lengths)
    if total == 0:
        return [tuple(points[0])] * frames
    result, segment, start = [], 0, 0.0
    for k in range(frames):
        target = total * k / (frames - 1)
        while segment < len(lengths) - 1 and start + lengths[segment] < target:
            start += lengths[segment]
            segment += 1
        t = 0.0 if lengths[segment] == 0 else min(max((target - start) / lengths[segment], 0.0), 1.0)
        (x0, y0), (x1, y1) = points[segment], points[segment + 1]
        result.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    result[-1] = tuple(points[-1])
    return result


def timed_points(points: list, times: list[float], frames: int) -> list[tuple[float, float]]:
    """Position at each frame 0..frames-1, linear between timed points, held outside them."""
    result, segment = [], 0
    for f in range(frames):
        if f <= times[0]:
            result.append(tuple(points[0]))
            continue
        if f >= times[-1]:
            result.append(tuple(points[-1]))
            continue
        while times[segment + 1] < f:
            segment += 1
        t = (f - times[segment]) / (times[segment + 1] - times[segment])
        (x0, y0), (x1, y1) = points[segment], points[segment + 1]
        result.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    return result


def resample(trajectories: Trajectories, frames: int, mode: str = "arc_length", out_of_frame: str = "clamp",
             what: str = "trajectories") -> Trajectories:
    """Every track resampled to `frames` points (one per frame); out-of-canvas points clamped (logged) or refused."""
    if mode not in MODES:
        raise TrajectoryError(f"{what}: unknown resampling mode '{mode}'; choose one of {', '.join(MODES)}")
    if out_of_frame not in OUT_OF_FRAME:
        raise TrajectoryError(f"{what}: unknown out_of_frame '{out_of_frame}'; choose clamp or error")
    if not isinstance(frames, int) or frames < 2:
        raise TrajectoryError(f"{what}: the frame count is {frames}; it must be at least 2 "
                              "(frame 0 is the start, a trajectory needs a next frame to move to)")
    validate(trajectories, what)
    if mode == "tora_app":
        trajectories, mode = to_tora_grid(trajectories), "tora_official"
    outside = out_of_canvas(trajectories)
    if outside:
        t, p, x, y = outside[0]
        message = (f"{what}: {len(outside)} point(s) lie outside the {trajectories.width}x{trajectories.height} canvas, "
                   f"first track {t + 1} point {p + 1} at ({x:g}, {y:g})")
        if out_of_frame == "error":
            raise TrajectoryError(message + "; move them inside or set out_of_frame to clamp")
        if mode == "tora_official":
            log.warning("MotionKit: %s; kept for the official selection (flow sources outside the video are "
                        "clamped to its edge)", message)
        else:
            log.warning("MotionKit: %s; clamped to the canvas edge", message)
            trajectories = clamp_to_canvas(trajectories)
    source_frames = trajectories.num_frames
    tracks = []
    for track in trajectories.tracks:
        if mode == "tora_official":
            points = tora_official_points(track.points, frames)
        elif track.frames is not None:
            span = (source_frames or track.frames[-1] + 1) - 1
            scale = (frames - 1) / span if span > 0 else 1.0
            points = timed_points(track.points, [f * scale for f in track.frames], frames)
        else:
            points = arc_length_points(track.points, frames)
        tracks.append(Track([(float(x), float(y)) for x, y in points], track.name, list(range(frames))))
    return Trajectories(trajectories.width, trajectories.height, tracks, frames)
