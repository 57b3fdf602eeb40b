"""MotionLoRA: low-rank updates of the motion module's attention projections, kept low-rank.

A MotionLoRA file holds, for each of to_q/to_k/to_v/to_out.0 of every temporal attention,
a `down` [rank, in] and an `up` [out, rank] matrix; the update is W + strength * up @ down.
`LowRankLinear` computes `x W^T + b + sum_i strength_i * (x down_i^T) up_i^T` and keeps
only references to the file's tensors, so a stack of MotionLoRAs costs about their file
sizes, never a dense [out, in] delta per projection.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MotionLoRA:
    """One loaded MotionLoRA file and the strength it is applied with."""
    name: str
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    strength: float

    def resident_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for pair in self.pairs.values() for t in pair)


class LowRankLinear(nn.Module):
    """A Linear sharing the weight and bias Parameters of `base`, plus low-rank updates.

    Sharing the Parameters (not wrapping `base` as a child) keeps the key names
    (`...to_q.weight`) unchanged while it stands in for `base` in the module tree.
    """

    def __init__(self, base: nn.Module, updates: list[tuple[torch.Tensor, torch.Tensor, float]]):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.updates = updates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x)
        out = F.linear(x, self.weight.to(x), bias)
        for down, up, strength in self.updates:
            out = out + F.linear(F.linear(x, down.to(x)), up.to(x)) * strength
        return out


def low_rank_patches(model: nn.Module, loras: list[MotionLoRA]) -> dict[str, LowRankLinear]:
    """{module path: LowRankLinear} for every projection a stack of MotionLoRAs touches."""
    updates: dict[str, list[tuple[torch.Tensor, torch.Tensor, float]]] = {}
    modules = dict(model.named_modules())
    for lora in loras:
        for path, (down, up) in lora.pairs.items():
            base = modules.get(path)
            if base is None or not hasattr(base, "in_features"):
                raise ValueError(f"MotionLoRA '{lora.name}' updates '{path}', which this motion module does not have "
                                 f"(a MotionLoRA for another motion module version?)")
            if (down.shape[1], up.shape[0]) != (base.in_features, base.out_features):
                raise ValueError(f"MotionLoRA '{lora.name}' has a [{up.shape[0]} x {down.shape[1]}] update for '{path}', "
                                 f"a [{base.out_features} x {base.in_features}] projection: it was made for another motion module")
            updates.setdefault(path, []).append((down, up, float(lora.strength)))
    return {path: LowRankLinear(modules[path], found) for path, found in updates.items()}

