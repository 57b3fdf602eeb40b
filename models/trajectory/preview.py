"""Drawing tracks over frames, to check them before a long sampling run."""
from __future__ import annotations

import colorsys
import math
import os
import uuid

import numpy as np
import torch
from PIL import Image, ImageDraw

from .data import Trajectories
from .resample import path_points, time_scale, track_positions

GOLDEN_RATIO_CONJUGATE = 0.618033988749895
BACKGROUND = (40, 40, 40)


def track_colors(count: int) -> list[tuple[int, int, int]]:
    """`count` distinct colours (hues spaced by the golden angle), the same as the widget's; no limit on count."""
    colors = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb((i * GOLDEN_RATIO_CONJUGATE) % 1.0, 0.85, 1.0)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return colors


def _arrow_head(draw: ImageDraw.ImageDraw, start, end, color, size: float) -> None:
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - size * math.cos(angle - 0.45), end[1] - size * math.sin(angle - 0.45))
    right = (end[0] - size * math.cos(angle + 0.45), end[1] - size * math.sin(angle + 0.45))
    draw.polygon([end, left, right], fill=color)


def save_reference_image(images: torch.Tensor, folder: str) -> str:
    """Write the first image of an IMAGE batch as a PNG into `folder` (for the widget to show); returns its name."""
    name = f"motionkit_reference_{uuid.uuid4().hex[:12]}.png"
    pixels = (images[0, ..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(os.path.join(folder, name))
    return name


def draw_trajectories(trajectories: Trajectories, images: torch.Tensor | None = None,
                      line_width: int = 3, point_radius: int = 6) -> torch.Tensor:
    """IMAGE [F, H, W, 3]: each frame with every track (line, arrow head at its end, its colour) and
    a dot at the track's position in that frame. Without images: dark frames of the canvas size, one per
    frame of the trajectories' frame count (one frame if they carry none)."""
    if images is None:
        frames = trajectories.num_frames or 1
        images = torch.full((frames, trajectories.height, trajectories.width, 3), BACKGROUND[0] / 255.0)
    frames, height, width = images.shape[0], images.shape[1], images.shape[2]
    sx, sy = width / trajectories.width, height / trajectories.height
    colors = track_colors(len(trajectories.tracks))
    paths, positions = [], []
    for track in trajectories.tracks:
        scaled = track.copy(points=[(x * sx, y * sy) for x, y in track.points])
        paths.append(path_points(scaled.points, scaled.interpolation, scaled.tension))
        if trajectories.per_frame() and len(scaled.points) == frames:
            positions.append(scaled.points)
        elif frames == 1:
            positions.append(scaled.points[:1])
        else:  # where the object is at each frame, as Resample Trajectories places it
            positions.append(track_positions(scaled, frames, time_scale(trajectories, track, frames)))
    head = max(6.0, 3.0 * line_width)
    base = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(base)
    for path, color in zip(paths, colors):
        draw.line(path, fill=color + (230,), width=line_width, joint="curve")
        last = next((p for p in reversed(path[:-1]) if p != path[-1]), None)
        if last is not None:
            _arrow_head(draw, last, path[-1], color + (230,), head)
    out = []
    for i in range(frames):
        frame = Image.fromarray((images[i].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()).convert("RGBA")
        frame.alpha_composite(base)
        dots = ImageDraw.Draw(frame)
        for dots_of_track, color in zip(positions, colors):
            x, y = dots_of_track[min(i, len(dots_of_track) - 1)]
            dots.ellipse([x - point_radius, y - point_radius, x + point_radius, y + point_radius],
                         fill=color + (255,), outline=(255, 255, 255, 255), width=2)
        out.append(torch.from_numpy(np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0))
    return torch.stack(out)
