"""The CogVideoX diffusion transformer (CogVideoX-2B, -5B and -5B-I2V), ComfyUI layout.

Expert-adaLN DiT of Yang et al., "CogVideoX: Text-to-Video Diffusion Models with an
Expert Transformer" (2024): text and video tokens are concatenated, every block
modulates both with its own shift/scale/gate (sec. 2.2, "expert adaptive LayerNorm"),
full 3D attention with 3D RoPE on the video tokens (5B) or 3D sin-cos embeddings (2B).

Parameter names equal diffusers' `CogVideoXTransformer3DModel`, so its published
`transformer/` folders load without renaming. Inputs and outputs use ComfyUI's 5D
latent layout [B, C, T, H, W].

Hook point: after each block's first norm/modulation the video tokens pass through the
callables in `transformer_options["patches"][VIDEO_NORM_PATCH]` (Tora's fusers use it).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import host

VIDEO_NORM_PATCH = "motionkit_cogvideox_video_norm1"
"""transformer_options["patches"] key: callables `fn(h, info) -> h` on the modulated video tokens.

`h` is [B, T*H*W, C] (tokens after the first adaptive norm of block `info["block_index"]`),
`info` holds "block_index", "grid" (T, H, W in patches) and "transformer_options".
"""


# ---------------------------------------------------------------- patches
def check_patchable(height: int, width: int, patch_size: int, family: str) -> None:
    """Refuse latents whose height or width the transformer's patches do not tile, naming the image size."""
    if height % patch_size or width % patch_size:
        raise ValueError(f"{family} latents must have a height and width divisible by {patch_size}; got "
                         f"{height}x{width} (an image size divisible by {8 * patch_size} pixels)")


def unpatchify(video: torch.Tensor, frames: int, height: int, width: int, patch_size: int) -> torch.Tensor:
    """Video tokens [B, T * H/p * W/p, C * p * p] (frame-major, then rows) -> latents [B, C, T, H, W]."""
    b, p = video.shape[0], patch_size
    video = video.reshape(b, frames, height // p, width // p, -1, p, p)
    return video.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, -1, frames, height, width)


