"""Reading Tora weights from one or two files into a ToraModel (no ComfyUI needed)."""
from __future__ import annotations

import os

import torch

from .. import host, model_file
from . import keys
from .fuser import ToraModel


def load_state_dicts(paths: list[str]) -> dict[str, torch.Tensor]:
    """Merge the Tora tensors of every file (each detected on its own) into the target layout."""
    merged = {}
    for path in paths:
        state = model_file.read_state_dict(path, "Tora", keys.CONVERT_COMMAND)
        _layout, sd = keys.convert(state, f"'{os.path.basename(path)}'")
        merged.update(sd)
    return merged


def build(sd: dict[str, torch.Tensor], source: str, device=None, dtype=None, operations=None) -> ToraModel:
    """A ToraModel (always in eval mode) holding `sd`."""
    config = keys.config_from_state_dict(sd, source)
    model = ToraModel(**config, device="meta", operations=operations or torch.nn)
    keys.check_keys(model, sd, source)
    model = ToraModel(**config, device=device, dtype=dtype, operations=operations or torch.nn)
    model.load_state_dict(sd, strict=True)
    return model.eval().requires_grad_(False)


def load_tora(paths: list[str]):
    """A model patcher (ComfyUI's ModelPatcher inside ComfyUI) holding the ToraModel read from `paths` (one file, or
    the two split files)."""
    return build_tora(load_state_dicts(paths), " + ".join(f"'{os.path.basename(p)}'" for p in paths))


def build_tora(sd: dict, source: str = "the Tora weights"):
    """A model patcher holding a ToraModel with the (target-layout) tensors `sd`."""
    parameters = sum(v.numel() for v in sd.values())
    device = host.torch_device()
    dtype = torch.float32 if device.type == "cpu" else host.unet_dtype(parameters)
    model = build(sd, source, device=host.offload_device(), dtype=dtype, operations=host.operations())
    return host.model_patcher(model)
