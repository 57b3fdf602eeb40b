"""Spatial tiles of the streamed video VAE: overlapping tiles, each with its own causal stream state,
blended as soon as a chunk is done (the linear cross-fade of diffusers' tiled VAEs)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .. import host
from .stream import StreamState


@dataclass(frozen=True)
class TilePlan:
    """Overlapping tiles in the input's space, blended in the output's space.

    tile_*: tile size in input pixels (latent pixels for decode); stride_*: step between
    tiles; blend_*: output rows/columns blended with the neighbour above/left; keep_*:
    output rows/columns each tile contributes.
    """

    tile_h: int
    tile_w: int
    stride_h: int
    stride_w: int
    blend_h: int
    blend_w: int
    keep_h: int
    keep_w: int

    @classmethod
    def for_decode(cls, tile_px: int, overlap_px: int, ratio: int) -> "TilePlan":
        """Tiles of `tile_px` output pixels overlapping by `overlap_px` (rounded to latent pixels)."""
        tile, stride = max(tile_px // ratio, 1), max((tile_px - overlap_px) // ratio, 1)
        return cls(tile, tile, stride, stride, (tile - stride) * ratio, (tile - stride) * ratio,
                   stride * ratio, stride * ratio)

    @classmethod
    def for_encode(cls, tile_px: int, overlap_px: int, ratio: int) -> "TilePlan":
        """Tiles of `tile_px` input pixels overlapping by `overlap_px` (multiples of the ratio)."""
        tile, stride = max(tile_px // ratio, 1) * ratio, max((tile_px - overlap_px) // ratio, 1) * ratio
        return cls(tile, tile, stride, stride, (tile - stride) // ratio, (tile - stride) // ratio,
                   stride // ratio, stride // ratio)

    def needed(self, height: int, width: int) -> bool:
        return height > self.tile_h or width > self.tile_w


def _blend_rows(above: torch.Tensor, below: torch.Tensor, extent: int) -> None:
    """Fade the top `extent` rows of `below` in from the bottom rows of `above` (in place)."""
    extent = min(above.shape[3], below.shape[3], extent)
    for y in range(extent):
        below[:, :, :, y] = above[:, :, :, y - extent] * (1 - y / extent) + below[:, :, :, y] * (y / extent)


def _blend_columns(left: torch.Tensor, right: torch.Tensor, extent: int) -> None:
    extent = min(left.shape[4], right.shape[4], extent)
    for x in range(extent):
        right[..., x] = left[..., x - extent] * (1 - x / extent) + right[..., x] * (x / extent)


def _move_state(state: StreamState, device: torch.device) -> None:
    for key, value in state.frames.items():
        if value.device != device:
            state.frames[key] = value.to(device, non_blocking=device.type != "cpu")  # a copy to the host waits


def tiled_step(piece: torch.Tensor, step: Callable, states: dict, plan: TilePlan,
               out_h: int, out_w: int, chunk: tuple) -> torch.Tensor:
    """One chunk through every tile, each with its own causal state, blended and cropped.

    Between chunks a tile's state waits on the intermediate device (when that is not the
    compute device), so the compute device holds one tile's state and activations at a time."""
    height, width = piece.shape[-2:]
    parking = host.intermediate_device()

    def run(i: int, j: int) -> torch.Tensor:
        state = states.setdefault((i, j), StreamState())
        _move_state(state, piece.device)
        y = step(piece[..., i:i + plan.tile_h, j:j + plan.tile_w], state, chunk)
        _move_state(state, parking)
        return y

    rows = [[run(i, j) for j in range(0, width, plan.stride_w)] for i in range(0, height, plan.stride_h)]
    result = []
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if i > 0:
                _blend_rows(rows[i - 1][j], tile, plan.blend_h)
            if j > 0:
                _blend_columns(row[j - 1], tile, plan.blend_w)
        result.append(torch.cat([tile[..., :plan.keep_h, :plan.keep_w] for tile in row], dim=4))
    return torch.cat(result, dim=3)[..., :out_h, :out_w]
