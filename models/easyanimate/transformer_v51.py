"""The EasyAnimate V5.1 diffusion transformer (12B and 7B; T2V, InP and Control), ComfyUI layout.

An MMDiT (Esser et al., "Scaling Rectified Flow Transformers", 2024, sec. 4): text and video
tokens keep their own projections and feed-forwards but attend jointly, each stream modulated by
the time embedding with its own shift/scale/gate (EasyAnimate report, Xu et al. 2024, "V5: MMDiT").
Positions: CogVideoX 1.0's 3D RoPE on the video tokens. InP and Control models see extra latent
channels beside the noise (mask + masked video, or control video + reference image).

Parameter names equal diffusers' `EasyAnimateTransformer3DModel`, so the diffusers folders load
as they are; the official (non-diffusers) files are renamed by `dit_keys`. Inputs and outputs use
ComfyUI's 5D latent layout [B, C, T, H, W].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import host
from ..cogvideox.transformer import (CogVideoXFeedForward, CogVideoXTimestepMLP, apply_rope, check_patchable, rope_3d,
                                     timestep_embedding, unpatchify)

FF_CHUNKS = 4
"""Token slices the feed-forwards run in (EasyAnimateBlock.feed_chunked)."""

ROPE_BASE_GRID = (30, 45)
"""RoPE's training grid in patches (60 x 90 latent pixels / 2), fixed in the published model."""


def fp32_layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm computed in float32 whatever the weights' dtype, returned in x's dtype (diffusers FP32LayerNorm)."""
    weight = norm.weight.to(x.device, torch.float32) if norm.weight is not None else None
    bias = norm.bias.to(x.device, torch.float32) if norm.bias is not None else None
    return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps).to(x.dtype)


class EasyAnimateAdaNormZero(nn.Module):
    """float32 LayerNorm with separate shift/scale/gate for video and text tokens from the time embedding."""

    def __init__(self, time_dim: int, dim: int, eps: float, device=None, dtype=None, operations=nn):
        super().__init__()
        self.linear = operations.Linear(time_dim, 6 * dim, device=device, dtype=dtype)
        self.norm = operations.LayerNorm(dim, eps=eps, device=device, dtype=dtype)

    def forward(self, x, text, temb):
        shift, scale, gate, t_shift, t_scale, t_gate = self.linear(F.silu(temb))[:, None].chunk(6, dim=2)
        x = torch.addcmul(shift, fp32_layer_norm(self.norm, x), 1 + scale)
        text = torch.addcmul(t_shift, fp32_layer_norm(self.norm, text), 1 + t_scale)
        return x, text, gate, t_gate


class EasyAnimateSharedAttention(nn.Module):
    """Self-attention over [text; video] with one set of q/k/v and output weights for both (the 7B model's later
    blocks), LayerNorm on q and k, RoPE on the video tokens only. As the official EasyAnimateAttnProcessor2_0
    without attn2: the output projection applies to the text tokens too (diffusers' port leaves them unprojected)."""

    def __init__(self, dim: int, heads: int, head_dim: int, device=None, dtype=None, operations=nn):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q, self.to_k, self.to_v = (operations.Linear(dim, inner, device=device, dtype=dtype) for _ in range(3))
        self.norm_q, self.norm_k = (operations.LayerNorm(head_dim, eps=1e-6, device=device, dtype=dtype) for _ in range(2))
        self.to_out = nn.ModuleList([operations.Linear(inner, dim, device=device, dtype=dtype)])

    @staticmethod
    def _heads(x, heads, project, norm=None):
        b, n, _ = x.shape
        x = project(x).reshape(b, n, heads, -1).transpose(1, 2)
        return norm(x) if norm is not None else x

    def _rotate(self, x, text_length, rope):
        return torch.cat([x[:, :, :text_length], apply_rope(x[:, :, text_length:], *rope)], dim=2)

    def forward(self, video: torch.Tensor, text: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]):
        text_length = text.shape[1]
        tokens = torch.cat([text, video], dim=1)
        q = self._rotate(self._heads(tokens, self.heads, self.to_q, self.norm_q), text_length, rope)
        k = self._rotate(self._heads(tokens, self.heads, self.to_k, self.norm_k), text_length, rope)
        v = self._heads(tokens, self.heads, self.to_v)
        del tokens
        out = self.to_out[0](host.attention(q, k, v, self.heads))
        return out[:, text_length:], out[:, :text_length]


