"""The video VAE formats: detection from the keys (and the config.json beside a file), building and loading."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

from .. import host, model_file
from ..cogvideox import vae as cogvideox_vae
from ..cogvideox import vae_keys as cogvideox_keys
from ..easyanimate import keys as easyanimate_keys
from ..easyanimate import magvit
from .engine import VideoVAE


@dataclass(frozen=True)
class VideoVAEFormat:
    name: str
    """What the version is called in messages."""
    config_classes: tuple
    """diffusers `_class_name` values of a config.json for this format."""
    markers: tuple
    """Keys that must all be present."""
    build: Callable
    """(state_dict, json_config, device, dtype, operations, file name) -> the network."""


def _build_cogvideox(state_dict, json_config, device, dtype, operations, name):
    cfg = cogvideox_keys.config_from_state_dict(state_dict, json_config)
    return cogvideox_vae.CogVideoXVAE(cfg, device=device, dtype=dtype, operations=operations)


def _build_magvit(state_dict, json_config, device, dtype, operations, name):
    cfg = easyanimate_keys.magvit_config(state_dict, json_config)
    return magvit.MagvitVAE(cfg, device=device, dtype=dtype, operations=operations)


SLICE_VAE_CLASSES = {
    "slice_mag_vae": magvit.MagvitSliceVAE,
    "slice_compression_vae": magvit.MagvitSliceCompressionVAE,
    "cache_compression_vae": magvit.MagvitCacheCompressionVAE,
}


def _build_slice_magvit(state_dict, json_config, device, dtype, operations, name):
    cls = SLICE_VAE_CLASSES[easyanimate_keys.official_mode(json_config, name)]
    cfg = easyanimate_keys.slice_config(state_dict, json_config)
    return cls(cfg, device=device, dtype=dtype, operations=operations)


FORMATS: list[VideoVAEFormat] = [
    VideoVAEFormat("EasyAnimate V2/V3/V4 slice VAE (official, mid-block attention)",
                   easyanimate_keys.MAGVIT_CONFIG_CLASSES,
                   easyanimate_keys.SLICE_MARKER_KEYS, _build_slice_magvit),
    VideoVAEFormat("EasyAnimate V5/V5.1 VAE", easyanimate_keys.MAGVIT_CONFIG_CLASSES,
                   easyanimate_keys.MAGVIT_MARKER_KEYS, _build_magvit),
    VideoVAEFormat("CogVideoX VAE", ("AutoencoderKLCogVideoX",), cogvideox_keys.MARKER_KEYS, _build_cogvideox),
]


def detect_format(state_dict, name: str = "the file") -> VideoVAEFormat:
    """The format whose marker keys are all present, or an error listing what was checked."""
    for fmt in FORMATS:
        if all(k in state_dict for k in fmt.markers):
            return fmt
    checked = "; ".join(f"{fmt.name}: missing {', '.join(k for k in fmt.markers if k not in state_dict)}"
                        for fmt in FORMATS)
    sample = ", ".join(sorted(state_dict)[:6]) or "no keys at all"
    raise ValueError(f"{name} is not a video VAE this pack knows ({len(state_dict)} keys, e.g. {sample}). "
                     f"Checked: {checked}. Use the VAE's diffusion_pytorch_model.safetensors (with its config.json)")


def read_json_config(path: str) -> dict | None:
    """config.json beside a model file (the published diffusers folder), if there is one."""
    candidate = os.path.join(os.path.dirname(path), "config.json")
    if not os.path.isfile(candidate):
        return None
    return model_file.read_json(candidate, "VAE config")


def build_video_vae(state_dict: dict, json_config: dict | None = None, name: str = "the file",
                    scaling_factor: float = 0.0, dtype: torch.dtype | None = None) -> VideoVAE:
    """Detect, build and load a VideoVAE from a state dict (and the diffusers config.json, if any)."""
    fmt = detect_format(state_dict, name)
    if json_config is not None:
        cls = json_config.get("_class_name")
        if cls not in fmt.config_classes:
            raise ValueError(f"config.json beside {name} describes '{cls}', but the weights are a {fmt.name} "
                             f"(config class {', '.join(fmt.config_classes)}): put the matching config.json "
                             f"beside the file, or remove it")
    load_device = host.torch_device()
    dtype = dtype or host.vae_dtype(load_device)
    net = fmt.build(state_dict, json_config, None, dtype, host.operations(), name)
    if scaling_factor:
        net.cfg.scaling_factor = float(scaling_factor)
    missing, unexpected = net.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(f"{name} looks like a {fmt.name} but does not fit its architecture: "
                         f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
                         f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    net.eval().requires_grad_(False)
    return VideoVAE(net, name=name, dtype=dtype)


def load_video_vae(path: str, scaling_factor: float = 0.0, dtype: torch.dtype | None = None) -> VideoVAE:
    """Load a video VAE file (its config.json beside it is read when present)."""
    json_config = read_json_config(path)
    return build_video_vae(model_file.read_state_dict(path, "video VAE"), json_config, os.path.basename(path), scaling_factor, dtype)
