"""Tora's motion-guidance fuser (MGF): adaptive normalization of the DiT's video tokens.

Zhang et al., "Tora" (CVPR 2025), sec. 3.3: h' = h + GroupNorm(h) * gamma + beta, with gamma and beta
predicted from the block's trajectory features by a 3x3 spatial conv and a temporal conv (kernel 3,
replicate padding). `strength` scales the added term; strength 0 returns h unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .extractor import ToraTrajectoryExtractor


class ToraFuser(nn.Module):
    """One block's MGF. Args: flow_channels (128, the extractor width), dim (the DiT width), groups (32)."""

    def __init__(self, flow_channels: int = 128, dim: int = 3072, groups: int = 32, device=None, dtype=None, operations=nn):
        super().__init__()
        quarter = dim // 4
        kw = dict(device=device, dtype=dtype)
        self.flow_gamma_spatial = operations.Conv2d(flow_channels, quarter, 3, padding=1, **kw)
        self.flow_gamma_temporal = operations.Conv1d(quarter, dim, 3, padding=1, padding_mode="replicate", **kw)
        self.flow_beta_spatial = operations.Conv2d(flow_channels, quarter, 3, padding=1, **kw)
        self.flow_beta_temporal = operations.Conv1d(quarter, dim, 3, padding=1, padding_mode="replicate", **kw)
        self.flow_cond_norm = operations.GroupNorm(groups, dim, **kw)

    @staticmethod
    def _modulation(spatial, temporal, flow, frames):
        """3x3 conv per frame, then a temporal conv along the frames of each pixel."""
        m = spatial(flow)
        bt, c, h, w = m.shape
        m = m.reshape(bt // frames, frames, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, frames)
        m = temporal(m)
        c = m.shape[1]
        return m.reshape(bt // frames, h, w, c, frames).permute(0, 4, 3, 1, 2).reshape(bt, c, h, w)

    def modulation(self, flow: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma and beta [(B T), dim, H, W] from the flow features [(B T), flow_channels, H, W]."""
        return (self._modulation(self.flow_gamma_spatial, self.flow_gamma_temporal, flow, frames),
                self._modulation(self.flow_beta_spatial, self.flow_beta_temporal, flow, frames))

    def fuse(self, h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """h + strength * (GroupNorm(h) gamma + beta); per (B T) sample, so any run of frames can go alone."""
        norm = self.flow_cond_norm
        precise = torch.promote_types(h.dtype, torch.float32)  # GroupNorm in at least float32 (official FloatGroupNorm)
        normed = F.group_norm(h.to(precise), norm.num_groups, norm.weight.to(h.device, precise),
                              norm.bias.to(h.device, precise), norm.eps).to(h.dtype)
        return h + strength * (normed * gamma + beta)

    def forward(self, h: torch.Tensor, flow: torch.Tensor, frames: int, strength: float = 1.0) -> torch.Tensor:
        """h [(B T), dim, H, W] video tokens, flow [(B T), flow_channels, H, W] -> h + strength * (GN(h) gamma + beta)."""
        gamma, beta = self.modulation(flow.to(h.dtype), frames)
        return self.fuse(h, gamma, beta, strength)


class ToraModel(nn.Module):
    """Tora's added weights: `traj_extractor` and one `fuser` per DiT block (diffusers-version names)."""

    def __init__(self, dim: int = 3072, blocks: int = 42, flow_channels: int = 128, in_channels: int = 16,
                 patch_size: int = 2, patch_size_t: int = 1, device=None, dtype=None, operations=nn):
        super().__init__()
        self.dim, self.blocks = dim, blocks
        self.traj_extractor = ToraTrajectoryExtractor(in_channels, patch_size, patch_size_t, flow_channels, blocks,
                                                      device=device, dtype=dtype, operations=operations)
        self.fuser = nn.ModuleList([ToraFuser(flow_channels, dim, device=device, dtype=dtype, operations=operations)
                                    for _ in range(blocks)])
