"""CogVideoX's official DDIM and DPM steps as k-diffusion-style sampler functions (no ComfyUI import).

diffusers' CogVideoXDDIMScheduler and CogVideoXDPMScheduler (the schedulers of the CogVideoX and Tora
pipelines) evaluate the model at the trailing timesteps t_i (`schedule.trailing_timesteps`) but move
the latent to `t_i - 1000 // n` (n: the step count), which is not t_{i+1} when n does not divide 1000
(3 steps: evaluated at 999, 666, 332, moved to 666, 333, -1). No sigma list expresses that, so these
samplers keep the latent in the pipelines' own form x_d = sqrt(alpha-bar) x0 + sqrt(1 - alpha-bar) eps
and do the schedulers' arithmetic on the exact alpha-bar table (alpha-bar(999) = 0: zero terminal SNR),
calling ComfyUI's denoiser only to evaluate the model at t_i.

The model is a k-diffusion denoiser for v-prediction (ComfyUI's V_PREDICTION sampling):
`model(x_k, sigma)` with x_k = x_d / sqrt(a) and a = 1 / (1 + sigma^2) returns
sqrt(a) x_d - sqrt(1 - a) v. `sigmas` give the evaluation points (their timesteps are read back with
`timestep_of`); the step count n is len(sigmas) - 1.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import MotionKitError


class CogVideoXSamplerError(MotionKitError):
    pass


class OfficialSchedule:
    """alpha-bar per training timestep (float64, the scheduler's table) and the sampled timesteps."""

    def __init__(self, alphas_cumprod: torch.Tensor, sigmas: torch.Tensor, timestep_of: Callable[[torch.Tensor], int]):
        self.alphas = [float(a) for a in alphas_cumprod.double()]
        self.train_steps = len(self.alphas)
        self.steps = len(sigmas) - 1
        if self.steps < 1:
            raise CogVideoXSamplerError(f"the sigmas give no step ({len(sigmas)} values); connect a schedule of 1 or more steps")
        self.timesteps = [timestep_of(sigmas[i]) for i in range(self.steps)]
        self.stride = self.train_steps // self.steps

    def alpha(self, timestep: int | None) -> float:
        """alpha-bar at `timestep`; 1 below 0 (the schedulers' final_alpha_cumprod with set_alpha_to_one)."""
        return 1.0 if timestep < 0 else self.alphas[timestep]

    def previous(self, i: int) -> int:
        """Where step i moves the latent: t_i - train_steps // n, as the official step does."""
        return self.timesteps[i] - self.stride


def _official_v(model, x_d: torch.Tensor, sigma: torch.Tensor, s_in: torch.Tensor, extra_args: dict) -> tuple:
    """(v, ComfyUI's denoised) of the model evaluated on x_d at `sigma` (x_d passed as x_k = x_d * sqrt(1 + sigma^2))."""
    scale = torch.sqrt(1.0 + sigma.double() ** 2).item()
    x_k = x_d * scale
    denoised = model(x_k, sigma * s_in, **extra_args)
    sigma_f = sigma.double().item()
    # ComfyUI: denoised = x_k / (1 + s^2) - v * s / sqrt(1 + s^2)
    v = (x_k / (1.0 + sigma_f ** 2) - denoised) * (scale / sigma_f)
    return v, denoised


def _x0(schedule: OfficialSchedule, t: int, x_d: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The schedulers' v-prediction pred_original_sample: sqrt(a_t) x_d - sqrt(1 - a_t) v."""
    a_t = schedule.alpha(t)
    return a_t ** 0.5 * x_d - (1 - a_t) ** 0.5 * v


def _to_k(x_d: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_d handed back to ComfyUI as a latent at `sigma` (x_d * sqrt(1 + sigma^2)). After the last step
    (sigma 0) that is x_d itself: the latent the official pipelines decode, even where their last step
    ends at timestep 0 rather than at alpha-bar 1 (e.g. 7 steps: 142 -> 0)."""
    return x_d * torch.sqrt(1.0 + sigma.double() ** 2).item()


@torch.no_grad()
def sample_cogvideox_ddim(model, x, sigmas, extra_args=None, callback=None, disable=None, alphas_cumprod=None,
                          timestep_of=None):
    """CogVideoXDDIMScheduler.step (eta 0, v-prediction), step for step: x0 from v at a_t, then
    x_prev = sqrt((1 - a_prev) / (1 - a_t)) x_d + (sqrt(a_prev) - sqrt(a_t) sqrt((1 - a_prev) / (1 - a_t))) x0
    with a_prev at t - 1000 // n (Song et al. 2021, DDIM, eq. 12 with sigma_t = 0)."""
    extra_args = {} if extra_args is None else extra_args
    schedule = OfficialSchedule(alphas_cumprod, sigmas, timestep_of)
    s_in = x.new_ones([x.shape[0]])
    x_d = x / torch.sqrt(1.0 + sigmas[0].double() ** 2).item()
    for i in range(schedule.steps):
        t = schedule.timesteps[i]
        v, _denoised = _official_v(model, x_d, sigmas[i], s_in, extra_args)
        x0 = _x0(schedule, t, x_d, v)
        a_t, a_prev = schedule.alpha(t), schedule.alpha(schedule.previous(i))
        a = ((1 - a_prev) / (1 - a_t)) ** 0.5
        b = a_prev ** 0.5 - a_t ** 0.5 * a
        x_d = a * x_d + b * x0
        if callback is not None:
            callback({"x": _to_k(x_d, sigmas[i + 1]), "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i],
                      "denoised": x0})
    return _to_k(x_d, sigmas[-1])


def _half_log_snr(alpha: float) -> float:
    """lambda = log sqrt(a / (1 - a)), -inf at a = 0 and inf at a = 1."""
    if alpha <= 0.0:
        return -math.inf
    if alpha >= 1.0:
        return math.inf
    return 0.5 * math.log(alpha / (1 - alpha))


def official_noise_sampler(x: torch.Tensor, seed: int):
    """The DPM scheduler's noise as the official pipelines draw it: randn from one CPU generator seeded
    with `seed`, in the pipelines' latent layout [B, T, C, h, w] and x's dtype, moved to x's device."""
    generator = torch.Generator().manual_seed(seed)
    shape = (x.shape[0], x.shape[2], x.shape[1], *x.shape[3:])

    def draw():
        return torch.randn(shape, generator=generator, dtype=x.dtype).to(x.device).transpose(1, 2)
    return draw


@torch.no_grad()
def sample_cogvideox_dpm(model, x, sigmas, extra_args=None, callback=None, disable=None, alphas_cumprod=None,
                         timestep_of=None, noise_sampler=None):
    """CogVideoXDPMScheduler.step, step for step: the stochastic DPM-Solver++(2M) (Lu et al. 2022, alg. 2
    with SDE noise) on lambda = log sqrt(a / (1 - a)), first order on the first and the last step.

    It draws noise once per step and, on the second-order steps, a second time (the first draw then goes
    unused), as the scheduler does; `noise_sampler()` gives each draw (default: `official_noise_sampler`
    with extra_args["seed"])."""
    extra_args = {} if extra_args is None else extra_args
    schedule = OfficialSchedule(alphas_cumprod, sigmas, timestep_of)
    if noise_sampler is None:
        noise_sampler = official_noise_sampler(x, extra_args.get("seed", 0))
    s_in = x.new_ones([x.shape[0]])
    x_d = x / torch.sqrt(1.0 + sigmas[0].double() ** 2).item()
    old_x0 = None
    for i in range(schedule.steps):
        t, prev = schedule.timesteps[i], schedule.previous(i)
        v, _denoised = _official_v(model, x_d, sigmas[i], s_in, extra_args)
        x0 = _x0(schedule, t, x_d, v)
        a_t, a_prev = schedule.alpha(t), schedule.alpha(prev)
        lamb, lamb_next = _half_log_snr(a_t), _half_log_snr(a_prev)
        h = lamb_next - lamb
        mult1 = ((1 - a_prev) / (1 - a_t)) ** 0.5 * math.exp(-h)
        mult2 = math.expm1(-2 * h) * a_prev ** 0.5
        mult_noise = (1 - a_prev) ** 0.5 * (1 - math.exp(-2 * h)) ** 0.5
        x_next = mult1 * x_d - mult2 * x0 + mult_noise * noise_sampler()
        if old_x0 is not None and prev >= 0:
            h_last = lamb - _half_log_snr(schedule.alpha(schedule.timesteps[i - 1]))
            r = h_last / h
            mult3, mult4 = 1 + 1 / (2 * r), 1 / (2 * r)
            x_next = mult1 * x_d - mult2 * (mult3 * x0 - mult4 * old_x0) + mult_noise * noise_sampler()
        old_x0, x_d = x0, x_next
        if callback is not None:
            callback({"x": _to_k(x_d, sigmas[i + 1]), "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i],
                      "denoised": x0})
    return _to_k(x_d, sigmas[-1])


OFFICIAL_SAMPLERS = {"ddim (official)": sample_cogvideox_ddim, "dpm (official)": sample_cogvideox_dpm}
"""MotionKit CogVideoX Sampler's choices: CogVideoXDDIMScheduler and CogVideoXDPMScheduler, step for step."""
