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
contributes (displacement) x (row weights) x (column weights), where the
weights fold the reflect-101 border into a 1D vector. Only the points' 99x99
windows can be nonzero: the field is evaluated there, for all frames in a few
batched operations, and coloured; every other pixel is white. The result is
the official one up to float round-off (see tests/test_trajectory.py).
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
    """1D weights along one axis of length n: column p is what a unit source at pixel p gives each output pixel,
    the reflect-101 border folded in (OpenCV pads by reflection, so taps beyond the edge read pixels inside).
    Only outputs within half a kernel of p can read p (for n >= 50 a tap folds at most once; shorter axes lie
    wholly inside that window), so each column costs one kernel-by-kernel comparison."""

    def __init__(self, length: int, kernel: torch.Tensor):
        self.length, self.kernel, self.half = length, kernel, kernel.numel() // 2
        self.taps = torch.arange(-self.half, self.half + 1)
        self.columns: dict[int, torch.Tensor] = {}

    def column(self, source: int) -> torch.Tensor:
        if source not in self.columns:
            outputs = torch.arange(max(0, source - self.half), min(self.length, source + self.half + 1))
            reads = reflect101(outputs.unsqueeze(1) + self.taps.unsqueeze(0), self.length)
            column = torch.zeros(self.length, dtype=self.kernel.dtype)
            column[outputs] = (self.kernel * (reads == source)).sum(1)
            self.columns[source] = column
        return self.columns[source]

    def __call__(self, sources: list[int]) -> torch.Tensor:
        return torch.stack([self.column(p) for p in sources], 1)


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


def _nonzero_sources(pixels: torch.Tensor) -> list[dict[tuple[int, int], tuple[float, float]]]:
    """frame_sources without zero displacements (dropped after later tracks overwrote a pixel, as officially)."""
    return [{k: d for k, d in frame.items() if d != (0.0, 0.0)} for frame in frame_sources(pixels)]


def flow_field(pixels: torch.Tensor, height: int, width: int,
               size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA) -> torch.Tensor:
    """The smoothed flow [frames, H, W, 2] (float32), dense: the values the flow video is coloured from."""
    out = torch.zeros(pixels.shape[1], height, width, 2)
    sources = _nonzero_sources(pixels)
    if any(sources):
        _frame, flat, u, v = _window_flow(sources, height, width, gaussian_1d(size, sigma))
        out.view(-1, 2)[flat] = torch.stack([u, v], 1)
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
    f = (fk - k0).unsqueeze(1)
    # the three channels at once: the same float32 operations per element as torchvision's loop over channels
    col = (1 - f) * (wheel[k0] / 255.0) + f * (wheel[k1] / 255.0)
    col = 1 - norm.unsqueeze(1) * (1 - col)
    return torch.floor(255 * col).to(torch.uint8)


def _window_flow(sources_per_frame: list[dict], height: int, width: int, kernel: torch.Tensor,
                 check_interrupt=lambda: None, chunk_elements: int = 1 << 22):
    """The smoothed flow on each source's kernel window, all frames at once: (frame, flat pixel index, u, v) of the
    nonzero pixels. Each window sums every source of its frame, so a pixel where windows overlap appears once per
    window, with the same value each time."""
    frames = [i for i, sources in enumerate(sources_per_frame) if sources]
    most = max(len(sources_per_frame[i]) for i in frames)
    rows, cols = _AxisWeights(height, kernel), _AxisWeights(width, kernel)
    # per frame: the sources' positions and displacements, padded with zero displacement to `most`
    xs = torch.zeros(len(frames), most, dtype=torch.long)
    ys = torch.zeros(len(frames), most, dtype=torch.long)
    disp = torch.zeros(len(frames), most, 2, dtype=torch.float64)
    pair_frame, pair_x, pair_y = [], [], []
    for k, i in enumerate(frames):
        for s, ((x, y), d) in enumerate(sources_per_frame[i].items()):
            xs[k, s], ys[k, s], disp[k, s] = x, y, torch.tensor(d, dtype=torch.float64)
            pair_frame.append(k)
            pair_x.append(x)
            pair_y.append(y)
    unique_x, x_slot = torch.unique(xs, return_inverse=True)
    unique_y, y_slot = torch.unique(ys, return_inverse=True)
    col_table = cols(unique_x.tolist())  # [W, distinct x]
    row_table = rows(unique_y.tolist())  # [H, distinct y]
    pair_frame, pair_x, pair_y = (torch.tensor(v) for v in (pair_frame, pair_x, pair_y))
    taps = torch.arange(-(kernel.numel() // 2), kernel.numel() // 2 + 1)
    size = taps.numel()
    chunk = max(1, chunk_elements // (size * size * most))
    results = []
    for start in range(0, pair_frame.numel(), chunk):
        check_interrupt()
        f = pair_frame[start:start + chunk]
        r = pair_y[start:start + chunk, None] + taps  # [P, K] window rows
        c = pair_x[start:start + chunk, None] + taps  # [P, K] window cols
        r_ok, c_ok = (r >= 0) & (r < height), (c >= 0) & (c < width)
        row_w = row_table[r.clamp(0, height - 1)[:, :, None], y_slot[f][:, None, :]] * r_ok[:, :, None]  # [P, K, S]
        col_w = col_table[c.clamp(0, width - 1)[:, :, None], x_slot[f][:, None, :]] * c_ok[:, :, None]  # [P, K, S]
        d = disp[f]  # [P, S, 2]
        col_t = col_w.transpose(1, 2)
        u = torch.bmm(row_w * d[:, None, :, 0], col_t).to(torch.float32)
        v = torch.bmm(row_w * d[:, None, :, 1], col_t).to(torch.float32)
        keep = ((u != 0) | (v != 0)) & r_ok[:, :, None] & c_ok[:, None, :]
        p, a, b = torch.nonzero(keep, as_tuple=True)
        frame = torch.tensor(frames)[f[p]]
        results.append((frame, (frame * height + r[p, a]) * width + c[p, b], u[keep], v[keep]))
    return tuple(torch.cat(parts) for parts in zip(*results))


def trajectories_to_flow_video(trajectories: Trajectories, width: int, height: int, normalize: str = "global",
                               size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA,
                               check_interrupt=lambda: None) -> torch.Tensor:
    """Tora's flow video for resampled tracks: IMAGE [frames, height, width, 3] in 0..1 (uint8 levels / 255)."""
    if normalize not in NORMALIZATIONS:
        raise TrajectoryError(f"normalize: '{normalize}' is not one of {', '.join(NORMALIZATIONS)}")
    pixels = track_pixels(trajectories, width, height)
    sources = _nonzero_sources(pixels)
    video = torch.ones(pixels.shape[1], height, width, 3)
    if not any(sources):
        return video
    frame, flat, u, v = _window_flow(sources, height, width, gaussian_1d(size, sigma), check_interrupt)
    norm = (u.pow(2) + v.pow(2)).sqrt()
    if normalize == "global":
        maxima = norm.max()
    else:
        maxima = torch.zeros(pixels.shape[1]).scatter_reduce(0, frame, norm, "amax")[frame]
    rgb = colorize(u, v, maxima, middlebury_colorwheel())
    video.view(-1, 3).index_copy_(0, flat, rgb.to(torch.float32) / 255.0)
    return video