# ---------------------------------------------------------------- position and time embeddings
def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool = True,
                       freq_shift: float = 0.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features (Vaswani et al. 2017, sec. 3.5), cos first when flipped."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    frequencies = torch.exp(exponent / (half - freq_shift))
    angles = timesteps[:, None].float() * frequencies[None, :]
    parts = (torch.cos(angles), torch.sin(angles)) if flip_sin_to_cos else (torch.sin(angles), torch.cos(angles))
    embedding = torch.cat(parts, dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


def _sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[sin | cos] features of positions (MAE-style fixed embedding), computed in float64."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    angles = torch.outer(positions.reshape(-1).double(), omega)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_3d_embedding(dim: int, frames: int, height: int, width: int,
                        spatial_scale: float, temporal_scale: float) -> torch.Tensor:
    """CogVideoX-2B's fixed 3D sin-cos embedding: [T*H*W, dim], a quarter temporal, 3/4 spatial (h then w)."""
    spatial_dim, temporal_dim = dim // 4 * 3, dim // 4
    rows = (torch.arange(height, dtype=torch.float32) / spatial_scale)[:, None].expand(height, width)
    cols = (torch.arange(width, dtype=torch.float32) / spatial_scale)[None, :].expand(height, width)
    # the published embedding encodes the column index first, then the row index
    spatial = torch.cat([_sincos_1d(spatial_dim // 2, cols), _sincos_1d(spatial_dim // 2, rows)], dim=1)
    temporal = _sincos_1d(temporal_dim, torch.arange(frames, dtype=torch.float32) / temporal_scale)
    embedding = torch.cat([temporal[:, None, :].expand(frames, height * width, temporal_dim),
                           spatial[None].expand(frames, height * width, spatial_dim)], dim=-1)
    return embedding.reshape(frames * height * width, dim).float()


def _rope_axis(dim: int, positions: torch.Tensor, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    frequencies = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = torch.outer(positions.float(), frequencies)
    return angles.cos().repeat_interleave(2, dim=1), angles.sin().repeat_interleave(2, dim=1)


def rope_3d(head_dim: int, frames: int, height: int, width: int,
            base_height: int, base_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CogVideoX 1.0's 3D RoPE (cos, sin), each [T*H*W, head_dim].

    A quarter of each head rotates with time, 3/8 with rows and 3/8 with columns. The grid is
    the patch grid resized (aspect kept) and centred into the training grid base_height x
    base_width, then sampled at `size` points from the crop's start (as the published pipeline does).
    """
    if height / width > base_height / base_width:
        resized_h, resized_w = base_height, int(round(base_height / height * width))
    else:
        resized_h, resized_w = int(round(base_width / width * height)), base_width
    top, left = int(round((base_height - resized_h) / 2.0)), int(round((base_width - resized_w) / 2.0))
    bottom, right = top + resized_h, left + resized_w
    rows = torch.linspace(top, bottom * (height - 1) / height, height, dtype=torch.float32)
    cols = torch.linspace(left, right * (width - 1) / width, width, dtype=torch.float32)
    times = torch.linspace(0, frames * (frames - 1) / frames, frames, dtype=torch.float32)
    dim_t, dim_s = head_dim // 4, head_dim // 8 * 3
    parts = [_rope_axis(dim_t, times), _rope_axis(dim_s, rows), _rope_axis(dim_s, cols)]

    def grid(t, h, w):
        return torch.cat([t[:, None, None, :].expand(-1, height, width, -1),
                          h[None, :, None, :].expand(frames, -1, width, -1),
                          w[None, None, :, :].expand(frames, height, -1, -1)], dim=-1).reshape(frames * height * width, -1)

    return grid(*(p[0] for p in parts)), grid(*(p[1] for p in parts))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of the last dim of x [B, heads, N, D] by the angles in cos/sin [N, D]."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


# ---------------------------------------------------------------- modules
class CogVideoXTimestepMLP(nn.Module):
    """linear_1 -> SiLU -> linear_2 on sinusoidal features."""

    def __init__(self, in_dim: int, out_dim: int, device=None, dtype=None, operations=nn):
        super().__init__()
        self.linear_1 = operations.Linear(in_dim, out_dim, device=device, dtype=dtype)
        self.linear_2 = operations.Linear(out_dim, out_dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class CogVideoXPatchEmbed(nn.Module):
    """2x2 patches of each latent frame and the projected text, as one token sequence."""

    def __init__(self, patch_size: int, in_channels: int, dim: int, text_dim: int, learned_positions: int = 0,
                 device=None, dtype=None, operations=nn):
        super().__init__()
        self.proj = operations.Conv2d(in_channels, dim, patch_size, stride=patch_size, device=device, dtype=dtype)
        self.text_proj = operations.Linear(text_dim, dim, device=device, dtype=dtype)
        if learned_positions:
            self.pos_embedding = nn.Parameter(torch.empty(1, learned_positions, dim, device=device, dtype=dtype))

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """text [B, L, text_dim], video [B, C, T, H, W] -> [B, L + T*H/p*W/p, dim]."""
        b, c, t, h, w = video.shape
        frames = video.transpose(1, 2).reshape(b * t, c, h, w)
        patches = self.proj(frames)
        patches = patches.reshape(b, t, patches.shape[1], -1).transpose(2, 3).reshape(b, -1, patches.shape[1])
        return torch.cat([self.text_proj(text), patches], dim=1)


class CogVideoXAdaNormZero(nn.Module):
    """LayerNorm with separate shift/scale/gate for video and text tokens from the time embedding."""

    def __init__(self, time_dim: int, dim: int, eps: float, device=None, dtype=None, operations=nn):
        super().__init__()
        self.linear = operations.Linear(time_dim, 6 * dim, device=device, dtype=dtype)
        self.norm = operations.LayerNorm(dim, eps=eps, device=device, dtype=dtype)

    def forward(self, x, text, temb):
        shift, scale, gate, t_shift, t_scale, t_gate = self.linear(F.silu(temb)).chunk(6, dim=1)
        x = self.norm(x) * (1 + scale[:, None]) + shift[:, None]
        text = self.norm(text) * (1 + t_scale[:, None]) + t_shift[:, None]
        return x, text, gate[:, None], t_gate[:, None]


class CogVideoXAttention(nn.Module):
    """Full self-attention over [text; video] with per-head LayerNorm on q and k and RoPE on video.

    `forward` is the plain path. The blocks call `project` and `attend` with `heads_per_chunk` instead:
    the same per-head operations, a group of heads at a time, so only one group's normalization and
    RoPE temporaries (RoPE runs in float32) are alive next to q, k and v.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, device=None, dtype=None, operations=nn):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q = operations.Linear(dim, inner, device=device, dtype=dtype)
        self.to_k = operations.Linear(dim, inner, device=device, dtype=dtype)
        self.to_v = operations.Linear(dim, inner, device=device, dtype=dtype)
        self.norm_q = operations.LayerNorm(head_dim, eps=1e-6, device=device, dtype=dtype)
        self.norm_k = operations.LayerNorm(head_dim, eps=1e-6, device=device, dtype=dtype)
        self.to_out = nn.ModuleList([operations.Linear(inner, dim, device=device, dtype=dtype)])

    def forward(self, tokens: torch.Tensor, text_length: int, rope: tuple[torch.Tensor, torch.Tensor] | None):
        b, n, _ = tokens.shape
        q, k, v = (proj(tokens).reshape(b, n, self.heads, -1).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        q, k = self.norm_q(q), self.norm_k(k)
        if rope is not None:
            cos, sin = rope
            q = torch.cat([q[:, :, :text_length], apply_rope(q[:, :, text_length:], cos, sin)], dim=2)
            k = torch.cat([k[:, :, :text_length], apply_rope(k[:, :, text_length:], cos, sin)], dim=2)
        return self.to_out[0](host.attention(q, k, v, self.heads))

    def project(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as [B, N, heads, head_dim]."""
        b, n, _ = tokens.shape
        return tuple(proj(tokens).reshape(b, n, self.heads, -1) for proj in (self.to_q, self.to_k, self.to_v))

    def attend(self, q, k, v, text_length: int, rope, heads_per_chunk: int) -> torch.Tensor:
        """`forward` after `project`, `heads_per_chunk` heads at a time; q and k are normalized in place."""
        b, n, heads, head_dim = q.shape
        out = torch.empty((b, n, heads * head_dim), dtype=v.dtype, device=v.device)
        rope = None if rope is None else tuple(r[:, None, :] for r in rope)  # [N, 1, D]: broadcast over heads
        for start in range(0, heads, heads_per_chunk):
            group = slice(start, min(start + heads_per_chunk, heads))
            for x, norm in ((q, self.norm_q), (k, self.norm_k)):
                x[:, :, group] = norm(x[:, :, group])
                if rope is not None:
                    x[:, text_length:, group] = apply_rope(x[:, text_length:, group], *rope)
            width = group.stop - group.start
            out[:, :, group.start * head_dim:group.stop * head_dim] = host.attention(
                q[:, :, group].transpose(1, 2), k[:, :, group].transpose(1, 2), v[:, :, group].transpose(1, 2), width)
        return self.to_out[0](out)


class CogVideoXFeedForward(nn.Module):
    """Linear -> tanh-GELU -> Linear (diffusers names: net.0.proj, net.2).

    With `tokens_per_chunk`, token chunks go through one after the other into one output (the
    feed-forward acts on each token alone): the 4x-wide hidden layer exists for one chunk at a time."""

    def __init__(self, dim: int, inner: int, device=None, dtype=None, operations=nn):
        super().__init__()
        self.net = nn.ModuleList([_Proj(dim, inner, device, dtype, operations), nn.Identity(),
                                  operations.Linear(inner, dim, device=device, dtype=dtype)])

    def forward(self, x, tokens_per_chunk: int | None = None):
        if tokens_per_chunk is None:
            return self.net[2](F.gelu(self.net[0].proj(x), approximate="tanh"))
        flat = x.reshape(-1, x.shape[-1])
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], tokens_per_chunk):
            out[start:start + tokens_per_chunk] = self.forward(flat[start:start + tokens_per_chunk])
        return out.reshape(x.shape)


class _Proj(nn.Module):
    def __init__(self, dim, inner, device, dtype, operations):
        super().__init__()
        self.proj = operations.Linear(dim, inner, device=device, dtype=dtype)


class CogVideoXBlock(nn.Module):
    """One expert-adaLN block: modulated attention, then modulated feed-forward, both gated.

    Memory: each input of a stage is dropped as soon as the next one exists; attention runs
    HEADS_PER_CHUNK heads and the feed-forward TOKENS_PER_CHUNK tokens at a time (bench/tora.py --trace)."""

    HEADS_PER_CHUNK = 4
    TOKENS_PER_CHUNK = 8192

    def __init__(self, dim: int, heads: int, head_dim: int, time_dim: int, eps: float,
                 device=None, dtype=None, operations=nn):
        super().__init__()
        self.norm1 = CogVideoXAdaNormZero(time_dim, dim, eps, device, dtype, operations)
        self.attn1 = CogVideoXAttention(dim, heads, head_dim, device, dtype, operations)
        self.norm2 = CogVideoXAdaNormZero(time_dim, dim, eps, device, dtype, operations)
        self.ff = CogVideoXFeedForward(dim, 4 * dim, device, dtype, operations)

    def forward(self, x, text, temb, rope, video_hook: Callable[[torch.Tensor], torch.Tensor] | None = None):
        text_length = text.shape[1]
        n_x, n_text, gate, t_gate = self.norm1(x, text, temb)
        if video_hook is not None:
            n_x = video_hook(n_x)
        tokens = torch.cat([n_text, n_x], dim=1)
        del n_x, n_text
        q, k, v = self.attn1.project(tokens)
        del tokens
        attended = self.attn1.attend(q, k, v, text_length, rope, self.HEADS_PER_CHUNK)
        del q, k, v
        x = x + gate * attended[:, text_length:]
        text = text + t_gate * attended[:, :text_length]
        del attended
        n_x, n_text, gate, t_gate = self.norm2(x, text, temb)
        tokens = torch.cat([n_text, n_x], dim=1)
        del n_x, n_text
        fed = self.ff(tokens, self.TOKENS_PER_CHUNK)
        del tokens
        return x + gate * fed[:, text_length:], text + t_gate * fed[:, :text_length]


class CogVideoXTransformer(nn.Module):
    """CogVideoX DiT. Defaults are CogVideoX-5B's published config.

    Args:
        num_attention_heads: heads per attention (5B: 48, 2B: 30).
        attention_head_dim: channels per head (64).
        in_channels: latent channels in (16; 5B-I2V: 32 = noise + image latents).
        out_channels: latent channels predicted (16).
        time_embed_dim: width of the time embedding fed to every adaptive norm (512).
        text_embed_dim: width of the T5-XXL features (4096).
        num_layers: transformer blocks (5B: 42, 2B: 30).
        patch_size: spatial patch size (2).
        sample_height, sample_width: training latent size (60 x 90 = 480x720 pixels); sets RoPE's base grid.
        sample_frames: training pixel frames (49 = 13 latent frames); sizes the learned embedding.
        temporal_compression_ratio: pixel frames per latent frame of the VAE (4).
        max_text_seq_length: text tokens (226).
        norm_eps: epsilon of the adaptive LayerNorms (1e-5).
        spatial_interpolation_scale, temporal_interpolation_scale: divisors of 2B's sin-cos grid (1.875, 1.0).
        use_rotary_positional_embeddings: 3D RoPE (5B) instead of sin-cos embeddings (2B).
        use_learned_positional_embeddings: learned token embedding added to the input (5B-I2V).
        flip_sin_to_cos, freq_shift: layout of the sinusoidal timestep features (True, 0).
    """

    def __init__(self, num_attention_heads: int = 48, attention_head_dim: int = 64, in_channels: int = 16,
                 out_channels: int = 16, time_embed_dim: int = 512, text_embed_dim: int = 4096, num_layers: int = 42,
                 patch_size: int = 2, sample_height: int = 60, sample_width: int = 90, sample_frames: int = 49,
                 temporal_compression_ratio: int = 4, max_text_seq_length: int = 226, norm_eps: float = 1e-5,
                 spatial_interpolation_scale: float = 1.875, temporal_interpolation_scale: float = 1.0,
                 use_rotary_positional_embeddings: bool = True, use_learned_positional_embeddings: bool = False,
                 flip_sin_to_cos: bool = True, freq_shift: int = 0,
                 device=None, dtype=None, operations=nn, **_ignored):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        self.dtype = dtype if dtype is not None else torch.float32
        self.dim, self.heads, self.head_dim = dim, num_attention_heads, attention_head_dim
        self.in_channels, self.out_channels, self.patch_size = in_channels, out_channels, patch_size
        self.sample_height, self.sample_width = sample_height, sample_width
        self.latent_frames = (sample_frames - 1) // temporal_compression_ratio + 1
        self.max_text_seq_length = max_text_seq_length
        self.spatial_interpolation_scale = spatial_interpolation_scale
        self.temporal_interpolation_scale = temporal_interpolation_scale
        self.use_rope = use_rotary_positional_embeddings
        self.use_learned_positions = use_learned_positional_embeddings
        self.flip_sin_to_cos, self.freq_shift = flip_sin_to_cos, freq_shift
        learned = 0
        if use_learned_positional_embeddings:
            learned = max_text_seq_length + self.latent_frames * (sample_height // patch_size) * (sample_width // patch_size)
        self.patch_embed = CogVideoXPatchEmbed(patch_size, in_channels, dim, text_embed_dim, learned, device, dtype, operations)
        self.time_embedding = CogVideoXTimestepMLP(dim, time_embed_dim, device, dtype, operations)
        self.transformer_blocks = nn.ModuleList([
            CogVideoXBlock(dim, num_attention_heads, attention_head_dim, time_embed_dim, norm_eps, device, dtype, operations)
            for _ in range(num_layers)])
        self.norm_final = operations.LayerNorm(dim, eps=norm_eps, device=device, dtype=dtype)
        self.norm_out = _FinalAdaNorm(time_embed_dim, dim, norm_eps, device, dtype, operations)
        self.proj_out = operations.Linear(dim, patch_size * patch_size * out_channels, device=device, dtype=dtype)

    def positions(self, frames: int, height: int, width: int, device, dtype):
        """(additive embedding or None, rope or None) for a latent of frames x height x width patches."""
        rope = additive = None
        if self.use_rope:
            cos, sin = rope_3d(self.head_dim, frames, height, width,
                               self.sample_height // self.patch_size, self.sample_width // self.patch_size)
            rope = cos.to(device), sin.to(device)
        if self.use_learned_positions:
            expected = (self.latent_frames, self.sample_height // self.patch_size, self.sample_width // self.patch_size)
            if (frames, height, width) != expected:
                raise ValueError(f"this CogVideoX model has learned position embeddings for a latent of "
                                 f"{expected[0]} frames x {expected[1] * self.patch_size} x {expected[2] * self.patch_size}; "
                                 f"got {frames} frames x {height * self.patch_size} x {width * self.patch_size}: "
                                 f"generate {(expected[0] - 1) * 4 + 1} frames at "
                                 f"{expected[2] * self.patch_size * 8}x{expected[1] * self.patch_size * 8} pixels")
            additive = self.patch_embed.pos_embedding.to(device=device, dtype=dtype)
        elif not self.use_rope:
            grid = sincos_3d_embedding(self.dim, frames, height, width,
                                       self.spatial_interpolation_scale, self.temporal_interpolation_scale)
            additive = F.pad(grid, (0, 0, self.max_text_seq_length, 0))[None].to(device=device, dtype=dtype)
        return additive, rope

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                transformer_options: dict | None = None, **kwargs) -> torch.Tensor:
        """x [B, C, T, H, W] latents, timesteps [B] (0..999), context [B, L, text_dim] -> [B, out, T, H, W].

        Inside ComfyUI the call runs through the DIFFUSION_MODEL wrappers of transformer_options.
        """
        transformer_options = transformer_options or {}
        return host.with_diffusion_model_wrappers(self._forward, self, transformer_options, x, timesteps, context,
                                                  transformer_options, **kwargs)

    def _forward(self, x, timesteps, context, transformer_options, **_kwargs):
        _b, _c, t, h, w = x.shape
        p = self.patch_size
        check_patchable(h, w, p, "CogVideoX")
        temb = self.time_embedding(timestep_embedding(timesteps, self.dim, self.flip_sin_to_cos, self.freq_shift).to(x.dtype))
        tokens = self.patch_embed(context, x)
        grid = (t, h // p, w // p)
        additive, rope = self.positions(*grid, tokens.device, tokens.dtype)
        if additive is not None:
            if additive.shape[1] != tokens.shape[1]:
                raise ValueError(f"the text has {context.shape[1]} tokens; this CogVideoX model was trained with "
                                 f"{self.max_text_seq_length}: encode the prompt with CogVideoX Text Encode (MotionKit)")
            tokens = tokens + additive
        text_length = context.shape[1]
        text, video = tokens[:, :text_length], tokens[:, text_length:]
        hooks = transformer_options.get("patches", {}).get(VIDEO_NORM_PATCH, [])
        for index, block in enumerate(self.transformer_blocks):
            hook = None
            if hooks:
                info = {"block_index": index, "grid": grid, "transformer_options": transformer_options}
                hook = _chain(hooks, info)
            video, text = block(video, text, temb, rope, hook)
        video = self.norm_out(self.norm_final(video), temb)
        return unpatchify(self.proj_out(video), t, h, w, p)


def _chain(hooks, info):
    def run(h):
        for hook in hooks:
            h = hook(h, info)
        return h
    return run


class _FinalAdaNorm(nn.Module):
    """Final LayerNorm modulated by the time embedding (shift first, then scale)."""

    def __init__(self, time_dim: int, dim: int, eps: float, device=None, dtype=None, operations=nn):
        super().__init__()
        self.linear = operations.Linear(time_dim, 2 * dim, device=device, dtype=dtype)
        self.norm = operations.LayerNorm(dim, eps=eps, device=device, dtype=dtype)

    def forward(self, x, temb):
        shift, scale = self.linear(F.silu(temb)).chunk(2, dim=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]
