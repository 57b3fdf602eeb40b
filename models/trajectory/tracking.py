"""Point tracking through a video with OpenCV's pyramidal Lucas-Kanade, and Tora's TrajError.

Tracking (Bouguet's pyramidal LK, `cv2.calcOpticalFlowPyrLK`): each point is tracked from frame t to t+1,
then back from t+1 to t; it is kept only if both directions succeed, the round trip returns within
`fb_threshold` pixels of where it started (forward-backward consistency, Kalal et al. 2010) and it stays
inside the frame. A point that fails is LOST from that frame on: its track ends at the last reliable frame
and records `lost_at`; nothing is extrapolated.

TrajError (Tora, Sec. 4.1): the mean L2 distance, per frame, between the trajectories requested and the
motion found in the generated video. Tora measures the generated motion with a point tracker started at
the requested tracks' first points; here that tracker is the LK tracker above.
"""
from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from .data import Track, Trajectories, TrajectoryError
from .resample import resample

log = logging.getLogger("MotionKit")
SEEDS = ("grid", "corners", "seed_points")


def check_video(images: torch.Tensor) -> None:
    """An IMAGE batch to track through: [F, H, W, C] with at least 2 frames."""
    if images.ndim != 4 or images.shape[0] < 2:
        raise TrajectoryError(f"images: expected a video of at least 2 frames [F, H, W, C], got shape "
                              f"{tuple(images.shape)}; connect the generated video (all its frames), not one image")


def _gray_frames(images: torch.Tensor) -> list[np.ndarray]:
    """IMAGE [F, H, W, C] in 0..1 -> uint8 grayscale frames."""
    check_video(images)
    frames = (images[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.shape[-1] == 3 else f[..., 0] for f in frames]


def grid_points(width: int, height: int, per_row: int) -> np.ndarray:
    """A per_row x rows grid of points at cell centres (rows chosen to keep cells square)."""
    rows = max(1, round(per_row * height / width))
    xs = (np.arange(per_row) + 0.5) * width / per_row
    ys = (np.arange(rows) + 0.5) * height / rows
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)


def corner_points(gray: np.ndarray, count: int, min_distance: float) -> np.ndarray:
    """The `count` strongest Shi-Tomasi corners of the first frame."""
    corners = cv2.goodFeaturesToTrack(gray, maxCorners=count, qualityLevel=0.01, minDistance=min_distance)
    if corners is None:
        raise TrajectoryError("images: the first frame has no corners to track (a flat image?); use grid or seed_points")
    return corners.reshape(-1, 2).astype(np.float32)


def track_points(images: torch.Tensor, seeds: np.ndarray, window: int = 21, levels: int = 3,
                 fb_threshold: float = 1.0, check_interrupt=lambda: None) -> tuple[np.ndarray, np.ndarray]:
    """Positions [N, F, 2] (NaN once lost) and the frame each point was lost at [N] (-1: never)."""
    gray = _gray_frames(images)
    height, width = gray[0].shape
    count, frames = seeds.shape[0], len(gray)
    positions = np.full((count, frames, 2), np.nan, dtype=np.float32)
    positions[:, 0] = seeds
    lost_at = np.full(count, -1, dtype=np.int64)
    alive = np.ones(count, dtype=bool)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    params = dict(winSize=(window, window), maxLevel=levels, criteria=criteria)
    for t in range(frames - 1):
        check_interrupt()
        index = np.nonzero(alive)[0]
        if index.size == 0:
            break
        start = positions[index, t].reshape(-1, 1, 2)
        forward, ok_f, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t + 1], start, None, **params)
        backward, ok_b, _ = cv2.calcOpticalFlowPyrLK(gray[t + 1], gray[t], forward, None, **params)
        forward, backward = forward.reshape(-1, 2), backward.reshape(-1, 2)
        round_trip = np.linalg.norm(backward - start.reshape(-1, 2), axis=1)
        inside = (forward[:, 0] >= 0) & (forward[:, 0] <= width - 1) & (forward[:, 1] >= 0) & (forward[:, 1] <= height - 1)
        good = ok_f.ravel().astype(bool) & ok_b.ravel().astype(bool) & (round_trip < fb_threshold) & inside
        positions[index[good], t + 1] = forward[good]
        lost = index[~good]
        lost_at[lost] = t + 1
        alive[lost] = False
    return positions, lost_at


