"""Reading motion module and MotionLoRA files into ready objects."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .. import host, model_file
from .keys import MotionModuleInfo, check_fits_module, detect, motion_lora_pairs
from .motion_lora import MotionLoRA
from .motion_module import MotionModel


@dataclass
class LoadedMotionModule:
    """A motion module wrapped for ComfyUI's model management, with what its file is."""
    info: MotionModuleInfo
    patcher: object  # ModelPatcher of the MotionModel (host.model_patcher)

    @property
    def model(self) -> MotionModel:
        return self.patcher.model


def build_motion_module(state: dict[str, torch.Tensor], name: str, dtype: torch.dtype | None = None,
                        operations=None) -> LoadedMotionModule:
    """Detect, convert and load a motion module state dict (any published layout)."""
    info, state = detect(state, name)
    if dtype is None:
        dtype = host.unet_dtype(sum(v.numel() for v in state.values()))
    with torch.device("meta"):
        model = MotionModel(info.config, dtype=dtype, operations=operations)
    check_fits_module(state, model.state_dict(), name)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    return LoadedMotionModule(info=info, patcher=host.model_patcher(model.eval()))


def load_motion_module(path: str, dtype: torch.dtype | None = None) -> LoadedMotionModule:
    return build_motion_module(model_file.read_state_dict(path, "motion module"), os.path.basename(path), dtype)


def load_motion_lora(path: str, strength: float) -> MotionLoRA:
    name = os.path.basename(path)
    return MotionLoRA(name=name, pairs=motion_lora_pairs(model_file.read_state_dict(path, "MotionLoRA"), name), strength=strength)
