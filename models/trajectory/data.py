"""The TRAJECTORY type: tracks of points drawn on a declared canvas.

One JSON text is used everywhere (the Draw Trajectories widget, the Load
Trajectories input, files):

    {"format": "motionkit.trajectories", "version": 2,
     "canvas": {"width": 720, "height": 480},
     "num_frames": 49,                      # optional: the clip's frame count
     "tracks": [{"name": "car",
                 "points": [[x, y], ...],   # pixels of the canvas, floats
                 "frames": [0, 10, ...],    # optional: frame index of each point
                 "lost_at": 17,             # optional: tracking lost the object at this frame
                 "interpolation": "spline", # optional (version 2): "polyline" (default) or "spline"
                 "tension": 0.5,            # optional (version 2): spline tension in [0, 1], default 0
                 "start_frame": 4,          # optional (version 2): untimed tracks move from this frame...
                 "end_frame": 40,           # ... to this one (default: 0 .. num_frames - 1)
                 "easing": "ease-in-out"}]} # optional (version 2): linear (default), ease-in, ease-out, ease-in-out

Version 1 files (no version-2 fields) still load. Points are in pixels of the
canvas (x to the right, y down, origin at the top left corner of the top left
pixel's centre, as OpenCV and Tora index pixels). `frames`, when given, is
strictly increasing, one per point: the point is where the object is at that
frame (timing); such a track takes no start_frame/end_frame. A resampled set
has one point per frame in every track (`frames` 0, 1, ...) and `num_frames`
set. `lost_at` is written by Trajectories from Video: the track's points stop
at the last frame it was reliably tracked. How a track places its object at
each frame is defined once, in resample.py (`track_positions`), and the widget
(web/js/trajectory_timing.js) computes the same numbers.
A track of one point is an anchor: the object stays at that point (zero flow
for Tora, a static track for Wan ATI, a still shape in a control video).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

from ..errors import MotionKitError

FORMAT_NAME = "motionkit.trajectories"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
INTERPOLATIONS = ("polyline", "spline")
EASINGS = ("linear", "ease-in", "ease-out", "ease-in-out")
MAX_COORDINATE = 16384.0
"""Coordinates beyond this (in canvas pixels) are rejected as huge."""


class TrajectoryError(MotionKitError):
    """Bad trajectory input; the message names the input, what was expected and how to fix it."""


@dataclass
class Track:
    points: list[tuple[float, float]]
    name: str = ""
    frames: list[int] | None = None
    lost_at: int | None = None
    interpolation: str = "polyline"
    tension: float = 0.0
    start_frame: int | None = None
    end_frame: int | None = None
    easing: str = "linear"

    def copy(self, **changes) -> "Track":
        """A copy (lists copied too) with `changes` applied."""
        fields = {"points": list(self.points), "frames": None if self.frames is None else list(self.frames)}
        return replace(self, **{**fields, **changes})


@dataclass
class Trajectories:
    """Tracks on a canvas of `width` x `height` pixels (the TRAJECTORY type)."""

    width: int
    height: int
    tracks: list[Track] = field(default_factory=list)
    num_frames: int | None = None

    def to_json(self) -> str:
        data = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                "canvas": {"width": self.width, "height": self.height}}
        if self.num_frames is not None:
            data["num_frames"] = self.num_frames
        data["tracks"] = []
        for track in self.tracks:
            item = {"name": track.name, "points": [[plain_number(x), plain_number(y)] for x, y in track.points]}
            if track.frames is not None:
                item["frames"] = list(track.frames)
            if track.lost_at is not None:
                item["lost_at"] = track.lost_at
            if track.interpolation != "polyline":
                item["interpolation"], item["tension"] = track.interpolation, plain_number(track.tension)
            for key in ("start_frame", "end_frame"):
                if getattr(track, key) is not None:
                    item[key] = getattr(track, key)
            if track.easing != "linear":
                item["easing"] = track.easing
            data["tracks"].append(item)
        return json.dumps(data)

    def per_frame(self) -> bool:
        """True when every track has exactly one point per frame, at frames 0, 1, ... (a resampled set)."""
        if self.num_frames is None:
            return False
        every_frame = list(range(self.num_frames))
        return all(len(t.points) == self.num_frames and t.frames == every_frame and t.easing == "linear"
                   for t in self.tracks)


def plain_number(value: float):
    return int(value) if float(value).is_integer() else float(value)


def validate(trajectories: Trajectories, what: str = "trajectories") -> Trajectories:
    """Check a set of tracks: canvas at least 2x2, tracks of 1+ finite, not huge points, frames consistent.
    A single-point track is an anchor: the object stays at that point for the whole video."""
    if trajectories.width < 2 or trajectories.height < 2:
        raise TrajectoryError(f"{what}: the canvas is {trajectories.width}x{trajectories.height} pixels; "
                              "it must be at least 2x2 (set the canvas width and height to the video's size)")
    if not trajectories.tracks:
        raise TrajectoryError(f"{what}: there are no tracks; draw or load at least one track (one point or more)")
    for index, track in enumerate(trajectories.tracks):
        label = f"{what}: track {index + 1}" + (f" ('{track.name}')" if track.name else "")
        if len(track.points) == 0:
            raise TrajectoryError(f"{label} is empty; give it at least one point (one point: the object stays "
                                  "there) or delete it")
        for p, (x, y) in enumerate(track.points):
            if not (math.isfinite(x) and math.isfinite(y)):
                raise TrajectoryError(f"{label}, point {p + 1} is ({x}, {y}); coordinates must be finite numbers")
            if abs(x) > MAX_COORDINATE or abs(y) > MAX_COORDINATE:
                raise TrajectoryError(f"{label}, point {p + 1} is ({x}, {y}); coordinates beyond "
                                      f"{MAX_COORDINATE:g} pixels are not accepted (are they in the canvas' pixels?)")
        if track.frames is not None:
            if len(track.frames) != len(track.points):
                raise TrajectoryError(f"{label} has {len(track.points)} points but {len(track.frames)} frame indices; "
                                      "give one frame index per point or none")
            if any(b <= a for a, b in zip(track.frames, track.frames[1:])) or track.frames[0] < 0:
                raise TrajectoryError(f"{label}: frame indices {track.frames} must be non-negative and strictly increasing")
        _validate_timing(track, label)
    return trajectories


def _validate_timing(track: Track, label: str) -> None:
    """The version-2 fields: interpolation, tension, start/end frame, easing."""
    if track.interpolation not in INTERPOLATIONS:
        raise TrajectoryError(f"{label}: interpolation '{track.interpolation}' is not one of {', '.join(INTERPOLATIONS)}")
    if not (isinstance(track.tension, (int, float)) and 0.0 <= track.tension <= 1.0):
        raise TrajectoryError(f"{label}: tension {track.tension} must be a number from 0 (Catmull-Rom) to 1 (straight lines)")
    if track.easing not in EASINGS:
        raise TrajectoryError(f"{label}: easing '{track.easing}' is not one of {', '.join(EASINGS)}")
    for key in ("start_frame", "end_frame"):
        value = getattr(track, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise TrajectoryError(f"{label}: {key} {value!r} must be a frame index (an integer of at least 0)")
    if track.frames is not None and (track.start_frame is not None or track.end_frame is not None):
        raise TrajectoryError(f"{label} has both per-point frames and start_frame/end_frame; keep one: "
                              "frames time every point, start_frame/end_frame time the whole track")
    if track.start_frame is not None and track.end_frame is not None and track.end_frame < track.start_frame:
        raise TrajectoryError(f"{label}: end_frame {track.end_frame} is before start_frame {track.start_frame}; "
                              "swap them or move the end later")


def validate_clip(width: int, height: int, num_frames: int) -> None:
    """The Draw Trajectories inputs: a canvas of at least 2x2 pixels and at least 2 frames."""
    for name, value in (("width", width), ("height", height)):
        if value < 2:
            raise TrajectoryError(f"{name} is {value}; the canvas must be at least 2 pixels in each direction: "
                                  f"set {name} to the video's {name} (Tora: 720x480)")
    if num_frames < 2:
        raise TrajectoryError(f"num_frames is {num_frames}; a trajectory needs at least 2 frames (a start and a frame "
                              "to move to): set num_frames to the video's frame count (Tora: 49)")


def out_of_canvas(trajectories: Trajectories) -> list[tuple[int, int, float, float]]:
    """(track, point, x, y) of every point outside [0, width-1] x [0, height-1]."""
    found = []
    for t, track in enumerate(trajectories.tracks):
        for p, (x, y) in enumerate(track.points):
            if not (0 <= x <= trajectories.width - 1 and 0 <= y <= trajectories.height - 1):
                found.append((t, p, x, y))
    return found


def clamp_to_canvas(trajectories: Trajectories) -> Trajectories:
    """A copy with every point clamped into [0, width-1] x [0, height-1]."""
    w, h = trajectories.width - 1, trajectories.height - 1
    tracks = [t.copy(points=[(min(max(x, 0), w), min(max(y, 0), h)) for x, y in t.points]) for t in trajectories.tracks]
    return Trajectories(trajectories.width, trajectories.height, tracks, trajectories.num_frames)


def rescale(trajectories: Trajectories, width: int, height: int) -> Trajectories:
    """A copy on a `width` x `height` canvas, every point scaled with the canvas."""
    sx, sy = width / trajectories.width, height / trajectories.height
    tracks = [t.copy(points=[(x * sx, y * sy) for x, y in t.points]) for t in trajectories.tracks]
    return Trajectories(width, height, tracks, trajectories.num_frames)
