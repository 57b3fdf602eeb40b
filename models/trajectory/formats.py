"""Reading trajectories from text: this pack's JSON and the formats users already have.

- `motionkit_json`: this pack's versioned JSON (see data.py).
- `kjnodes_spline`: the `coord_str` output of KJNodes' Spline Editor, a list of
  {"x": .., "y": ..} (one spline) or a list of such lists (several splines);
  KJNodes writes Python's repr, with single quotes, which is accepted.
- `wan_ati_tracks`: the `tracks` input of ComfyUI's WanTrackToVideo (ATI): a
  list of tracks, each a list of {"x", "y"} with one point per frame (a single
  track may be given unwrapped). Points get frame indices 0, 1, 2, ...
- `point_list`: [[x, y], ...] or a list of such lists, or lines "x,y" (Tora's
  trajectory .txt files, whose canvas is 256x256).

Formats without a canvas (all but motionkit_json) use the canvas size given.
"""
from __future__ import annotations

import json
import math

from .data import FORMAT_NAME, READABLE_VERSIONS, Track, Trajectories, TrajectoryError, validate

FORMATS = ("auto", "motionkit_json", "kjnodes_spline", "wan_ati_tracks", "point_list")
_LABELS = {
    "motionkit_json": "MotionKit trajectory JSON ({\"format\": \"motionkit.trajectories\", \"version\": 2, ...})",
    "kjnodes_spline": "KJNodes Spline Editor coordinates ([{'x': .., 'y': ..}, ...] or a list of those lists)",
    "wan_ati_tracks": "WanTrackToVideo tracks JSON ([[{\"x\": .., \"y\": ..}, ...], ...])",
    "point_list": "a list of points ([[x, y], ...], a list of those lists, or lines 'x,y')",
}


def _nested_too_deep(what: str) -> TrajectoryError:
    return TrajectoryError(f"{what}: the text nests lists/objects too deeply to read (a RecursionError); "
                           "trajectories need 4 levels: tracks, points, a point, its coordinates")


def parse_trajectories(text: str, fmt: str = "auto", canvas_width: int = 720, canvas_height: int = 480,
                       what: str = "text") -> Trajectories:
    """Read `text` in format `fmt` ('auto' detects it) into validated Trajectories."""
    try:
        return _parse_trajectories(text, fmt, canvas_width, canvas_height, what)
    except RecursionError:  # json and the messages quoting a value recurse per nesting level
        raise _nested_too_deep(what) from None


