"""Reading Tora weights from one or two files into a ToraModel (no ComfyUI needed)."""
from __future__ import annotations

import json
import os

import torch

from .. import host, model_file
from ..cogvideox.keys import shard_index_path, shard_paths
from . import keys
from .fuser import ToraModel

TORA_PREFIXES = ("traj_extractor.", "fuser.")
"""The diffusers Tora transformer's own tensors; the rest of it is the CogVideoX transformer."""


def read_shards(path: str) -> dict:
    """The Tora tensors of the sharded diffusers transformer that `path` is one shard of (any shard): the index
    beside the shards (`<name>.safetensors.index.json`, diffusers' "weight_map": tensor -> shard file) names the
    shards holding `traj_extractor.*` and `fuser.*`, and only those tensors are read from them (safetensors reads
    one tensor without the rest of its shard). Without an index the shards' headers are searched."""
    shards = shard_paths(path)
    folder, name, index = os.path.dirname(path), os.path.basename(path), shard_index_path(path)
    if not name.endswith((".safetensors", ".sft")):  # pickled shards: read whole, keep the Tora tensors
        return {k: v for shard in shards for k, v in model_file.read_state_dict(shard, "Tora", keys.CONVERT_COMMAND).items() if k.startswith(TORA_PREFIXES)}
    import safetensors

    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f).get("weight_map", {})
        located = {k: os.path.join(folder, shard) for k, shard in weight_map.items() if k.startswith(TORA_PREFIXES)}
    else:
        located = {}
        for shard in shards:
            with safetensors.safe_open(shard, "pt") as f:
                located.update({k: shard for k in f.keys() if k.startswith(TORA_PREFIXES)})
    if not located:
        raise keys.ToraFormatError(
            f"'{name}' is a shard of a {len(shards)}-part transformer without Tora weights (" +
            (f"its index {os.path.basename(index)} names" if os.path.isfile(index) else "its shards hold") +
            " no traj_extractor.* or fuser.* tensors): a plain CogVideoX transformer; load it with MotionKit Load "
            "CogVideoX, and give MotionKit Load Tora the Tora transformer's shards")
    tensors = {}
    for shard in sorted(set(located.values())):
        if not os.path.isfile(shard):
            raise FileNotFoundError(f"'{os.path.basename(index)}' places Tora tensors in '{os.path.basename(shard)}', "
                                    f"which is missing from {folder}")
        with safetensors.safe_open(shard, "pt") as f:
            tensors.update({k: f.get_tensor(k) for k, where in located.items() if where == shard})
    return tensors


def load_state_dicts(paths: list[str]) -> dict[str, torch.Tensor]:
    """Merge the Tora tensors of every file (each detected on its own) into the target layout; a shard of a
    sharded diffusers transformer stands for all its shards."""
    merged = {}
    for path in paths:
        if len(shard_paths(path)) > 1:
            state = read_shards(path)
        else:
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
