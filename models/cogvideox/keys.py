"""CogVideoX transformer checkpoints: format detection, config from key shapes, key tables.

Published layouts:
- diffusers (`THUDM/CogVideoX-2b|5b|5b-I2V`, folder `transformer/`, one file or shards
  `diffusion_pytorch_model-0000N-of-0000M.safetensors`), also saved as one single file;
  the same keys may carry ComfyUI's `model.diffusion_model.` prefix.
- Tora's diffusers transformer: the same keys plus `traj_extractor.*` / `fuser.*`, which the
  CogVideoX loader leaves to Load Tora (MotionKit).
"""
from __future__ import annotations

import os
import re

import torch
from .. import model_file
from ..errors import MotionKitError

PREFIXES = ("model.diffusion_model.", "transformer.", "")
MARKERS = {
    "diffusers": ("patch_embed.proj.weight", "patch_embed.text_proj.weight", "time_embedding.linear_1.weight",
                  "transformer_blocks.0.norm1.linear.weight", "proj_out.weight"),
}
TORA_ONLY_MARKERS = ("traj_extractor.conv_in.weight", "conv_in.weight", "0.flow_gamma_spatial.weight",
                     "fuser.0.flow_gamma_spatial.weight",
                     "model.diffusion_model.traj_extractor.conv_in.weight")
TORA_KEY = re.compile(r"^(traj_extractor|fuser)\.")
SAT_MARKER = "model.diffusion_model.mixins.patch_embed.proj.weight"
BLOCK_KEY = re.compile(r"^transformer_blocks\.(\d+)\.")

PUBLISHED = {
    # name: (inner dim, in_channels, rotary, learned positions)
    "CogVideoX-2B": dict(num_attention_heads=30, num_layers=30, in_channels=16,
                         use_rotary_positional_embeddings=False, use_learned_positional_embeddings=False),
    "CogVideoX-5B": dict(num_attention_heads=48, num_layers=42, in_channels=16,
                         use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False),
    "CogVideoX-5B-I2V": dict(num_attention_heads=48, num_layers=42, in_channels=32,
                             use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True),
}
"""Full-size configs (the rest are CogVideoXTransformer's defaults)."""

SINCOS_DIM = 1920
"""CogVideoX-2B (width 1920) is the only published model with sin-cos instead of rotary positions."""


class CogVideoXFormatError(MotionKitError):
    pass


SHARD_NAME = re.compile(r"^(.*)-(\d{5})-of-(\d{5})(\.[a-z]+)$")
"""diffusers/transformers shard names: <stem>-00001-of-00003<ext>, indexed by <stem><ext>.index.json."""


def shard_index_path(path: str) -> str | None:
    """The index file of the shards `path` belongs to (diffusers' "weight_map"), or None if `path` is no shard."""
    match = SHARD_NAME.match(os.path.basename(path))
    return os.path.join(os.path.dirname(path), match.group(1) + match.group(4) + ".index.json") if match else None


def shard_paths(path: str) -> list[str]:
    """All shards of a diffusers checkpoint that `path` belongs to (just `path` if it is not a shard)."""
    match = SHARD_NAME.match(os.path.basename(path))
    if not match:
        return [path]
    stem, _index, total, ext = match.groups()
    folder = os.path.dirname(path)
    paths = [os.path.join(folder, f"{stem}-{i:05d}-of-{total}{ext}") for i in range(1, int(total) + 1)]
    absent = [p for p in paths if not os.path.isfile(p)]
    if absent:
        raise FileNotFoundError(f"'{os.path.basename(path)}' is shard of a {int(total)}-part checkpoint, but "
                                f"{', '.join(os.path.basename(p) for p in absent)} is missing from {folder}")
    return paths


def read_sharded_state_dict(path: str, what: str) -> dict:
    """The state dict of `path`, merged over all the shards it belongs to (see shard_paths)."""
    state_dict = {}
    for shard in shard_paths(path):
        state_dict.update(model_file.read_state_dict(shard, what))
    return state_dict


def read_folder_config(path: str) -> dict | None:
    """The diffusers config.json beside the weights, when there is one."""
    data = model_file.read_config_beside(path, "transformer config")
    return data if data is not None and data.get("_class_name", "").startswith(("CogVideoX", "Tora")) else None


def strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in PREFIXES:
        if prefix + MARKERS["diffusers"][0] in state_dict:
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def detect(state_dict: dict[str, torch.Tensor], source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Check the file is a CogVideoX transformer; return its diffusers-named state dict (Tora keys removed)."""
    if SAT_MARKER in state_dict:
        raise CogVideoXFormatError(f"{source} is a SAT-format CogVideoX checkpoint; convert it to diffusers format "
                                   f"with diffusers' scripts/convert_cogvideox_to_diffusers.py, then load the "
                                   f"transformer folder's safetensors")
    sd = strip_prefix(state_dict)
    missing = [k for k in MARKERS["diffusers"] if k not in sd]
    if missing:
        if any(k in state_dict for k in TORA_ONLY_MARKERS) or any(k.endswith("fuser_list.0.flow_gamma_spatial.weight") for k in state_dict):
            raise CogVideoXFormatError(f"{source} holds Tora weights (motion fuser / trajectory extractor), not a "
                                       f"CogVideoX transformer: load it with Load Tora (MotionKit) (models/tora) and "
                                       f"pick the CogVideoX-5B transformer here")
        sample = ", ".join(sorted(state_dict)[:6]) or "no keys"
        raise CogVideoXFormatError(f"{source} is not a CogVideoX transformer: checked the diffusers layout (prefixes "
                                   f"{', '.join(repr(p) for p in PREFIXES)}); missing keys {', '.join(missing)}; "
                                   f"the file starts with {sample}")
    if "patch_embed.proj.bias" in sd and sd["patch_embed.proj.weight"].ndim == 2:
        raise CogVideoXFormatError(f"{source} is a CogVideoX 1.5 transformer (temporal patches); MotionKit supports "
                                   f"CogVideoX 1.0 (2B, 5B, 5B-I2V), the family Tora was trained on")
    if "ofs_embedding.linear_1.weight" in sd:
        raise CogVideoXFormatError(f"{source} is CogVideoX 1.5 I2V (has ofs_embedding); MotionKit supports CogVideoX 1.0")
    return {k: v for k, v in sd.items() if not TORA_KEY.match(k)}


def config_from_state_dict(sd: dict[str, torch.Tensor], folder_config: dict | None = None) -> dict:
    """CogVideoXTransformer arguments read from key shapes (and config.json, when the folder has one)."""
    proj = sd["patch_embed.proj.weight"]
    dim, in_channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    head_dim = sd["transformer_blocks.0.attn1.norm_q.weight"].shape[0]
    layers = 1 + max(int(BLOCK_KEY.match(k).group(1)) for k in sd if BLOCK_KEY.match(k))
    config = dict(
        num_attention_heads=dim // head_dim, attention_head_dim=head_dim, in_channels=in_channels,
        out_channels=sd["proj_out.weight"].shape[0] // (patch * patch),
        time_embed_dim=sd["time_embedding.linear_1.weight"].shape[0],
        text_embed_dim=sd["patch_embed.text_proj.weight"].shape[1], num_layers=layers, patch_size=patch,
        use_learned_positional_embeddings="patch_embed.pos_embedding" in sd,
        use_rotary_positional_embeddings=dim != SINCOS_DIM,
    )
    if folder_config:
        for key in ("sample_height", "sample_width", "sample_frames", "max_text_seq_length", "norm_eps",
                    "spatial_interpolation_scale", "temporal_interpolation_scale", "temporal_compression_ratio",
                    "use_rotary_positional_embeddings", "flip_sin_to_cos", "freq_shift"):
            if key in folder_config:
                config[key] = folder_config[key]
    return config


def check_keys(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """Raise with the missing and unexpected keys if `sd` does not fill `model` exactly."""
    mismatch = model_file.state_dict_mismatch(model, sd)
    if mismatch:
        raise CogVideoXFormatError(f"{source} does not match the CogVideoX config read from it: {mismatch}")


def snr_shift_scale(path: str, config: dict) -> float:
    """The scheduler's SNR shift: from ../scheduler/scheduler_config.json when present, else the published value
    (CogVideoX-2B: 3.0, the 5B family: 1.0)."""
    scheduler = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "scheduler", "scheduler_config.json")
    if os.path.isfile(scheduler):
        value = model_file.read_json(scheduler, "scheduler config").get("snr_shift_scale")
        if value is not None:
            return float(value)
    return 1.0 if config["use_rotary_positional_embeddings"] else 3.0
