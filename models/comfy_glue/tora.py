"""Attach Tora to a CogVideoX ModelPatcher clone (inside ComfyUI)."""
from __future__ import annotations


import comfy.patcher_extension
import torch

from ..cogvideox.transformer import VIDEO_NORM_PATCH
from ..errors import MotionKitError
from ..tora.guidance import ToraGuidance
from . import cogvideox as comfy_cogvideox

PACK_KEY = "MotionKit"


class ToraModelError(MotionKitError):
    pass


def apply_tora(model, tora_patcher, motion_latents: torch.Tensor, strength: float,
               start_percent: float = 0.0, end_percent: float = 1.0):
    """A clone of `model` steered by Tora: block hook + OUTER_SAMPLE wrapper + Tora weights as an additional model."""
    if not comfy_cogvideox.is_cogvideox(model):
        inner = getattr(model, "model", model)
        kind = type(getattr(inner, "model_config", inner)).__name__
        raise ToraModelError(f"Apply Tora (MotionKit) needs a CogVideoX MODEL (from Load CogVideoX (MotionKit)); the "
                             f"model input is a {kind} model. Tora's fusers only fit CogVideoX-5B's blocks")
    dit = model.model.diffusion_model
    tora = tora_patcher.model
    blocks = len(dit.transformer_blocks)
    if (tora.dim, tora.blocks) != (dit.dim, blocks):
        raise ToraModelError(f"the Tora weights have {tora.blocks} fusers of width {tora.dim}, but the CogVideoX model "
                             f"has {blocks} blocks of width {dit.dim}: Tora was trained for CogVideoX-5B "
                             f"(42 blocks of width 3072); load that transformer")
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise ValueError(f"start_percent ({start_percent}) and end_percent ({end_percent}) must satisfy "
                         f"0 <= start_percent <= end_percent <= 1")
    sampling = model.get_model_object("model_sampling")
    guidance = ToraGuidance(tora, motion_latents, strength,
                            sigma_start=float(sampling.percent_to_sigma(start_percent)),
                            sigma_end=float(sampling.percent_to_sigma(end_percent)))
    patched = model.clone()
    if strength == 0.0:
        return patched
    patched.set_model_patch(guidance, VIDEO_NORM_PATCH)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, PACK_KEY,
                                 guidance.outer_sample_wrapper)
    patched.set_additional_models(PACK_KEY, [tora_patcher])
    return patched
