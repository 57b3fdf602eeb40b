"""References for MotionLoRA training (no tests here), independent of the pack's code.

- `MotionLoRALinear` / `add_motion_lora`: LoRA by hand on diffusers' UNetMotionModel (the layers it adapts
  are found by their diffusers names; our original-layout paths are mapped with diffusers' own converter,
  `convert_animatediff_checkpoint_to_diffusers`).
- `training_loss`: AnimateDiff's train.py objective with diffusers' DDPMScheduler (linear betas
  0.00085-0.012): noise added at the timestep, MSE between the noise and the UNet's prediction.
- `published_motion_lora_layout`: the keys and shapes of a published v2_lora_* file at full size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MotionLoRALinear(nn.Module):
    """base(x) + (x down^T) up^T, the LoRA update of diffusers' LoRALinearLayer (no alpha: scale 1)."""

    def __init__(self, base: nn.Linear, down: torch.Tensor, up: torch.Tensor):
        super().__init__()
        self.base = base
        self.down = nn.Parameter(down.detach().clone())
        self.up = nn.Parameter(up.detach().clone())

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(x, self.down), self.up)


def diffusers_module_path(original_path: str) -> str:
    """Original AnimateDiff module path -> the UNetMotionModel path, by diffusers' own key converter."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    (converted,) = convert_animatediff_checkpoint_to_diffusers({original_path + ".weight": None}).keys()
    return converted[: -len(".weight")]


def add_motion_lora(model: nn.Module, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, MotionLoRALinear]:
    """Replace each adapted projection of a UNetMotionModel by a MotionLoRALinear; {original path: layer}."""
    model.requires_grad_(False)
    layers = {}
    for path, (down, up) in pairs.items():
        parent_name, child = diffusers_module_path(path).rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        layer = MotionLoRALinear(getattr(parent, child) if not child.isdigit() else parent[int(child)], down, up)
        if child.isdigit():
            parent[int(child)] = layer
        else:
            setattr(parent, child, layer)
        layers[path] = layer
    return layers


def ddpm_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear")


def training_loss(model, scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                  context: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """AnimateDiff's loss for videos [b, c, f, h, w] at one DDPM timestep per video; context is per frame [b*f, seq, dim].
    The MSE is taken in `dtype` (train.py: float32; float64 for parity checks)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    predicted = model(noisy, timesteps, context).sample
    return F.mse_loss(predicted.to(dtype), noise.to(dtype), reduction="mean")


def published_motion_lora_layout(rank: int = 64) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a published SD1.5 v2 MotionLoRA (v2_lora_*.ckpt): diffusers' full-size MotionAdapter with a
    middle block, in the original names, one down [rank, c] and up [c, rank] per temporal attention projection."""
    from diffusers import MotionAdapter

    with torch.device("meta"):
        adapter = MotionAdapter(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                                motion_num_attention_heads=8, motion_max_seq_length=32, use_motion_mid_block=True)
    layout = {}
    for name, module in adapter.named_modules():
        if isinstance(module, nn.Linear) and ".attn" in name and name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "0"):
            original = name.replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1.")
            block, rest = original.split(".transformer_blocks.", 1)
            prefix = f"{block}.temporal_transformer.transformer_blocks.{rest}"
            projection = prefix.rsplit(".", 1)[-1] if not prefix.endswith(".to_out.0") else "to_out"
            base = prefix[: -len(".to_out.0")] if projection == "to_out" else prefix.rsplit(".", 1)[0]
            layout[f"{base}.processor.{projection}_lora.down.weight"] = (rank, module.in_features)
            layout[f"{base}.processor.{projection}_lora.up.weight"] = (module.out_features, rank)
    return layout
