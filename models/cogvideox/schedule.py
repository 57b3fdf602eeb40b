"""CogVideoX's sampling schedule as ComfyUI sigmas (no ComfyUI import needed)."""
from __future__ import annotations

import torch


def trailing_timesteps(steps: int, train_steps: int = 1000) -> list[int]:
    """CogVideoXDDIMScheduler's "trailing" timesteps: round(T, T - T/n, ...) - 1 (Lin et al. 2023, table 2)."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be between 1 and {train_steps}; got {steps}")
    ratio = train_steps / steps
    return [int(round(train_steps - i * ratio)) - 1 for i in range(steps)]


def sigmas_for_timesteps(model_sigmas: torch.Tensor, timesteps: list[int], denoise: float = 1.0) -> torch.Tensor:
    """Sigmas of the given timesteps, then 0; with denoise < 1 only the last fraction of them."""
    sigmas = torch.cat([model_sigmas[torch.tensor(timesteps)].float().cpu(), torch.zeros(1)])
    if denoise < 1.0:
        keep = max(1, int(round(len(timesteps) * denoise)))
        sigmas = sigmas[-(keep + 1):]
    return sigmas


def dynamic_cfg_scale(cfg: float, timestep: float, steps: int) -> float:
    """CogVideoX pipelines' dynamic guidance: 1 + cfg * (1 - cos(pi * ((steps - t) / steps) ** 5)) / 2.

    `t` is the current model timestep (0..999) and `steps` the number of sampling steps, exactly as the
    published pipeline computes it (it mixes the two scales; we keep that for identical results).
    """
    import math

    return 1 + cfg * (1 - math.cos(math.pi * ((steps - timestep) / steps) ** 5.0)) / 2
