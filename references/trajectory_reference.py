"""Tora's official trajectory processing, re-implemented from alibaba/Tora sat/utils/flow_utils.py
(colouring with torchvision.utils.flow_to_image itself, as Tora does), as the reference for tests
and the benchmark.

It is deliberately the slow official pipeline: dense per-frame `cv2.filter2D` with the 2D kernel
built as `bivariate_Gaussian` does, and colouring of every pixel.
"""
import cv2
import numpy as np
import torch
from torchvision.utils import flow_to_image


def official_kernel(size: int = 99, sigma: float = 10.0) -> np.ndarray:
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], -1)
    inverse = np.linalg.inv(np.array([[sigma ** 2, 0], [0, sigma ** 2]]))
    kernel = np.exp(-0.5 * np.sum(np.dot(grid, inverse) * grid, 2))
    kernel = kernel / np.sum(kernel)
    return kernel / kernel[size // 2, size // 2]


def official_select(points, frames):
    """read_points' subsampling and cut, then process_points (len >= 2)."""
    points = [list(p) for p in points]
    if len(points) > frames:
        points = points[::len(points) // frames]
    points = points[:frames]
    if len(points) >= frames:
        return points[::len(points) // frames][:frames - 1] + points[-1:]
    insert = frames - len(points)
    interval = len(points) - 1
    counts = {i: insert // interval for i in range(interval)}
    for i in range(insert % interval):
        counts[i] += 1
    result = []
    for i in range(interval):
        x0, y0 = points[i]
        x1, y1 = points[i + 1]
        inserted = [[int(x0 + (j + 1) / (counts[i] + 1) * (x1 - x0)), int(y0 + (j + 1) / (counts[i] + 1) * (y1 - y0))]
                    for j in range(counts[i])]
        result += points[i:i + 1] + inserted
    return result + points[-1:]


def official_flow(pixel_tracks, frames, height, width, kernel=None):
    """process_traj after the point selection: sparse flow at integer pixels, then cv2.filter2D per frame."""
    kernel = official_kernel() if kernel is None else kernel
    flow = np.zeros((frames, height, width, 2), dtype=np.float32)
    for points in pixel_tracks:
        for i in range(frames - 1):
            p, p1 = points[i], points[i + 1]
            flow[i + 1, p[1], p[0], 0] = p1[0] - p[0]
            flow[i + 1, p[1], p[0], 1] = p1[1] - p[1]
    for i in range(1, frames):
        flow[i] = cv2.filter2D(flow[i], -1, kernel)
    return torch.tensor(flow)


def official_video(pixel_tracks, frames, height, width, per_frame=False):
    """The official RGB flow video [F, H, W, 3] uint8 and the smoothed flow [F, H, W, 2]."""
    flow = official_flow(pixel_tracks, frames, height, width)
    chw = flow.permute(0, 3, 1, 2).contiguous()
    if per_frame:
        rgb = torch.cat([flow_to_image(chw[i:i + 1]) for i in range(frames)])
    else:
        rgb = flow_to_image(chw)  # one maximum over the whole clip
    return rgb.permute(0, 2, 3, 1), flow


def official_scale_to_256(traj_list, canvas_width, canvas_height):
    """sat/app.py scale_traj_list_to_256: the app's canvas clicks onto the 256 grid."""
    scale_x, scale_y = 256 / canvas_width, 256 / canvas_height
    return [[int(x * scale_x), int(y * scale_y)] for x, y in traj_list]


def official_pixel_tracks(trajs_list, frames, height, width):
    """process_traj up to get_flow's input: read_points_from_list (int, subsample, cut), process_points (fewer than
    two points: [[128, 128]] * frames), then int(w * x / 256), int(h * y / 256) per track."""
    tracks = []
    for traj_list in trajs_list:
        points = [(int(x), int(y)) for x, y in traj_list]
        if len(points) > frames:
            points = points[::len(points) // frames]
        points = points[:frames]
        selected = [[128, 128]] * frames if len(points) < 2 else official_select(points, frames)
        tracks.append([[int(width * x / 256), int(height * y / 256)] for x, y in selected])
    return tracks
