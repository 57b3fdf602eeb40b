"""EasyAnimate V3's frame rule, its InP inputs and its text tokens (no ComfyUI import needed).

Frames: the V3 slice VAE turns every 8 video frames into 2 latent frames (the official pipeline
keeps `frames // 8 * 8` of them) or one image into 1. InP inputs, as the official
`get_image_to_video_latent` and `EasyAnimateInpaintPipeline` build them: a video holding the start
image in every frame (and the end image in the last), a mask that is 1 where frames are to be
generated, then two latents from the VAE: the mask itself encoded as a picture (mask value m as the
VAE input m in [-1, 1]) and the video with the masked frames black. Without images (text-to-video
with the InP model) the mask is 1 everywhere and the video all black.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cogvideox.text import T5_END, TEXT_KEY, fixed_length_t5_tokens

FRAMES_PER_SLICE, LATENTS_PER_SLICE = 8, 2
MAX_TEXT_TOKENS = 120
"""The V3 pipelines' `max_sequence_length`."""


def latent_frames(frames: int) -> int:
    """Latent frames for a clip of `frames` video frames (1 -> 1, else frames // 8 * 2)."""
    if frames == 1:
        return 1
    if frames < FRAMES_PER_SLICE:
        raise ValueError(f"frames is {frames}: EasyAnimate V3 makes 1 frame (an image) or a multiple of "
                         f"{FRAMES_PER_SLICE} frames (8 frames per 2 latent frames); set frames to 1 or 8, 16, ... 144")
    return frames // FRAMES_PER_SLICE * LATENTS_PER_SLICE


def video_frames(latent_frame_count: int) -> int:
    """Video frames the slice VAE decodes from a V3 latent."""
    return 1 if latent_frame_count == 1 else latent_frame_count // LATENTS_PER_SLICE * FRAMES_PER_SLICE


def _fit(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE frames [N, h, w, 3] resized to height x width (bilinear, antialiased)."""
    if images.shape[1:3] == (height, width):
        return images[..., :3]
    resized = F.interpolate(images[..., :3].movedim(-1, 1).float(), size=(height, width), mode="bilinear",
                            antialias=True, align_corners=False)
    return resized.movedim(1, -1).clamp(0, 1)


def inpaint_pixels(frames: int, height: int, width: int, start_images: torch.Tensor | None = None,
                   end_images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask picture, masked video) as IMAGE frames [frames, height, width, 3] in 0..1 for the VAE.

    start_images: the first frames to keep (all given frames); end_images: the last frames to keep."""
    video = torch.zeros(frames, height, width, 3)
    keep = torch.zeros(frames, dtype=torch.bool)
    if start_images is not None:
        start = _fit(start_images, height, width)[:frames]
        video[:] = start[:1]
        video[:len(start)] = start
        keep[:len(start)] = True
        if end_images is not None:
            end = _fit(end_images, height, width)[-frames:]
            video[frames - len(end):] = end
            keep[frames - len(end):] = True
    elif end_images is not None:
        raise ValueError("end_image is connected without start_image: the official InP pipeline uses an end image "
                         "only together with a start image; connect start_image too")
    mask_value = (~keep).float()  # 1: generate, 0: keep
    mask_picture = ((mask_value + 1) / 2)[:, None, None, None].expand(frames, height, width, 3).clone()
    masked_video = video * keep[:, None, None, None]
    return mask_picture, masked_video


def v3_text_tokens(tokens: dict, max_tokens: int = MAX_TEXT_TOKENS) -> dict:
    """ComfyUI T5 tokens as the V3 pipeline attends to them: the prompt cut so that the end token fits
    into `max_tokens`, then the end token; the pipeline's padding is masked out there, so none is kept."""
    fixed = fixed_length_t5_tokens(tokens, max_tokens)[TEXT_KEY][0]
    end = next(i for i, item in enumerate(fixed) if item[0] == T5_END)
    return {**tokens, TEXT_KEY: [fixed[:end + 1]]}


def official_caption(text: str) -> str:
    """The pipelines' `_text_preprocessing` without bs4/ftfy installed: lower case, stripped."""
    return text.lower().strip()


def empty_latent(batch: int, width: int, height: int, frames: int, device=None) -> torch.Tensor:
    """Zeros [batch, 4, latent frames, height / 8, width / 8] for a V3 clip."""
    if width % 16 or height % 16:
        raise ValueError(f"width and height must be multiples of 16 (2x2 patches of the 8x VAE); got {width}x{height}")
    return torch.zeros((batch, 4, latent_frames(frames), height // 8, width // 8), device=device)


def inpaint_latents(video_vae, latent: torch.Tensor, start_images: torch.Tensor | None = None,
                    end_images: torch.Tensor | None = None) -> torch.Tensor:
    """[1, 8, T, h, w]: the mask picture's and the masked video's latents for a V3 `latent` [B, 4, T, h, w],
    encoded by `video_vae` (the pack's VideoVAE, as Video VAE Encode runs it)."""
    if latent.ndim != 5 or latent.shape[2] == 0:
        raise ValueError(f"the latent has shape {list(latent.shape)}; connect an EasyAnimate V3 Empty Latent "
                         f"with at least 1 frame")
    if video_vae.latent_channels != latent.shape[1]:
        raise ValueError(f"video_vae '{video_vae.name}' ({video_vae.version}) makes {video_vae.latent_channels}-channel "
                         f"latents, but the latent has {latent.shape[1]}: load the EasyAnimate V3 slice VAE")
    mask, masked = inpaint_pixels(video_frames(latent.shape[2]), latent.shape[3] * 8, latent.shape[4] * 8,
                                  start_images, end_images)
    return torch.cat([video_vae.encode(mask), video_vae.encode(masked)], dim=1)