class EasyAnimateJointAttention(EasyAnimateSharedAttention):
    """MMDiT joint attention over [text; video]: the text tokens have their own q/k/v, q/k LayerNorms and output
    projection (diffusers' add_*; the official files' attn2)."""

    def __init__(self, dim: int, heads: int, head_dim: int, device=None, dtype=None, operations=nn):
        super().__init__(dim, heads, head_dim, device, dtype, operations)
        inner = heads * head_dim
        self.add_q_proj, self.add_k_proj, self.add_v_proj = (
            operations.Linear(dim, inner, device=device, dtype=dtype) for _ in range(3))
        self.norm_added_q, self.norm_added_k = (
            operations.LayerNorm(head_dim, eps=1e-6, device=device, dtype=dtype) for _ in range(2))
        self.to_add_out = operations.Linear(inner, dim, device=device, dtype=dtype)

    def forward(self, video: torch.Tensor, text: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]):
        text_length, h = text.shape[1], self.heads
        cos, sin = rope
        q = torch.cat([self._heads(text, h, self.add_q_proj, self.norm_added_q),
                       apply_rope(self._heads(video, h, self.to_q, self.norm_q), cos, sin)], dim=2)
        k = torch.cat([self._heads(text, h, self.add_k_proj, self.norm_added_k),
                       apply_rope(self._heads(video, h, self.to_k, self.norm_k), cos, sin)], dim=2)
        v = torch.cat([self._heads(text, h, self.add_v_proj), self._heads(video, h, self.to_v)], dim=2)
        out = host.attention(q, k, v, h)
        del q, k, v
        return self.to_out[0](out[:, text_length:]), self.to_add_out(out[:, :text_length])


