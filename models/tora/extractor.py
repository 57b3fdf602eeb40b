"""Tora's trajectory extractor: motion latents -> one feature map per DiT block.

Zhang et al., "Tora: Trajectory-oriented Diffusion Transformer for Video Generation" (CVPR 2025),
sec. 3.2: the VAE-encoded trajectory flow is patchified like the DiT's tokens (2x2 spatial,
1 latent frame), then a stack of residual conv blocks (BatchNorm, ReLU, 3x3 conv) produces a
128-channel feature map per level; level i steers DiT block i through its fuser.

Always inference: BatchNorm uses its running statistics (the published port left the
extractor in training mode, so batch statistics leaked into the features).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ToraBatchNorm(nn.Module):
    """BatchNorm2d that only ever normalizes with its running statistics."""

    def __init__(self, channels: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(channels, device=device, dtype=dtype))
        self.register_buffer("running_var", torch.ones(channels, device=device, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cast = dict(device=x.device, dtype=x.dtype)
        return F.batch_norm(x, self.running_mean.to(**cast), self.running_var.to(**cast), self.weight.to(**cast),
                            self.bias.to(**cast), training=False, eps=self.eps)


class ToraResBlock(nn.Module):
    """x + conv(relu(bn(conv(relu(bn(x)))))) at constant width (the published `sk=True` blocks)."""

    def __init__(self, channels: int, kernel_size: int = 3, device=None, dtype=None, operations=nn):
        super().__init__()
        self.bn1 = ToraBatchNorm(channels, device=device, dtype=dtype)
        self.block1 = operations.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)
        self.bn2 = ToraBatchNorm(channels, device=device, dtype=dtype)
        self.block2 = operations.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, device=device, dtype=dtype)

    def forward(self, x):
        h = self.block1(F.relu(self.bn1(x)))
        return x + self.block2(F.relu(self.bn2(h)))


class ToraTrajectoryExtractor(nn.Module):
    """Motion latents [B, C, T, H, W] -> `levels` maps [B*T/pt, channels, H/p, W/p].

    Args:
        in_channels: latent channels of the motion latents (16, the CogVideoX VAE).
        patch_size: spatial patch, equal to the DiT's (2).
        patch_size_t: latent frames per feature frame (1 for CogVideoX 1.0).
        channels: feature width (128).
        levels: feature maps produced, one per DiT block (42 for CogVideoX-5B).
        blocks_per_level: residual blocks per level (2).
    """

    def __init__(self, in_channels: int = 16, patch_size: int = 2, patch_size_t: int = 1, channels: int = 128,
                 levels: int = 42, blocks_per_level: int = 2, device=None, dtype=None, operations=nn):
        super().__init__()
        self.patch = (patch_size_t, patch_size, patch_size)
        self.levels, self.blocks_per_level = levels, blocks_per_level
        self.conv_in = operations.Conv2d(in_channels * patch_size_t * patch_size * patch_size, channels, 3, padding=1,
                                         device=device, dtype=dtype)
        self.body = nn.ModuleList([ToraResBlock(channels, device=device, dtype=dtype, operations=operations)
                                   for _ in range(levels * blocks_per_level)])

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad T, H, W up to the patch grid, then fold each (pt, p, p) patch into channels (C-major)."""
        pt, ph, pw = self.patch
        b, c, t, h, w = x.shape
        x = F.pad(x, (0, -w % pw, 0, -h % ph, 0, -t % pt))
        t, h, w = x.shape[2:]
        x = x.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
        x = x.permute(0, 2, 1, 3, 5, 7, 4, 6)  # b, nt, c, pt, ph, pw, nh, nw
        return x.reshape(b * (t // pt), c * pt * ph * pw, h // ph, w // pw)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv_in(self.patchify(x))
        features = []
        for level in range(self.levels):
            for block in self.body[level * self.blocks_per_level:(level + 1) * self.blocks_per_level]:
                h = block(h)
            features.append(h)
        return features
