"""Tiny random video VAEs with the real key names, in ComfyUI's `vae` folder.

- `vae/motionkit_tiny_cogvideox_vae.safetensors`: a CogVideoX VAE as the single file
  CogVideoXWrapper users keep in models/vae (diffusers keys, no config.json), 16 latent
  channels like the real one, widths 32.
- `vae/motionkit_tiny_easyanimate_v5/diffusion_pytorch_model.safetensors` with its
  `config.json`: an EasyAnimate V5.1 cache mag VAE as the published folder.
- `vae/motionkit_tiny_easyanimate_v3/...`: an EasyAnimate V3 slice VAE (mid-block attention,
  4 latent channels) with the official config.json flags.
"""
from __future__ import annotations

from pathlib import Path

import json

import safetensors.torch
import torch

from motionkit.models.cogvideox.vae import CogVideoXVAE, CogVideoXVAEConfig
from motionkit.models.easyanimate.magvit import MagvitSliceCompressionVAE, MagvitVAE, MagvitVAEConfig

TINY_COGVIDEOX = CogVideoXVAEConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=16)
COGVIDEOX_FILE = "motionkit_tiny_cogvideox_vae.safetensors"
TINY_EASYANIMATE_V5 = MagvitVAEConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=16)
EASYANIMATE_V5_FOLDER = "motionkit_tiny_easyanimate_v5"
TINY_EASYANIMATE_V3 = MagvitVAEConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=2, latent_channels=4,
                                      spatial_group_norm=False, decoder_mid_per_frame=False, mid_block_attention=True,
                                      scaling_factor=0.1825)
EASYANIMATE_V3_FOLDER = "motionkit_tiny_easyanimate_v3"


def diffusers_cogvideox_vae(latent_channels: int):
    """diffusers' AutoencoderKLCogVideoX at widths 8-16, weights N(0, 0.2) drawn after torch.manual_seed(0), and its
    config as the pack reads it: the reference side of the CogVideoX VAE parity tests."""
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(0)
    reference = AutoencoderKLCogVideoX(block_out_channels=(8, 8, 16, 16), latent_channels=latent_channels,
                                       layers_per_block=1, norm_num_groups=4, scaling_factor=0.7).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.2)
    return reference, dict(reference.config, _class_name="AutoencoderKLCogVideoX")


def official_v3_json_config(cfg: MagvitVAEConfig) -> dict:
    """config.json as the official V3 vae/ folder writes it (official class, block types as strings)."""
    return {"_class_name": "AutoencoderKLMagvit", "in_channels": 3, "out_channels": 3,
            "block_out_channels": list(cfg.block_out_channels), "layers_per_block": cfg.layers_per_block,
            "down_block_types": str(tuple(cfg.down_block_types)), "up_block_types": str(tuple(cfg.up_block_types)),
            "mid_block_type": "MidBlock3D", "mid_block_use_attention": True, "mid_block_attention_type": "3d",
            "mid_block_num_attention_heads": 1, "latent_channels": cfg.latent_channels,
            "norm_num_groups": cfg.norm_num_groups, "scaling_factor": cfg.scaling_factor, "slice_mag_vae": False,
            "slice_compression_vae": True, "cache_compression_vae": False, "cache_mag_vae": False,
            "mini_batch_encoder": 8, "mini_batch_decoder": 2, "spatial_group_norm": False}


def magvit_json_config(cfg: MagvitVAEConfig) -> dict:
    """config.json as the published V5.1 folder has it (diffusers' AutoencoderKLMagvit fields)."""
    return {"_class_name": "AutoencoderKLMagvit", "_diffusers_version": "0.32.0", "in_channels": cfg.in_channels,
            "out_channels": cfg.out_channels, "latent_channels": cfg.latent_channels,
            "block_out_channels": list(cfg.block_out_channels), "down_block_types": list(cfg.down_block_types),
            "up_block_types": list(cfg.up_block_types), "layers_per_block": cfg.layers_per_block, "act_fn": "silu",
            "norm_num_groups": cfg.norm_num_groups, "scaling_factor": cfg.scaling_factor,
            "spatial_group_norm": cfg.spatial_group_norm}


def random_state_dict(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights: conv/linear N(0, 1/fan_in), norms around 1 and 0."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if value.ndim > 1:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=generator) / fan_in ** 0.5
        elif "norm" in key and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(value.shape, generator=generator)
        else:
            state[key] = 0.05 * torch.randn(value.shape, generator=generator)
    return state


def write(models_dir: Path) -> list[Path]:
    folder = Path(models_dir) / "vae"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / COGVIDEOX_FILE
    safetensors.torch.save_file(random_state_dict(CogVideoXVAE(TINY_COGVIDEOX), seed=5), str(path))
    v5 = folder / EASYANIMATE_V5_FOLDER
    v5.mkdir(exist_ok=True)
    v5_path = v5 / "diffusion_pytorch_model.safetensors"
    safetensors.torch.save_file(random_state_dict(MagvitVAE(TINY_EASYANIMATE_V5), seed=6), str(v5_path))
    (v5 / "config.json").write_text(json.dumps(magvit_json_config(TINY_EASYANIMATE_V5), indent=2))
    v3 = folder / EASYANIMATE_V3_FOLDER
    v3.mkdir(exist_ok=True)
    v3_path = v3 / "diffusion_pytorch_model.safetensors"
    safetensors.torch.save_file(random_state_dict(MagvitSliceCompressionVAE(TINY_EASYANIMATE_V3), seed=7), str(v3_path))
    (v3 / "config.json").write_text(json.dumps(official_v3_json_config(TINY_EASYANIMATE_V3), indent=2))
    return [path, v5_path, v5 / "config.json", v3_path, v3 / "config.json"]
