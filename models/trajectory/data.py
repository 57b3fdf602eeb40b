"""The TRAJECTORY type: tracks of points drawn on a declared canvas.

One JSON text is used everywhere (the Draw Trajectories widget, the Load
Trajectories input, files):

    {"format": "motionkit.trajectories", "version": 1,
     "canvas": {"width": 720, "height": 480},
     "num_frames": 49,                      # optional: set once resampled
     "tracks": [{"name": "car",
                 "points": [[x, y], ...],   # pixels of the canvas, floats
                 "frames": [0, 10, ...],    # optional: frame index of each point
                 "lost_at": 17}]}           # optional: tracking lost the object at this frame

Points are in pixels of the canvas (x to the right, y down, origin at the top
left corner of the top left pixel's centre, as OpenCV and Tora index pixels).
`frames`, when given, is strictly increasing, one per point: the point is
where the object is at that frame (timing). A resampled set has one point per
frame in every track and `num_frames` set. `lost_at` is written by Trajectories
from Video: the track's points stop at the last frame it was reliably tracked.
A track of one point is an anchor: the object stays at that point (zero flow
for Tora, a static track for Wan ATI, a still shape in a control video).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..errors import MotionKitError

FORMAT_NAME = "motionkit.trajectories"
FORMAT_VERSION = 1
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
            data["tracks"].append(item)
        return json.dumps(data)

    def per_frame(self) -> bool:
        """True when every track has exactly one point per frame (a resampled set)."""
        return self.num_frames is not None and all(len(t.points) == self.num_frames for t in self.tracks)


def plain_number(value: float):
    return int(value) if float(value).is_integer() else float(value)


def validate(trajectories: Trajectories, what: str = "trajectories") -> Trajectories:
    """Check a set of tracks: canvas at least 2x2, tracks of 1+ finite, not huge points, frames consistent.
    A single-point track is an anchor: the object stays at that point for the whole video."""
    if trajectories.width < 2 or trajectories.height < 2:
        raise TrajectoryError(f"{what}: the canvas is {trajectories.width}x{trajectories.height} pixels; "
                              "it must be at least 2x2 (set the canvas width and height to the video's size)")
    if not trajectories.tracks:
        raise TrajectoryError(f"{what}: there are no tracks; draw or load at least one track of two or more points")
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
    return trajectories


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
    tracks = [Track([(min(max(x, 0), w), min(max(y, 0), h)) for x, y in t.points], t.name,
                    None if t.frames is None else list(t.frames), t.lost_at) for t in trajectories.tracks]
    return Trajectories(trajectories.width, trajectories.height, tracks, trajectories.num_frames)


def rescale(trajectories: Trajectories, width: int, height: int) -> Trajectories:
    """A copy on a `width` x `height` canvas, every point scaled with the canvas."""
    sx, sy = width / trajectories.width, height / trajectories.height
    tracks = [Track([(x * sx, y * sy) for x, y in t.points], t.name, None if t.frames is None else list(t.frames),
                    t.lost_at) for t in trajectories.tracks]
    return Trajectories(width, height, tracks, trajectories.num_frames)
