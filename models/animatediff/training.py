"""LoRA training for AnimateDiff: the MotionLoRA (temporal attention) and the domain adapter (spatial attention).

The objective is AnimateDiff's (guoyww/AnimateDiff `train.py`): for each video a DDPM timestep t drawn
uniformly from 0..999, noise added at t, and the mean squared error between the noise and the model's
noise prediction. The optimiser is theirs too: AdamW (betas 0.9/0.999, weight decay 1e-2, eps 1e-8),
constant learning rate, gradients clipped to norm 1. LoRA layers start as diffusers' LoRALinearLayer,
which the published MotionLoRAs were trained with: down ~ N(0, 1/rank), up = 0, update = up @ down.

This module is the loop and its bookkeeping, in plain torch. The noise prediction is a callable (the
ComfyUI glue runs the patched model through ComfyUI's sampling machinery; tests run a reference), so the
same loop trains both adapters. The training state (LoRA, optimiser moments, step, random generator,
losses) is saved as safetensors with a JSON header, so a run continues exactly where it stopped.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MotionKitError

TRAIN_TIMESTEPS = 1000
MOTION_LORA_TARGET = re.compile(r"\.attention_blocks\.\d+\.(to_q|to_k|to_v|to_out\.0)$")
"""The projections a MotionLoRA adapts: q, k, v and out of every temporal self-attention (paper sec. 4.3)."""
STATE_METADATA_KEY = "motionkit_training_state"

PredictNoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""(clean latents [n, C, h, w], noise, DDPM timestep per latent, conditioning index) -> predicted noise."""


class TrainingSettingsError(MotionKitError):
    """A training input out of range; the message names the input and the range."""


@dataclass(frozen=True)
class TrainingSettings:
    """One LoRA training run. Defaults follow AnimateDiff's MotionLoRA release and `configs/training`.

    rank: LoRA rank (the published v2_lora_* MotionLoRAs: 64).
    learning_rate: AdamW learning rate (training.yaml: 1e-4).
    steps: optimiser steps of the whole run (a resumed run continues up to this count).
    batch_size: videos (or frames, for the domain adapter) per step.
    frames: consecutive frames per video sample; 1 for the domain adapter (single frames).
    seed: seeds the LoRA initialisation, the sample, timestep and noise draws.
    max_grad_norm, weight_decay: as train.py (1.0, 1e-2).
    loss_scaling: dynamic loss scaling (for fp16 compute, where small gradients underflow).
    """
    rank: int = 64
    learning_rate: float = 1e-4
    steps: int = 2000
    batch_size: int = 1
    frames: int = 16
    seed: int = 0
    max_grad_norm: float = 1.0
    weight_decay: float = 1e-2
    loss_scaling: bool = False

    def check(self) -> None:
        if self.rank < 1:
            raise TrainingSettingsError(f"rank must be 1 or more (the LoRA's inner width; published MotionLoRAs use 64), not {self.rank}")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise TrainingSettingsError(f"learning_rate must be a positive finite number (AnimateDiff trains with 1e-4), "
                                        f"not {self.learning_rate}")
        for name in ("steps", "batch_size", "frames"):
            if getattr(self, name) < 1:
                raise TrainingSettingsError(f"{name} must be 1 or more, not {getattr(self, name)}")


@dataclass
class LatentClip:
    """One clip's latents in the model's latent space [frames, C, h, w] and the index of its conditioning."""
    name: str
    latents: torch.Tensor
    cond: int = 0


@dataclass
class TrainingItem:
    """One sample of a step: clean latents [frames, C, h, w], its noise, DDPM timestep and conditioning."""
    latents: torch.Tensor
    noise: torch.Tensor
    timestep: int
    cond: int


