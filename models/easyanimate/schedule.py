"""EasyAnimate V5.1's flow-matching schedule as ComfyUI sigmas (no ComfyUI import needed)."""
from __future__ import annotations

import torch

TRAIN_STEPS = 1000


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Resolution shift of rectified-flow sigmas, shift * s / (1 + (shift - 1) * s) (Esser et al. 2024, sec. 5.3.2)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(steps: int, shift: float, dynamic_shifting: bool, denoise: float = 1.0) -> torch.Tensor:
    """The sigmas FlowMatchEulerDiscreteScheduler.set_timesteps(steps, mu=1) gives the V5.1 pipelines, then 0.

    `steps` sigmas evenly spaced from 1 to the training schedule's smallest, then shifted. With a static shift the
    training schedule is shifted already, so it ends at shift(1/1000); with dynamic shifting (the published
    config) it ends at 1/1000 and the shift is e^mu = e. With denoise < 1 only the last int(steps * denoise)
    steps run, as the pipelines' `strength` keeps.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    smallest = torch.tensor(1.0 / TRAIN_STEPS, dtype=torch.float64)
    end = smallest if dynamic_shifting else shift_sigmas(smallest, shift)
    sigmas = shift_sigmas(torch.linspace(1.0, float(end), steps, dtype=torch.float64), shift).float()
    sigmas = torch.cat([sigmas, torch.zeros(1)])
    if denoise < 1.0:
        keep = min(int(steps * denoise), steps)
        if keep < 1:
            raise ValueError(f"denoise {denoise} keeps none of {steps} steps: raise denoise or steps")
        sigmas = sigmas[-(keep + 1):]
    return sigmas
