"""EasyAnimate V5.1's flow-matching schedule as ComfyUI sigmas (no ComfyUI import needed)."""
from __future__ import annotations

import torch

TRAIN_STEPS = 1000


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Resolution shift of rectified-flow sigmas, s' = shift * s / (1 + (shift - 1) * s) (Esser et al. 2024, sec. 5.3.2)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(steps: int, shift: float = 1.0, denoise: float = 1.0) -> torch.Tensor:
    """The sigmas FlowMatchEulerDiscreteScheduler.set_timesteps(steps) gives the V5.1 pipelines, then 0.

    `steps` evenly spaced sigmas from 1 down to 1/1000, shifted; with denoise < 1 only the last
    int(steps * denoise) of them, as the pipelines' `strength` keeps.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    sigmas = shift_sigmas(torch.linspace(1.0, 1.0 / TRAIN_STEPS, steps, dtype=torch.float64), shift).float()
    sigmas = torch.cat([sigmas, torch.zeros(1)])
    if denoise < 1.0:
        keep = min(int(steps * denoise), steps)
        if keep < 1:
            raise ValueError(f"denoise {denoise} keeps no step of {steps}: raise denoise or steps")
        sigmas = sigmas[-(keep + 1):]
    return sigmas