def motion_lora_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{module path: (out, in)} of every temporal attention projection of a MotionModel."""
    return {name: (m.out_features, m.in_features) for name, m in model.named_modules() if MOTION_LORA_TARGET.search(name)}


def new_lora_pairs(shapes: dict[str, tuple[int, int]], rank: int, generator: torch.Generator,
                   device: torch.device | str = "cpu") -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
    """{path: (down [rank, in], up [out, rank])} as diffusers' LoRALinearLayer starts: down ~ N(0, 1/rank), up = 0."""
    pairs = {}
    for path in sorted(shapes):
        out_features, in_features = shapes[path]
        down = torch.randn(rank, in_features, generator=generator) / rank
        pairs[path] = (nn.Parameter(down.to(device)), nn.Parameter(torch.zeros(out_features, rank, device=device)))
    return pairs


def draw_items(clips: list[LatentClip], frames: int, count: int, generator: torch.Generator) -> list[TrainingItem]:
    """`count` samples: a clip drawn uniformly, a window of `frames` consecutive frames in it, a timestep, noise."""
    items = []
    for _ in range(count):
        clip = clips[int(torch.randint(len(clips), (1,), generator=generator))]
        start = int(torch.randint(len(clip.latents) - frames + 1, (1,), generator=generator))
        latents = clip.latents[start:start + frames]
        timestep = int(torch.randint(TRAIN_TIMESTEPS, (1,), generator=generator))
        noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)
        items.append(TrainingItem(latents=latents, noise=noise, timestep=timestep, cond=clip.cond))
    return items


def noise_prediction_loss(predicted: torch.Tensor, noise: torch.Tensor, elements: int) -> torch.Tensor:
    """Sum of squared errors over `elements`: the batch's MSE when the groups of a step are added up
    (computed in float32, or float64 for a float64 model)."""
    dtype = torch.promote_types(predicted.dtype, torch.float32)
    return F.mse_loss(predicted.to(dtype), noise.to(dtype), reduction="sum") / elements