def _parse_trajectories(text: str, fmt: str, canvas_width: int, canvas_height: int, what: str) -> Trajectories:
    if fmt not in FORMATS:
        raise TrajectoryError(f"{what}: unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    stripped = (text or "").strip()
    if not stripped:
        raise TrajectoryError(f"{what}: the text is empty; paste trajectories as "
                              + (" or ".join(_LABELS.values()) if fmt == "auto" else _LABELS[fmt]))
    if fmt == "auto":
        fmt = detect_format(stripped)
    if fmt == "motionkit_json":
        trajectories = _from_motionkit(_load_json(stripped, fmt, what), what)
    elif fmt == "point_list" and not stripped.startswith("["):
        trajectories = Trajectories(canvas_width, canvas_height, [Track(_point_lines(stripped, what))])
    else:
        data = _load_json(stripped, fmt, what, single_quotes=True)
        reader = _point_list_tracks if fmt == "point_list" else _xy_dict_tracks
        tracks = reader(data, fmt, what)
        if fmt == "wan_ati_tracks":
            for track in tracks:
                track.frames = list(range(len(track.points)))
        trajectories = Trajectories(canvas_width, canvas_height, tracks)
    for index, track in enumerate(trajectories.tracks):
        track.name = track.name or f"track {index + 1}"
    return validate(trajectories, what)


def detect_format(text: str) -> str:
    """The format a text looks like: '{' is this pack's JSON, {x, y} dicts are KJNodes, else a point list."""
    if text.startswith("{"):
        return "motionkit_json"
    if text.startswith("[") and "x" in text and ("'x'" in text or '"x"' in text):
        return "kjnodes_spline"
    return "point_list"


def _where(text: str, error: json.JSONDecodeError) -> str:
    snippet = text[max(0, error.pos - 15):error.pos + 15].replace("\n", "\\n")
    return f"line {error.lineno}, column {error.colno} (near '{snippet}'): {error.msg}"


def _load_json(text: str, fmt: str, what: str, single_quotes: bool = False):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if single_quotes and "'" in text:
            try:
                return json.loads(text.replace("'", '"'))
            except json.JSONDecodeError as second:
                error = second
        raise TrajectoryError(f"{what}: expected {_LABELS[fmt]}; the text breaks at {_where(text, error)}") from None


def _number(value, fmt: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrajectoryError(f"{where}: expected a number, got {json.dumps(value)} ({_LABELS[fmt]})")
    return float(value)


def _from_motionkit(data, what: str) -> Trajectories:
    fmt = "motionkit_json"
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise TrajectoryError(f"{what}: expected {_LABELS[fmt]}; the object has no \"format\": \"{FORMAT_NAME}\"")
    version = data.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise TrajectoryError(f"{what}: trajectory JSON version {version!r} is not supported; this MotionKit reads "
                              f"versions {' and '.join(map(str, READABLE_VERSIONS))} (update MotionKit for newer files)")
    canvas = data.get("canvas")
    if not isinstance(canvas, dict) or not all(isinstance(canvas.get(k), int) for k in ("width", "height")):
        raise TrajectoryError(f"{what}: \"canvas\" must be {{\"width\": <int>, \"height\": <int>}}, got {json.dumps(canvas)}")
    num_frames = data.get("num_frames")
    if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 2):
        raise TrajectoryError(f"{what}: \"num_frames\" must be an integer of at least 2, got {json.dumps(num_frames)}")
    tracks = []
    raw_tracks = data.get("tracks")
    if not isinstance(raw_tracks, list):
        raise TrajectoryError(f"{what}: \"tracks\" must be a list of {{\"name\", \"points\"}} objects")
    for t, raw in enumerate(raw_tracks):
        where = f"{what}: tracks[{t}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("points"), list):
            raise TrajectoryError(f"{where} must be an object with \"points\": [[x, y], ...]")
        points = [_pair(p, fmt, f"{where}.points[{i}]") for i, p in enumerate(raw["points"])]
        frames = raw.get("frames")
        if frames is not None and (not isinstance(frames, list) or not all(isinstance(f, int) and not isinstance(f, bool) for f in frames)):
            raise TrajectoryError(f"{where}.frames must be a list of integers (one frame index per point)")
        lost_at = raw.get("lost_at")
        if lost_at is not None and (not isinstance(lost_at, int) or isinstance(lost_at, bool)):
            raise TrajectoryError(f"{where}.lost_at must be a frame index (an integer)")
        track = Track(points, str(raw.get("name") or ""), frames, lost_at)
        if version >= 2:
            _read_timing(raw, track, where)
        tracks.append(track)
    return Trajectories(canvas["width"], canvas["height"], tracks, num_frames)


def _read_timing(raw: dict, track: Track, where: str) -> None:
    """Version-2 track fields (checked for their meaning by data.validate)."""
    for key in ("interpolation", "easing"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise TrajectoryError(f"{where}.{key} must be a string, got {json.dumps(raw[key])}")
            setattr(track, key, raw[key])
    if "tension" in raw:
        track.tension = _number(raw["tension"], "motionkit_json", f"{where}.tension")
    for key in ("start_frame", "end_frame"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TrajectoryError(f"{where}.{key} must be a frame index (an integer), got {json.dumps(value)}")
        setattr(track, key, value)


def _pair(value, fmt: str, where: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise TrajectoryError(f"{where}: expected a point [x, y], got {json.dumps(value)}")
    return _number(value[0], fmt, where), _number(value[1], fmt, where)


def _xy(value, fmt: str, where: str) -> tuple[float, float]:
    if not isinstance(value, dict) or "x" not in value or "y" not in value:
        raise TrajectoryError(f"{where}: expected a point {{\"x\": .., \"y\": ..}}, got {json.dumps(value)} ({_LABELS[fmt]})")
    return _number(value["x"], fmt, where), _number(value["y"], fmt, where)


def _xy_dict_tracks(data, fmt: str, what: str) -> list[Track]:
    if not isinstance(data, list) or not data:
        raise TrajectoryError(f"{what}: expected {_LABELS[fmt]}, got {type(data).__name__} {json.dumps(data)[:60]}")
    if isinstance(data[0], dict):
        data = [data]
    return [Track([_xy(p, fmt, f"{what}: track {t + 1}, point {i + 1}") for i, p in enumerate(track)])
            if isinstance(track, list) else _raise(f"{what}: track {t + 1}: expected a list of points, got {json.dumps(track)[:60]}")
            for t, track in enumerate(data)]


def _point_list_tracks(data, fmt: str, what: str) -> list[Track]:
    if not isinstance(data, list) or not data:
        raise TrajectoryError(f"{what}: expected {_LABELS[fmt]}, got {json.dumps(data)[:60]}")
    if isinstance(data[0], list) and data[0] and isinstance(data[0][0], list):
        return [Track([_pair(p, fmt, f"{what}: track {t + 1}, point {i + 1}") for i, p in enumerate(track)])
                if isinstance(track, list) else _raise(f"{what}: track {t + 1}: expected a list of [x, y] points")
                for t, track in enumerate(data)]
    return [Track([_pair(p, fmt, f"{what}: point {i + 1}") for i, p in enumerate(data)])]


def _point_lines(text: str, what: str) -> list[tuple[float, float]]:
    points = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(";", ",").split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise TrajectoryError(f"{what}: expected {_LABELS['point_list']}; the text breaks at line {number}: "
                                  f"'{line.strip()[:40]}' is not 'x,y'") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise TrajectoryError(f"{what}: line {number}: coordinates must be finite numbers, got '{line.strip()}'")
        points.append((x, y))
    return points


def _raise(message: str):
    raise TrajectoryError(message)


def parse_points(text: str, what: str = "points") -> list[tuple[float, float]]:
    """Loose points (seeds, not tracks): [x, y], [[x, y], ...], several such lists, or lines 'x,y'; at least one."""
    try:
        return _parse_points(text, what)
    except RecursionError:
        raise _nested_too_deep(what) from None


def _parse_points(text: str, what: str) -> list[tuple[float, float]]:
    stripped = (text or "").strip()
    if not stripped:
        raise TrajectoryError(f"{what}: no points given; write them as [[x, y], ...] or one 'x,y' per line")
    if not stripped.startswith("["):
        points = _point_lines(stripped, what)
    else:
        data = _load_json(stripped, "point_list", what)
        if isinstance(data, list) and len(data) == 2 and all(isinstance(v, (int, float)) for v in data):
            data = [data]
        points = [p for track in _point_list_tracks(data, "point_list", what) for p in track.points]
    for x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise TrajectoryError(f"{what}: ({x}, {y}) is not a finite point")
    return points
