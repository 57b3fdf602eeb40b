"""Training AnimateDiff LoRAs inside ComfyUI: the MotionLoRA and the v3-style domain adapter.

The model is a clone of the user's MODEL (a ModelPatcher); nothing global changes:
- MotionLoRA: the motion module goes in as Apply Motion Module puts it (comfy_glue.animatediff.apply_motion_module)
  with the trainable LoRA pairs as a MotionLoRA, so training runs the exact layers sampling runs
  (`LowRankLinear` on the temporal attention's q, k, v and out); AnimateDiff's linear beta schedule
  (0.00085 to 0.012) is set as its model_sampling.
- domain adapter: `LowRankLinear` object patches on the UNet's spatial attention projections (attn1 and
  attn2 q, k, v, out of every transformer block), trained on single frames with the model's own (SD
  scaled linear) schedule, as AnimateDiff's image_finetune.yaml.
- gradient checkpointing: object patches on the `forward` of every layer of the UNet's blocks (and the
  motion modules' own flag): each keeps its input and recomputes the rest for the backward pass.
- training dtype: `set_model_compute_dtype`, as core's TrainLoraNode; the LoRA stays float32.

The loop runs inside CFGGuider.sample through a Sampler subclass (as core's TrainSampler does), so
ComfyUI prepares the conditioning (SDXL's size embeddings included), loads the models with its model
management and calls the model through every wrapper, as when sampling. The noise prediction is read
back from ComfyUI's denoised output: eps = (x - denoised) / sigma for an eps-prediction model.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from dataclasses import dataclass

import comfy.ldm.modules.diffusionmodules.openaimodel as openaimodel
import comfy.model_base
import comfy.ops
import comfy.samplers
import comfy.sd
import comfy.utils
import torch
import torch.utils.checkpoint

from .. import host
from ..animatediff import clips as clip_data
from ..animatediff import keys
from ..animatediff.schedule import SCHEDULES
from ..errors import MotionKitError
from . import animatediff as injection
from ..animatediff.loader import LoadedMotionModule
from ..animatediff.motion_lora import LowRankLinear, MotionLoRA
from ..animatediff.training import (LatentClip, LoRATrainer, TrainingSettings, TrainingSettingsError, image_tensor,
                                    loss_plot, motion_lora_shapes, new_lora_pairs)

log = logging.getLogger("MotionKit")
MOTION_LORA, DOMAIN_ADAPTER = "MotionLoRA", "domain adapter"
SPATIAL_ATTENTION = re.compile(r"\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
"""The projections the domain adapter adapts: q, k, v, out of the UNet's self- and cross-attention."""
LORA_SUFFIXES = (".safetensors", ".ckpt")
STATE_FOLDER = "motionkit_training"


class TrainingError(MotionKitError):
    """Bad input to a training node; the message names the input and the fix."""


@dataclass(frozen=True)
class TrainingJob:
    """What a training node asks for besides the optimiser settings.

    resolution: frames are resized and centre-cropped to resolution x resolution (0: as the clips are).
    dtype: the dtype the frozen model computes in (None: the model's own); the LoRA stays float32.
    lora_name: file name in animatediff_motion_lora (MotionLoRA) or loras (domain adapter); '' saves nothing.
    resume: continue from the training state saved under lora_name (its LoRA, optimiser, step).
    save_every: also save the file and the training state every this many steps (0: only at the end).
    """
    settings: TrainingSettings
    resolution: int = 512
    dtype: torch.dtype | None = None
    gradient_checkpointing: bool = True
    lora_name: str = ""
    resume: bool = False
    save_every: int = 0


# ---------------------------------------------------------------- files
def lora_file_name(lora_name: str) -> str:
    """The file name for `lora_name` ('.safetensors' added unless it ends in .safetensors or .ckpt)."""
    name = lora_name.strip()
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise TrainingError(f"lora_name '{lora_name}' must be a file name inside the model folder, not a path out of it")
    return name if name.lower().endswith(LORA_SUFFIXES) else name + ".safetensors"


def state_path(lora_path: str, kind: str) -> str:
    """Where the training state of the LoRA file at `lora_path` lives (ComfyUI's output folder, motionkit_training/)."""
    stem = os.path.splitext(os.path.basename(lora_path))[0]
    slug = kind.lower().replace(" ", "_")
    return os.path.join(host.output_directory(), STATE_FOLDER, f"{stem}.{slug}.state.safetensors")


