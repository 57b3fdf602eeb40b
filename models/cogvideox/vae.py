"""The CogVideoX 3D causal VAE (8x spatial, 4x temporal), streamed in temporal chunks.

Weights use the key names of the published diffusers file
(`THUDM/CogVideoX-2b|5b/vae/diffusion_pytorch_model.safetensors`, also what
CogVideoXWrapper users keep in `models/vae`). The numerics follow diffusers'
`AutoencoderKLCogVideoX`: the decoder walks the latent in chunks of 2 frames (the
first chunk takes the odd frame as well), the encoder walks the frames in chunks of
8 (the first takes the remainder). Group norms and the temporal up/downsamplers see
one chunk at a time, so this chunking *is* the official output.

The causal state (the last frames each causal convolution saw) is a StreamState passed
through `decode_step` / `encode_step`; nothing is stored on the modules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ..video_vae.stream import StreamState as State


@dataclass
class CogVideoXVAEConfig:
    """Architecture of the CogVideoX VAE; the defaults are the published checkpoint's."""

    in_channels: int = 3
    """Image channels."""
    out_channels: int = 3
    """Decoded image channels."""
    latent_channels: int = 16
    """Channels of the latent video."""
    block_out_channels: tuple = (128, 256, 256, 512)
    """Width of each resolution level (the spatial ratio is 2 ** (levels - 1))."""
    layers_per_block: int = 3
    """ResNet blocks per encoder level (the decoder has one more)."""
    norm_num_groups: int = 32
    """Groups of every GroupNorm."""
    norm_eps: float = 1e-6
    temporal_compression_ratio: int = 4
    """Frames per latent frame; the first levels compress time until this ratio is reached."""
    scaling_factor: float = 1.15258426
    """Latents are multiplied by it after encoding (CogVideoX-2b: 1.15258426, 5b and 1.5: 0.7)."""
    extra: dict = field(default_factory=dict)

    @property
    def temporal_levels(self) -> int:
        return int(math.log2(self.temporal_compression_ratio))


