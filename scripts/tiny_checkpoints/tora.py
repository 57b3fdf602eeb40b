"""Tiny Tora weights for the tiny CogVideoX (2 blocks of width 32), diffusers-version key names.

tora/motionkit_tiny_tora.safetensors: `traj_extractor.*` + `fuser.<i>.*`, fixed seed. BatchNorm
running statistics are random too (positive variances), so eval-mode normalization is exercised.
"""
from pathlib import Path

import safetensors.torch
import torch

TINY_CONFIG = dict(dim=32, blocks=2, flow_channels=32)
FILENAME = "motionkit_tiny_tora.safetensors"


def tiny_state_dict(config: dict = TINY_CONFIG, seed: int = 1) -> dict[str, torch.Tensor]:
    from motionkit.models.tora.fuser import ToraModel

    model = ToraModel(**config, device="meta")
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(tensor.shape, generator=generator)
        else:
            scale = 0.3 if "fuser" in name else 0.1
            state[name] = (torch.randn(tensor.shape, generator=generator) * scale).contiguous()
    return state


def write(models_dir: Path) -> list[Path]:
    path = Path(models_dir) / "tora" / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_state_dict(), str(path))
    return [path]
