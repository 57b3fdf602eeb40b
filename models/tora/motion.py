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


def encode_motion(vae, flow_video: torch.Tensor, scaling_factor: float = TORA_SCALING_FACTOR, tiles=None) -> torch.Tensor:
    """IMAGE [F,H,W,3] flow video -> motion latents [1,16,(F-1)/4+1,H/8,W/8] times `scaling_factor`.

    `vae` is a MotionKit video VAE (models/video_vae.VideoVAE) holding the CogVideoX VAE; it streams
    temporal chunks through the causal encoder and, with `tiles`, spatial tiles.
    """
    if getattr(vae, "version", None) != "cogvideox" or vae.latent_channels != 16:
        raise MotionEncodeError(f"Motion VAE Encode needs the CogVideoX VAE (Tora was trained on its latents); the "
                                f"video_vae input is '{getattr(vae, 'name', vae)}' (version "
                                f"{getattr(vae, 'version', '?')}, {getattr(vae, 'latent_channels', '?')} latent channels)")
    if flow_video.ndim != 4 or flow_video.shape[-1] < 3:
        raise MotionEncodeError(f"flow_video must be an IMAGE batch [frames, height, width, 3]; got shape "
                                f"{tuple(flow_video.shape)}")
    check_flow_video(*flow_video.shape[:3])
    return vae.encode(flow_video, tiles) * (scaling_factor / vae.scaling_factor)
