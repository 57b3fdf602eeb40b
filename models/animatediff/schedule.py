"""AnimateDiff's training noise schedule (the beta schedule node offers it beside ComfyUI's SD default)."""
from __future__ import annotations

import torch

SCHEDULES = ("animatediff linear (0.00085 to 0.012)", "sd scaled linear (ComfyUI default)")


def animatediff_betas(steps: int = 1000) -> torch.Tensor:
    """The betas of AnimateDiff's training scheduler: evenly spaced from 0.00085 to 0.012."""
    return torch.linspace(0.00085, 0.012, steps, dtype=torch.float64)
