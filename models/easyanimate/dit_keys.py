"""EasyAnimate V5.1 transformer checkpoints: format detection, the official-to-diffusers key table, config
from key shapes, and the scheduler shift of a published folder.

Published layouts (folder `transformer/`, one `diffusion_pytorch_model.safetensors` or shards
`diffusion_pytorch_model-0000N-of-0000M.safetensors` with their index):
- diffusers (`alibaba-pai/EasyAnimateV5.1-{12b,7b}-zh[-InP|-Control]-diffusers`): `EasyAnimateTransformer3DModel` keys;
- official (`alibaba-pai/EasyAnimateV5.1-{12b,7b}-zh[-InP|-Control]`): the same except the text stream's
  attention, a second `Attention` module `attn2` (official easyanimate/models/attention.py, EasyAnimateDiTBlock).
Either may carry ComfyUI's `model.diffusion_model.` prefix. The published V5.1 configs (checked against the
published parameter counts, 11,799,265,856 for 12B-InP and 6,814,670,912 for 7B-InP): 48 heads of 64, text width
3584 behind an RMSNorm (`add_norm_text_encoder`), 12B 48 MMDiT blocks, 7B 36 blocks of which the first 18 MMDiT.
"""
from __future__ import annotations

import os
import re

import torch

from .. import model_file
from ..errors import MotionKitError


PREFIXES = ("model.diffusion_model.", "transformer.", "")
MARKERS = ("proj.weight", "time_embedding.linear_1.weight", "transformer_blocks.0.norm1.linear.weight",
           "transformer_blocks.0.attn1.to_q.weight", "norm_out.linear.weight", "proj_out.weight")
"""Keys every EasyAnimate V5/V5.1 transformer has, in both layouts (and a text projection, TEXT_PROJECTIONS)."""
TEXT_PROJECTIONS = {"text_proj.1.weight": True, "text_proj.weight": False}
"""The text projection's weight -> whether an RMSNorm (text_proj.0) precedes it (add_norm_text_encoder)."""

OFFICIAL_RENAMES = (
    (re.compile(r"^(transformer_blocks\.\d+)\.attn2\.to_q\."), r"\1.attn1.add_q_proj."),
    (re.compile(r"^(transformer_blocks\.\d+)\.attn2\.to_k\."), r"\1.attn1.add_k_proj."),
    (re.compile(r"^(transformer_blocks\.\d+)\.attn2\.to_v\."), r"\1.attn1.add_v_proj."),
    (re.compile(r"^(transformer_blocks\.\d+)\.attn2\.norm_q\."), r"\1.attn1.norm_added_q."),
    (re.compile(r"^(transformer_blocks\.\d+)\.attn2\.norm_k\."), r"\1.attn1.norm_added_k."),
    (re.compile(r"^(transformer_blocks\.\d+)\.attn2\.to_out\.0\."), r"\1.attn1.to_add_out."),
)
"""Official text-stream attention (`attn2`, official processor.py EasyAnimateAttnProcessor2_0) -> diffusers names."""


BLOCK_KEY = re.compile(r"^transformer_blocks\.(\d+)\.")

V5_MARKERS = ("text_proj_t5.weight", "text_proj_t5.1.weight")
"""EasyAnimate V5 feeds a second text encoder (T5) through its own projection; V5.1 has none."""

VARIANTS = {16: "T2V", 33: "InP", 48: "Control"}
"""Input channels -> variant: noise (16); + mask (1) + masked video (16); + control video (16) + reference (16)."""

PUBLISHED = {
    "EasyAnimateV5.1-12b": dict(num_attention_heads=48, attention_head_dim=64, num_layers=48, mmdit_layers=48,
                                text_embed_dim=3584, add_norm_text_encoder=True, time_embed_dim=512, patch_size=2,
                                out_channels=16),
    "EasyAnimateV5.1-7b": dict(num_attention_heads=48, attention_head_dim=64, num_layers=36, mmdit_layers=18,
                               text_embed_dim=3584, add_norm_text_encoder=True, time_embed_dim=512, patch_size=2,
                               out_channels=16),
}
"""Full-size diffusers configs of the published transformers (in_channels per variant from VARIANTS)."""


class EasyAnimateFormatError(MotionKitError):
    pass


def strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in PREFIXES:
        if prefix + MARKERS[0] in state_dict and prefix + MARKERS[1] in state_dict:
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def rename_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Diffusers names for an official-layout state dict (diffusers-layout keys pass unchanged)."""
    out = {}
    for key, value in sd.items():
        for pattern, replacement in OFFICIAL_RENAMES:
            key, count = pattern.subn(replacement, key)
            if count:
                break
        out[key] = value
    return out


def _other_family(state_dict: dict, sd: dict) -> str | None:
    """What a file that is not an EasyAnimate V5.1 transformer is, and which loader fits, when we can tell."""
    keys = set(sd)
    if any(k.endswith("adaln_single.linear.weight") for k in keys) or any(".attn_temporal." in k for k in keys):
        return ("an EasyAnimate V2/V3 transformer (PixArt-style DiT with motion modules): load it with "
                "Load EasyAnimate V3 (MotionKit)")
    if any(k.startswith("time_extra_emb.") for k in keys):
        return "an EasyAnimate V4 transformer (HunyuanDiT-style, Bert + T5 text), which MotionKit does not run"
    if "patch_embed.text_proj.weight" in keys or "patch_embed.proj.weight" in keys:
        return "a CogVideoX transformer: load it with MotionKit Load CogVideoX"
    if any(k.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for k in state_dict):
        return "a video VAE: load it with Load Video VAE (MotionKit) from models/vae"
    if any(k.startswith(("model.layers.", "model.language_model.", "visual.blocks.")) for k in state_dict):
        return "a Qwen2-VL text encoder: load it with Load EasyAnimate Qwen2-VL (MotionKit) from models/text_encoders"
    return None


def detect(state_dict: dict[str, torch.Tensor], source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Check the file is an EasyAnimate V5.1 transformer; return its diffusers-named state dict."""
    sd = strip_prefix(state_dict)
    missing = [k for k in MARKERS if k not in sd]
    if not any(k in sd for k in TEXT_PROJECTIONS):
        missing.append(" or ".join(TEXT_PROJECTIONS))
    if missing:
        other = _other_family(state_dict, sd)
        if other:
            raise EasyAnimateFormatError(f"{source} is {other}, not an EasyAnimate V5.1 transformer")
        sample = ", ".join(sorted(state_dict)[:6]) or "no keys"
        raise EasyAnimateFormatError(f"{source} is not an EasyAnimate V5.1 transformer: checked the diffusers and "
                                     f"official layouts (prefixes {', '.join(repr(p) for p in PREFIXES)}); missing "
                                     f"keys {', '.join(missing)}; the file starts with {sample}")
    if any(k in sd for k in V5_MARKERS):
        raise EasyAnimateFormatError(f"{source} is an EasyAnimate V5 transformer (Bert + T5 text encoders, "
                                     f"text_proj_t5); MotionKit runs V5.1 (Qwen2-VL text): use the EasyAnimateV5.1 "
                                     f"weights")
    return rename_official(sd)


def config_from_state_dict(sd: dict[str, torch.Tensor], source: str = "the checkpoint",
                           folder_config: dict | None = None) -> dict:
    """EasyAnimateV51Transformer arguments read from key shapes (after `detect`); checks the variant."""
    proj = sd["proj.weight"]
    dim, in_channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    head_dim = sd["transformer_blocks.0.attn1.norm_q.weight"].shape[0]
    layers = 1 + max(int(BLOCK_KEY.match(k).group(1)) for k in sd if BLOCK_KEY.match(k))
    mmdit = [i for i in range(layers) if f"transformer_blocks.{i}.attn1.add_q_proj.weight" in sd]
    if mmdit != list(range(len(mmdit))):
        raise EasyAnimateFormatError(f"{source} has MMDiT blocks {mmdit[:6]}... that are not the first ones; "
                                     f"EasyAnimate V5.1 puts its MMDiT blocks first")
    if in_channels not in VARIANTS:
        raise EasyAnimateFormatError(f"{source} takes {in_channels} input channels; MotionKit knows the V5.1 "
                                     f"variants {', '.join(f'{c} ({v})' for c, v in VARIANTS.items())} (Control-Camera "
                                     f"models are not supported)")
    text_key = next(k for k in TEXT_PROJECTIONS if k in sd)
    config = dict(
        num_attention_heads=dim // head_dim, attention_head_dim=head_dim, in_channels=in_channels,
        out_channels=sd["proj_out.weight"].shape[0] // (patch * patch), patch_size=patch,
        time_embed_dim=sd["time_embedding.linear_1.weight"].shape[0], text_embed_dim=sd[text_key].shape[1],
        add_norm_text_encoder=TEXT_PROJECTIONS[text_key], num_layers=layers, mmdit_layers=len(mmdit),
        after_norm="transformer_blocks.0.norm3.weight" in sd)
    for key in ("norm_eps", "flip_sin_to_cos", "freq_shift"):
        if folder_config and key in folder_config:
            config[key] = folder_config[key]
    return config


def describe(config: dict, parameters: int) -> str:
    """'EasyAnimate V5.1 12B InP' for a config and its parameter count."""
    return f"EasyAnimate V5.1 {round(parameters / 1e9)}B {VARIANTS[config['in_channels']]}"


def check_keys(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """Raise with the missing and unexpected keys if `sd` does not fill `model` exactly."""
    mismatch = model_file.state_dict_mismatch(model, sd)
    if mismatch:
        raise EasyAnimateFormatError(f"{source} does not match the EasyAnimate V5.1 config read from it: {mismatch}")


def read_folder_config(path: str) -> dict | None:
    """The transformer's config.json beside the weights, when there is one."""
    data = model_file.read_config_beside(path, "EasyAnimate transformer config")
    return data if data is not None and "EasyAnimate" in data.get("_class_name", "") else None


PUBLISHED_SCHEDULE = (float(torch.e), True)
"""The published scheduler/scheduler_config.json: FlowMatchEulerDiscreteScheduler with use_dynamic_shifting, which
the V5.1 pipelines' set_timesteps(mu=1) turns into a shift of e^1 (its `shift: 3.0` is then unused)."""


def flow_schedule(path: str) -> tuple[float, bool]:
    """(shift, dynamic shifting) of ../scheduler/scheduler_config.json beside a published transformer folder, or
    the published setting without one."""
    scheduler = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "scheduler",
                             "scheduler_config.json")
    if not os.path.isfile(scheduler):
        return PUBLISHED_SCHEDULE
    data = model_file.read_json(scheduler, "EasyAnimate scheduler config")
    if data.get("use_dynamic_shifting"):
        return PUBLISHED_SCHEDULE
    return float(data.get("shift", 1.0)), False