def _check_output(lora_path: str | None, kind: str, resume: bool) -> None:
    if lora_path is None:
        if resume:
            raise TrainingError("resume needs a lora_name: the training state is kept under the LoRA's name")
        return
    if resume:
        if not os.path.isfile(state_path(lora_path, kind)):
            raise TrainingError(f"there is no training state to resume for '{os.path.basename(lora_path)}' "
                                f"(looked for {state_path(lora_path, kind)}): train it once with resume off")
    elif os.path.exists(lora_path):
        raise TrainingError(f"'{os.path.basename(lora_path)}' already exists in {os.path.dirname(lora_path)}: choose another "
                            f"lora_name, delete the old file, or turn resume on to continue training it")


def save_lora_file(path: str, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> int:
    """Write a LoRA state dict (safetensors, or a weights-only torch pickle for .ckpt); return its size in bytes."""
    import safetensors.torch

    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    partial = path + ".partial"
    if path.lower().endswith(".ckpt"):
        torch.save(state, partial)
    else:
        safetensors.torch.save_file(state, partial, metadata=metadata)
    os.replace(partial, path)
    return os.path.getsize(path)


def _save_state(trainer: LoRATrainer, path: str, kind: str) -> None:
    import safetensors.torch

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tensors, metadata = trainer.state(kind)
    safetensors.torch.save_file(tensors, path + ".partial", metadata=metadata)
    os.replace(path + ".partial", path)


def _resume(trainer: LoRATrainer, path: str, kind: str) -> None:
    import safetensors

    with safetensors.safe_open(path, framework="pt") as file:
        tensors = {k: file.get_tensor(k) for k in file.keys()}
        metadata = file.metadata()
    trainer.load_state(tensors, metadata, kind, os.path.basename(path))
    log.info("MotionKit: resuming %s training from %s at step %d of %d", kind, path, trainer.step, trainer.settings.steps)


def domain_adapter_state(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], unet_config: dict) -> dict[str, torch.Tensor]:
    """Domain adapter pairs ({'diffusion_model.<ldm path>': (down, up)}) in the kohya layout core LoraLoader
    reads: `lora_unet_<name>.lora_down/lora_up.weight` and `.alpha` = rank (scale 1). Names follow kohya's
    per family: diffusers module names for SD1.5, the LDM names for SDXL."""
    sd15 = len(unet_config["channel_mult"]) == 4
    to_diffusers = {v[: -len(".weight")]: k[: -len(".weight")]
                    for k, v in comfy.utils.unet_to_diffusers(unet_config).items() if k.endswith(".weight")}
    state = {}
    for path, (down, up) in pairs.items():
        ldm = path[len("diffusion_model."):]
        name = "lora_unet_" + (to_diffusers[ldm] if sd15 else ldm).replace(".", "_")
        state[f"{name}.lora_down.weight"] = down
        state[f"{name}.lora_up.weight"] = up
        state[f"{name}.alpha"] = torch.tensor(float(down.shape[0]))
    return state


# ---------------------------------------------------------------- inputs
def encode_clips(vae, clips: list[clip_data.TrainingClip], resolution: int, conds: list[int]) -> list[LatentClip]:
    """VAE latents of every clip (resized and centre-cropped to resolution x resolution unless 0)."""
    encoded = []
    for clip, cond in zip(clips, conds):
        frames = clip.frames if resolution == 0 else clip_data.resize_center_crop(clip.frames, resolution, resolution)
        if frames.shape[1] % 8 or frames.shape[2] % 8:
            raise TrainingError(f"clip {clip.describe()} is not a multiple of 8 pixels in size: set resolution "
                                f"(e.g. {max(8, frames.shape[1] // 8 * 8)}) so the clips are cropped to a size the VAE encodes")
        host.check_interrupt()
        encoded.append(LatentClip(name=clip.name, latents=vae.encode(clip_data.uint8_to_image(frames)).float(), cond=cond))
    sizes = {tuple(c.latents.shape[1:]) for c in encoded}
    if len(sizes) > 1:
        raise TrainingError("the clips have different sizes (" + ", ".join(c.describe() for c in clips)
                            + "): set resolution so every clip is cropped to one size")
    return encoded


