"""Tiny random video VAEs with the real key names, in ComfyUI's `vae` folder.

- `vae/motionkit_tiny_cogvideox_vae.safetensors`: a CogVideoX VAE as the single file
  CogVideoXWrapper users keep in models/vae (diffusers keys, no config.json), 16 latent
  channels like the real one, widths 32.
"""
from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch

from motionkit.models.cogvideox.vae import CogVideoXVAE, CogVideoXVAEConfig

TINY_COGVIDEOX = CogVideoXVAEConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=16)
COGVIDEOX_FILE = "motionkit_tiny_cogvideox_vae.safetensors"


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
    return [path]
