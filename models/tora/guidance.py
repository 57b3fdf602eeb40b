"""Tora's motion guidance on a CogVideoX DiT: the per-block hook and the per-generation state.

`ToraGuidance` is attached to a cloned ModelPatcher (nodes/tora.py):
- as the CogVideoX hook `VIDEO_NORM_PATCH` (models/cogvideox/transformer.py): after block i's first
  adaptive norm the video tokens go through fuser i with the extractor's level-i features;
- as an OUTER_SAMPLE wrapper keyed "MotionKit": it checks the motion latents fit the sampled latent
  and opens a per-generation state in transformer_options, so the extractor runs once per generation
  (on the first model call, on the model's device) and nothing stays on any module afterwards.
CFG: ComfyUI batches cond and uncond; as in the official pipeline both get the same motion features.
"""
from __future__ import annotations

import uuid

import torch

from .. import host
from .fuser import ToraModel
from ..errors import MotionKitError

STATE_PREFIX = "motionkit_tora_"


class ToraMotionLatentsError(MotionKitError):
    pass


class _GenerationState:
    """Lives in transformer_options for one sampling call (an object, so ComfyUI's dict merges share it)."""

    def __init__(self):
        self.features: list[torch.Tensor] | None = None
        self.extractor_runs = 0


class ToraGuidance:
    """Motion latents [B, 16, T, h, w] steering a CogVideoX model through `tora`'s fusers.

    strength scales the fusers' added term (0: the model is unchanged, bit for bit);
    the guidance acts while sigma_end <= sigma <= sigma_start.
    """

    def __init__(self, tora: ToraModel, motion_latents: torch.Tensor, strength: float = 1.0,
                 sigma_start: float = float("inf"), sigma_end: float = 0.0):
        if motion_latents.ndim != 5:
            raise ToraMotionLatentsError(f"motion_latents must be 5D [batch, channels, frames, height, width] from "
                                         f"Motion VAE Encode (MotionKit); got shape {tuple(motion_latents.shape)}")
        self.tora, self.motion, self.strength = tora, motion_latents, float(strength)
        self.sigma_start, self.sigma_end = sigma_start, sigma_end
        self.key = STATE_PREFIX + uuid.uuid4().hex

    # ---------------------------------------------------------------- checks
    def check_fits(self, latent_shape) -> None:
        """Motion latents must have the sampled latent's frames and size (and divide its batch)."""
        b, c, t, h, w = self.motion.shape
        shape = tuple(latent_shape)
        if len(shape) == 5 and shape[2:] == (t, h, w) and c == self.tora.traj_extractor.in_channels and shape[0] % b == 0:
            return
        problems = []
        if len(shape) != 5:
            problems.append("the sampled latent is not 5D: sample a CogVideoX video latent [B,C,T,H,W]")
        else:
            if shape[2:] != (t, h, w):
                problems.append(f"frames and size: {t} latent frames of {w * 8}x{h * 8} pixels against {shape[2]} of "
                                f"{shape[-1] * 8}x{shape[-2] * 8}; encode the trajectory flow with the frame count "
                                f"and size of the video you sample ({(shape[2] - 1) * 4 + 1} frames)")
            if shape[0] % b:
                problems.append(f"batch: {b} motion latents for a batch of {shape[0]}; use one motion latent for "
                                f"every video, or as many as the sampled batch")
        if c != self.tora.traj_extractor.in_channels:
            problems.append(f"channels: {c} where Tora's extractor takes {self.tora.traj_extractor.in_channels}; "
                            f"encode the flow with the CogVideoX VAE (Motion VAE Encode)")
        raise ToraMotionLatentsError(f"the motion latents (shape {(b, c, t, h, w)}) do not fit the sampled latent "
                                     f"(shape {shape}): " + "; ".join(problems))

    def active(self, transformer_options: dict) -> bool:
        if self.strength == 0.0:
            return False
        sigmas = transformer_options.get("sigmas")
        if sigmas is None:
            return True
        sigma = float(sigmas.max())
        return self.sigma_end <= sigma <= self.sigma_start

    # ---------------------------------------------------------------- the extractor, once per generation
    def feature(self, transformer_options: dict, index: int, device, dtype) -> torch.Tensor:
        """The extractor's level-`index` features on `device`. The extractor runs once per generation; its
        levels (one per block, 42 x 9 MiB at 49x480x720 in bf16) wait on the intermediate device."""
        state = transformer_options.get(self.key)
        if state is None:  # a direct model call outside a sampler: nothing to share
            state = _GenerationState()
        if state.features is None:
            weight = self.tora.traj_extractor.conv_in.weight
            motion = self.motion.to(device=device, dtype=weight.dtype if weight.device.type != "meta" else dtype)
            parking = host.intermediate_device()
            with torch.no_grad():
                state.features = [f.to(parking, dtype) for f in self.tora.traj_extractor(motion)]
            state.extractor_runs += 1
        return state.features[index].to(device)

    # ---------------------------------------------------------------- the block hook
    FRAMES_PER_CHUNK = 4
    """Frames normalized and modulated at a time (the fuser's float32 GroupNorm is per frame)."""

    def __call__(self, h: torch.Tensor, info: dict) -> torch.Tensor:
        """Block `info["block_index"]`'s fuser on the video tokens h [B, T*H*W, C]: one video of the batch
        at a time (gamma and beta need all its frames), then FRAMES_PER_CHUNK frames at a time, written
        into one output; equal to the fuser's plain forward on the whole batch."""
        options = info["transformer_options"]
        if not self.active(options):
            return h
        index = info["block_index"]
        frames, height, width = info["grid"]
        feature = self.feature(options, index, h.device, h.dtype)
        b, _n, c = h.shape
        motion_batch = feature.shape[0] // frames
        if feature.shape[0] % frames or feature.shape[2:] != (height, width) or b % motion_batch:
            self.check_fits((b, 16, frames, height * 2, width * 2))
        fuser = self.tora.fuser[index]
        pixels = height * width
        out = torch.empty_like(h)
        for video in range(b):
            motion = video % motion_batch  # CFG: cond and uncond share the motion
            gamma, beta = fuser.modulation(feature[motion * frames:(motion + 1) * frames].to(h.dtype), frames)
            for start in range(0, frames, self.FRAMES_PER_CHUNK):
                end = min(start + self.FRAMES_PER_CHUNK, frames)
                tokens = h[video, start * pixels:end * pixels].reshape(end - start, height, width, c).permute(0, 3, 1, 2)
                fused = fuser.fuse(tokens, gamma[start:end], beta[start:end], self.strength)
                out[video, start * pixels:end * pixels] = fused.permute(0, 2, 3, 1).reshape(-1, c)
            del gamma, beta
        return out

    # ---------------------------------------------------------------- OUTER_SAMPLE wrapper
    def outer_sample_wrapper(self, executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        self.check_fits(noise.shape)
        options = executor.class_obj.model_options.setdefault("transformer_options", {})
        options[self.key] = _GenerationState()
        try:
            return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
        finally:
            options.pop(self.key, None)