def clip_conditioning(positive: list, clips: list[clip_data.TrainingClip], clip=None) -> tuple[list, list[int]]:
    """(CONDITIONING entries, entry index per clip): one prompt for all, one per clip (in clip order), or,
    with a CLIP model, each clip's caption file (clips without one use the first positive entry)."""
    if not positive:
        raise TrainingError("positive holds no conditioning: connect a CLIP Text Encode")
    entries = list(positive)
    if len(entries) == 1:
        indices = [0] * len(clips)
    elif len(entries) == len(clips):
        indices = list(range(len(clips)))
    else:
        raise TrainingError(f"positive has {len(entries)} conditionings for {len(clips)} clips: give one for all clips or one "
                            f"per clip, in the clips' order ({', '.join(c.name for c in clips[:5])}...)")
    if clip is not None:
        for i, training_clip in enumerate(clips):
            if training_clip.caption:
                entries.append(clip.encode_from_tokens_scheduled(clip.tokenize(training_clip.caption))[0])
                indices[i] = len(entries) - 1
    return entries, indices


def _check_model(model, node: str) -> None:
    unet = model.get_model_object("diffusion_model")
    if not isinstance(unet, openaimodel.UNetModel):
        raise TrainingError(f"{node} needs an SD1.5 or SDXL checkpoint (ComfyUI's UNetModel) as its model; "
                            f"this model is a {type(unet).__name__}")
    if model.model.model_type != comfy.model_base.ModelType.EPS:
        raise TrainingError(f"{node} trains noise-prediction (eps) models as AnimateDiff does; this model predicts "
                            f"{model.model.model_type.name}")


# ---------------------------------------------------------------- the loop inside ComfyUI's sampling
@functools.cache
def _training_sampler_class():
    class LoRATrainingSampler(comfy.samplers.Sampler):
        """A Sampler whose `sample` is a training loop: CFGGuider.sample calls it once, with the conditioning
        prepared and the models loaded; each step calls the guider like a sampler calls its denoiser."""

        def __init__(self, loop):
            self.loop = loop

        def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                   disable_pbar=False):
            conds = model_wrap.conds["positive"]
            sampling = model_wrap.inner_model.model_sampling

            def predict_noise(latents, noise_, timesteps, cond):
                sigma = sampling.sigma(timesteps.float()).to(latents)
                x = sampling.noise_scaling(sigma, noise_, latents)
                model_wrap.conds["positive"] = [conds[cond]]
                denoised = model_wrap(x, sigma, **extra_args)
                return (x - denoised) / sigma.view(-1, *[1] * (x.ndim - 1))

            try:
                self.loop(predict_noise)
            finally:
                model_wrap.conds["positive"] = conds
            return torch.zeros_like(noise)

    return LoRATrainingSampler


def autograd_ready(modules) -> None:
    """Let autograd keep the frozen weights for the backward pass.

    ComfyUI runs nodes under torch.inference_mode, so weights read there are inference tensors, which
    autograd refuses to save. Each such Parameter is re-made as a normal tensor over the same storage:
    no copy, the same values and memory, usable for sampling as before.
    """
    for module in modules:
        for sub in module.modules():
            for name, param in list(sub._parameters.items()):
                if param is not None and param.is_inference():
                    alias = torch.empty(0, dtype=param.dtype, device=param.device)
                    alias.set_(param.untyped_storage(), param.storage_offset(), param.size(), param.stride())
                    sub._parameters[name] = torch.nn.Parameter(alias, requires_grad=False)


def _checkpointed(forward):
    """`forward` that keeps only its inputs and recomputes itself for the backward pass (with the same frames
    per video and a snapshot of dict arguments such as transformer_options)."""
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        frames = injection.current_frames()
        args = tuple(dict(a) if isinstance(a, dict) else a for a in args)

        def recompute(*a, **k):
            with injection.frames_scope(frames):
                return forward(*a, **k)
        return torch.utils.checkpoint.checkpoint(recompute, *args, use_reentrant=False, **kwargs)
    return run


def gradient_checkpointing_patches(unet) -> dict:
    """{object patch key: checkpointed forward} for every layer of the UNet's input, middle and output blocks."""
    patches = {}
    blocks = [(f"input_blocks.{i}", b) for i, b in enumerate(unet.input_blocks)] + [("middle_block", unet.middle_block)]
    blocks += [(f"output_blocks.{i}", b) for i, b in enumerate(unet.output_blocks)]
    for prefix, block in blocks:
        for j, layer in enumerate(block):
            patches[f"diffusion_model.{prefix}.{j}.forward"] = _checkpointed(layer.forward)
    return patches


