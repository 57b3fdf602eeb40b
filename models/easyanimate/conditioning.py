"""EasyAnimate V5.1's extra input channels (InP and Control), as the diffusers pipelines build them.

- InP (EasyAnimateInpaintPipeline, V5.1 config `resize_inpaint_mask_directly`): beside the noise, a
  one-channel mask of the frames to keep (resized from pixels, the first frame on its own) times the
  VAE's scaling factor, then the latents of the video with the frames to generate blacked out (-1).
- Control (EasyAnimateControlPipeline, `add_ref_latent_in_control_model`): the control video's latents,
  then a reference image's latent in the first latent frame (zeros elsewhere, or all zeros without one).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import MotionKitError

class EasyAnimateInputError(MotionKitError):
    """A node input EasyAnimate V5.1 cannot use; the message names it and the fix."""


LATENT_CHANNELS = 16
TEMPORAL_RATIO = 4
SPATIAL_RATIO = 8


def latent_frames(frames: int) -> int:
    """Latent frames of a 4k+1-frame video; a clear error for other counts."""
    if frames < 1 or (frames - 1) % TEMPORAL_RATIO:
        lower = max(1, (frames - 1) // TEMPORAL_RATIO * TEMPORAL_RATIO + 1)
        raise EasyAnimateInputError(f"length is {frames} frames; EasyAnimate V5.1 makes 4k+1 frames (1, 5, 9, ..., 49): "
                         f"use {lower} or {lower + TEMPORAL_RATIO}")
    return (frames - 1) // TEMPORAL_RATIO + 1


def check_size(width: int, height: int) -> None:
    step = SPATIAL_RATIO * 2
    if width < step or height < step or width % step or height % step:
        raise EasyAnimateInputError(f"width x height is {width}x{height}; EasyAnimate V5.1 needs multiples of {step} pixels "
                         f"(latent pixels in 2x2 patches): use {max(step, width // step * step)}x"
                         f"{max(step, height // step * step)}")


def inpaint_video(start: torch.Tensor, end: torch.Tensor | None, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(video [F,H,W,3] in 0..1 with the frames to generate black, mask [1,1,F,H,W]: 1 = generate).

    The official get_image_to_video_latent layout: the start image is frame 0, an end image the last frame.
    `start`/`end` are single frames [H,W,3] already at the video's size.
    """
    height, width = start.shape[:2]
    video = torch.zeros(frames, height, width, 3, dtype=torch.float32)
    mask = torch.ones(1, 1, frames, height, width, dtype=torch.float32)
    video[0], mask[:, :, 0] = start.float(), 0
    if end is not None and frames > 1:
        video[-1], mask[:, :, -1] = end.float(), 0
    return video, mask


def mask_latent(mask: torch.Tensor, latent_shape: tuple[int, ...], scaling_factor: float) -> torch.Tensor:
    """The mask channel: (1 - mask) resized to the latent grid, frame 0 on its own (the causal VAE encodes it
    alone), trilinear without corner alignment, times the VAE's scaling factor. mask [B,1,F,H,W], 1 = generate."""
    keep = 1 - mask.float()
    t, h, w = latent_shape[-3:]
    first = F.interpolate(keep[:, :, :1], size=(1, h, w), mode="trilinear", align_corners=False)
    if t > 1:
        rest = F.interpolate(keep[:, :, 1:], size=(t - 1, h, w), mode="trilinear", align_corners=False)
        first = torch.cat([first, rest], dim=2)
    return first * scaling_factor


def reference_channels(reference: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The reference image's latent in the first latent frame of a zero block shaped like `like` [B,16,T,h,w]."""
    block = torch.zeros_like(like)
    if reference is not None and like.shape[2] != 1:
        block[:, :, :1] = reference[:, :, :1].to(block)
    return block
