"""A tiny CogVideoX-5B-style transformer (3D RoPE) with diffusers' key names.

diffusion_models/motionkit_tiny_cogvideox.safetensors: 2 blocks, 2 heads of 16 channels,
16 latent channels, text width TEXT_DIM (the tiny T5 of the tests), fixed seed.
"""
from pathlib import Path

import safetensors.torch
import torch

TINY_CONFIG = dict(num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
                   time_embed_dim=32, text_embed_dim=64, num_layers=2)
FILENAME = "motionkit_tiny_cogvideox.safetensors"


def tiny_state_dict(config: dict = TINY_CONFIG, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights for CogVideoXTransformer(**config); LayerNorm weights near 1."""
    from motionkit.models.cogvideox.transformer import CogVideoXTransformer

    model = CogVideoXTransformer(**config, device="meta")
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        values = torch.randn(tensor.shape, generator=generator) * 0.2
        if "norm" in name and name.endswith("weight") and tensor.ndim == 1:
            values = 1.0 + values * 0.5
        state[name] = values.contiguous()
    return state


def write(models_dir: Path) -> list[Path]:
    path = Path(models_dir) / "diffusion_models" / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_state_dict(), str(path))
    return [path]