class _FrozenWeightConv2d(torch.autograd.Function):
    """conv2d with a frozen weight and bias. torch's convolution keeps its input for the weight's gradient; the
    input's gradient needs only the weight, so this keeps the weight alone (the UNet's convolutions hold a
    large share of a training step's activations)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(weight)
        ctx.conv = (x.shape, stride, padding, dilation, groups)
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        shape, stride, padding, dilation, groups = ctx.conv
        return torch.nn.grad.conv2d_input(shape, weight, grad, stride, padding, dilation, groups), None, None, None, None, None, None


def _frozen_conv_forward(conv):
    plain = conv.forward

    def forward(x):
        if not (torch.is_grad_enabled() and x.requires_grad):
            return plain(x)
        weight, bias = comfy.ops.cast_bias_weight(conv, x)
        return _FrozenWeightConv2d.apply(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return forward


def frozen_conv_patches(unet) -> dict:
    """{object patch key: forward} running every frozen 2-D convolution of the UNet through _FrozenWeightConv2d."""
    return {f"diffusion_model.{name}.forward": _frozen_conv_forward(m) for name, m in unet.named_modules()
            if isinstance(m, torch.nn.Conv2d) and m.padding_mode == "zeros" and not m.weight.requires_grad}


def _prepare(patched, job: TrainingJob) -> None:
    """Compute dtype, frozen convolutions and gradient checkpointing on the training clone."""
    if job.dtype is not None:
        patched.set_model_compute_dtype(job.dtype)
    for key, forward in frozen_conv_patches(patched.get_model_object("diffusion_model")).items():
        patched.add_object_patch(key, forward)
    if job.gradient_checkpointing:
        for key, forward in gradient_checkpointing_patches(patched.get_model_object("diffusion_model")).items():
            patched.add_object_patch(key, forward)


def with_noise_predictor(patched, positive: list, sample_shape: tuple, run) -> None:
    """Call `run(predict_noise)` inside CFGGuider.sample on `patched`, with autograd on.

    predict_noise(latents, noise, timesteps, cond) noises the clean latents at the DDPM timesteps (one per
    latent, through the model's model_sampling) and returns the model's noise prediction for conditioning
    entry `cond` of `positive`. `sample_shape` is one model call's latent batch (for ComfyUI's estimates)."""
    guider = comfy.samplers.CFGGuider(patched)
    guider.inner_set_conds({"positive": positive})
    guider.set_cfg(1.0)

    def loop(predict_noise):
        autograd_ready([patched.model] + [m.model for m in patched.get_nested_additional_models()])
        run(predict_noise)

    models = [patched] + patched.get_nested_additional_models()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            host.load_models_for_training(models)
            zeros = torch.zeros(sample_shape)
            guider.sample(zeros, zeros, _training_sampler_class()(loop), torch.ones(1), disable_pbar=True)
    finally:
        host.unload_models(models)  # the trainable layers come out of the shared model; memory goes back


def run_training(patched, positive: list, latents: list[LatentClip], trainer: LoRATrainer, on_step=None) -> None:
    """Train `trainer`'s LoRA on `patched` (already holding it) inside ComfyUI's sampling machinery.
    `on_step(trainer)` runs after every optimiser step; ComfyUI's Cancel stops the loop by an exception."""
    in_model = [LatentClip(c.name, patched.model.process_latent_in(c.latents), c.cond) for c in latents]

    def loop(predict_noise):
        while not trainer.done:
            host.check_interrupt()
            trainer.train_step(in_model, predict_noise)
            if on_step:
                on_step(trainer)

    shape = (trainer.settings.frames * trainer.settings.batch_size, *latents[0].latents.shape[1:])
    with_noise_predictor(patched, positive, shape, loop)


