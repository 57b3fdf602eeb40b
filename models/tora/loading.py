"""Reading Tora weights from one or two files into a ToraModel (no ComfyUI needed)."""
from __future__ import annotations

import json
import os
import pickle

import torch

from .. import host
from ..cogvideox.keys import shard_index_path, shard_paths
from . import keys
from .fuser import ToraModel

TORA_PREFIXES = ("traj_extractor.", "fuser.")
"""The diffusers Tora transformer's own tensors; the rest of it is the CogVideoX transformer."""


def read_file(path: str) -> dict:
    """Tensors of a safetensors file, or of a pickle loaded with weights_only=True (refused otherwise)."""
    try:
        return host.load_state_dict(path)
    except (pickle.UnpicklingError, RuntimeError) as error:
        if os.path.splitext(path)[1].lower() in (".safetensors", ".sft") or "eights only" not in str(error):
            raise
        raise keys.ToraFormatError(
            f"'{os.path.basename(path)}' is a pickle that holds more than tensors (torch.load(weights_only=True) "
            f"refused it: {str(error).splitlines()[0]}). MotionKit never runs code from model files. If you trust "
            f"the file, convert it once with: {keys.CONVERT_COMMAND}") from None


def read_shards(path: str) -> dict:
    """The Tora tensors of the sharded diffusers transformer that `path` is one shard of (any shard): the index
    beside the shards (`<name>.safetensors.index.json`, diffusers' "weight_map": tensor -> shard file) names the
    shards holding `traj_extractor.*` and `fuser.*`, and only those tensors are read from them (safetensors reads
    one tensor without the rest of its shard). Without an index the shards' headers are searched."""
    shards = shard_paths(path)
    folder, name, index = os.path.dirname(path), os.path.basename(path), shard_index_path(path)
    if not name.endswith((".safetensors", ".sft")):  # pickled shards: read whole, keep the Tora tensors
        return {k: v for shard in shards for k, v in read_file(shard).items() if k.startswith(TORA_PREFIXES)}
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
        tensors = read_shards(path) if len(shard_paths(path)) > 1 else read_file(path)
        _layout, sd = keys.convert(tensors, f"'{os.path.basename(path)}'")
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
