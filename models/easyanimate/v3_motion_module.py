"""EasyAnimate V3's motion module ("hybrid motion module"): the temporal transformer in every DiT block.

Xu et al., "EasyAnimate: A High-Performance Long Video Generation Method based on Transformer
Architecture" (2024), sec. 2.2: after each block's spatial self-attention the video tokens pass
through an AnimateDiff-style temporal transformer (official `easyanimate/models/motion_module.py`,
`VanillaTemporalModule` with `motion_module_type: Vanilla`). Even blocks run two temporal
self-attentions (each position attends over the frames); odd blocks run one temporal and one
"global" self-attention (every token of the clip attends to every other), both after a
sinusoidal position encoding over the frames. Module names equal the official ones
(`attn_temporal.temporal_transformer.{norm, proj_in, transformer_blocks.0.{attention_blocks,
norms, ff, ff_norm}, proj_out}`).

The official modules keep their position tables (4096 x width) as buffers that the published
files store; here they are computed for the frames at hand (`v3_keys` drops the stored copies).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import host
from ..animatediff.motion_module import GEGLUFeedForward, sinusoidal_encoding

TEMPORAL, GLOBAL = "Temporal", "Global"
ATTENTION_ELEMENTS = 1 << 28
"""Query chunking: at most this many attention scores (queries x keys x heads) per call, so a global
attention over a long clip never asks for a quadratic buffer, whatever kernel runs it."""
CHUNK_TOKENS = 1 << 14
"""Token-wise layers (feed-forwards, temporal attention) run on at most this many tokens at a time on
long clips, so their 4x-8x wide intermediates stay small (144 frames at 960x960 are 129,600 tokens)."""


def by_token_chunks(fn, x: torch.Tensor, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """fn applied to x [B, N, C] in slices of `chunk` tokens, written into one output: equals fn(x) for any
    fn that treats tokens independently (the memory-saving path beside the plain call)."""
    if x.shape[1] <= chunk:
        return fn(x)
    out = None
    for start in range(0, x.shape[1], chunk):
        piece = fn(x[:, start:start + chunk])
        if out is None:
            out = piece.new_empty(x.shape[:2] + piece.shape[2:])
        out[:, start:start + piece.shape[1]] = piece
    return out


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Softmax attention of q [N, Lq, C] over k, v [N, Lk, C] with `heads` heads; queries in chunks.

    Inside ComfyUI the kernel is ComfyUI's choice (pytorch SDPA, xformers, sage...)."""
    n, lq, c = q.shape
    chunk = max(1, min(lq, ATTENTION_ELEMENTS // max(1, n * k.shape[1] * heads)))
    if chunk >= lq:
        return _attention(q, k, v, heads)
    return torch.cat([_attention(q[:, i:i + chunk], k, v, heads) for i in range(0, lq, chunk)], dim=1)


def _attention(q, k, v, heads):
    n, _length, c = q.shape
    return host.attention(*(t.reshape(n, -1, heads, c // heads).transpose(1, 2) for t in (q, k, v)), heads)


def fp32_layer_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The official FP32LayerNorm: normalise in (at least) float32, return in x's dtype."""
    return norm(x.to(torch.promote_types(x.dtype, torch.float32))).to(x.dtype)


class MotionAttention(nn.Module):
    """Self-attention over frames ("Temporal": one sequence per position) or over the whole clip ("Global")."""

    def __init__(self, mode: str, dim: int, heads: int, device=None, dtype=None, operations=nn):
        super().__init__()
        if mode not in (TEMPORAL, GLOBAL):
            raise ValueError(f"motion module attention type must be {TEMPORAL} or {GLOBAL}, got {mode!r}")
        self.mode, self.heads = mode, heads
        self.to_q = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_k = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_v = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, device=device, dtype=dtype), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x [B*F, D, C] (the frames of each video in a row) -> the same shape."""
        bf, d, c = x.shape
        b = bf // frames
        encoding = sinusoidal_encoding(frames, c).to(x)[:, :, None]
        if self.mode == GLOBAL:
            sequences = (x.view(b, frames, d, c) + encoding).reshape(b, frames * d, c)
            out = attention(self.to_q(sequences), self.to_k(sequences), self.to_v(sequences), self.heads)
            return self.to_out[0](out).view(bf, d, c)
        # each position's frames form one sequence; positions are independent, so they go in chunks
        out = torch.empty_like(x).view(b, frames, d, c)
        step = max(1, CHUNK_TOKENS // (b * frames))
        for start in range(0, d, step):
            piece = x.view(b, frames, d, c)[:, :, start:start + step] + encoding
            n = piece.shape[2]
            sequences = piece.permute(0, 2, 1, 3).reshape(b * n, frames, c)
            attended = self.to_out[0](attention(self.to_q(sequences), self.to_k(sequences), self.to_v(sequences),
                                                self.heads))
            out[:, :, start:start + n] = attended.view(b, n, frames, c).permute(0, 2, 1, 3)
        return out.view(bf, d, c)


class MotionTransformerBlock(nn.Module):
    """Pre-norm motion attentions, then a pre-norm GEGLU feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, modes: tuple[str, ...], device=None, dtype=None, operations=nn):
        super().__init__()
        self.attention_blocks = nn.ModuleList([MotionAttention(m, dim, heads, device, dtype, operations) for m in modes])
        self.norms = nn.ModuleList([operations.LayerNorm(dim, device=device, dtype=dtype) for _ in modes])
        self.ff = GEGLUFeedForward(dim, device=device, dtype=dtype, operations=operations)
        self.ff_norm = operations.LayerNorm(dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention_block, norm in zip(self.attention_blocks, self.norms):
            x = attention_block(fp32_layer_norm(norm, x), frames) + x
        return by_token_chunks(lambda h: self.ff(fp32_layer_norm(self.ff_norm, h)), x) + x


class MotionTransformer(nn.Module):
    """GroupNorm (per frame), proj_in, the transformer block, proj_out, residual."""

    def __init__(self, dim: int, heads: int, modes: tuple[str, ...], groups: int = 32,
                 device=None, dtype=None, operations=nn):
        super().__init__()
        self.norm = operations.GroupNorm(groups, dim, eps=1e-6, affine=True, device=device, dtype=dtype)
        self.proj_in = operations.Linear(dim, dim, device=device, dtype=dtype)
        self.transformer_blocks = nn.ModuleList([MotionTransformerBlock(dim, heads, modes, device, dtype, operations)])
        self.proj_out = operations.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x [B, F*D, C] video tokens (frame-major) -> the same shape."""
        b, n, c = x.shape
        frame_tokens = x.view(b * frames, n // frames, c)
        hidden = self.norm(frame_tokens.transpose(1, 2)).transpose(1, 2)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, frames)
        return x + self.proj_out(hidden).view(b, n, c)


class EasyAnimateV3MotionModule(nn.Module):
    """The official `VanillaTemporalModule` slot of a DiT block (`attn_temporal`)."""

    def __init__(self, dim: int, heads: int, modes: tuple[str, ...], device=None, dtype=None, operations=nn):
        super().__init__()
        self.temporal_transformer = MotionTransformer(dim, heads, modes, device=device, dtype=dtype,
                                                      operations=operations)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, frames)
