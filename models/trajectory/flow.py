"""Tora's trajectory front end: tracks -> sparse flow -> Gaussian -> RGB flow video.

Tora (Zhang et al. 2024, Sec. 3.2, "Trajectory Extractor") turns each track
into a flow video: at frame i (i >= 1) the pixel where the object is at frame
i-1 holds its displacement to frame i, every other pixel is zero (frame 0 is
all zero). Each frame is smoothed with a 99x99, sigma 10 Gaussian whose peak is
1 (`utils/flow_utils.py`: `bivariate_Gaussian` divided by its centre, applied
with `cv2.filter2D`, i.e. correlation with reflect-101 borders), and rendered
with the Middlebury colour wheel as `torchvision.utils.flow_to_image` does,
normalised by the largest flow magnitude of the whole video (zero flow is
white). The RGB video is what the motion VAE encodes.

The official code blurs every dense frame and colours every pixel. The flow
is a few points per frame and the Gaussian is separable, so here each point
contributes (displacement) x (column weights) x (row weights), where the
weights fold the reflect-101 border into a 1D vector; only pixels inside the
points' 99x99 windows are coloured, every other pixel is white. The result
is the official one up to float round-off (see tests/test_trajectory.py).
"""
from __future__ import annotations

import logging

import torch

from .data import Trajectories, TrajectoryError

log = logging.getLogger("MotionKit")

KERNEL_SIZE = 99
KERNEL_SIGMA = 10.0
NORMALIZATIONS = ("global", "per_frame")


def gaussian_1d(size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA) -> torch.Tensor:
    """The 1D factor of Tora's peak-normalised isotropic Gaussian: exp(-d^2 / (2 sigma^2)), d = -size//2+1 .. size//2."""
    d = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float64)
    return torch.exp(-0.5 * d.square() / sigma ** 2)


def reflect101(index: torch.Tensor, length: int) -> torch.Tensor:
    """OpenCV's BORDER_REFLECT_101 index mapping (gfedcb|abcdefgh|gfedcba), repeated for short axes."""
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    index = torch.remainder(index, period)
    return torch.where(index >= length, period - index, index)


class _AxisWeights:
    """1D weights along one axis: column p of `matrix` is what a unit source at pixel p gives each output pixel,
    reflect-101 border folded in (OpenCV pads by reflection, so taps beyond the edge read pixels inside)."""

    def __init__(self, length: int, kernel: torch.Tensor):
        half = kernel.numel() // 2
        outputs = torch.arange(length).unsqueeze(1).expand(length, kernel.numel())
        sources = reflect101(outputs + torch.arange(-half, half + 1).unsqueeze(0), length)
        self.matrix = torch.zeros(length, length, dtype=kernel.dtype)
        self.matrix.index_put_((outputs.reshape(-1), sources.reshape(-1)), kernel.repeat(length), accumulate=True)

    def __call__(self, sources: list[int]) -> torch.Tensor:
        return self.matrix[:, sources]


def track_pixels(trajectories: Trajectories, width: int, height: int) -> torch.Tensor:
    """Per-frame pixel positions [tracks, frames, 2] (x, y) at the video size: int(size * coordinate / canvas) as in Tora."""
    if not trajectories.per_frame():
        raise TrajectoryError("trajectories: the tracks are not resampled to one point per frame; "
                              "connect them through Resample Trajectories first")
    if width < 2 or height < 2:
        raise TrajectoryError(f"width/height: the video is {width}x{height}; it must be at least 2x2 pixels")
    pixels = []
    clamped = 0
    for track in trajectories.tracks:
        row = []
        for x, y in track.points:
            px, py = int(width * x / trajectories.width), int(height * y / trajectories.height)
            cx, cy = min(max(px, 0), width - 1), min(max(py, 0), height - 1)
            clamped += (cx, cy) != (px, py)
            row.append((cx, cy))
        pixels.append(row)
    if clamped:
        log.warning("MotionKit: %d trajectory point(s) fell outside the %dx%d video and were clamped to its edge",
                    clamped, width, height)
    return torch.tensor(pixels, dtype=torch.long)


def frame_sources(pixels: torch.Tensor) -> list[dict[tuple[int, int], tuple[float, float]]]:
    """For each frame, {(x, y): (dx, dy)} of the sparse flow before smoothing; later tracks overwrite earlier ones."""
    tracks, frames, _ = pixels.shape
    result = [dict() for _ in range(frames)]
    for t in range(tracks):
        for i in range(frames - 1):
            x, y = pixels[t, i].tolist()
            nx, ny = pixels[t, i + 1].tolist()
            result[i + 1][(x, y)] = (float(nx - x), float(ny - y))
    return result


def _smoothed_block(sources, rows: _AxisWeights, cols: _AxisWeights):
    """The smoothed (u, v) on the bounding block of the sources' support: (row index, col index, u, v) in float32."""
    keys = list(sources)
    row_w = rows([y for _x, y in keys])  # [H, S]
    col_w = cols([x for x, _y in keys])  # [W, S]
    row_idx = torch.nonzero(row_w.abs().sum(1)).squeeze(1)
    col_idx = torch.nonzero(col_w.abs().sum(1)).squeeze(1)
    row_w, col_w = row_w[row_idx], col_w[col_idx]
    disp = torch.tensor([sources[k] for k in keys], dtype=torch.float64)  # [S, 2]
    u = (row_w * disp[:, 0]) @ col_w.T
    v = (row_w * disp[:, 1]) @ col_w.T
    return row_idx, col_idx, u.to(torch.float32), v.to(torch.float32)


