"""A tiny CogVideoX-5B-style transformer (3D RoPE) with diffusers' key names, and a tiny T5.

- diffusion_models/motionkit_tiny_cogvideox.safetensors: 2 blocks, 2 heads of 16 channels,
  16 latent channels, text width 64, fixed seed.
- text_encoders/motionkit_tiny_t5.safetensors: a T5 v1.1 encoder (T5-XXL's key names and vocabulary,
  width 64, 2 layers) for Load T5 (MotionKit); real T5-XXL is 4.7B parameters.
"""
from pathlib import Path

import safetensors.torch
import torch

TINY_CONFIG = dict(num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
                   time_embed_dim=32, text_embed_dim=64, num_layers=2)
FILENAME = "motionkit_tiny_cogvideox.safetensors"
T5_FILENAME = "motionkit_tiny_t5.safetensors"
TINY_T5 = dict(vocab_size=32128, d_model=64, num_layers=2, num_heads=2, d_kv=8, d_ff=32)


def tiny_state_dict(config: dict = TINY_CONFIG, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights for CogVideoXTransformer(**config); LayerNorm weights near 1."""
    from motionkit.models.cogvideox.transformer import CogVideoXTransformer

    return random_weights(CogVideoXTransformer(**config, device="meta"), seed)


def random_weights(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """N(0, 0.2) for every entry of a (meta) transformer's state dict, norm weights N(1, 0.1)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        values = torch.randn(tensor.shape, generator=generator) * 0.2
        if "norm" in name and name.endswith("weight") and tensor.ndim == 1:
            values = 1.0 + values * 0.5
        state[name] = values.contiguous()
    return state


def tiny_t5_state_dict(config: dict = TINY_T5, seed: int = 2) -> dict[str, torch.Tensor]:
    """T5 v1.1 encoder weights with the published key names (gated-GELU feed-forward, relative position bias)."""
    generator = torch.Generator().manual_seed(seed)
    d, inner, ff = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"]
    shapes = {"shared.weight": (config["vocab_size"], d), "encoder.final_layer_norm.weight": (d,),
              "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (32, config["num_heads"])}
    for i in range(config["num_layers"]):
        block = f"encoder.block.{i}.layer."
        shapes.update({block + "0.SelfAttention.q.weight": (inner, d), block + "0.SelfAttention.k.weight": (inner, d),
                       block + "0.SelfAttention.v.weight": (inner, d), block + "0.SelfAttention.o.weight": (d, inner),
                       block + "0.layer_norm.weight": (d,), block + "1.DenseReluDense.wi_0.weight": (ff, d),
                       block + "1.DenseReluDense.wi_1.weight": (ff, d), block + "1.DenseReluDense.wo.weight": (d, ff),
                       block + "1.layer_norm.weight": (d,)})
    return {name: (1.0 + 0.1 * torch.randn(shape, generator=generator)) if len(shape) == 1
            else 0.3 * torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def write(models_dir: Path) -> list[Path]:
    path = Path(models_dir) / "diffusion_models" / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_state_dict(), str(path))
    t5 = Path(models_dir) / "text_encoders" / T5_FILENAME
    t5.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_t5_state_dict(), str(t5))
    return [path, t5]
