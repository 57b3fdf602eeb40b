"""Resampling tracks to one point per video frame.

`arc_length` (default): each track's object is placed by `track_positions`
(the definition shared with the Draw Trajectories widget): along the drawn
polyline or spline from its start to its end frame (the whole clip by
default, first and last points kept), at constant speed or shaped by the
track's easing; tracks with frame indices pass each point at its frame and
move along the path between them in the same way (held before the first and
after the last).

`tora_official`: the point selection of Tora's `sat/utils/flow_utils.py`
(`read_points` then `process_points`), kept exactly, quirks included: the
coordinates are truncated to integers with `int()` first; with more points
than frames it keeps every (n // frames)-th point and then cuts the list to
`frames` points, so the end of a long path is DROPPED; with fewer points it
inserts points evenly between consecutive drawn points (earlier segments get
the remainder), truncated with `int()`. Frame indices, splines and easing are ignored in this mode.
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
from dataclasses import replace

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
    tracks = [replace(t, points=[(int(x * scale_x), int(y * scale_y)) for x, y in t.points])
              for t in trajectories.tracks]
    return Trajectories(TORA_GRID, TORA_GRID, tracks, trajectories.num_frames)


SPLINE_STEPS = 16
"""A spline segment (between two drawn points) is flattened into this many straight pieces."""


def ease(easing: str, u: float) -> float:
    """Progress 0..1 through an easing curve (cubic: ease-in u^3, ease-out 1-(1-u)^3, ease-in-out both halves)."""
    if easing == "ease-in":
        return u * u * u
    if easing == "ease-out":
        v = 1.0 - u
        return 1.0 - v * v * v
    if easing == "ease-in-out":
        if u < 0.5:
            return 4.0 * u * u * u
        v = 1.0 - u
        return 1.0 - 4.0 * v * v * v
    return u


def path_points(points: list, interpolation: str = "polyline", tension: float = 0.0) -> list[tuple[float, float]]:
    """The track's path as a polyline: the points themselves, or the cardinal spline through them flattened into
    SPLINE_STEPS pieces per segment (drawn point i is path point i * SPLINE_STEPS).

    Cardinal spline as d3.curveCardinal: a cubic Hermite segment from p[i] to p[i+1] with tangents
    m[i] = (1 - tension) / 2 * (p[i+1] - p[i-1]), the end points repeated (p[-1] = p[0], p[n] = p[n-1]);
    tension 0 is Catmull-Rom, tension 1 straight lines."""
    points = [(float(x), float(y)) for x, y in points]
    if interpolation != "spline" or len(points) < 3:
        return points
    k = (1.0 - tension) / 2.0
    n = len(points)
    tangents = []
    for i in range(n):
        (xa, ya), (xb, yb) = points[max(i - 1, 0)], points[min(i + 1, n - 1)]
        tangents.append((k * (xb - xa), k * (yb - ya)))
    path = []
    for i in range(n - 1):
        (x0, y0), (x1, y1) = points[i], points[i + 1]
        (mx0, my0), (mx1, my1) = tangents[i], tangents[i + 1]
        for j in range(SPLINE_STEPS):
            v = j / SPLINE_STEPS
            v2 = v * v
            v3 = v2 * v
            h00, h10, h01, h11 = 2.0 * v3 - 3.0 * v2 + 1.0, v3 - 2.0 * v2 + v, -2.0 * v3 + 3.0 * v2, v3 - v2
            path.append((h00 * x0 + h10 * mx0 + h01 * x1 + h11 * mx1, h00 * y0 + h10 * my0 + h01 * y1 + h11 * my1))
    path.append(points[-1])
    return path


def cumulative_lengths(path: list) -> list[float]:
    """Arc length from the start to each path point."""
    lengths = [0.0]
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        dx, dy = x1 - x0, y1 - y0
        lengths.append(lengths[-1] + math.sqrt(dx * dx + dy * dy))
    return lengths


def point_at_length(path: list, lengths: list[float], s: float) -> tuple[float, float]:
    """The path point at arc length `s` (ends held)."""
    if s <= 0.0 or len(path) == 1:
        return path[0]
    if s >= lengths[-1]:
        return path[-1]
    k = 0
    while k < len(path) - 2 and lengths[k + 1] <= s:
        k += 1
    piece = lengths[k + 1] - lengths[k]
    q = 0.0 if piece == 0.0 else (s - lengths[k]) / piece
    (x0, y0), (x1, y1) = path[k], path[k + 1]
    return (x0 + q * (x1 - x0), y0 + q * (y1 - y0))


def track_positions(track: Track, frames: int, time_scale: float = 1.0) -> list[tuple[float, float]]:
    """Where the track's object is at each frame 0..frames-1: THE definition the widget previews (README,
    "Trajectory JSON"; web/js/trajectory_timing.js computes the same numbers).

    The path is `path_points`, s the arc length along it. Keys (time, s) say where the object is when:
    an untimed track has two, (start_frame, 0) and (end_frame, L) (default: the first and the last frame);
    a timed track one per point, (frames[i], arc length of point i). Frame numbers are multiplied by
    `time_scale`. Before the first key the object is at the start, after the last at the end; between keys
    i and i + 1, s = s_i + (s_{i+1} - s_i) * ease(u), u = (f - t_i) / (t_{i+1} - t_i): constant speed along
    the path for linear easing."""
    path = path_points(track.points, track.interpolation, track.tension)
    lengths = cumulative_lengths(path)
    if track.frames is not None:
        step = SPLINE_STEPS if len(path) != len(track.points) else 1
        times = [f * time_scale for f in track.frames]
        arcs = [lengths[i * step] for i in range(len(track.points))]
    else:
        times = [(track.start_frame or 0) * time_scale,
                 (frames - 1) if track.end_frame is None else track.end_frame * time_scale]
        arcs = [0.0, lengths[-1]]
    result = []
    for f in range(frames):
        if f <= times[0]:
            s = arcs[0]
        elif f >= times[-1]:
            s = arcs[-1]
        else:
            i = 0
            while i < len(times) - 2 and times[i + 1] <= f:
                i += 1
            u = (f - times[i]) / (times[i + 1] - times[i])
            s = arcs[i] + (arcs[i + 1] - arcs[i]) * ease(track.easing, u)
        result.append(point_at_length(path, lengths, s))
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
    tracks = []
    for track in trajectories.tracks:
        if mode == "tora_official":
            points = tora_official_points(track.points, frames)
        else:
            points = track_positions(track, frames, time_scale(trajectories, track, frames))
        tracks.append(Track([(float(x), float(y)) for x, y in points], track.name, list(range(frames))))
    return Trajectories(trajectories.width, trajectories.height, tracks, frames)


def time_scale(trajectories: Trajectories, track: Track, frames: int) -> float:
    """Factor from the track's frame numbers to `frames`: the clip's first and last frames stay first and last.
    Without a declared num_frames a timed track spans its own frames, an untimed one the output."""
    span = (trajectories.num_frames or (track.frames[-1] + 1 if track.frames is not None else frames)) - 1
    return (frames - 1) / span if span > 0 else 1.0


def frame_count(requested: int, trajectories: Trajectories, what: str = "num_frames") -> int:
    """`requested`, or the trajectories' own frame count when it is 0 ("from the trajectories")."""
    if requested != 0:
        return requested
    if trajectories.num_frames is None:
        raise TrajectoryError(f"{what} is 0 (take the frame count from the trajectories), but these trajectories "
                              "carry none (e.g. loaded from a point list); set num_frames to the video's frame count")
    return trajectories.num_frames