class _Reporter:
    """Progress bar (with the loss plot as its preview about once a second), log lines, periodic saves."""

    def __init__(self, trainer: LoRATrainer, kind: str, save, save_every: int):
        self.trainer, self.kind, self.save, self.save_every = trainer, kind, save, save_every
        self.bar = host.progress_bar(trainer.settings.steps)
        self.last_preview = 0.0
        self.log_every = max(1, trainer.settings.steps // 20)

    def __call__(self, trainer: LoRATrainer) -> None:
        step, steps = trainer.step, trainer.settings.steps
        if step % self.log_every == 0 or step == steps:
            log.info("MotionKit: %s step %d/%d, loss %.5f", self.kind, step, steps, trainer.losses[-1])
        if self.save_every and step % self.save_every == 0 and step < steps:
            self.save(trainer)
        preview = None
        if time.monotonic() - self.last_preview > 1.0 or step == steps:
            self.last_preview = time.monotonic()
            preview = ("PNG", self.plot(), 640)
        self.bar.update_absolute(step, steps, preview)

    def plot(self):
        trainer = self.trainer
        loss = f", loss {trainer.losses[-1]:.4f}" if trainer.losses else ""
        return loss_plot(trainer.losses, f"{self.kind}: step {trainer.step}/{trainer.settings.steps}{loss}")


def _train(patched, positive, latents, trainer, kind: str, job: TrainingJob, lora_path: str | None, write_lora):
    """Run (or resume) the training with progress, periodic saves and a save on Cancel."""
    states = state_path(lora_path, kind) if lora_path else None
    if job.resume:
        _resume(trainer, states, kind)

    def save(t: LoRATrainer) -> None:
        if lora_path:
            size = write_lora(t)
            _save_state(t, states, kind)
            log.info("MotionKit: saved the %s after %d steps to %s (%.1f MB); training state in %s",
                     kind, t.step, lora_path, size / 1e6, states)

    reporter = _Reporter(trainer, kind, save, job.save_every)
    try:
        run_training(patched, positive, latents, trainer, reporter)
    except BaseException as error:
        if host.is_interrupt(error) and trainer.step > 0:
            save(trainer)
            log.info("MotionKit: %s training cancelled at step %d of %d; what was trained is kept%s", kind,
                     trainer.step, trainer.settings.steps,
                     " (run again with resume on to continue)" if lora_path else "")
        raise
    finally:
        host.soft_empty_cache()
    save(trainer)
    return image_tensor(reporter.plot())


# ---------------------------------------------------------------- the two trainings
def _lora_path(folder: str, job: TrainingJob, kind: str) -> str | None:
    path = os.path.join(host.model_folder(folder), lora_file_name(job.lora_name)) if job.lora_name.strip() else None
    _check_output(path, kind, job.resume)
    return path


def check_motion_lora_job(model, motion: LoadedMotionModule, job: TrainingJob, lengths: dict[str, int],
                          node: str = "Train MotionLoRA") -> str | None:
    """Every check that needs no training data; returns the MotionLoRA file path (None: not saved)."""
    settings = job.settings
    settings.check()
    if settings.frames > motion.info.config.max_frames:
        raise TrainingSettingsError(f"frames is {settings.frames}, more than the motion module {motion.info.describe()} "
                                    f"sees at once: lower frames to at most {motion.info.config.max_frames}")
    _check_model(model, node)
    injection.check_fits(model.get_model_object("diffusion_model"), motion.info, node)
    clip_data.check_length(lengths, settings.frames)
    return _lora_path("animatediff_motion_lora", job, MOTION_LORA)


def check_domain_adapter_job(model, job: TrainingJob, lengths: dict[str, int], node: str = "Train Domain Adapter") -> str | None:
    """Every check that needs no training data; returns the adapter's file path in loras (None: not saved)."""
    settings = job.settings
    settings.check()
    if settings.frames != 1:
        raise TrainingSettingsError("the domain adapter trains on single frames: frames must be 1")
    _check_model(model, node)
    if model.get_injections(injection.KEY):
        raise TrainingError(f"{node}'s model already has a motion module: the domain adapter is trained on the image "
                            f"model, so connect the model before Apply Motion Module")
    clip_data.check_length(lengths, 1)
    return _lora_path("loras", job, DOMAIN_ADAPTER)


def training_data(vae, clips: list[clip_data.TrainingClip], positive: list, resolution: int, clip=None):
    """(CONDITIONING entries, latents per clip) for a training node."""
    entries, conds = clip_conditioning(positive, clips, clip)
    return entries, encode_clips(vae, clips, resolution, conds)


def _lengths(items) -> dict[str, int]:
    return {item.name: len(item.frames if hasattr(item, "frames") else item.latents) for item in items}


def train_motion_lora(model, motion: LoadedMotionModule, vae, clips: list[clip_data.TrainingClip], positive: list,
                      job: TrainingJob, clip=None) -> tuple[MotionLoRA, torch.Tensor]:
    """Train a MotionLoRA for `motion` on `clips`; return it (strength 1) and the loss plot IMAGE."""
    check_motion_lora_job(model, motion, job, _lengths(clips))
    entries, latents = training_data(vae, clips, positive, job.resolution, clip)
    return train_motion_lora_on_latents(model, motion, latents, entries, job)


def train_motion_lora_on_latents(model, motion: LoadedMotionModule, latents: list[LatentClip], positive: list,
                                 job: TrainingJob) -> tuple[MotionLoRA, torch.Tensor]:
    """The training of `train_motion_lora` on VAE latents (LatentClip.cond indexes `positive`)."""
    settings = job.settings
    lora_path = check_motion_lora_job(model, motion, job, _lengths(latents))
    device = motion.patcher.load_device
    with torch.inference_mode(False):
        pairs = new_lora_pairs(motion_lora_shapes(motion.model), settings.rank, torch.Generator().manual_seed(settings.seed), device)
    trainer = LoRATrainer(pairs, settings, device)
    name = os.path.basename(lora_path) if lora_path else "trained MotionLoRA"
    patched = injection.apply_motion_module(model, motion, [MotionLoRA(name=name, pairs=pairs, strength=1.0)],
                                            gradient_checkpointing=job.gradient_checkpointing, node="Train MotionLoRA")
    patched = injection.animatediff_beta_schedule(patched, SCHEDULES[0])
    patched.model_options.setdefault("transformer_options", {})[injection.FRAMES_PER_VIDEO] = settings.frames
    _prepare(patched, job)

    def write_lora(t: LoRATrainer) -> int:
        metadata = {"motionkit": json.dumps(dict(kind=MOTION_LORA, steps=t.step, rank=settings.rank, frames=settings.frames,
                                                 motion_module=motion.info.name, learning_rate=settings.learning_rate))}
        return save_lora_file(lora_path, keys.motion_lora_file_state(t.trained_pairs()), metadata)

    plot = _train(patched, positive, latents, trainer, MOTION_LORA, job, lora_path, write_lora)
    return MotionLoRA(name=name, pairs=trainer.trained_pairs(host.intermediate_device()), strength=1.0), plot


def train_domain_adapter(model, vae, clips: list[clip_data.TrainingClip], positive: list, job: TrainingJob, clip=None):
    """Train a domain adapter (LoRA on the UNet's spatial attention, single frames); return (MODEL with it, plot)."""
    check_domain_adapter_job(model, job, _lengths(clips))
    entries, latents = training_data(vae, clips, positive, job.resolution, clip)
    return train_domain_adapter_on_latents(model, latents, entries, job)


def train_domain_adapter_on_latents(model, latents: list[LatentClip], positive: list, job: TrainingJob):
    """The training of `train_domain_adapter` on VAE latents."""
    settings = job.settings
    lora_path = check_domain_adapter_job(model, job, _lengths(latents))
    unet = model.get_model_object("diffusion_model")
    targets = {f"diffusion_model.{n}": m for n, m in unet.named_modules() if SPATIAL_ATTENTION.search(n)}
    device = model.load_device
    with torch.inference_mode(False):
        pairs = new_lora_pairs({p: (m.out_features, m.in_features) for p, m in targets.items()}, settings.rank,
                               torch.Generator().manual_seed(settings.seed), device)
    trainer = LoRATrainer(pairs, settings, device)
    patched = model.clone()
    for path, (down, up) in pairs.items():
        patched.add_object_patch(path, LowRankLinear(targets[path], [(down, up, 1.0)]))
    _prepare(patched, job)
    unet_config = model.model.model_config.unet_config

    def write_lora(t: LoRATrainer) -> int:
        metadata = {"motionkit": json.dumps(dict(kind=DOMAIN_ADAPTER, steps=t.step, rank=settings.rank,
                                                 learning_rate=settings.learning_rate))}
        return save_lora_file(lora_path, domain_adapter_state(t.trained_pairs(), unet_config), metadata)

    plot = _train(patched, positive, latents, trainer, DOMAIN_ADAPTER, job, lora_path, write_lora)
    adapted, _ = comfy.sd.load_lora_for_models(model, None, domain_adapter_state(trainer.trained_pairs(), unet_config), 1.0, 0)
    return adapted, plot
