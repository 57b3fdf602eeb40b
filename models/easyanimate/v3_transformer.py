"""The EasyAnimate V3 diffusion transformer (EasyAnimateV3-XL-2-InP-512x512/768x768/960x960), ComfyUI layout.

Xu et al., "EasyAnimate" (2024), sec. 2.2: a PixArt-alpha DiT (Chen et al. 2023: adaLN-single
time modulation, cross-attention to T5-XXL text, 2x2 patches with 2D sin-cos positions, spatial
self-attention per frame) with a motion module (`v3_motion_module`) after each block's
self-attention, and U-ViT long skip connections (Bao et al. 2023): the outputs of the first 13
blocks are added, through zero-initialised linears and last-in first-out, to the inputs of the
last 13. The InP variant takes 12 input channels (noise, mask latents, masked-video latents) and
8 CLIP image tokens beside the text. Parameter names equal the official `Transformer3DModel`
(`easyanimate/models/transformer3d.py` at the V3 release, config `basic_block_type:
global_motionmodule`, `enable_uvit: true`), so its published `transformer/` weights load as they are.
Inputs and outputs use ComfyUI's 5D latent layout [B, C, T, H, W].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import host
from ..cogvideox.transformer import timestep_embedding
from .v3_motion_module import GLOBAL, TEMPORAL, EasyAnimateV3MotionModule, attention, by_token_chunks
from .v3_schedule import clip_image_active

MOTION_MODES_EVEN = (TEMPORAL, TEMPORAL)
MOTION_MODES_ODD = (TEMPORAL, GLOBAL)
"""The V3 config's `motion_module_kwargs_even/odd.attention_block_types`."""
LONG_SKIPS = 13
"""U-ViT connections: blocks 0..12 feed blocks 15..27 (official: `index < 13`, `index >= 15`)."""
CLIP_TOKENS = 8
"""The InP model turns one CLIP image embedding into this many context tokens."""
PARKED_SKIP_ELEMENTS = 1 << 27
"""The 13 U-ViT skips of a call with at least this many hidden elements (batch x tokens x width; 144 frames at
960x960 in CFG's batch of 2: 3e8) wait on the intermediate device (ComfyUI's: the host) until their block,
instead of holding 13 full activations on the compute device."""


def sincos_2d_embedding(dim: int, height: int, width: int, base_size: int, interpolation_scale: float) -> torch.Tensor:
    """PixArt's 2D sin-cos positions [H*W, dim]: the first half encodes the column, the second the row;
    coordinates are scaled to a base_size grid (computed in float64, as numpy does officially)."""
    def axis(n):
        return torch.arange(n, dtype=torch.float64) / (n / base_size) / interpolation_scale

    def encode(positions):
        omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4.0))
        angles = torch.outer(positions.reshape(-1), omega)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    rows, cols = torch.meshgrid(axis(height), axis(width), indexing="ij")
    return torch.cat([encode(cols), encode(rows)], dim=1).float()


class _Linear2(nn.Module):
    """linear_1 -> activation -> linear_2 (PixArt's caption/CLIP projections, the timestep MLP)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, activation, device=None, dtype=None, operations=nn):
        super().__init__()
        self.linear_1 = operations.Linear(in_dim, hidden, device=device, dtype=dtype)
        self.linear_2 = operations.Linear(hidden, out_dim, device=device, dtype=dtype)
        self.activation = activation

    def forward(self, x):
        return self.linear_2(self.activation(self.linear_1(x)))


def _gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class AdaLayerNormSingle(nn.Module):
    """PixArt-alpha's adaLN-single (sec. 2.3): one MLP on the timestep gives every block's 6 modulations."""

    def __init__(self, dim: int, device=None, dtype=None, operations=nn):
        super().__init__()
        self.emb = nn.Module()
        self.emb.timestep_embedder = _Linear2(256, dim, dim, F.silu, device, dtype, operations)
        self.linear = operations.Linear(dim, 6 * dim, device=device, dtype=dtype)

    def forward(self, timesteps: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb.timestep_embedder(timestep_embedding(timesteps, 256).to(dtype))
        return self.linear(F.silu(embedded)), embedded


class _Attention(nn.Module):
    """Multi-head attention with biased projections (diffusers names: to_q, to_k, to_v, to_out.0)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, device=None, dtype=None, operations=nn):
        super().__init__()
        self.heads = heads
        self.to_q = operations.Linear(dim, dim, device=device, dtype=dtype)
        self.to_k = operations.Linear(context_dim or dim, dim, device=device, dtype=dtype)
        self.to_v = operations.Linear(context_dim or dim, dim, device=device, dtype=dtype)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, device=device, dtype=dtype), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        return self.to_out[0](attention(self.to_q(x), self.to_k(context), self.to_v(context), self.heads))