def tracks_from_video(images: torch.Tensor, seed: str = "grid", grid_per_row: int = 8, max_corners: int = 16,
                      seed_points: list[tuple[float, float]] | None = None, window: int = 21, levels: int = 3,
                      fb_threshold: float = 1.0, check_interrupt=lambda: None) -> Trajectories:
    """Trajectories of points tracked through `images` (canvas = the video size; one frame index per point)."""
    if seed not in SEEDS:
        raise TrajectoryError(f"seed: '{seed}' is not one of {', '.join(SEEDS)}")
    frames, height, width = images.shape[0], images.shape[1], images.shape[2]
    if seed == "grid":
        seeds = grid_points(width, height, grid_per_row)
    elif seed == "corners":
        seeds = corner_points(_gray_frames(images[:2])[0], max_corners, max(4.0, min(width, height) / 20))
    else:
        if not seed_points:
            raise TrajectoryError("seed_points: give the points to track (e.g. [[120, 80], [300, 200]]) or choose another seed")
        seeds = np.array(seed_points, dtype=np.float32)
        outside = (seeds[:, 0] < 0) | (seeds[:, 0] > width - 1) | (seeds[:, 1] < 0) | (seeds[:, 1] > height - 1)
        if outside.any():
            x, y = seeds[np.argmax(outside)]
            raise TrajectoryError(f"seed_points: ({x:g}, {y:g}) is outside the {width}x{height} video")
    positions, lost_at = track_points(images, seeds, window, levels, fb_threshold, check_interrupt)
    tracks, dropped = [], 0
    for n in range(seeds.shape[0]):
        last = frames if lost_at[n] < 0 else int(lost_at[n])
        if last < 2:
            dropped += 1
            continue
        points = [(float(x), float(y)) for x, y in positions[n, :last]]
        tracks.append(Track(points, f"point {n + 1}", list(range(last)), None if lost_at[n] < 0 else int(lost_at[n])))
    if dropped:
        log.info("MotionKit: %d of %d points were lost before frame 2 and are left out", dropped, seeds.shape[0])
    if not tracks:
        raise TrajectoryError("images: every point was lost in the first frames; raise fb_threshold or choose other points")
    return Trajectories(width, height, tracks, frames)


def trajectory_error(images: torch.Tensor, requested: Trajectories, window: int = 21, levels: int = 3,
                     fb_threshold: float = 1.0) -> tuple[float, np.ndarray, np.ndarray]:
    """Tora's TrajError: (mean over frames, per-frame mean L2 distance [F] in video pixels, tracked-point count [F]).

    The requested tracks are resampled (arc length, timing kept) to the video's frame count and scaled from their
    canvas to the video size; each track's first point is tracked through the video; lost points leave the mean."""
    check_video(images)
    frames, height, width = images.shape[0], images.shape[1], images.shape[2]
    if requested.per_frame() and requested.num_frames == frames:
        target = requested
    else:
        target = resample(requested, frames, "arc_length", "clamp")
    sx, sy = width / target.width, height / target.height
    wanted = np.array([[(x * sx, y * sy) for x, y in t.points] for t in target.tracks], dtype=np.float32)  # [N, F, 2]
    positions, _ = track_points(images, wanted[:, 0].copy(), window, levels, fb_threshold)
    distance = np.linalg.norm(positions - wanted, axis=2)  # NaN where lost
    tracked = np.sum(~np.isnan(distance), axis=0)
    with np.errstate(invalid="ignore"):
        per_frame = np.where(tracked > 0, np.nansum(distance, axis=0) / np.maximum(tracked, 1), np.nan)
    valid = per_frame[~np.isnan(per_frame)]
    return (float(valid.mean()) if valid.size else math.nan), per_frame, tracked


def plot_error(per_frame: np.ndarray, width: int = 640, height: int = 320) -> torch.Tensor:
    """A line chart of the per-frame error: IMAGE [1, height, width, 3]."""
    image = Image.new("RGB", (width, height), (30, 30, 30))
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 56, width - 16, 28, height - 32
    finite = per_frame[np.isfinite(per_frame)]
    top_value = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    draw.rectangle([left, top, right, bottom], outline=(110, 110, 110))
    for k in range(5):
        value = top_value * k / 4
        y = bottom - (bottom - top) * k / 4
        draw.line([left, y, right, y], fill=(60, 60, 60))
        draw.text((4, y - 6), f"{value:.1f}", fill=(200, 200, 200))
    frames = len(per_frame)
    points = [(left + (right - left) * i / max(frames - 1, 1), bottom - (bottom - top) * v / top_value)
              for i, v in enumerate(per_frame) if np.isfinite(v)]
    if len(points) > 1:
        draw.line(points, fill=(255, 140, 40), width=2)
    for x, y in points:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 200, 120))
    mean = float(finite.mean()) if finite.size else math.nan
    draw.text((left, 8), f"TrajError per frame (pixels); mean {mean:.2f}", fill=(230, 230, 230))
    draw.text((left, bottom + 8), f"frame 0 .. {frames - 1}", fill=(200, 200, 200))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).unsqueeze(0)
