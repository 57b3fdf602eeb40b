"""EasyAnimate VAE checkpoint formats: detection markers and configs from key shapes."""
from __future__ import annotations

import ast
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

SLICE_MARKER_KEYS = MAGVIT_MARKER_KEYS + ("decoder.mid_block.attentions.0.to_q.weight",)
"""The official slice VAEs (V2 mag VAE, V3 slice VAE, V4): the same layout plus mid-block attention.
Their config.json (official class, also named AutoencoderKLMagvit) tells the versions apart."""

OFFICIAL_MODES = {
    "slice_mag_vae": "V2 (mag VAE)",
    "slice_compression_vae": "V3 (slice VAE)",
    "cache_compression_vae": "V4 (cache slice VAE)",
    "cache_mag_vae": "V5 (cache mag VAE)",
}
"""The official config flag of each EasyAnimate VAE version."""


def official_mode(json_config: dict | None, name: str) -> str:
    """Which official flag (V2, V3 or V4) a slice-VAE config.json sets."""
    if not json_config:
        raise ValueError(f"{name} is an official EasyAnimate slice VAE (mid-block attention keys) but there is no "
                         f"config.json beside it; put the config.json of its vae/ folder next to it (it says "
                         f"which of {', '.join(OFFICIAL_MODES.values())} it is)")
    flags = [flag for flag in OFFICIAL_MODES if json_config.get(flag)]
    if len(flags) != 1 or flags[0] == "cache_mag_vae":
        found = ", ".join(f"{f}: {OFFICIAL_MODES[f]}" for f in flags) or "none of " + ", ".join(OFFICIAL_MODES)
        raise ValueError(f"config.json beside {name} sets {found}; an official slice VAE with mid-block attention "
                         f"sets exactly one of slice_mag_vae (V2), slice_compression_vae (V3), "
                         f"cache_compression_vae (V4)")
    return flags[0]


def _block_types(value):
    """Official configs may write the block types as a Python tuple in a string."""
    return tuple(ast.literal_eval(value) if isinstance(value, str) else value)


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
    down = _block_types(json_config.get("down_block_types") or defaults.down_block_types)
    up = _block_types(json_config.get("up_block_types") or defaults.up_block_types)
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


def slice_config(state_dict, json_config: dict) -> MagvitVAEConfig:
    """The official slice VAEs (V2/V3/V4): widths from keys, the rest from config.json (official defaults)."""
    cfg = magvit_config(state_dict, json_config)
    cfg.spatial_group_norm = bool(json_config.get("spatial_group_norm", False))
    cfg.decoder_mid_per_frame = cfg.spatial_group_norm
    cfg.mid_block_attention = True
    cfg.mid_block_attention_heads = int(json_config.get("mid_block_num_attention_heads", 1))
    if json_config.get("mid_block_attention_type", "3d") != "3d":
        raise ValueError(f"mid_block_attention_type {json_config['mid_block_attention_type']!r} is not supported "
                         f"(only '3d')")
    v2 = json_config.get("slice_mag_vae")
    cfg.slice_frames = int(json_config.get("mini_batch_encoder", 9 if v2 else 8))
    cfg.slice_latents = int(json_config.get("mini_batch_decoder", 3 if v2 else 2))
    cfg.scaling_factor = float(json_config.get("scaling_factor", 0.1825))
    return cfg