class _GeluFeedForward(nn.Module):
    """Linear -> tanh-GELU -> Linear (diffusers names net.0.proj, net.2)."""

    def __init__(self, dim: int, device=None, dtype=None, operations=nn):
        super().__init__()
        gelu = nn.Module()
        gelu.proj = operations.Linear(dim, 4 * dim, device=device, dtype=dtype)
        self.net = nn.ModuleList([gelu, nn.Dropout(0.0), operations.Linear(4 * dim, dim, device=device, dtype=dtype)])

    def forward(self, x):
        return self.net[2](F.gelu(self.net[0].proj(x), approximate="tanh"))


def _layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without affine weights, computed in float32 (the official FP32LayerNorm)."""
    return F.layer_norm(x.to(torch.promote_types(x.dtype, torch.float32)), x.shape[-1:], eps=eps).to(x.dtype)


class EasyAnimateV3Block(nn.Module):
    """A PixArt block with a motion module: modulated spatial self-attention per frame, the motion
    module, cross-attention to the text, modulated feed-forward (official `TemporalTransformerBlock`)."""

    def __init__(self, dim: int, heads: int, motion_heads: int, motion_modes: tuple[str, ...], eps: float,
                 device=None, dtype=None, operations=nn):
        super().__init__()
        self.eps = eps
        self.scale_shift_table = nn.Parameter(torch.empty(6, dim, device=device, dtype=dtype))
        self.attn1 = _Attention(dim, heads, device=device, dtype=dtype, operations=operations)
        self.attn_temporal = EasyAnimateV3MotionModule(dim, motion_heads, motion_modes, device, dtype, operations)
        self.attn2 = _Attention(dim, heads, dim, device=device, dtype=dtype, operations=operations)
        self.ff = _GeluFeedForward(dim, device=device, dtype=dtype, operations=operations)

    def forward(self, x: torch.Tensor, context: torch.Tensor, modulation: torch.Tensor, frames: int) -> torch.Tensor:
        """x [B, F*D, C], context [B, L, C], modulation [B, 6*C] -> x."""
        b, n, c = x.shape
        table = self.scale_shift_table.to(modulation)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (table[None] + modulation.view(b, 6, c)).chunk(6, dim=1)
        h = _layer_norm(x, self.eps) * (1 + scale_msa) + shift_msa
        h = self.attn1(h.reshape(b * frames, n // frames, c)).view(b, n, c)
        x = x + gate_msa * h
        x = self.attn_temporal(x, frames)
        x = x + self.attn2(x, context)
        return x + gate_mlp * by_token_chunks(
            lambda part: self.ff(_layer_norm(part, self.eps) * (1 + scale_mlp) + shift_mlp), x)


class EasyAnimateV3Transformer(nn.Module):
    """EasyAnimate V3 DiT. Defaults are the published InP config (PixArt-XL-2 plus the V3 yaml).

    Args:
        num_attention_heads: heads of the spatial and cross attentions (16).
        attention_head_dim: channels per head (72; width 1152).
        in_channels: latent channels in (InP: 12 = 4 noise + 4 mask + 4 masked video; T2V: 4).
        out_channels: channels predicted (8: epsilon and PixArt's learned variance; `forward` returns epsilon).
        num_layers: blocks (28).
        patch_size: spatial patch size (2).
        sample_size: training latent size (64), sets the sin-cos grid's base size and scale.
        caption_channels: width of the T5-XXL features (4096).
        clip_channels: width of the CLIP image embedding the InP model projects to 8 tokens (768; 0 = none).
        motion_module_heads: heads of the motion module attentions (16).
        norm_eps: epsilon of the blocks' LayerNorms (1e-6).
        long_skips: U-ViT connections (13; 0 turns them off).
    """

    def __init__(self, num_attention_heads: int = 16, attention_head_dim: int = 72, in_channels: int = 12,
                 out_channels: int = 8, num_layers: int = 28, patch_size: int = 2, sample_size: int = 64,
                 caption_channels: int = 4096, clip_channels: int = 768, motion_module_heads: int = 16,
                 norm_eps: float = 1e-6, long_skips: int = LONG_SKIPS, device=None, dtype=None, operations=nn,
                 **_ignored):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        self.dtype = dtype if dtype is not None else torch.float32
        self.dim, self.patch_size, self.num_layers = dim, patch_size, num_layers
        self.in_channels, self.out_channels, self.latent_channels = in_channels, out_channels, 4
        self.base_size = sample_size // patch_size
        self.interpolation_scale = max(sample_size // 64, 1)
        self.long_skips = long_skips
        self.pos_embed = nn.Module()
        self.pos_embed.proj = operations.Conv2d(in_channels, dim, patch_size, stride=patch_size, device=device, dtype=dtype)
        self.adaln_single = AdaLayerNormSingle(dim, device, dtype, operations)
        self.caption_projection = _Linear2(caption_channels, dim, dim, _gelu_tanh, device, dtype, operations)
        self.clip_projection = (_Linear2(clip_channels, dim * CLIP_TOKENS, dim * CLIP_TOKENS, _gelu_tanh, device, dtype,
                                         operations) if clip_channels else None)
        self.transformer_blocks = nn.ModuleList([
            EasyAnimateV3Block(dim, num_attention_heads, motion_module_heads,
                               MOTION_MODES_EVEN if i % 2 == 0 else MOTION_MODES_ODD, norm_eps, device, dtype, operations)
            for i in range(num_layers)])
        self.long_connect_fc = nn.ModuleList([operations.Linear(dim, dim, device=device, dtype=dtype)
                                              for _ in range(long_skips)])
        self.scale_shift_table = nn.Parameter(torch.empty(2, dim, device=device, dtype=dtype))
        self.proj_out = operations.Linear(dim, patch_size * patch_size * out_channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                clip_image_embeds: torch.Tensor | None = None, transformer_options: dict | None = None,
                **kwargs) -> torch.Tensor:
        """x [B, in_channels, T, H, W], timesteps [B] (0..999), context [B, L, 4096] (every token attended),
        clip_image_embeds [B, 768] or None (InP: no image tokens) -> epsilon [B, 4, T, H, W].

        Inside ComfyUI the call runs through the DIFFUSION_MODEL wrappers of transformer_options."""
        return host.with_diffusion_model_wrappers(self._forward, self, transformer_options or {}, x, timesteps, context,
                                                  clip_image_embeds, transformer_options, **kwargs)

    def _forward(self, x, timesteps, context, clip_image_embeds=None, transformer_options=None,
                 clip_apply_ratio: float = 1.0, **_kwargs):
        """In a sampler run (transformer_options holding "sigmas" and "sample_sigmas") the image tokens
        join only for the last `clip_apply_ratio` of the steps, as the InP pipeline does."""
        options = transformer_options or {}
        if clip_image_embeds is not None and "sigmas" in options:
            if not clip_image_active(options.get("sample_sigmas"), float(options["sigmas"].max()), clip_apply_ratio):
                clip_image_embeds = None
        return self.predict(x, timesteps, context, clip_image_embeds)[:, :self.latent_channels]

    def predict(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                clip_image_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """All `out_channels` the network predicts (epsilon, then the learned variance)."""
        b, c, t, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"EasyAnimate V3 latents need a height and width divisible by {p}; got {h}x{w} "
                             f"(generate at a size divisible by {8 * p} pixels)")
        if c != self.in_channels:
            raise ValueError(f"this EasyAnimate V3 transformer takes {self.in_channels} input channels, got {c}")
        grid_h, grid_w = h // p, w // p
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        tokens = self.pos_embed.proj(frames).flatten(2).transpose(1, 2)
        positions = sincos_2d_embedding(self.dim, grid_h, grid_w, self.base_size, self.interpolation_scale)
        tokens = (tokens + positions.to(tokens.device)[None]).to(tokens.dtype).reshape(b, t * grid_h * grid_w, self.dim)
        modulation, embedded = self.adaln_single(timesteps, tokens.dtype)
        context = self.caption_projection(context.to(tokens.dtype))
        if clip_image_embeds is not None and self.clip_projection is not None:
            image_tokens = self.clip_projection(clip_image_embeds.to(tokens.dtype)).view(b, CLIP_TOKENS, self.dim)
            context = torch.cat([context, image_tokens], dim=1)
        skips = []
        first_target = self.num_layers - self.long_skips
        parking = host.intermediate_device() if tokens.numel() >= PARKED_SKIP_ELEMENTS else tokens.device
        for index, block in enumerate(self.transformer_blocks):
            if self.long_skips and index >= first_target:
                tokens = tokens + self.long_connect_fc[index - first_target](skips.pop().to(tokens.device))
            tokens = block(tokens, context, modulation, t)
            if index < self.long_skips:
                skips.append(tokens.to(parking))
        shift, scale = (self.scale_shift_table.to(embedded)[None] + embedded[:, None]).chunk(2, dim=1)
        tokens = self.proj_out(F.layer_norm(tokens, (self.dim,), eps=1e-6) * (1 + scale) + shift)
        out = tokens.view(b, t, grid_h, grid_w, p, p, self.out_channels)
        return out.permute(0, 6, 1, 2, 4, 3, 5).reshape(b, self.out_channels, t, h, w)