class LoRATrainer:
    """AdamW on LoRA pairs with AnimateDiff's noise-prediction objective; one `train_step` per optimiser step."""

    def __init__(self, pairs: dict[str, tuple[nn.Parameter, nn.Parameter]], settings: TrainingSettings,
                 device: torch.device | str = "cpu"):
        settings.check()
        self.pairs, self.settings, self.device = pairs, settings, torch.device(device)
        self.parameters = [p for path in sorted(pairs) for p in pairs[path]]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=settings.learning_rate, betas=(0.9, 0.999),
                                           weight_decay=settings.weight_decay, eps=1e-8)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=settings.loss_scaling)
        self.generator = torch.Generator().manual_seed(settings.seed + 1)
        self.step = 0
        self.losses: list[float] = []

    @property
    def done(self) -> bool:
        return self.step >= self.settings.steps

    def accumulate(self, items: list[TrainingItem], predict_noise: PredictNoise) -> float:
        """Forward and backward of one batch, one model call per sample (gradients add up to the batch MSE's)."""
        elements = sum(item.noise.numel() for item in items)
        total = 0.0
        for item in items:
            latents, noise = item.latents.to(self.device), item.noise.to(self.device)
            timesteps = torch.full((len(latents),), item.timestep, device=self.device)
            loss = noise_prediction_loss(predict_noise(latents, noise, timesteps, item.cond), noise, elements)
            self.scaler.scale(loss).backward()
            total += loss.item()
        return total

    def apply_gradients(self) -> None:
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.parameters, self.settings.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, clips: list[LatentClip], predict_noise: PredictNoise) -> float:
        items = draw_items(clips, self.settings.frames, self.settings.batch_size, self.generator)
        loss = self.accumulate(items, predict_noise)
        self.apply_gradients()
        self.step += 1
        self.losses.append(loss)
        return loss

    def trained_pairs(self, device: torch.device | str = "cpu") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Detached copies of the LoRA pairs (what a MotionLoRA or a saved file holds)."""
        return {path: (down.detach().to(device, copy=True), up.detach().to(device, copy=True))
                for path, (down, up) in self.pairs.items()}

    # ---------------------------------------------------------------- training state
    def state(self, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """(tensors, safetensors metadata) of everything a resumed run needs."""
        tensors = {}
        for path, (down, up) in self.pairs.items():
            tensors[f"lora.{path}.down"] = down.detach().cpu().contiguous()
            tensors[f"lora.{path}.up"] = up.detach().cpu().contiguous()
        optimizer = self.optimizer.state_dict()["state"]
        for index, moments in optimizer.items():
            for name, value in moments.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["generator"] = self.generator.get_state()
        header = dict(kind=kind, step=self.step, losses=self.losses, scale=float(self.scaler.get_scale()) if self.scaler.is_enabled() else None,
                      settings=asdict(self.settings))
        return tensors, {STATE_METADATA_KEY: json.dumps(header)}

    def load_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str], kind: str, name: str) -> None:
        """Continue from a saved state: LoRA weights, AdamW moments, step count, generator and losses."""
        header = json.loads((metadata or {}).get(STATE_METADATA_KEY, "null") or "null")
        if not header:
            raise TrainingSettingsError(f"'{name}' is not a MotionKit training state (no '{STATE_METADATA_KEY}' header)")
        if header["kind"] != kind:
            raise TrainingSettingsError(f"'{name}' is the training state of a {header['kind']}, not of a {kind}")
        saved_rank = header["settings"]["rank"]
        if saved_rank != self.settings.rank:
            raise TrainingSettingsError(f"'{name}' was trained at rank {saved_rank}; set rank to {saved_rank} to resume it")
        lora = {k[len("lora."):]: v for k, v in tensors.items() if k.startswith("lora.")}
        expected = {f"{path}.{half}" for path in self.pairs for half in ("down", "up")}
        if set(lora) != expected:
            raise TrainingSettingsError(f"'{name}' adapts other layers than this model has ({len(set(lora) ^ expected)} differ, "
                                        f"e.g. {sorted(set(lora) ^ expected)[:2]}): it was trained on another model")
        with torch.no_grad():
            for path, (down, up) in self.pairs.items():
                down.copy_(lora[f"{path}.down"])
                up.copy_(lora[f"{path}.up"])
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, moment = key.split(".", 2)
                moments.setdefault(int(index), {})[moment] = value.to(self.device) if moment != "step" else value
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": moments, "param_groups": groups})
        self.generator.set_state(tensors["generator"])
        self.step, self.losses = int(header["step"]), [float(v) for v in header["losses"]]
        if header.get("scale") and self.scaler.is_enabled():
            self.scaler = torch.amp.GradScaler(self.device.type, init_scale=float(header["scale"]))


# ---------------------------------------------------------------- loss plot
def loss_plot(losses: list[float], title: str, width: int = 640, height: int = 320):
    """The losses per step as a PIL image: each step (light) and a running mean (dark), min/max marked."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 56, 28, width - 12, height - 28
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text((left, 8), title, fill=(0, 0, 0))
    if losses:
        low, high = min(losses), max(losses)
        span = (high - low) or 1.0
        window = max(1, len(losses) // 20)
        running = [sum(losses[max(0, i - window + 1):i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(losses))]

        def point(i: int, value: float) -> tuple[float, float]:
            x = left + (right - left) * (i / max(1, len(losses) - 1))
            return x, bottom - (bottom - top) * (value - low) / span

        for values, colour in ((losses, (160, 190, 235)), (running, (20, 60, 160))):
            points = [point(i, v) for i, v in enumerate(values)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            else:
                draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
        draw.text((4, top), f"{high:.4f}", fill=(0, 0, 0))
        draw.text((4, bottom - 10), f"{low:.4f}", fill=(0, 0, 0))
        draw.text((left, bottom + 8), "step 1", fill=(0, 0, 0))
        draw.text((right - 60, bottom + 8), f"step {len(losses)}", fill=(0, 0, 0))
    return image


def image_tensor(image) -> torch.Tensor:
    """A PIL RGB image as an IMAGE [1, height, width, 3] (float 0..1)."""
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width, 3)
    return (pixels.float() / 255.0).unsqueeze(0)