def flow_field(pixels: torch.Tensor, height: int, width: int,
               size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA) -> torch.Tensor:
    """The smoothed flow [frames, H, W, 2] (float32), dense; for checks and for nodes that want the field."""
    kernel = gaussian_1d(size, sigma)
    rows, cols = _AxisWeights(height, kernel), _AxisWeights(width, kernel)
    out = torch.zeros(pixels.shape[1], height, width, 2)
    for i, sources in enumerate(frame_sources(pixels)):
        if sources:
            r, c, u, v = _smoothed_block(sources, rows, cols)
            out[i, r.unsqueeze(1), c.unsqueeze(0), 0] = u
            out[i, r.unsqueeze(1), c.unsqueeze(0), 1] = v
    return out


def middlebury_colorwheel() -> torch.Tensor:
    """The 55 colours of the Middlebury wheel (Baker et al. 2007), as torchvision builds them: [55, 3] float32 in 0..255."""
    # (length, channel held at 255, channel that ramps, ramp rises): red-yellow, yellow-green, green-cyan,
    # cyan-blue, blue-magenta, magenta-red
    segments = ((15, 0, 1, True), (6, 1, 0, False), (4, 1, 2, True), (11, 2, 1, False), (13, 2, 0, True), (6, 0, 2, False))
    blocks = []
    for length, full, ramp, rising in segments:
        block = torch.zeros(length, 3)
        steps = torch.floor(255 * torch.arange(0, length) / length)
        block[:, full] = 255
        block[:, ramp] = steps if rising else 255 - steps
        blocks.append(block)
    return torch.cat(blocks)


def colorize(u: torch.Tensor, v: torch.Tensor, max_norm: torch.Tensor, wheel: torch.Tensor) -> torch.Tensor:
    """RGB uint8 [N, 3] of flow vectors (float32 [N]) divided by max_norm + eps, as torchvision's flow_to_image."""
    eps = torch.finfo(torch.float32).eps
    nu, nv = u / (max_norm + eps), v / (max_norm + eps)
    norm = (nu.pow(2) + nv.pow(2)).sqrt()
    a = torch.atan2(-nv, -nu) / torch.pi
    fk = (a + 1) / 2 * (wheel.shape[0] - 1)
    k0 = torch.floor(fk).to(torch.long)
    k1 = k0 + 1
    k1[k1 == wheel.shape[0]] = 0
    f = fk - k0
    out = torch.empty(u.shape[0], 3, dtype=torch.uint8)
    for c in range(3):
        col = (1 - f) * (wheel[k0, c] / 255.0) + f * (wheel[k1, c] / 255.0)
        col = 1 - norm * (1 - col)
        out[:, c] = torch.floor(255 * col).to(torch.uint8)
    return out


def trajectories_to_flow_video(trajectories: Trajectories, width: int, height: int, normalize: str = "global",
                               size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA,
                               check_interrupt=lambda: None) -> torch.Tensor:
    """Tora's flow video for resampled tracks: IMAGE [frames, height, width, 3] in 0..1 (uint8 levels / 255)."""
    if normalize not in NORMALIZATIONS:
        raise TrajectoryError(f"normalize: '{normalize}' is not one of {', '.join(NORMALIZATIONS)}")
    pixels = track_pixels(trajectories, width, height)
    kernel = gaussian_1d(size, sigma)
    rows, cols = _AxisWeights(height, kernel), _AxisWeights(width, kernel)
    frame_index, row_index, col_index, us, vs, frame_max = [], [], [], [], [], []
    for i, sources in enumerate(frame_sources(pixels)):
        check_interrupt()
        sources = {k: d for k, d in sources.items() if d != (0.0, 0.0)}  # after overwriting, as the official code
        if not sources:
            continue
        r, c, u, v = _smoothed_block(sources, rows, cols)
        nonzero = (u != 0) | (v != 0)
        rr, cc = torch.nonzero(nonzero, as_tuple=True)
        u, v = u[nonzero], v[nonzero]
        frame_index.append(torch.full_like(rr, i))
        row_index.append(r[rr])
        col_index.append(c[cc])
        us.append(u)
        vs.append(v)
        frame_max.append((u.pow(2) + v.pow(2)).sqrt().max().expand(u.shape[0]))
    video = torch.ones(pixels.shape[1], height, width, 3)
    if not us:
        return video
    u, v = torch.cat(us), torch.cat(vs)
    maxima = torch.cat(frame_max)
    if normalize == "global":
        maxima = maxima.max()
    rgb = colorize(u, v, maxima, middlebury_colorwheel())
    video[torch.cat(frame_index), torch.cat(row_index), torch.cat(col_index)] = rgb.to(torch.float32) / 255.0
    return video
