"""CogVideoX VAE checkpoint format: detection marker and config from key shapes.

The published file (diffusers layout, `vae/diffusion_pytorch_model.safetensors` of
THUDM/CogVideoX-2b/5b, and the single files CogVideoXWrapper users keep in
`models/vae`) loads as is: our modules use the same key names.
"""
from __future__ import annotations

import re

from .vae import CogVideoXVAEConfig

MARKER_KEYS = (
    "encoder.conv_in.conv.weight",
    "decoder.up_blocks.0.resnets.0.norm1.conv_y.conv.weight",
    "decoder.norm_out.conv_y.conv.weight",
)
"""All present only in a CogVideoX VAE (the spatial norm's conv_y is unique to it)."""

SCALING_FACTOR_2B = 1.15258426
"""CogVideoX-2b's `scaling_factor`; 5b, 5b-I2V and 1.5 use 0.7 (read from config.json when beside the file)."""


def _count(state_dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def config_from_state_dict(state_dict, json_config: dict | None = None) -> CogVideoXVAEConfig:
    """Architecture from key shapes; `json_config` (a diffusers config.json) adds what keys cannot tell."""
    levels = _count(state_dict, r"encoder\.down_blocks\.(\d+)\.")
    widths = tuple(state_dict[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0] for i in range(levels))
    json_config = json_config or {}
    return CogVideoXVAEConfig(
        in_channels=state_dict["encoder.conv_in.conv.weight"].shape[1],
        out_channels=state_dict["decoder.conv_out.conv.weight"].shape[0],
        latent_channels=state_dict["decoder.conv_in.conv.weight"].shape[1],
        block_out_channels=widths,
        layers_per_block=_count(state_dict, r"encoder\.down_blocks\.0\.resnets\.(\d+)\."),
        norm_num_groups=int(json_config.get("norm_num_groups", 32)),
        norm_eps=float(json_config.get("norm_eps", 1e-6)),
        temporal_compression_ratio=int(json_config.get("temporal_compression_ratio", 4)),
        scaling_factor=float(json_config.get("scaling_factor", SCALING_FACTOR_2B)),
    )
