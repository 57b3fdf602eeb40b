"""Motion latents: the trajectory flow video encoded by the CogVideoX VAE (Tora sec. 3.2)."""
from __future__ import annotations

import torch
from ..errors import MotionKitError

TORA_SCALING_FACTOR = 0.7
"""CogVideoX-5B's VAE scaling factor, which Tora's pipeline applies to the flow latents."""


class MotionEncodeError(MotionKitError):
    pass


def check_flow_video(frames: int, height: int, width: int) -> None:
    """CogVideoX samples 4k+1 frames at sizes divisible by 16; the flow video must match what is sampled."""
    problems = []
    if (frames - 1) % 4:
        problems.append(f"{frames} frames (CogVideoX needs 4k+1 frames, e.g. {(frames - 1) // 4 * 4 + 1} or "
                        f"{(frames - 1) // 4 * 4 + 5})")
    if height % 16 or width % 16:
        problems.append(f"{width}x{height} pixels (width and height must be multiples of 16)")
    if problems:
        raise MotionEncodeError(f"the flow video has {' and '.join(problems)}: make the trajectory flow with the "
                                f"frame count and size of the video you sample")


POSTERIOR_SAMPLE = "sample (official)"
POSTERIOR_MEAN = "mean"
POSTERIORS = (POSTERIOR_SAMPLE, POSTERIOR_MEAN)
"""Motion VAE Encode's `posterior` choices: the official pipeline's seeded sample, or the posterior mean."""


def sample_posterior(moments: torch.Tensor, seed: int, scaling_factor: float, device=None) -> torch.Tensor:
    """The official diffusers Tora pipeline's motion latents from the VAE posterior's moments [B, 2C, T, h, w].

    ToraPipeline.prepare_latents (alibaba/Tora, diffusers-version/tora/t2v_pipeline.py) takes
    `vae.encode(flow).latent_dist.sample(generator)` with `generator = torch.Generator().manual_seed(seed)`
    before it draws the initial noise: so the flow's noise is the generator's first draw, made on the
    CPU in the moments' dtype (the VAE's), then moved to the VAE's device, where diffusers'
    DiagonalGaussianDistribution computes mean + exp(clamp(logvar, -30, 20) / 2) * noise; the pipeline
    then multiplies by the scaling factor in the same dtype. Done here in that order, on `device`.
    """
    moments = moments.to(device) if device is not None else moments
    mean, logvar = torch.chunk(moments, 2, dim=1)
    std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed), dtype=moments.dtype)
    return scaling_factor * (mean + std * noise.to(moments.device))


def encode_motion(vae, flow_video: torch.Tensor, scaling_factor: float = TORA_SCALING_FACTOR, tiles=None,
                  posterior: str = POSTERIOR_SAMPLE, seed: int = 0) -> torch.Tensor:
    """IMAGE [F,H,W,3] flow video -> motion latents [1,16,(F-1)/4+1,H/8,W/8] times `scaling_factor` (float32).

    `vae` is a MotionKit video VAE (models/video_vae.VideoVAE) holding the CogVideoX VAE; it streams
    temporal chunks through the causal encoder and, with `tiles`, spatial tiles. `posterior`:
    POSTERIOR_SAMPLE draws from the posterior as the official pipeline does with `seed`
    (`sample_posterior`); POSTERIOR_MEAN takes its mean (no noise).
    """
    if getattr(vae, "version", None) != "cogvideox" or vae.latent_channels != 16:
        raise MotionEncodeError(f"Motion VAE Encode needs the CogVideoX VAE (Tora was trained on its latents); the "
                                f"video_vae input is '{getattr(vae, 'name', vae)}' (version "
                                f"{getattr(vae, 'version', '?')}, {getattr(vae, 'latent_channels', '?')} latent channels)")
    if flow_video.ndim != 4 or flow_video.shape[-1] < 3:
        raise MotionEncodeError(f"flow_video must be an IMAGE batch [frames, height, width, 3]; got shape "
                                f"{tuple(flow_video.shape)}")
    if posterior not in POSTERIORS:
        raise MotionEncodeError(f"posterior must be one of {', '.join(repr(p) for p in POSTERIORS)}; got {posterior!r}")
    check_flow_video(*flow_video.shape[:3])
    if posterior == POSTERIOR_MEAN:
        return vae.encode(flow_video, tiles) * (scaling_factor / vae.scaling_factor)
    moments = vae.encode(flow_video, tiles, posterior=True)
    with torch.inference_mode():
        latents = sample_posterior(moments, seed, scaling_factor, vae.model_patcher.load_device)
    return latents.to(moments.device, torch.float32)
