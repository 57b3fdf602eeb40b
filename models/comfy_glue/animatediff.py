"""Putting a motion module into ComfyUI's own SD1.5/SDXL UNet, through a ModelPatcher clone.

Nothing global is replaced. The clone gets, under the key "MotionKit":
- the motion module's ModelPatcher as an additional model (model management loads,
  offloads and applies its MotionLoRA object patches with the UNet);
- a PatcherInjection that puts the temporal transformers into the UNet's
  TimestepEmbedSequential blocks while it is loaded and takes them out when it is not;
- a `forward_timestep_embed_patch` that runs them with the number of frames;
- a DIFFUSION_MODEL wrapper that works out the frames of each call (the batch holds
  len(cond_or_uncond) videos one after another) and refuses too many;
- for versions trained with frame-joint GroupNorm (v1), object patches that swap the
  ResBlocks' and the output GroupNorms for `FramesGroupNorm` on this clone only.
Imported only inside ComfyUI: it imports ComfyUI's UNet, patcher and context-window modules.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

import comfy.context_windows
import comfy.ldm.modules.diffusionmodules.openaimodel as openaimodel
import comfy.patcher_extension
import comfy.utils
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from ..animatediff.keys import ACROSS_FRAMES, GROUPNORM_MODES
from ..animatediff.loader import LoadedMotionModule
from ..animatediff.motion_lora import MotionLoRA, low_rank_patches
from ..animatediff.motion_module import VanillaTemporalModule
from ..animatediff.schedule import SCHEDULES, animatediff_betas
from ..errors import MotionKitError

KEY = "MotionKit"
_FRAMES: contextvars.ContextVar[int | None] = contextvars.ContextVar("motionkit_frames", default=None)
"""Frames per video of the UNet call in progress (set by the wrapper for the call's duration only)."""
FRAMES_PER_VIDEO = "motionkit_frames_per_video"
"""transformer_options key: frames per video when a UNet batch holds several videos of one conditioning (training)."""


def current_frames() -> int | None:
    """Frames per video of the UNet call in progress, None outside one."""
    return _FRAMES.get()


@contextlib.contextmanager
def frames_scope(frames: int | None):
    """Run a block (a UNet call, or a layer recomputed for its gradient) with `frames` frames per video."""
    token = _FRAMES.set(frames)
    try:
        yield
    finally:
        _FRAMES.reset(token)


class MotionModuleError(MotionKitError):
    pass


class FramesGroupNorm(nn.Module):
    """GroupNorm whose statistics span all frames of a video, as torch's GroupNorm on
    AnimateDiff v1's 5-D [b, c, f, h, w] tensors. Shares the original's Parameters."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.num_groups, self.num_channels, self.eps = norm.num_groups, norm.num_channels, norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = _FRAMES.get()
        if frames is None:
            raise MotionModuleError("MotionKit's frame-joint GroupNorm ran outside a sampling call of its model "
                                    "(the number of frames is unknown); sample with a KSampler")
        weight = None if self.weight is None else self.weight.to(x)
        bias = None if self.bias is None else self.bias.to(x)
        bf, c = x.shape[:2]
        video = x.view(bf // frames, frames, c, *x.shape[2:]).transpose(1, 2)
        out = F.group_norm(video, self.num_groups, weight, bias, self.eps)
        return out.transpose(1, 2).reshape(x.shape)


def video_frames(x: torch.Tensor, transformer_options: dict, info) -> int:
    """Frames per video in a UNet batch: the batch is len(cond_or_uncond) videos back to back
    (or videos of `transformer_options[FRAMES_PER_VIDEO]` frames, when set)."""
    if x.ndim != 4:
        raise MotionModuleError(
            f"the latent is {x.ndim}D {list(x.shape)}, but an SD1.5/SDXL model with a motion module takes a video "
            f"as an image latent [frames, channels, height, width]: the frames are the latent batch. Make the "
            f"latent with Empty Latent Image (batch_size = frames), not a video latent node [B,C,T,H,W]")
    frames = transformer_options.get(FRAMES_PER_VIDEO)
    if frames is None:
        videos = len(transformer_options.get("cond_or_uncond") or [0])
        if x.shape[0] % videos:
            raise MotionModuleError(f"the UNet batch of {x.shape[0]} latents does not split into {videos} videos")
        frames = x.shape[0] // videos
    elif x.shape[0] % frames:
        raise MotionModuleError(f"the UNet batch of {x.shape[0]} latents does not split into videos of {frames} frames")
    if frames > info.config.max_frames:
        raise MotionModuleError(
            f"{frames} frames are more than the motion module {info.describe()} can see at once. "
            f"For long videos add ComfyUI's 'Context Windows (Manual)' node after Apply Motion Module "
            f"(context_length {info.config.max_frames} or less, dim 0) so the KSampler samples "
            f"overlapping windows, or make the latent batch (frames) at most {info.config.max_frames}")
    return frames


def _levels(unet) -> list[int]:
    return [int(n) for n in unet.num_res_blocks]


def check_fits(unet, info, node: str = "Apply Motion Module") -> None:
    """Raise a clear error when the motion module's levels and channels are not the UNet's."""
    if not isinstance(unet, openaimodel.UNetModel):
        raise MotionModuleError(f"{node} needs an SD1.5 or SDXL checkpoint (ComfyUI's UNetModel) as its model; "
                                f"this model is a {type(unet).__name__}")
    config = info.config
    unet_channels = tuple(unet.model_channels * m for m in unet.channel_mult)
    fits = (unet_channels == tuple(config.block_channels)
            and all(n == config.down_layers and n + 1 == config.up_layers for n in _levels(unet))
            and (not config.mid_block or unet.middle_block is not None))
    if not fits:
        family = {4: "SD1.5", 3: "SDXL"}.get(len(unet_channels), f"{len(unet_channels)}-level")
        raise MotionModuleError(
            f"the motion module {info.describe()} does not fit this {family} UNet: the module has levels with "
            f"channels {tuple(config.block_channels)}, the UNet {unet_channels}. Use an SD1.5 motion module "
            f"(v1, v2, v3, AnimateLCM) with an SD1.5 checkpoint and an SDXL one (mm_sdxl, HotshotXL) with an SDXL checkpoint")


def motion_slots(unet, model) -> list[tuple[nn.Sequential, VanillaTemporalModule, str]]:
    """(UNet block, motion module, where) in AnimateDiff's order: after each down ResBlock(+attention),
    between the middle block's attention and last ResBlock, after each up ResBlock(+attention) before its upsampler."""
    slots, index = [], 1
    levels = _levels(unet)
    for level, count in enumerate(levels):
        for j in range(count):
            slots.append((unet.input_blocks[index], model.down_blocks[level].motion_modules[j], "end"))
            index += 1
        index += 1 if level < len(levels) - 1 else 0
    if model.mid_block is not None:
        slots.append((unet.middle_block, model.mid_block.motion_modules[0], "before_last"))
    index = 0
    for level, count in enumerate(reversed(levels)):
        for j in range(count + 1):
            slots.append((unet.output_blocks[index], model.up_blocks[level].motion_modules[j], "before_upsample"))
            index += 1
    return slots


def _insert(block: nn.Sequential, module: nn.Module, where: str) -> None:
    layers = list(block)
    if where == "before_last" or (where == "before_upsample" and isinstance(layers[-1], openaimodel.Upsample)):
        layers.insert(len(layers) - 1, module)
    else:
        layers.append(module)
    _set_layers(block, layers)


def _set_layers(block: nn.Sequential, layers: list[nn.Module]) -> None:
    for key in list(block._modules):
        del block._modules[key]
    for i, layer in enumerate(layers):
        block.add_module(str(i), layer)


def _groupnorm_paths(unet) -> list[str]:
    paths = []
    for name, module in unet.named_modules():
        if isinstance(module, openaimodel.ResBlock):
            paths += [f"{name}.in_layers.0", f"{name}.out_layers.0"]
    return paths + ["out.0"]


def apply_motion_module(model, motion: LoadedMotionModule, loras: list[MotionLoRA] | None = None,
                        scale: float = 1.0, groupnorm: str = "auto", gradient_checkpointing: bool = False,
                        node: str = "Apply Motion Module"):
    """Return a clone of `model` (an SD1.5/SDXL ModelPatcher) that samples videos with `motion`.
    `gradient_checkpointing` (training): each temporal transformer keeps only its input for the backward pass."""
    if groupnorm not in GROUPNORM_MODES:
        raise MotionModuleError(f"groupnorm must be one of {GROUPNORM_MODES}, not '{groupnorm}'")
    if model.get_injections(KEY):
        raise MotionModuleError("this model already has a MotionKit motion module; apply one motion module per model")
    info = motion.info
    unet = model.get_model_object("diffusion_model")
    check_fits(unet, info, node)
    ext = comfy.patcher_extension

    motion_patcher = motion.patcher.clone()
    for path, layer in low_rank_patches(motion_patcher.model, loras or []).items():
        motion_patcher.add_object_patch(path, layer)

    patched = model.clone()
    patched.set_additional_models(KEY, [motion_patcher])
    slots = motion_slots(unet, motion_patcher.model)

    def inject(patcher):
        for block, module, where in slots:
            _insert(block, module, where)

    def eject(patcher):
        for block, module, _ in slots:
            _set_layers(block, [layer for layer in block if layer is not module])

    patched.set_injections(KEY, [ext.PatcherInjection(inject=inject, eject=eject)])

    def run_motion_module(layer, x, emb, context, transformer_options, *args, **kwargs):
        frames = _FRAMES.get() or video_frames(x, transformer_options, info)
        if gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(layer, x, frames, scale, use_reentrant=False)
        return layer(x, frames, scale)

    patched.set_model_forward_timestep_embed_patch((VanillaTemporalModule, run_motion_module))

    def frames_of_call(executor, x, *args, **kwargs):
        transformer_options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
        with frames_scope(video_frames(x, transformer_options, info)):
            return executor(x, *args, **kwargs)

    patched.add_wrapper_with_key(ext.WrappersMP.DIFFUSION_MODEL, KEY, frames_of_call)
    patched.add_wrapper_with_key(ext.WrappersMP.OUTER_SAMPLE, KEY, frame_windows_for_this_run)
    mode = info.unet_groupnorm if groupnorm == "auto" else groupnorm
    if mode == ACROSS_FRAMES:
        for path in _groupnorm_paths(unet):
            norm = comfy.utils.get_attr(unet, path)
            patched.add_object_patch(f"diffusion_model.{path}", FramesGroupNorm(norm))
    return patched


@functools.cache
def _frame_window_handler_class():
    base = comfy.context_windows.IndexListContextHandler

    class FrameWindowHandler(base):
        """ComfyUI's IndexListContextHandler for windows over the batch (frame) axis.

        ComfyUI 0.3.64's `set_step` compares the sampler's sigmas with the whole timestep
        batch, which has one entry per frame when dim is 0, and fails for any video whose
        frame count is not 1 or steps + 1. All frames share the step's sigma, so the first
        entry is compared. Everything else (schedules, overlap, fusing) is ComfyUI's.
        """

        def set_step(self, timestep, model_options):
            super().set_step(timestep[:1], model_options)

    return FrameWindowHandler


def frame_windows_for_this_run(executor, *args, **kwargs):
    """OUTER_SAMPLE wrapper: in this sampling run's own copy of model_options, use the frame-axis
    handler in place of an IndexListContextHandler over dim 0 (set by 'Context Windows (Manual)')."""
    guider = executor.class_obj
    handler = guider.model_options.get("context_handler")
    cls = _frame_window_handler_class()
    if type(handler) is comfy.context_windows.IndexListContextHandler and handler.dim == 0:
        fixed = cls(context_schedule=handler.context_schedule, fuse_method=handler.fuse_method,
                    context_length=handler.context_length, context_overlap=handler.context_overlap,
                    context_stride=handler.context_stride, closed_loop=handler.closed_loop, dim=0)
        fixed.callbacks = handler.callbacks
        guider.model_options["context_handler"] = fixed  # a per-run clone made by CFGGuider.sample
    return executor(*args, **kwargs)


def animatediff_beta_schedule(model, schedule: str):
    """Clone `model` with the beta schedule AnimateDiff was trained with (linear 0.00085 to 0.012)."""
    patched = model.clone()
    current = model.get_model_object("model_sampling")
    sampling = type(current)(model.model.model_config)
    if schedule == SCHEDULES[0]:
        sampling._register_schedule(given_betas=animatediff_betas())
    patched.add_object_patch("model_sampling", sampling)
    return patched