class CogVideoXCausalConv3d(torch.nn.Module):
    """A 3D convolution padded causally in time with copies of the first frame, or with the
    previous chunk's last frames taken from the state."""

    def __init__(self, in_channels, out_channels, kernel_size=3, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.time_pad = kernel_size - 1
        self.state_key = ""
        pad = (kernel_size - 1) // 2
        self.conv = operations.Conv3d(in_channels, out_channels, kernel_size, padding=(0, pad, pad),
                                      device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        if self.time_pad:
            previous = state.frames.get(self.state_key)
            if previous is None:
                previous = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
            x = torch.cat([previous.to(x.dtype), x], dim=2)
            state.frames[self.state_key] = x[:, :, -self.time_pad:].clone()
        return self.conv(x)


class CogVideoXSpatialNorm3D(torch.nn.Module):
    """GroupNorm modulated by the latent (zq), resized to the features; an odd chunk keeps its
    first frame apart (it stands for one image frame)."""

    def __init__(self, f_channels, zq_channels, groups=32, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.norm_layer = operations.GroupNorm(groups, f_channels, eps=1e-6, affine=True, device=device, dtype=dtype)
        self.conv_y = CogVideoXCausalConv3d(zq_channels, f_channels, 1, device, dtype, operations)
        self.conv_b = CogVideoXCausalConv3d(zq_channels, f_channels, 1, device, dtype, operations)

    def forward(self, f: torch.Tensor, zq: torch.Tensor, state: State) -> torch.Tensor:
        if f.shape[2] > 1 and f.shape[2] % 2 == 1:
            zq = torch.cat([F.interpolate(zq[:, :, :1], size=(1, *f.shape[-2:])),
                            F.interpolate(zq[:, :, 1:], size=(f.shape[2] - 1, *f.shape[-2:]))], dim=2)
        else:
            zq = F.interpolate(zq, size=f.shape[-3:])
        return self.norm_layer(f).mul_(self.conv_y(zq, state)).add_(self.conv_b(zq, state))


class CogVideoXResnetBlock3D(torch.nn.Module):
    def __init__(self, in_channels, out_channels, groups, eps, zq_channels=None,
                 device=None, dtype=None, operations=torch.nn):
        super().__init__()
        ops = dict(device=device, dtype=dtype, operations=operations)
        if zq_channels is None:
            self.norm1 = operations.GroupNorm(groups, in_channels, eps=eps, device=device, dtype=dtype)
            self.norm2 = operations.GroupNorm(groups, out_channels, eps=eps, device=device, dtype=dtype)
        else:
            self.norm1 = CogVideoXSpatialNorm3D(in_channels, zq_channels, groups, **ops)
            self.norm2 = CogVideoXSpatialNorm3D(out_channels, zq_channels, groups, **ops)
        self.conv1 = CogVideoXCausalConv3d(in_channels, out_channels, 3, **ops)
        self.conv2 = CogVideoXCausalConv3d(out_channels, out_channels, 3, **ops)
        self.conv_shortcut = (operations.Conv3d(in_channels, out_channels, 1, device=device, dtype=dtype)
                              if in_channels != out_channels else None)

    def _norm(self, norm, x, zq, state):
        return norm(x) if zq is None else norm(x, zq, state)

    def forward(self, x: torch.Tensor, zq: torch.Tensor | None, state: State) -> torch.Tensor:
        h = self.conv1(F.silu(self._norm(self.norm1, x, zq, state), inplace=True), state)
        h = F.silu(self._norm(self.norm2, h, zq, state), inplace=True)  # frees conv1's output before conv2
        h = self.conv2(h, state)
        return h.add_(x if self.conv_shortcut is None else self.conv_shortcut(x))


class CogVideoXDownsample3D(torch.nn.Module):
    """Halves height and width (stride-2 conv after a right/bottom zero pad); with
    `compress_time`, first averages frame pairs, keeping an odd chunk's first frame."""

    def __init__(self, channels, compress_time, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.compress_time = compress_time
        self.conv = operations.Conv2d(channels, channels, 3, stride=2, padding=0, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compress_time:
            if x.shape[2] % 2 == 1:
                rest = x[:, :, 1:]
                if rest.shape[2]:
                    rest = _avg_pool_time(rest)
                x = torch.cat([x[:, :, :1], rest], dim=2)
            else:
                x = _avg_pool_time(x)
        b, c, t = x.shape[:3]
        x = F.pad(x, (0, 1, 0, 1)).transpose(1, 2).flatten(0, 1)
        x = self.conv(x)
        return x.unflatten(0, (b, t)).transpose(1, 2)


def _avg_pool_time(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    x = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)
    x = F.avg_pool1d(x, kernel_size=2, stride=2)
    return x.reshape(b, h, w, c, -1).permute(0, 3, 4, 1, 2)


class CogVideoXUpsample3D(torch.nn.Module):
    """Doubles height and width (nearest) and, with `compress_time`, the frames after an odd
    chunk's first frame; then a 3x3 conv per frame."""

    def __init__(self, channels, compress_time, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.compress_time = compress_time
        self.conv = operations.Conv2d(channels, channels, 3, stride=1, padding=1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape[:3]
        if self.compress_time and t > 1 and t % 2 == 1:
            x = torch.cat([F.interpolate(x[:, :, 0], scale_factor=2.0)[:, :, None],
                           F.interpolate(x[:, :, 1:], scale_factor=2.0)], dim=2)
        elif self.compress_time and t > 1:
            x = F.interpolate(x, scale_factor=2.0)
        else:
            x = F.interpolate(x.transpose(1, 2).flatten(0, 1), scale_factor=2.0).unflatten(0, (b, t)).transpose(1, 2)
        b, c, t = x.shape[:3]
        x = self.conv(x.transpose(1, 2).flatten(0, 1))
        return x.unflatten(0, (b, t)).transpose(1, 2)


class _Level(torch.nn.Module):
    """One resolution level: ResNet blocks, then an optional resampler (keys `resnets.N`,
    `downsamplers.0` / `upsamplers.0`)."""

    def __init__(self, resnets, sampler_name=None, sampler=None):
        super().__init__()
        self.resnets = torch.nn.ModuleList(resnets)
        if sampler is not None:
            setattr(self, sampler_name, torch.nn.ModuleList([sampler]))
        self.sampler_name = sampler_name if sampler is not None else None

    def forward(self, x, zq, state):
        for resnet in self.resnets:
            x = resnet(x, zq, state)
        if self.sampler_name:
            x = getattr(self, self.sampler_name)[0](x)
        return x


class CogVideoXEncoder3D(torch.nn.Module):
    def __init__(self, cfg: CogVideoXVAEConfig, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        ops = dict(device=device, dtype=dtype, operations=operations)
        ch, g, eps = cfg.block_out_channels, cfg.norm_num_groups, cfg.norm_eps
        self.conv_in = CogVideoXCausalConv3d(cfg.in_channels, ch[0], 3, **ops)
        self.down_blocks = torch.nn.ModuleList()
        for i, width in enumerate(ch):
            previous = ch[max(i - 1, 0)]
            resnets = [CogVideoXResnetBlock3D(previous if j == 0 else width, width, g, eps, **ops)
                       for j in range(cfg.layers_per_block)]
            last = i == len(ch) - 1
            sampler = None if last else CogVideoXDownsample3D(width, i < cfg.temporal_levels, **ops)
            self.down_blocks.append(_Level(resnets, "downsamplers", sampler))
        self.mid_block = _Level([CogVideoXResnetBlock3D(ch[-1], ch[-1], g, eps, **ops) for _ in range(2)])
        self.norm_out = operations.GroupNorm(g, ch[-1], eps=1e-6, device=device, dtype=dtype)
        self.conv_out = CogVideoXCausalConv3d(ch[-1], 2 * cfg.latent_channels, 3, **ops)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        h = self.conv_in(x, state)
        for level in self.down_blocks:
            h = level(h, None, state)
        h = self.mid_block(h, None, state)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True), state)


class CogVideoXDecoder3D(torch.nn.Module):
    def __init__(self, cfg: CogVideoXVAEConfig, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        ops = dict(device=device, dtype=dtype, operations=operations)
        ch, g, eps, zc = list(reversed(cfg.block_out_channels)), cfg.norm_num_groups, cfg.norm_eps, cfg.latent_channels
        self.conv_in = CogVideoXCausalConv3d(zc, ch[0], 3, **ops)
        self.mid_block = _Level([CogVideoXResnetBlock3D(ch[0], ch[0], g, eps, zc, **ops) for _ in range(2)])
        self.up_blocks = torch.nn.ModuleList()
        for i, width in enumerate(ch):
            previous = ch[max(i - 1, 0)]
            resnets = [CogVideoXResnetBlock3D(previous if j == 0 else width, width, g, eps, zc, **ops)
                       for j in range(cfg.layers_per_block + 1)]
            last = i == len(ch) - 1
            sampler = None if last else CogVideoXUpsample3D(width, i < cfg.temporal_levels, **ops)
            self.up_blocks.append(_Level(resnets, "upsamplers", sampler))
        self.norm_out = CogVideoXSpatialNorm3D(ch[-1], zc, g, **ops)
        self.conv_out = CogVideoXCausalConv3d(ch[-1], cfg.out_channels, 3, **ops)

    def forward(self, z: torch.Tensor, state: State) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z, state), z, state)
        for level in self.up_blocks:
            h = level(h, z, state)
        return self.conv_out(F.silu(self.norm_out(h, z, state), inplace=True), state)


class CogVideoXVAE(torch.nn.Module):
    """Encoder and decoder with the streaming interface of `models.video_vae.VideoVAE`."""

    version = "cogvideox"
    spatial_ratio = 8
    decode_chunk = 2
    encode_chunk = 8

    def __init__(self, cfg: CogVideoXVAEConfig, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.cfg = cfg
        self.spatial_ratio = 2 ** (len(cfg.block_out_channels) - 1)
        self.encoder = CogVideoXEncoder3D(cfg, device, dtype, operations)
        self.decoder = CogVideoXDecoder3D(cfg, device, dtype, operations)
        for name, module in self.named_modules():
            if isinstance(module, CogVideoXCausalConv3d):
                module.state_key = name

    # -- chunk plans (diffusers' frame batches: the first batch takes the remainder)
    @staticmethod
    def _plan(frames: int, size: int) -> list[tuple[int, int]]:
        remainder = frames % size
        return [(size * k + (0 if k == 0 else remainder), min(size * (k + 1) + remainder, frames))
                for k in range(max(frames // size, 1))]

    def decode_plan(self, latent_frames: int) -> list[tuple[int, int]]:
        return self._plan(latent_frames, self.decode_chunk)

    def encode_plan(self, frames: int) -> list[tuple[int, int]]:
        return self._plan(frames, self.encode_chunk)

    def decoded_frames(self, index: int, n: int) -> int:
        for _ in range(self.cfg.temporal_levels):
            n = 1 + 2 * (n - 1) if n % 2 == 1 else 2 * n
        return n

    def encoded_frames(self, index: int, n: int) -> int:
        for _ in range(self.cfg.temporal_levels):
            n = 1 + (n - 1) // 2 if n % 2 == 1 else n // 2
        return n

    def check_frames(self, frames: int) -> int:
        """Image frames this VAE encodes as they are (CogVideoX takes any count)."""
        return frames

    # -- one chunk
    def decode_window(self, start: int, end: int, total: int) -> tuple[int, int]:
        return start, end

    def decode_step(self, z: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        """Latent chunk (unscaled) -> image chunk in -1..1, updating the causal state."""
        return self.decoder(z, state)

    def encode_step(self, x: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        """Image chunk in -1..1 -> latent mean chunk (unscaled), updating the causal state."""
        return self.encoder(x, state)[:, : self.cfg.latent_channels]

    def encode_posterior_step(self, x: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        """Image chunk in -1..1 -> the posterior's moments [mean | logvar] (2 x latent channels, unscaled)."""
        return self.encoder(x, state)
