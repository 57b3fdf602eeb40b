"""EasyAnimate VAE checkpoint formats: detection markers and configs from key shapes."""
from __future__ import annotations

import re

from .magvit import MagvitVAEConfig

MAGVIT_MARKER_KEYS = (
    "encoder.conv_in.weight",
    "encoder.down_blocks.0.convs.0.conv1.weight",
    "decoder.up_blocks.0.convs.0.conv1.weight",
    "post_quant_conv.weight",
)
"""The V5/V5.1 cache mag VAE in diffusers layout (`AutoencoderKLMagvit`)."""

MAGVIT_CONFIG_CLASSES = ("AutoencoderKLMagvit",)


def _count(state_dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def magvit_config(state_dict, json_config: dict | None = None) -> MagvitVAEConfig:
    """Widths, depth and channels from key shapes; block types, norms and scaling from config.json
    (defaults: EasyAnimate V5.1's)."""
    json_config = json_config or {}
    levels = _count(state_dict, r"encoder\.down_blocks\.(\d+)\.")
    widths = tuple(state_dict[f"encoder.down_blocks.{i}.convs.0.conv1.weight"].shape[0] for i in range(levels))
    defaults = MagvitVAEConfig()
    down = tuple(json_config.get("down_block_types", defaults.down_block_types))
    up = tuple(json_config.get("up_block_types", defaults.up_block_types))
    if len(down) != levels or len(up) != levels:
        raise ValueError(f"config.json lists {len(down)} down and {len(up)} up block types but the weights have "
                         f"{levels} levels")
    return MagvitVAEConfig(
        in_channels=state_dict["encoder.conv_in.weight"].shape[1],
        out_channels=state_dict["decoder.conv_out.weight"].shape[0],
        latent_channels=state_dict["post_quant_conv.weight"].shape[0],
        block_out_channels=widths,
        down_block_types=down,
        up_block_types=up,
        layers_per_block=_count(state_dict, r"encoder\.down_blocks\.0\.convs\.(\d+)\."),
        norm_num_groups=int(json_config.get("norm_num_groups", defaults.norm_num_groups)),
        spatial_group_norm=bool(json_config.get("spatial_group_norm", defaults.spatial_group_norm)),
        scaling_factor=float(json_config.get("scaling_factor", defaults.scaling_factor)),
    )
