"""AnimateDiff's motion module: temporal transformers placed after the UNet's blocks.

Module names follow the original AnimateDiff checkpoints (guoyww/AnimateDiff,
`animatediff/models/motion_module.py`), so a published file loads without renaming:
`down_blocks.{i}.motion_modules.{j}.temporal_transformer.{norm, proj_in,
transformer_blocks.{k}.{attention_blocks.{a}, norms.{a}, ff, ff_norm}, proj_out}`.

Each temporal transformer sees the frames of one video as a sequence at every pixel:
GroupNorm, proj_in, blocks of (LayerNorm, sinusoidal position encoding, self-attention
over frames) and a GEGLU feed-forward, proj_out (zero-initialised in training), residual.
Frames ride in the batch: the input is [videos * frames, C, H, W].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .. import host


@dataclass(frozen=True)
class MotionModuleConfig:
    """The shape of a motion module; read from a checkpoint's keys by `keys.detect`.

    block_channels: channels of the UNet levels it attaches to (SD1.5: 320, 640, 1280, 1280;
        SDXL: 320, 640, 1280).
    down_layers / up_layers: temporal transformers per down / up level (SD: 2 and 3).
    mid_block: whether the UNet's middle block gets one (v2 and AnimateLCM).
    transformer_layers: transformer blocks per temporal transformer (1 in every release).
    attention_blocks: temporal self-attentions per transformer block (2 in every release).
    heads: attention heads (8 in every release; head width is channels // heads).
    max_frames: length of the position encoding, the most frames one pass may hold
        (v1: 24, v2/v3/SDXL: 32).
    """
    block_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_layers: int = 2
    up_layers: int = 3
    mid_block: bool = False
    transformer_layers: int = 1
    attention_blocks: int = 2
    heads: int = 8
    max_frames: int = 32
    groups: int = 32


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """Sine/cosine position table [1, length, dim] of "Attention Is All You Need" (sec. 3.5), as AnimateDiff trains with."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2] = torch.sin(position * div_term)
    table[0, :, 1::2] = torch.cos(position * div_term)
    return table


class TemporalPositionEncoding(nn.Module):
    """Adds the stored position table to a [sequences, frames, C] tensor."""

    def __init__(self, dim: int, max_frames: int, device=None, dtype=None):
        super().__init__()
        self.register_buffer("pe", sinusoidal_encoding(max_frames, dim).to(device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x)


class TemporalAttention(nn.Module):
    """Self-attention across frames (each pixel's frames form one sequence), with position encoding."""

    def __init__(self, dim: int, heads: int, max_frames: int, device=None, dtype=None, operations=nn):
        super().__init__()
        self.heads = heads
        self.to_q = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_k = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_v = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, device=device, dtype=dtype), nn.Dropout(0.0)])
        self.pos_encoder = TemporalPositionEncoding(dim, max_frames, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_encoder(x)
        b, f, c = x.shape
        q, k, v = (proj(x).view(b, f, self.heads, c // self.heads).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(b, f, c))


class GEGLUFeedForward(nn.Module):
    """Linear to 2x4xdim, GELU-gated halves, linear back (names as diffusers' FeedForward: net.0.proj, net.2)."""

    def __init__(self, dim: int, mult: int = 4, device=None, dtype=None, operations=nn):
        super().__init__()
        inner = dim * mult
        gate = nn.Module()
        gate.proj = operations.Linear(dim, inner * 2, device=device, dtype=dtype)
        self.net = nn.ModuleList([gate, nn.Dropout(0.0), operations.Linear(inner, dim, device=device, dtype=dtype)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](hidden * F.gelu(gate))


class TemporalTransformerBlock(nn.Module):
    """Pre-norm temporal self-attentions, then a pre-norm feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, attention_blocks: int, max_frames: int,
                 device=None, dtype=None, operations=nn):
        super().__init__()
        self.attention_blocks = nn.ModuleList([
            TemporalAttention(dim, heads, max_frames, device=device, dtype=dtype, operations=operations)
            for _ in range(attention_blocks)])
        self.norms = nn.ModuleList([operations.LayerNorm(dim, device=device, dtype=dtype) for _ in range(attention_blocks)])
        self.ff = GEGLUFeedForward(dim, device=device, dtype=dtype, operations=operations)
        self.ff_norm = operations.LayerNorm(dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    """GroupNorm, proj_in, transformer blocks over frames, proj_out, residual.

    The GroupNorm normalises each frame on its own, as the original AnimateDiff does
    (it folds frames into the batch first). diffusers' `AnimateDiffTransformer3D`
    normalises the frames of a video together instead: this is where the two differ.
    """

    def __init__(self, channels: int, config: MotionModuleConfig, device=None, dtype=None, operations=nn):
        super().__init__()
        self.norm = operations.GroupNorm(config.groups, channels, eps=1e-6, affine=True, device=device, dtype=dtype)
        self.proj_in = operations.Linear(channels, channels, device=device, dtype=dtype)
        self.transformer_blocks = nn.ModuleList([
            TemporalTransformerBlock(channels, config.heads, config.attention_blocks, config.max_frames,
                                     device=device, dtype=dtype, operations=operations)
            for _ in range(config.transformer_layers)])
        self.proj_out = operations.Linear(channels, channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, frames: int, scale: float = 1.0) -> torch.Tensor:
        bf, c, h, w = x.shape
        if bf % frames:
            raise ValueError(f"the batch of {bf} latents is not a whole number of {frames}-frame videos")
        hidden = self.norm(x)
        # [(b f), c, h, w] -> [(b h w), f, c]: each pixel's frames form one sequence
        hidden = hidden.view(bf // frames, frames, c, h * w).permute(0, 3, 1, 2).reshape(-1, frames, c)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden)
        hidden = self.proj_out(hidden)
        hidden = hidden.view(bf // frames, h * w, frames, c).permute(0, 2, 3, 1).reshape(bf, c, h, w)
        return x + hidden * scale if scale != 1.0 else x + hidden


class VanillaTemporalModule(nn.Module):
    """One motion module slot of the UNet (the original's name; holds `temporal_transformer`)."""

    def __init__(self, channels: int, config: MotionModuleConfig, device=None, dtype=None, operations=nn):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, config, device=device, dtype=dtype, operations=operations)

    def forward(self, x: torch.Tensor, frames: int, scale: float = 1.0) -> torch.Tensor:
        return self.temporal_transformer(x, frames, scale)


class MotionModuleBlock(nn.Module):
    """The motion modules of one UNet level (`motion_modules.{j}`)."""

    def __init__(self, channels: int, count: int, config: MotionModuleConfig, device=None, dtype=None, operations=nn):
        super().__init__()
        self.motion_modules = nn.ModuleList([
            VanillaTemporalModule(channels, config, device=device, dtype=dtype, operations=operations) for _ in range(count)])


class MotionModel(nn.Module):
    """All motion modules of a checkpoint: down levels, optional middle, up levels (deepest first)."""

    def __init__(self, config: MotionModuleConfig, device=None, dtype=None, operations=None):
        super().__init__()
        operations = operations or host.operations()
        self.config = config
        chans = config.block_channels
        self.down_blocks = nn.ModuleList([
            MotionModuleBlock(c, config.down_layers, config, device, dtype, operations) for c in chans])
        self.mid_block = (MotionModuleBlock(chans[-1], 1, config, device, dtype, operations)
                          if config.mid_block else None)
        self.up_blocks = nn.ModuleList([
            MotionModuleBlock(c, config.up_layers, config, device, dtype, operations) for c in reversed(chans)])
