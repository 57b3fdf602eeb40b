"""EasyAnimate V3's sampling settings as plain functions (no ComfyUI import needed).

The official V3 predict scripts sample with diffusers' DPMSolverMultistepScheduler (DPM-Solver++ 2M,
Lu et al. 2022) built from config/easyanimate_video_slicevae_motion_module_v3.yaml: betas linear
from 1e-4 to 0.02 over 1000 steps, epsilon prediction, "linspace" timestep spacing, 25 steps, CFG 7.
"""
from __future__ import annotations

import torch

from ..cogvideox.schedule import sigmas_for_timesteps  # noqa: F401  (the same rule: sigmas of timesteps, then 0)

BETA_START, BETA_END, TRAIN_STEPS = 0.0001, 0.02, 1000


def model_sigmas(steps: int = TRAIN_STEPS) -> torch.Tensor:
    """sqrt((1 - alpha-bar) / alpha-bar) of the V3 schedule (diffusers beta_schedule "linear": betas evenly
    spaced), in float32 as the official scheduler computes them (float64 differs by up to 1e-4 at low noise)."""
    betas = torch.linspace(BETA_START, BETA_END, steps, dtype=torch.float32)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def linspace_timesteps(steps: int, train_steps: int = TRAIN_STEPS) -> list[int]:
    """DPMSolverMultistepScheduler's "linspace" timesteps: round(linspace(0, T - 1, n + 1)), reversed, last dropped."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be between 1 and {train_steps}; got {steps}")
    step = (train_steps - 1) / steps
    return [round(i * step) for i in range(steps, 0, -1)]


def clip_image_active(sample_sigmas: torch.Tensor | None, sigma: float, apply_ratio: float) -> bool:
    """The InP pipeline's `clip_apply_ratio`: the CLIP image tokens join the context only from step
    n * (1 - ratio) on (official: zeroed and masked out while `i < len(timesteps) * (1 - clip_apply_ratio)`).
    Without the sampler's sigmas (a single model call) they are always on."""
    if sample_sigmas is None or len(sample_sigmas) < 2:
        return True
    steps = len(sample_sigmas) - 1
    index = int((sample_sigmas[:-1].float().cpu() - float(sigma)).abs().argmin())
    return index >= steps * (1 - apply_ratio)
