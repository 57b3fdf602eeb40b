"""The official CogVideoX / Tora pipelines' sampling conventions, on diffusers' own classes.

Re-stated from alibaba/Tora `diffusers-version/` (inference.py and tora/t2v_pipeline.py, which follow
diffusers' CogVideoXPipeline); the numerics are diffusers' (AutoencoderKLCogVideoX, its
DiagonalGaussianDistribution, randn_tensor, CogVideoXDDIMScheduler, CogVideoXDPMScheduler), never
the pack's code:

- `official_motion_latents`: inference.py turns the RGB flow (uint8) into `flow / (255 / 2) - 1` in
  the pipeline dtype; ToraPipeline.prepare_latents encodes it and takes
  `latent_dist.sample(generator)` (generator = torch.Generator().manual_seed(seed), the generator's
  first draw), casts to the pipeline dtype and multiplies by the VAE's scaling factor.
- `official_loop`: the pipelines' denoising loop with CFG (negative first in the batch) stepping
  either scheduler; the DPM branch passes the previous step's pred_original_sample and the previous
  timestep, and the generator for the scheduler's noise, as the pipelines do.
"""
from __future__ import annotations

import torch


def official_motion_latents(vae, flow_uint8: torch.Tensor, seed: int, dtype=torch.float32, device="cpu"):
    """Tora's motion latents [1, T, C, h, w] (the pipeline's layout) for a flow video [F, H, W, 3] uint8."""
    # torchvision's flow_to_image returns a contiguous uint8 [T, 3, H, W]; inference.py adds the batch
    video_flow = flow_uint8.permute(0, 3, 1, 2).contiguous()[None].to(device, dtype)
    video_flow = video_flow / (255.0 / 2) - 1
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        latents = vae.encode(video_flow.permute(0, 2, 1, 3, 4)).latent_dist.sample(generator)
    latents = latents.to(dtype).permute(0, 2, 1, 3, 4)
    return vae.config.scaling_factor * latents


def cogvideox_scheduler(kind: str, snr_shift_scale: float = 1.0):
    """The CogVideoX-5B scheduler config (scheduler/scheduler_config.json) with trailing spacing."""
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    scheduler = {"ddim": CogVideoXDDIMScheduler, "dpm": CogVideoXDPMScheduler}[kind]
    return scheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction",
                     snr_shift_scale=snr_shift_scale, clip_sample=False, set_alpha_to_one=True, beta_schedule="scaled_linear",
                     beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000)


def official_loop(v_model, kind: str, steps: int, latents: torch.Tensor, cfg: float, generator=None):
    """The pipelines' loop on latents [B, T, C, h, w]: v_model(x [2B,...], t [2B]) -> v for [uncond; cond]."""
    from diffusers import CogVideoXDPMScheduler

    scheduler = cogvideox_scheduler(kind)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    old_pred_original_sample = None
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            v = v_model(torch.cat([latents] * 2), t.expand(2 * latents.shape[0])).float()
            uncond, cond = v.chunk(2)
            v = uncond + cfg * (cond - uncond)
            if not isinstance(scheduler, CogVideoXDPMScheduler):
                latents = scheduler.step(v, t, latents, generator=generator, return_dict=False)[0]
            else:
                latents, old_pred_original_sample = scheduler.step(
                    v, old_pred_original_sample, t, timesteps[i - 1] if i > 0 else None, latents,
                    generator=generator, return_dict=False)
    return latents