class EasyAnimateSharedBlock(nn.Module):
    """One single-stream block (the 7B model's later half): modulated attention with shared weights, then one
    feed-forward for both streams, both gated (per stream); with `after_norm` a float32 LayerNorm follows each
    feed-forward."""

    attention_class = EasyAnimateSharedAttention

    def __init__(self, dim: int, heads: int, head_dim: int, time_dim: int, eps: float, after_norm: bool,
                 device=None, dtype=None, operations=nn):
        super().__init__()
        self.norm1 = EasyAnimateAdaNormZero(time_dim, dim, eps, device, dtype, operations)
        self.attn1 = self.attention_class(dim, heads, head_dim, device, dtype, operations)
        self.norm2 = EasyAnimateAdaNormZero(time_dim, dim, eps, device, dtype, operations)
        self.ff = CogVideoXFeedForward(dim, 4 * dim, device, dtype, operations)
        self.norm3 = operations.LayerNorm(dim, eps=eps, device=device, dtype=dtype) if after_norm else None

    def text_feed_forward(self):
        return self.ff

    def feed(self, ff, x):
        """The feed-forward (then norm3) of tokens x [B, N, D], as one batch: the plain version."""
        x = ff(x)
        return fp32_layer_norm(self.norm3, x) if self.norm3 is not None else x

    def feed_chunked(self, ff, x, chunks: int = FF_CHUNKS):
        """`feed` a slice of tokens at a time (each token is independent): the 4x-wide hidden layer, the
        largest activation of the block, exists for one slice only. Equals `feed`."""
        out = torch.empty_like(x)
        step = -(-x.shape[1] // chunks)
        for start in range(0, x.shape[1], step):
            out[:, start:start + step] = self.feed(ff, x[:, start:start + step])
        return out

    def forward(self, video, text, temb, rope):
        n_video, n_text, gate, t_gate = self.norm1(video, text, temb)
        attended_video, attended_text = self.attn1(n_video, n_text, rope)
        del n_video, n_text
        video = torch.addcmul(video, gate, attended_video)
        text = torch.addcmul(text, t_gate, attended_text)
        del attended_video, attended_text
        n_video, n_text, gate, t_gate = self.norm2(video, text, temb)
        video = torch.addcmul(video, gate, self.feed_chunked(self.ff, n_video))
        text = torch.addcmul(text, t_gate, self.feed_chunked(self.text_feed_forward(), n_text))
        return video, text


class EasyAnimateBlock(EasyAnimateSharedBlock):
    """One MMDiT block: the text stream has its own attention weights and feed-forward."""

    attention_class = EasyAnimateJointAttention

    def __init__(self, dim: int, heads: int, head_dim: int, time_dim: int, eps: float, after_norm: bool,
                 device=None, dtype=None, operations=nn):
        super().__init__(dim, heads, head_dim, time_dim, eps, after_norm, device, dtype, operations)
        self.txt_ff = CogVideoXFeedForward(dim, 4 * dim, device, dtype, operations)

    def text_feed_forward(self):
        return self.txt_ff


class EasyAnimateFinalNorm(nn.Module):
    """Final LayerNorm modulated by the time embedding (shift first, then scale)."""

    def __init__(self, time_dim: int, dim: int, eps: float, device=None, dtype=None, operations=nn):
        super().__init__()
        self.linear = operations.Linear(time_dim, 2 * dim, device=device, dtype=dtype)
        self.norm = operations.LayerNorm(dim, eps=eps, device=device, dtype=dtype)

    def forward(self, x, temb):
        shift, scale = self.linear(F.silu(temb))[:, None].chunk(2, dim=2)
        return torch.addcmul(shift, self.norm(x), 1 + scale)


class EasyAnimateV51Transformer(nn.Module):
    """EasyAnimate V5.1 MMDiT. Defaults are the published 12B model's.

    Args:
        num_attention_heads: heads per attention (48).
        attention_head_dim: channels per head (64).
        in_channels: latent channels in: 16 (T2V), 33 (InP: + mask + masked video), 48 (Control: + control
            video + reference image).
        out_channels: latent channels predicted (16).
        patch_size: spatial patch size (2).
        time_embed_dim: width of the time embedding fed to every adaptive norm (512).
        text_embed_dim: width of the text features (3584, Qwen2-VL-7B's hidden size).
        num_layers: transformer blocks (12B: 48, 7B: 36).
        mmdit_layers: how many of the first blocks are MMDiT blocks (12B: all 48, 7B: 18); the rest share their
            attention and feed-forward weights between text and video.
        add_norm_text_encoder: an RMSNorm before the text projection (True in the published V5.1 models).
        norm_eps: epsilon of the adaptive LayerNorms (1e-5).
        after_norm: a LayerNorm after each feed-forward (False in V5.1).
        flip_sin_to_cos, freq_shift: layout of the sinusoidal timestep features (True, 0).
    """

    def __init__(self, num_attention_heads: int = 48, attention_head_dim: int = 64, in_channels: int = 16,
                 out_channels: int = 16, patch_size: int = 2, time_embed_dim: int = 512, text_embed_dim: int = 3584,
                 num_layers: int = 48, mmdit_layers: int = 48, add_norm_text_encoder: bool = True,
                 norm_eps: float = 1e-5, after_norm: bool = False,
                 flip_sin_to_cos: bool = True, freq_shift: int = 0, device=None, dtype=None, operations=nn,
                 **_ignored):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        self.dtype = dtype if dtype is not None else torch.float32
        self.dim, self.head_dim = dim, attention_head_dim
        self.in_channels, self.out_channels, self.patch_size = in_channels, out_channels, patch_size
        self.text_embed_dim = text_embed_dim
        self.flip_sin_to_cos, self.freq_shift = flip_sin_to_cos, freq_shift
        self.time_embedding = CogVideoXTimestepMLP(dim, time_embed_dim, device, dtype, operations)
        self.proj = operations.Conv2d(in_channels, dim, patch_size, stride=patch_size, device=device, dtype=dtype)
        projection = operations.Linear(text_embed_dim, dim, device=device, dtype=dtype)
        if add_norm_text_encoder:
            self.text_proj = nn.Sequential(
                operations.RMSNorm(text_embed_dim, eps=1e-6, elementwise_affine=True, device=device, dtype=dtype),
                projection)
        else:
            self.text_proj = projection
        self.transformer_blocks = nn.ModuleList([
            (EasyAnimateBlock if index < mmdit_layers else EasyAnimateSharedBlock)(
                dim, num_attention_heads, attention_head_dim, time_embed_dim, norm_eps, after_norm, device, dtype,
                operations)
            for index in range(num_layers)])
        self.norm_final = operations.LayerNorm(dim, eps=norm_eps, device=device, dtype=dtype)
        self.norm_out = EasyAnimateFinalNorm(time_embed_dim, dim, norm_eps, device, dtype, operations)
        self.proj_out = operations.Linear(dim, patch_size * patch_size * out_channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                transformer_options: dict | None = None, **kwargs) -> torch.Tensor:
        """x [B, in_channels, T, H, W] (noise, then any InP/Control channels), timesteps [B] (0..1000),
        context [B, L, text_embed_dim] -> velocity [B, out_channels, T, H, W].

        Inside ComfyUI the call runs through the DIFFUSION_MODEL wrappers of transformer_options.
        """
        transformer_options = transformer_options or {}
        return host.with_diffusion_model_wrappers(self._forward, self, transformer_options, x, timesteps, context,
                                                  transformer_options, **kwargs)

    def _forward(self, x, timesteps, context, transformer_options, **_kwargs):
        b, _c, t, h, w = x.shape
        p = self.patch_size
        check_patchable(h, w, p, "EasyAnimate V5.1")
        temb = self.time_embedding(timestep_embedding(timesteps, self.dim, self.flip_sin_to_cos, self.freq_shift).to(x.dtype))
        frames = x.transpose(1, 2).reshape(b * t, -1, h, w)
        video = self.proj(frames).reshape(b, t, self.dim, -1).transpose(2, 3).reshape(b, -1, self.dim)
        del frames
        text = self.text_proj(context)
        cos, sin = rope_3d(self.head_dim, t, h // p, w // p, *ROPE_BASE_GRID)
        rope = cos.to(video.device), sin.to(video.device)
        for block in self.transformer_blocks:
            video, text = block(video, text, temb, rope)
        return unpatchify(self.proj_out(self.norm_out(self.norm_final(video), temb)), t, h, w, p)
