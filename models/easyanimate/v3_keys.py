"""EasyAnimate V3 transformer checkpoints: detection, config from key shapes, key table.

Published files: `alibaba-pai/EasyAnimateV3-XL-2-InP-{512x512,768x768,960x960}/transformer/
diffusion_pytorch_model.safetensors` (official `Transformer3DModel` keys, fp32, with config.json),
also kept as single bf16 files (e.g. `EasyAnimateV3-XL-2-InP-512x512-bf16.safetensors`), with or
without ComfyUI's `model.diffusion_model.` prefix. The InP files have 12 input channels and a CLIP
projection; a V3 text-to-video file has 4 and none. Other files named here are refused with the
loader that fits them.
"""
from __future__ import annotations

import json
import os
import re

import torch

from .. import model_file
from ..errors import MotionKitError

PREFIXES = ("model.diffusion_model.", "transformer.", "")
MARKERS = ("pos_embed.proj.weight", "adaln_single.linear.weight", "caption_projection.linear_1.weight",
           "transformer_blocks.0.attn_temporal.temporal_transformer.proj_in.weight", "long_connect_fc.0.weight")
"""Keys every V3 transformer file has (PixArt parts, a motion module, the U-ViT skips)."""

DROPPED = re.compile(r"\.pos_encoder\.pe$")
"""The official motion modules store their fixed 4096-frame sin-cos tables; they are computed instead."""

BLOCK_KEY = re.compile(r"^transformer_blocks\.(\d+)\.")
SKIP_KEY = re.compile(r"^long_connect_fc\.(\d+)\.")

OTHER_FORMATS = (
    # (what the file is, a key that only it has, which loader fits)
    ("a CogVideoX transformer", "patch_embed.text_proj.weight", "Load CogVideoX (MotionKit)"),
    ("an EasyAnimate V5/V5.1 transformer (diffusers EasyAnimateTransformer3DModel)", "time_embedding.linear_1.weight",
     "Load EasyAnimate V5.1 (MotionKit)"),
    ("an EasyAnimate V4 transformer (HunyuanDiT-style, Bert + T5)", "text_embedder.linear_1.weight",
     "no MotionKit loader yet (EasyAnimate V4 is not supported)"),
    ("a PixArt-alpha image transformer (no motion modules)", "transformer_blocks.0.attn1.to_q.weight",
     "core Load Checkpoint / Load Diffusion Model (PixArt)"),
)
MOTION_MODULE_ONLY = "transformer_blocks.0.attn_temporal.temporal_transformer.proj_in.weight"

PUBLISHED = {
    "EasyAnimateV3-XL-2-InP": dict(num_attention_heads=16, attention_head_dim=72, in_channels=12, out_channels=8,
                                   num_layers=28, patch_size=2, caption_channels=4096, clip_channels=768),
    "EasyAnimateV3-XL-2 (text-to-video, 4 input channels)": dict(
        num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28, patch_size=2,
        caption_channels=4096, clip_channels=0),
}
"""Full-size configs (the rest are EasyAnimateV3Transformer's defaults)."""

PUBLISHED_HEADS = 16
"""Heads of every published V3 attention (width 1152 = 16 x 72); the weights do not tell the head count."""


class EasyAnimateV3FormatError(MotionKitError):
    pass


def strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in PREFIXES:
        if prefix + MARKERS[0] in state_dict:
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def detect(state_dict: dict[str, torch.Tensor], source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Check the file is an EasyAnimate V3 transformer; return its official-named state dict without the
    stored position tables."""
    sd = strip_prefix(state_dict)
    missing = [k for k in MARKERS if k not in sd]
    if missing:
        stripped = {k.split("diffusion_model.", 1)[-1] for k in state_dict}
        for what, marker, loader in OTHER_FORMATS:
            if marker in stripped and not (marker.startswith("transformer_blocks") and MOTION_MODULE_ONLY in stripped):
                raise EasyAnimateV3FormatError(f"{source} is {what}, not an EasyAnimate V3 transformer: use {loader}")
        if MOTION_MODULE_ONLY in stripped:
            raise EasyAnimateV3FormatError(
                f"{source} holds EasyAnimate motion modules only (V1's easyanimate_v1_mm.safetensors layout), not an "
                f"EasyAnimate V3 transformer: pick the transformer file of an EasyAnimateV3-XL-2-InP folder")
        sample = ", ".join(sorted(state_dict)[:6]) or "no keys"
        raise EasyAnimateV3FormatError(
            f"{source} is not an EasyAnimate V3 transformer: checked the official layout (prefixes "
            f"{', '.join(repr(p) for p in PREFIXES)}); missing keys {', '.join(missing)}; the file starts with {sample}")
    return {k: v for k, v in sd.items() if not DROPPED.search(k)}


def read_folder_config(path: str) -> dict | None:
    """The official config.json beside the weights, when there is one."""
    config = os.path.join(os.path.dirname(path), "config.json")
    if not os.path.isfile(config):
        return None
    with open(config) as f:
        data = json.load(f)
    return data if data.get("_class_name") in ("Transformer3DModel", "Transformer2DModel") else None


def config_from_state_dict(sd: dict[str, torch.Tensor], folder_config: dict | None = None,
                           source: str = "the checkpoint") -> dict:
    """EasyAnimateV3Transformer arguments from key shapes (head counts from config.json, else the published 16)."""
    proj = sd["pos_embed.proj.weight"]
    dim, in_channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    folder_config = folder_config or {}
    if folder_config.get("basic_block_type", "global_motionmodule") != "global_motionmodule":
        raise EasyAnimateV3FormatError(
            f"config.json beside {source} sets basic_block_type '{folder_config['basic_block_type']}' (EasyAnimate "
            f"V1/V2 motion modules); MotionKit runs EasyAnimate V3 (global_motionmodule)")
    heads = int(folder_config.get("num_attention_heads", PUBLISHED_HEADS))
    motion = folder_config.get("motion_module_kwargs_even") or {}
    clip = sd.get("clip_projection.linear_1.weight")
    return dict(
        num_attention_heads=heads, attention_head_dim=dim // heads, in_channels=in_channels,
        out_channels=sd["proj_out.weight"].shape[0] // (patch * patch), patch_size=patch,
        num_layers=1 + max(int(BLOCK_KEY.match(k).group(1)) for k in sd if BLOCK_KEY.match(k)),
        caption_channels=sd["caption_projection.linear_1.weight"].shape[1],
        clip_channels=clip.shape[1] if clip is not None else 0,
        long_skips=1 + max(int(SKIP_KEY.match(k).group(1)) for k in sd if SKIP_KEY.match(k)),
        motion_module_heads=int(motion.get("num_attention_heads", PUBLISHED_HEADS)),
        sample_size=int(folder_config.get("sample_size", 64)),
        norm_eps=float(folder_config.get("norm_eps", 1e-6)),
    )


def check_keys(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """Raise with the missing and unexpected keys if `sd` does not fill `model` exactly."""
    mismatch = model_file.state_dict_mismatch(model, sd)
    if mismatch:
        raise EasyAnimateV3FormatError(f"{source} does not match the EasyAnimate V3 config read from it: {mismatch}")
