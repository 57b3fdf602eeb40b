"""A tiny EasyAnimate V3 InP transformer with the official key names.

- diffusion_models/motionkit_tiny_easyanimate_v3_inp.safetensors: 28 blocks (the published depth, so
  all 13 U-ViT skips run), width 32 (16 heads of 2, as the published 16 heads of 72), 12 input channels,
  8 output channels, T5 width 64 (MotionKit's tiny T5), the CLIP projection from 768, and the motion
  modules' stored position tables (160 frames here, 4096 in the published files), fixed seed.
Decode its latents with the tiny V3 slice VAE (video_vae.py) and encode text with the tiny T5 (cogvideox.py).
"""
from pathlib import Path

import safetensors.torch
import torch

TINY_CONFIG = dict(num_attention_heads=16, attention_head_dim=2, in_channels=12, out_channels=8, num_layers=28,
                   caption_channels=64, clip_channels=768)
FILENAME = "motionkit_tiny_easyanimate_v3_inp.safetensors"
STORED_FRAMES = 160


def tiny_state_dict(config: dict = TINY_CONFIG, seed: int = 0, stored_frames: int = STORED_FRAMES) -> dict[str, torch.Tensor]:
    """Deterministic random weights (N(0, 0.08^2); norm weights near 1) and the official position tables."""
    from motionkit.models.animatediff.motion_module import sinusoidal_encoding
    from motionkit.models.easyanimate.v3_transformer import EasyAnimateV3Transformer

    model = EasyAnimateV3Transformer(**config, device="meta")
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        values = torch.randn(tensor.shape, generator=generator) * 0.08
        if "norm" in name and name.endswith("weight") and tensor.ndim == 1:
            values = 1.0 + values
        state[name] = values.contiguous()
    table = sinusoidal_encoding(stored_frames, model.dim)
    for block in range(config["num_layers"]):
        for attention in (0, 1):
            state[f"transformer_blocks.{block}.attn_temporal.temporal_transformer.transformer_blocks.0."
                  f"attention_blocks.{attention}.pos_encoder.pe"] = table.clone()
    return state


def write(models_dir: Path) -> list[Path]:
    path = Path(models_dir) / "diffusion_models" / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_state_dict(), str(path))
    return [path]
