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

The official code blurs every dense frame and colours every pixel. Here the
Gaussian's separability and the sparsity of the flow are used, per frame, by
the cheaper (in multiply-adds) of two exact paths:
- windows: only the sources' 99x99 windows can be nonzero; each window sums
  every source of the frame as (displacement) x (row weights) x (column
  weights). Quadratic in the frame's sources: the path for a few tracks.
- banded: the separable blur of the frame's sparse flow, restricted to the
  rows the sources reach. Each source row is blurred along x (a scatter of one
  kernel column per source), then along y as products of banded blocks of the
  y blur matrix. Linear in the sources, never more than a dense separable blur.
Both fold OpenCV's reflect-101 border into 1D blur matrices and sum in float64;
pixels no window reaches stay white. The result is the official one up to
float round-off (see tests/test_trajectory.py and bench/trajectory_flow.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
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


def blur_matrix(length: int, kernel: torch.Tensor) -> torch.Tensor:
    """[length, length] float64: entry [o, p] is the weight of input pixel p in output pixel o of a 1D correlation
    with `kernel` and OpenCV's reflect-101 border (taps beyond the edge read pixels inside, so they fold in).
    Banded: |o - p| <= min(kernel half, length - 1)."""
    taps = torch.arange(kernel.numel()) - kernel.numel() // 2
    outputs = torch.arange(length).unsqueeze(1).expand(length, kernel.numel())
    matrix = torch.zeros(length, length, dtype=torch.float64)
    matrix.index_put_((outputs, reflect101(outputs + taps, length)), kernel.expand(length, -1), accumulate=True)
    return matrix


def track_pixels(trajectories: Trajectories, width: int, height: int) -> torch.Tensor:
    """Per-frame pixel positions [tracks, frames, 2] (x, y) at the video size: int(size * coordinate / canvas) as in
    Tora's process_traj (truncation toward zero), not clamped (see `flow_sources`)."""
    if not trajectories.per_frame():
        raise TrajectoryError("trajectories: the tracks are not resampled to one point per frame; "
                              "connect them through Resample Trajectories first")
    if width < 2 or height < 2:
        raise TrajectoryError(f"width/height: the video is {width}x{height}; it must be at least 2x2 pixels")
    points = torch.tensor([track.points for track in trajectories.tracks], dtype=torch.float64)
    size = torch.tensor([width, height], dtype=torch.float64)
    canvas = torch.tensor([trajectories.width, trajectories.height], dtype=torch.float64)
    return torch.trunc(size * points / canvas).to(torch.long)


@dataclass
class FlowSources:
    """The sparse flow before smoothing, sorted by frame then pixel: at `frame`, pixel (`x`, `y`) holds `disp`
    [S, 2] (float64). Frame 0 has none."""

    frame: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    disp: torch.Tensor

    def of_frame(self, frame: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lo, hi = torch.searchsorted(self.frame, torch.tensor([frame, frame + 1])).tolist()
        return self.x[lo:hi], self.y[lo:hi], self.disp[lo:hi]


def flow_sources(pixels: torch.Tensor, width: int, height: int) -> FlowSources:
    """Tora's `get_flow` for every track: at frame i >= 1 the pixel of the track at frame i-1 holds its displacement
    to frame i; a later track overwrites an earlier one at the same pixel (also with zero, which then drops out).
    A source outside the video (where the official code fails or wraps around negative indices) is clamped to the
    edge and logged; the displacement is measured from there to the unclamped next position."""
    tracks, frames, _ = pixels.shape
    start = pixels[:, :-1]
    clamped = torch.stack([start[..., 0].clamp(0, width - 1), start[..., 1].clamp(0, height - 1)], -1)
    outside = int((clamped != start).any(-1).sum())
    if outside:
        log.warning("MotionKit: %d trajectory point(s) fell outside the %dx%d video and were clamped to its edge",
                    outside, width, height)
    disp = (pixels[:, 1:] - clamped).to(torch.float64).reshape(-1, 2)
    frame = torch.arange(1, frames).expand(tracks, -1).reshape(-1)
    x, y = clamped[..., 0].reshape(-1), clamped[..., 1].reshape(-1)
    key = (frame * height + y) * width + x  # track-major: a later track comes later
    # the last writer of each pixel: first occurrence in the reversed order; np.unique sorts by key (frame first)
    _keys, first = np.unique(key.flip(0).numpy(), return_index=True)
    last = key.numel() - 1 - torch.from_numpy(first)
    last = last[(disp[last] != 0).any(1)]
    return FlowSources(frame[last], x[last], y[last], disp[last])


# Relative costs of the two paths' steps, in multiply-adds of the banded path's matrix products (measured on CPU,
# bench/trajectory_flow.py): a multiply-add of the windows' small batched products, a window pixel produced and
# coloured (found nonzero, indexed, scattered), a banded pixel coloured.
WINDOW_PRODUCT_COST, WINDOW_PIXEL_COST, BANDED_PIXEL_COST = 8, 250, 35


def _window_cost(count: int, size: int) -> int:
    """The window path's cost for one frame: every source's window sums every source (two batched products),
    then each window pixel is kept, coloured and scattered."""
    return WINDOW_PRODUCT_COST * 2 * count * count * size * size + WINDOW_PIXEL_COST * count * size * size


def _banded_cost(y: torch.Tensor, height: int, width: int, reach: int) -> int:
    """The banded path's cost for one frame: covered rows x source rows in reach x 2 W multiply-adds, then every
    covered pixel coloured."""
    rows = torch.unique(y)
    covered = min(height, int(rows.max()) + reach + 1) - max(0, int(rows.min()) - reach)
    return covered * width * (min(rows.numel(), BAND_ROWS + 2 * reach) * 2 + BANDED_PIXEL_COST)


COLOUR_ROWS = 64
"""Rows of a dense block coloured at once."""
BAND_ROWS = 32
"""Output rows per matrix product of the banded path (bounds the wasted products of the band's edges)."""


def _window_flow(sources: FlowSources, frames: list[int], row_blur: torch.Tensor, col_blur: torch.Tensor,
                 size: int, check_interrupt=lambda: None, chunk_elements: int = 1 << 22):
    """Sparse path: the smoothed flow on each source's size x size window, for the given frames at once:
    (frame, flat pixel index, u, v) of the nonzero pixels. Each window sums every source of its frame, so a pixel
    where windows overlap appears once per window, with the same value each time."""
    height, width = row_blur.shape[0], col_blur.shape[0]
    per_frame = [sources.of_frame(i) for i in frames]
    most = max(x.numel() for x, _, _ in per_frame)
    # per frame: the sources' positions and displacements, padded with zero displacement to `most`
    xs = torch.zeros(len(frames), most, dtype=torch.long)
    ys = torch.zeros(len(frames), most, dtype=torch.long)
    disp = torch.zeros(len(frames), most, 2, dtype=torch.float64)
    for k, (x, y, d) in enumerate(per_frame):
        xs[k, :x.numel()], ys[k, :x.numel()], disp[k, :x.numel()] = x, y, d
    pair_frame = torch.cat([torch.full((x.numel(),), k) for k, (x, _, _) in enumerate(per_frame)])
    pair_x = torch.cat([x for x, _, _ in per_frame])
    pair_y = torch.cat([y for _, y, _ in per_frame])
    taps = torch.arange(size) - size // 2
    chunk = max(1, chunk_elements // (size * size * most))
    results = []
    for start in range(0, pair_frame.numel(), chunk):
        check_interrupt()
        f = pair_frame[start:start + chunk]
        r = pair_y[start:start + chunk, None] + taps  # [P, K] window rows
        c = pair_x[start:start + chunk, None] + taps  # [P, K] window cols
        r_ok, c_ok = (r >= 0) & (r < height), (c >= 0) & (c < width)
        row_w = row_blur[r.clamp(0, height - 1)[:, :, None], ys[f][:, None, :]] * r_ok[:, :, None]  # [P, K, S]
        col_w = col_blur[c.clamp(0, width - 1)[:, :, None], xs[f][:, None, :]] * c_ok[:, :, None]  # [P, K, S]
        d = disp[f]  # [P, S, 2]
        col_t = col_w.transpose(1, 2)
        u = torch.bmm(row_w * d[:, None, :, 0], col_t).to(torch.float32)
        v = torch.bmm(row_w * d[:, None, :, 1], col_t).to(torch.float32)
        keep = ((u != 0) | (v != 0)) & r_ok[:, :, None] & c_ok[:, None, :]
        p, a, b = torch.nonzero(keep, as_tuple=True)
        frame = torch.tensor(frames)[f[p]]
        results.append((frame, (frame * height + r[p, a]) * width + c[p, b], u[keep], v[keep]))
    return tuple(torch.cat(parts) for parts in zip(*results))


def blur_taps(blur: torch.Tensor, reach: int) -> torch.Tensor:
    """[length, 2 reach + 1]: row p holds column p of a banded blur matrix at outputs p - reach .. p + reach
    (zero past the ends): what a unit source at pixel p gives its neighbourhood."""
    length = blur.shape[0]
    outputs = torch.arange(length)[:, None] + torch.arange(-reach, reach + 1)
    inside = (outputs >= 0) & (outputs < length)
    return blur[outputs.clamp(0, length - 1), torch.arange(length)[:, None]] * inside


def _banded_flow(x: torch.Tensor, y: torch.Tensor, disp: torch.Tensor, row_blur: torch.Tensor,
                 col_taps: torch.Tensor, reach: tuple[int, int], lines_memory: torch.Tensor,
                 frame_pixels: torch.Tensor | None = None) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Dense path for one frame, the exact separable blur of its sparse flow: each source row is blurred along x
    (a scatter of each source's column of the x blur matrix), then the rows covered are blurred along y as
    products of banded blocks of the y blur matrix. Returns (first row, u, v), u and v float32 [rows, W] (views
    of one [rows, 2, W] tensor). `lines_memory`: float64 [H * 2 * W], reused by every frame. `frame_pixels` (the frame's RGB video memory, float32 [H * W * 3]): the rows are
    kept in its last two thirds, row r at H * W + 2 * W * r, where colouring the frame from the top can
    overwrite them only once they are read (`trajectories_to_flow_video`)."""
    height, width = row_blur.shape[0], col_taps.shape[0]
    reach_y, reach_x = reach
    rows, slot = torch.unique(y, return_inverse=True)
    if 2 * rows.numel() >= int(rows[-1] - rows[0]) + 1:  # most rows hold sources: keep every row (zero if none)
        rows, slot = torch.arange(int(rows[0]), int(rows[-1]) + 1), y - rows[0]
    cols = (x[:, None] + torch.arange(-reach_x, reach_x + 1)).clamp(0, width - 1)
    weights = col_taps.index_select(0, x)  # [S, taps]: zero weight where a tap leaves the frame
    lines = lines_memory[:rows.numel() * 2 * width].zero_()  # per source row: its u line, its v line
    flat = (slot[:, None] * (2 * width) + cols).reshape(-1)
    for channel in range(2):
        lines.scatter_add_(0, flat + channel * width, (weights * disp[:, channel, None]).reshape(-1))
    lines = lines.view(rows.numel(), 2 * width)
    top, bottom = max(0, int(rows[0]) - reach_y), min(height, int(rows[-1]) + reach_y + 1)
    if frame_pixels is None:
        out = torch.empty(bottom - top, 2, width, dtype=torch.float32)  # per row: u, then v
    else:
        out = frame_pixels[(height + 2 * top) * width:(height + 2 * bottom) * width].view(bottom - top, 2, width)
    bounds = torch.searchsorted(rows, torch.arange(top, bottom + BAND_ROWS, BAND_ROWS).clamp(max=bottom)[:, None]
                                + torch.tensor([-reach_y, reach_y])).tolist()
    for band, r0 in enumerate(range(top, bottom, BAND_ROWS)):
        r1 = min(r0 + BAND_ROWS, bottom)
        lo, hi = bounds[band][0], bounds[band + 1][1]
        if lo == hi:  # no source row within reach of these rows
            out[r0 - top:r1 - top] = 0
            continue
        first, last = int(rows[lo]), int(rows[hi - 1])
        # rows held without a gap: a slice of the blur matrix
        weights_y = row_blur[r0:r1, first:last + 1] if last - first + 1 == hi - lo else row_blur[r0:r1, rows[lo:hi]]
        out[r0 - top:r1 - top] = (weights_y @ lines[lo:hi]).view(r1 - r0, 2, width)
    return top, out[:, 0], out[:, 1]


@dataclass
class SmoothedFlow:
    """The smoothed flow of a video: sparse (frame, flat pixel, u, v) from the window path, and dense row blocks
    {frame: (first row, u, v)}, float32 [rows, W] each, from the banded path. Pixels in neither are zero."""

    frames: int
    height: int
    width: int
    sparse: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    blocks: dict[int, tuple[int, torch.Tensor, torch.Tensor]]

    def dense(self) -> torch.Tensor:
        """[frames, H, W, 2] float32."""
        out = torch.zeros(self.frames, self.height, self.width, 2)
        frame, flat, u, v = self.sparse
        out.view(-1, 2)[flat] = torch.stack([u, v], 1)
        for f, (top, u, v) in self.blocks.items():
            out[f, top:top + u.shape[0]] = torch.stack([u, v], -1)
        return out


PATHS = ("auto", "windows", "banded")


def smoothed_flow(sources: FlowSources, frames: int, height: int, width: int, size: int = KERNEL_SIZE,
                  sigma: float = KERNEL_SIGMA, path: str = "auto", check_interrupt=lambda: None,
                  video: torch.Tensor | None = None) -> SmoothedFlow:
    """Each frame's sparse flow blurred with Tora's Gaussian (exactly `cv2.filter2D`'s reflect-101 correlation with
    the separable peak-1 kernel). Per frame, the cheaper of two exact paths by multiply-add count: the windows
    (quadratic in the frame's sources, best for a few) or the banded separable blur (linear in them, never more
    than a dense separable blur of the frame). `path` forces one (the tests compare them). `video` (float32
    [frames, H, W, 3], contiguous): the banded rows are kept in its memory (see `_banded_flow`)."""
    kernel = gaussian_1d(size, sigma)
    row_blur, col_blur = blur_matrix(height, kernel), blur_matrix(width, kernel)
    reach = (min(size // 2, height - 1), min(size // 2, width - 1))
    col_taps = blur_taps(col_blur, reach[1])
    windows, blocks = [], {}
    lines_memory = torch.empty(height * 2 * width, dtype=torch.float64)
    for f in torch.unique(sources.frame).tolist():
        x, y, disp = sources.of_frame(f)
        cost_windows = _window_cost(x.numel(), size)
        use_windows = path == "windows" or (path == "auto" and cost_windows <= _banded_cost(y, height, width, reach[0]))
        if use_windows:
            windows.append(f)
        else:
            check_interrupt()
            blocks[f] = _banded_flow(x, y, disp, row_blur, col_taps, reach, lines_memory,
                                     None if video is None else video[f].view(-1))
    if windows:
        sparse = _window_flow(sources, windows, row_blur, col_blur, size, check_interrupt)
    else:
        empty = torch.zeros(0, dtype=torch.long)
        sparse = (empty, empty, torch.zeros(0), torch.zeros(0))
    return SmoothedFlow(frames, height, width, sparse, blocks)


def flow_field(pixels: torch.Tensor, height: int, width: int, size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA,
               path: str = "auto") -> torch.Tensor:
    """The smoothed flow [frames, H, W, 2] (float32), dense: the values the flow video is coloured from."""
    sources = flow_sources(pixels, width, height)
    return smoothed_flow(sources, pixels.shape[1], height, width, size, sigma, path).dense()


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
    return colour_levels(u, v, max_norm, wheel).T.to(torch.uint8)


def colour_levels(u: torch.Tensor, v: torch.Tensor, max_norm: torch.Tensor, wheel: torch.Tensor) -> torch.Tensor:
    """`colorize` as float32 levels 0..255, channels first [3, N] (N: the elements of u and v, any shape): the same
    float32 operations per element as torchvision's flow_to_image, its loop over the channels done at once and in
    place where it can."""
    scale = max_norm + torch.finfo(torch.float32).eps
    # -(u / scale) is u / (-scale) exactly (IEEE division is correctly rounded and symmetric in sign)
    neg_u, neg_v = u / -scale, v / -scale
    norm = (neg_u.pow(2) + neg_v.pow(2)).sqrt_()
    fk = torch.atan2(neg_v, neg_u).div_(torch.pi).add_(1).div_(2).mul_(wheel.shape[0] - 1)
    k0 = torch.floor(fk)
    f = fk.sub_(k0).reshape(-1)
    norm = norm.reshape(-1)
    k0 = k0.reshape(-1).to(torch.long)
    colours = (wheel / 255.0).T.contiguous()  # [3, 55]
    # k1 = k0 + 1, wrapping to 0 past the last colour: the next colour of each entry
    low, high = colours.index_select(1, k0), torch.roll(colours, -1, 1).index_select(1, k0)
    col = low.mul_(1 - f).add_(high.mul_(f))
    return col.neg_().add_(1).mul_(norm).neg_().add_(1).mul_(255).floor_()


def trajectories_to_flow_video(trajectories: Trajectories, width: int, height: int, normalize: str = "global",
                               size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA, path: str = "auto",
                               check_interrupt=lambda: None) -> torch.Tensor:
    """Tora's flow video for resampled tracks: IMAGE [frames, height, width, 3] in 0..1 (uint8 levels / 255)."""
    if normalize not in NORMALIZATIONS:
        raise TrajectoryError(f"normalize: '{normalize}' is not one of {', '.join(NORMALIZATIONS)}")
    pixels = track_pixels(trajectories, width, height)
    frames = pixels.shape[1]
    sources = flow_sources(pixels, width, height)
    if sources.frame.numel() == 0:
        return torch.ones(frames, height, width, 3)
    # the banded rows are kept in the video's memory: no more memory to take (and touch) than the video
    video = torch.empty(frames, height, width, 3)
    smoothed = smoothed_flow(sources, frames, height, width, size, sigma, path, check_interrupt, video)
    frame, flat, u, v = smoothed.sparse
    maxima = torch.zeros(frames).scatter_reduce(0, frame, (u.pow(2) + v.pow(2)).sqrt(), "amax")
    for f, (_, block_u, block_v) in smoothed.blocks.items():  # sqrt is monotonic: the root of the largest square
        maxima[f] = (block_u.pow(2) + block_v.pow(2)).max().sqrt()
    if normalize == "global":
        maxima = maxima.max().expand(frames)
    wheel = middlebury_colorwheel()
    # white (zero flow) wherever no block is written: whole frames without blocks, rows above a block (below: once
    # the block is coloured, as its rows lie there)
    for f in range(frames):
        video[f, :smoothed.blocks[f][0] if f in smoothed.blocks else height] = 1
    if flat.numel():
        video.view(-1, 3).index_copy_(0, flat, colour_levels(u, v, maxima[frame], wheel).div_(255).T)
    pixels = video.numpy()  # the same memory: cv2.merge interleaves the colour planes straight into the video
    for f, (top, block_u, block_v) in smoothed.blocks.items():
        check_interrupt()
        # from the top, a few rows at a time (the passes stay in cache): the colours of rows < r end at 3 W r, at
        # or before the block's row r (H W + 2 W r, r <= H), so no row is overwritten before it is read
        for r0 in range(0, block_u.shape[0], COLOUR_ROWS):
            u_rows, v_rows = block_u[r0:r0 + COLOUR_ROWS], block_v[r0:r0 + COLOUR_ROWS]
            planes = colour_levels(u_rows, v_rows, maxima[f], wheel).div_(255).view(3, -1, width).numpy()
            cv2.merge(list(planes), pixels[f, top + r0:top + r0 + u_rows.shape[0]])
        video[f, top + block_u.shape[0]:] = 1
    return video
