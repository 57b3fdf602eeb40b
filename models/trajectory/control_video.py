"""Control videos from trajectories: shapes moving along the tracks, for the control-video models (VACE, Wan Fun
Control, EasyAnimate control).

`shapes`: a filled circle (radius `size`) or square (half side `size`) of one colour at each track's position in
each frame, over a background colour or over given frames.

`easyanimate_v5.1`: exactly what the official EasyAnimate V5.1 trajectory-control workflow renders
(comfyui/v5.1/easyanimatev5.1_workflow_control_trajectory.json: KJNodes Spline Editor -> coord_str ->
CreateTrajectoryBasedOnKJNodes in comfyui/comfyui_nodes.py): on a black frame, each point (KJNodes' int(round())
coordinates) gets a box of half side int(50 * sqrt(H * W / (1280 * 720))), clipped to the frame as
[max(c - s, 0), min(c + s, size - 1)) (so never the last row or column), and boxes wider and taller than 3 pixels
receive the official 200x200 heatmap (a Gaussian of sigma 40 inside a filled circle, peak 255, uint8)
resized to the clipped box with cv2.resize (bilinear: a clipped box squeezes the whole heatmap in); tracks
combine by maximum; grey, the same in the three channels, divided by 255. The official node returns float64;
this returns the same values as float32 (an IMAGE).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from PIL import Image, ImageColor, ImageDraw

from .data import Trajectories, TrajectoryError
from .exports import per_frame_positions

MODES = ("shapes", "easyanimate_v5.1")
SHAPES = ("circle", "square")
EASYANIMATE_HEATMAP_SIZE = 200
EASYANIMATE_HEATMAP_SIGMA = 40.0


def parse_colour(text: str, what: str) -> tuple[int, int, int]:
    """'#rrggbb', '#rgb', 'rgb(r, g, b)' or a CSS colour name -> (r, g, b)."""
    try:
        return ImageColor.getrgb(text.strip())[:3]
    except (ValueError, AttributeError):
        raise TrajectoryError(f"{what}: '{text}' is not a colour; write it as #rrggbb (e.g. #ffffff), "
                              "rgb(255, 255, 255) or a name such as white") from None


def shapes_video(positions: np.ndarray, width: int, height: int, shape: str = "circle", size: float = 16,
                 colour: tuple[int, int, int] = (255, 255, 255), background: tuple[int, int, int] = (0, 0, 0),
                 images: torch.Tensor | None = None, check_interrupt=lambda: None) -> torch.Tensor:
    """IMAGE [frames, height, width, 3]: at each frame a `shape` of `colour` at every track's position
    (positions [tracks, frames, 2] in pixels), over `background` or over `images` (its frames, the last one held)."""
    if shape not in SHAPES:
        raise TrajectoryError(f"shape: '{shape}' is not one of {', '.join(SHAPES)}")
    frames = positions.shape[1]
    out = []
    for f in range(frames):
        check_interrupt()
        if images is None:
            canvas = Image.new("RGB", (width, height), background)
        else:
            pixels = images[min(f, images.shape[0] - 1), ..., :3].clamp(0, 1).mul(255).round().to(torch.uint8)
            canvas = Image.fromarray(pixels.cpu().numpy())
        draw = ImageDraw.Draw(canvas)
        for x, y in positions[:, f]:
            box = [x - size, y - size, x + size, y + size]
            (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
        out.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0))
    return torch.stack(out)


def easyanimate_heatmap(size: int = EASYANIMATE_HEATMAP_SIZE, sigma: float = EASYANIMATE_HEATMAP_SIGMA) -> np.ndarray:
    """EasyAnimate's `gen_gaussian_heatmap`: an isotropic Gaussian (sigma 40, centre size/2) inside a filled circle of
    radius size/2 - 1 drawn by OpenCV, scaled to peak 255 and truncated to uint8 [size, size]."""
    rows, cols = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    gaussian = 1 / (2 * np.pi * (sigma ** 2)) * np.exp(
        -1 / 2 * ((rows - size / 2) ** 2 / (sigma ** 2) + (cols - size / 2) ** 2 / (sigma ** 2)))
    disc = cv2.circle(np.zeros((size, size), np.float32), (size // 2, size // 2), size // 2 - 1, 1, -1)
    masked = gaussian.astype(np.float32) * disc
    return (masked / np.max(masked) * 255).astype(np.uint8)


def easyanimate_box_half_side(width: int, height: int) -> int:
    """The official box half side: 50 pixels at 1280x720, scaled with the square root of the frame area."""
    return int(50 * ((height * width) / (1280 * 720)) ** (1 / 2))


def easyanimate_video(points: np.ndarray, width: int, height: int, check_interrupt=lambda: None) -> torch.Tensor:
    """IMAGE [frames, height, width, 3] of EasyAnimate V5.1's trajectory control (see module docstring) for integer
    points [tracks, frames, 2] (x, y)."""
    heatmap = easyanimate_heatmap()
    half = easyanimate_box_half_side(width, height)
    resized: dict[tuple[int, int], np.ndarray] = {}  # this call's heatmaps per clipped box size
    video = np.zeros((points.shape[1], height, width), dtype=np.uint8)
    for f in range(points.shape[1]):
        check_interrupt()
        for x, y in points[:, f].tolist():
            top, bottom = max(y - half, 0), min(y + half, height - 1)
            left, right = max(x - half, 0), min(x + half, width - 1)
            if right - left > 3 and bottom - top > 3:
                key = (right - left, bottom - top)
                if key not in resized:
                    resized[key] = cv2.resize(heatmap, key)
                np.maximum(video[f, top:bottom, left:right], resized[key], out=video[f, top:bottom, left:right])
    grey = torch.from_numpy(video.astype(np.float64) / 255).to(torch.float32)
    return grey.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def trajectories_to_control_video(trajectories: Trajectories, width: int, height: int, frames: int,
                                  mode: str = "shapes", shape: str = "circle", size: float = 16,
                                  colour: str = "#ffffff", background: str = "#000000",
                                  images: torch.Tensor | None = None, check_interrupt=lambda: None) -> torch.Tensor:
    """The control video of `trajectories` (resampled to `frames`, scaled to width x height) in `mode`."""
    if mode not in MODES:
        raise TrajectoryError(f"mode: '{mode}' is not one of {', '.join(MODES)}")
    if images is not None:
        if images.ndim != 4 or images.shape[0] < 1:
            raise TrajectoryError(f"images: expected frames [F, H, W, C], got shape {tuple(images.shape)}")
        height, width = images.shape[1], images.shape[2]
    if width < 1 or height < 1 or frames < 1:
        raise TrajectoryError(f"width/height/num_frames: {width}x{height}, {frames} frames; give the control "
                              "video's size and a frame count of at least 1")
    positions = per_frame_positions(trajectories, width, height, max(frames, 2))[:, :frames]
    if mode == "easyanimate_v5.1":
        # KJNodes' coord_str: int(round()) coordinates (Python rounds halves to even, as here)
        return easyanimate_video(np.vectorize(round)(positions).astype(np.int64), width, height, check_interrupt)
    if not (isinstance(size, (int, float)) and math.isfinite(size) and size > 0):
        raise TrajectoryError(f"size: {size}; give the shape's radius (half side) in pixels, more than 0")
    return shapes_video(positions, width, height, shape, size, parse_colour(colour, "colour"),
                        parse_colour(background, "background"), images, check_interrupt)
