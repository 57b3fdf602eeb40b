"""EasyAnimate V5.1 as a native ComfyUI model, and its Qwen2-VL text encoder as a ComfyUI CLIP.

Imported only inside ComfyUI. `EasyAnimateV51Model` is a `comfy.model_base.BaseModel`
predicting the flow-matching velocity (ComfyUI's CONST type) with the scheduler's shift, so core
KSampler/SamplerCustomAdvanced run it like any model, with ComfyUI's weight dtypes, partial loading and
offload. InP/Control inputs travel as conditioning entries and become channels beside the noise.
"""
from __future__ import annotations

import logging
import os
import re

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_patcher
import comfy.model_sampling
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models_base
import comfy.text_encoders.llama
import comfy.text_encoders.qwen_image
import comfy.utils
import torch

from .. import host
from ..cogvideox.keys import read_sharded_state_dict
from ..easyanimate import conditioning, dit_keys, text_qwen
from ..easyanimate.conditioning import EasyAnimateInputError
from ..easyanimate.transformer_v51 import EasyAnimateV51Transformer
from .cogvideox import set_compute_dtype, text_and_concat_conds

log = logging.getLogger("MotionKit")
INPAINT_KEY, CONTROL_KEY = "easyanimate_inpaint", "easyanimate_control"
"""Conditioning entries: the InP channels [B,17,T,h,w] and the Control channels [B,32,T,h,w]."""


class EasyAnimateV51LatentFormat(comfy.latent_formats.LatentFormat):
    """16-channel 3D latents of the V5/V5.1 VAE, already multiplied by its scaling factor when encoded."""
    latent_channels = 16
    latent_dimensions = 3
    scale_factor = 1.0


class EasyAnimateModelSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
    """Rectified flow, x_t = (1 - sigma) x_0 + sigma noise, velocity output, timestep = 1000 sigma, shifted.
    `dynamic_shifting` tells EasyAnimate V5.1 Scheduler where the pipeline's schedule ends (schedule.flow_sigmas)."""

    def __init__(self, model_config=None):
        super().__init__(model_config)
        self.dynamic_shifting = bool(model_config.sampling_settings.get("dynamic_shifting", False))


class EasyAnimateV51Config(comfy.supported_models_base.BASE):
    unet_config = {"image_model": "easyanimate_v51"}
    unet_extra_config = {}
    sampling_settings = {"shift": 1.0, "multiplier": 1000, "dynamic_shifting": False}
    latent_format = EasyAnimateV51LatentFormat
    supported_inference_dtypes = [torch.bfloat16, torch.float16, torch.float32]
    memory_usage_factor = 2.0

    def __init__(self, unet_config, shift: float, dynamic_shifting: bool):
        super().__init__(unet_config)
        self.sampling_settings = {"shift": shift, "multiplier": 1000, "dynamic_shifting": dynamic_shifting}
        self.memory_usage_factor = self.unet_config.get("num_attention_heads", 48) * 64 / 3072 * 2.0

    def get_model(self, state_dict, prefix="", device=None):
        return EasyAnimateV51Model(self, device=device)


class EasyAnimateV51Model(comfy.model_base.BaseModel):
    """ComfyUI model around EasyAnimateV51Transformer: text -> c_crossattn, InP/Control channels -> c_concat."""

    def __init__(self, model_config, device=None):
        super().__init__(model_config, comfy.model_base.ModelType.FLOW, device=device,
                         unet_model=EasyAnimateV51Transformer)
        self.model_sampling = EasyAnimateModelSampling(model_config)
        self.variant = dit_keys.VARIANTS[self.diffusion_model.in_channels]

    def extra_conds(self, **kwargs):
        cross_attn = kwargs.get("cross_attn", None)
        if cross_attn is not None:
            if cross_attn.shape[-1] != self.diffusion_model.text_embed_dim:
                raise EasyAnimateInputError(f"the text conditioning is {cross_attn.shape[-1]} wide, but EasyAnimate V5.1 reads "
                                 f"Qwen2-VL-7B features ({self.diffusion_model.text_embed_dim} wide): encode the "
                                 f"prompts with the CLIP from Load EasyAnimate Qwen2-VL (MotionKit)")
        return text_and_concat_conds(self, kwargs)

    def concat_cond(self, **kwargs):
        noise = kwargs.get("noise", None)
        if noise is None:
            return None
        check_latent(noise)
        inpaint, control = kwargs.get(INPAINT_KEY), kwargs.get(CONTROL_KEY)
        if self.variant == "T2V":
            if inpaint is not None or control is not None:
                given = "an image (Image to Video)" if inpaint is not None else "a control video"
                raise EasyAnimateInputError(f"this is an EasyAnimate V5.1 text-to-video model, but the conditioning carries "
                                 f"{given}: load the -InP weights for images or the -Control weights for control "
                                 f"videos, or remove that node")
            return None
        wanted, name, node = ((inpaint, "image", "EasyAnimate V5.1 Image to Video") if self.variant == "InP"
                              else (control, "control video", "EasyAnimate V5.1 Control"))
        if control is not None and self.variant == "InP":
            raise EasyAnimateInputError("this is an EasyAnimate V5.1 InP (image-to-video) model, but the conditioning carries a "
                             "control video: load the -Control weights, or use EasyAnimate V5.1 Image to Video")
        if inpaint is not None and self.variant == "Control":
            raise EasyAnimateInputError("this is an EasyAnimate V5.1 Control model, but the conditioning carries an image-to-"
                             "video input: load the -InP weights, or use EasyAnimate V5.1 Control")
        if wanted is None:
            raise EasyAnimateInputError(f"this is an EasyAnimate V5.1 {self.variant} model and needs a {name}: connect "
                             f"{node} (MotionKit) between the text encoders and the sampler")
        extra = self.diffusion_model.in_channels - noise.shape[1]
        if wanted.shape[1] != extra or wanted.shape[2:] != noise.shape[2:]:
            raise EasyAnimateInputError(f"the {name} latents are {list(wanted.shape[1:])} (channels, frames, height, width) but "
                             f"this {self.variant} model samples {list(noise.shape[2:])} with {extra} extra channels: "
                             f"make the {name} and the sampled latent the same size and frame count")
        return comfy.utils.resize_to_batch_size(wanted.to(noise), noise.shape[0])


def check_latent(latent: torch.Tensor) -> None:
    """A clear error for latents the V5.1 transformer cannot sample."""
    if latent.ndim != 5:
        raise EasyAnimateInputError(f"the latent has shape {list(latent.shape)}; EasyAnimate V5.1 samples video latents "
                         f"[B,16,T,H,W]: start from Empty EasyAnimate V5.1 Latent (MotionKit)")
    if latent.shape[1] != conditioning.LATENT_CHANNELS:
        raise EasyAnimateInputError(f"the latent has {latent.shape[1]} channels; EasyAnimate V5.1 samples the 16-channel latents "
                         f"of its VAE: start from Empty EasyAnimate V5.1 Latent (MotionKit) or encode with the V5.1 VAE")
    if latent.shape[2] < 1 or latent.shape[-1] % 2 or latent.shape[-2] % 2:
        raise EasyAnimateInputError(f"the latent is {latent.shape[2]} frames of {latent.shape[-2]}x{latent.shape[-1]}; "
                         f"EasyAnimate V5.1 needs at least one frame and an even latent height and width "
                         f"(image sizes in multiples of 16)")


def is_easyanimate_v51(model_patcher) -> bool:
    return isinstance(getattr(model_patcher, "model", None), EasyAnimateV51Model)


def load_easyanimate_v51(path: str, weight_dtype: str = "default"):
    """A ModelPatcher holding the V5.1 transformer of `path` (one file, or any shard of a sharded folder)."""
    state_dict = read_sharded_state_dict(path, "EasyAnimate V5.1 transformer")
    return build_easyanimate_v51(state_dict, f"'{os.path.basename(path)}'", dit_keys.read_folder_config(path),
                                 dit_keys.flow_schedule(path), weight_dtype)


def build_easyanimate_v51(state_dict: dict, source: str = "the checkpoint", folder_config: dict | None = None,
                          schedule: tuple[float, bool] = dit_keys.PUBLISHED_SCHEDULE, weight_dtype: str = "default"):
    """A ModelPatcher for a V5.1 state dict (diffusers or official layout); schedule = (shift, dynamic shifting)."""
    sd = dit_keys.detect(state_dict, source)
    config = dit_keys.config_from_state_dict(sd, source, folder_config)
    load_device, offload = host.torch_device(), host.offload_device()
    config_obj = EasyAnimateV51Config(config, *schedule)
    set_compute_dtype(config_obj, sd, source, weight_dtype, load_device)
    model = config_obj.get_model(sd, "", device=offload)
    dit_keys.check_keys(model.diffusion_model, sd, source)
    model.load_model_weights(sd, "")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)
    log.info("MotionKit: loaded %s from %s (%s, shift %.3g)", dit_keys.describe(config, comfy.utils.calculate_parameters(sd)),
             source, patcher.model.get_dtype(), schedule[0])
    return patcher


# ---------------------------------------------------------------- Qwen2-VL-7B text encoder
QWEN_HEAD_DIM = 128
"""Every Qwen2/2.5(-VL) language model uses 128 channels per head; q/k/v widths give the head counts."""
QWEN_DROP = re.compile(r"^(visual\.|model\.visual\.|lm_head\.)")
QWEN_RENAME = (("model.language_model.", "model."), ("language_model.model.", "model."))
"""transformers >= 4.52 saves Qwen2-VL's text model under `model.language_model.`; ComfyUI's Llama reads `model.`."""


def qwen_text_state_dict(sd: dict, source: str = "the file") -> dict:
    """The language-model weights of a Qwen2-VL checkpoint in ComfyUI's Llama names (vision tower, LM head left out)."""
    out = {}
    for key, value in sd.items():
        if key.startswith("text_encoder."):
            key = key[len("text_encoder."):]
        if QWEN_DROP.match(key):
            continue
        for old, new in QWEN_RENAME:
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
    needed = ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.bias", "model.layers.0.mlp.gate_proj.weight")
    missing = [k for k in needed if k not in out]
    if missing:
        if any(k.startswith(("transformer_blocks.", "model.diffusion_model.")) for k in sd):
            raise dit_keys.EasyAnimateFormatError(f"{source} is a diffusion transformer, not a text encoder: load it with Load EasyAnimate "
                             f"V5.1 (MotionKit) from models/diffusion_models")
        raise dit_keys.EasyAnimateFormatError(f"{source} is not a Qwen2-VL text encoder (as the text_encoder/ folder of "
                         f"EasyAnimateV5.1-12b-zh): missing {', '.join(missing)}")
    if "model.layers.0.self_attn.q_norm.weight" in out:
        raise dit_keys.EasyAnimateFormatError(f"{source} is a Qwen3 model (q/k norms); EasyAnimate V5.1 reads Qwen2-VL-7B")
    return out


def qwen_config(sd: dict) -> dict:
    """ComfyUI Qwen25_7BVLI_Config fields read from key shapes."""
    layers = 0
    while f"model.layers.{layers}.self_attn.q_proj.weight" in sd:
        layers += 1
    embed = sd["model.embed_tokens.weight"]
    return dict(vocab_size=embed.shape[0], hidden_size=embed.shape[1], num_hidden_layers=layers,
                intermediate_size=sd["model.layers.0.mlp.gate_proj.weight"].shape[0],
                num_attention_heads=sd["model.layers.0.self_attn.q_proj.weight"].shape[0] // QWEN_HEAD_DIM,
                num_key_value_heads=sd["model.layers.0.self_attn.k_proj.weight"].shape[0] // QWEN_HEAD_DIM)


class Qwen2VLText(comfy.text_encoders.llama.BaseLlama, torch.nn.Module):
    """Qwen2-VL's language model alone (ComfyUI's Llama with the Qwen2.5-VL-7B text config; text-only M-RoPE
    positions are plain 1D RoPE)."""

    def __init__(self, config_dict, dtype, device, operations):
        super().__init__()
        config = comfy.text_encoders.llama.Qwen25_7BVLI_Config(**config_dict)
        self.num_layers = config.num_hidden_layers
        self.model = comfy.text_encoders.llama.Llama2_(config, device=device, dtype=dtype, ops=operations)
        self.dtype = dtype


class Qwen2VLHiddenModel(comfy.sd1_clip.SDClipModel):
    """Second-to-last hidden state (no final norm) with the padding masked, as the V5.1 pipelines read it."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, layer="hidden", layer_idx=text_qwen.HIDDEN_LAYER,
                         textmodel_json_config=dict(model_options.get("easyanimate_qwen_config", {})), dtype=dtype,
                         special_tokens={"pad": text_qwen.PAD_TOKEN}, layer_norm_hidden_state=False,
                         model_class=Qwen2VLText, enable_attention_masks=True, return_attention_masks=True,
                         model_options=model_options)


class EasyAnimateQwenTE(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, name=text_qwen.TOKENS_KEY, clip_model=Qwen2VLHiddenModel,
                         model_options=model_options)


class EasyAnimateQwenTokenizer(comfy.sd1_clip.SD1Tokenizer):
    """Qwen2's BPE tokenizer (ComfyUI's qwen25_tokenizer files) on Qwen2-VL's chat template, 256 tokens."""

    def __init__(self, embedding_directory=None, tokenizer_data={}):
        super().__init__(embedding_directory=embedding_directory, tokenizer_data=tokenizer_data,
                         name=text_qwen.TOKENS_KEY, tokenizer=comfy.text_encoders.qwen_image.Qwen25_7BVLITokenizer)

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        tokens = super().tokenize_with_weights(text_qwen.CHAT_TEMPLATE.format(text), return_word_ids,
                                               disable_weights=True, **kwargs)
        return text_qwen.fixed_length_tokens(tokens)


def load_qwen2vl(path: str):
    """A CLIP for the Qwen2-VL-7B text encoder of EasyAnimate V5.1 (one file, or any shard of text_encoder/)."""
    source = f"'{os.path.basename(path)}'"
    raw = read_sharded_state_dict(path, "Qwen2-VL text encoder")
    sd = qwen_text_state_dict(raw, source)
    del raw
    config = qwen_config(sd)
    target = comfy.supported_models_base.ClipTarget(EasyAnimateQwenTokenizer, EasyAnimateQwenTE)
    clip = comfy.sd.CLIP(target, parameters=comfy.utils.calculate_parameters(sd),
                         model_options={"easyanimate_qwen_config": config})
    missing, unexpected = clip.load_sd(sd)
    if missing or unexpected:
        raise EasyAnimateInputError(f"{source} does not fill the Qwen2-VL text model read from its shapes ({config}): missing "
                         f"{missing[:8]}, unexpected {unexpected[:8]}")
    return clip


# ---------------------------------------------------------------- conditioning nodes' work
def _check_v5_vae(video_vae) -> None:
    if getattr(video_vae, "version", None) != "easyanimate-v5" or video_vae.latent_channels != conditioning.LATENT_CHANNELS:
        raise EasyAnimateInputError(f"the video VAE is {getattr(video_vae, 'name', video_vae)} "
                         f"({getattr(video_vae, 'version', 'unknown')}); EasyAnimate V5.1 reads latents of the V5/V5.1 "
                         f"VAE: load the vae/ folder of EasyAnimateV5.1 with Load Video VAE (MotionKit)")


def _frame_at(images: torch.Tensor | None, index: int, width: int, height: int, name: str) -> torch.Tensor:
    if images is None or images.ndim != 4 or images.shape[0] == 0:
        shape = "nothing" if images is None else f"shape {list(images.shape)}"
        raise EasyAnimateInputError(f"{name} is {shape}; EasyAnimate V5.1 Image to Video needs an IMAGE (one frame [1,H,W,3]): "
                         f"connect a Load Image")
    frame = images[index:index + 1].movedim(-1, 1)
    frame = comfy.utils.common_upscale(frame, width, height, "bilinear", "center")
    return frame.movedim(1, -1)[0, :, :, :3]


def image_to_video(video_vae, start_image, end_image, width: int, height: int, length: int, batch_size: int):
    """(InP channels [1,17,T,h,w], empty latent [batch,16,T,h,w]) for a start (and end) image."""
    conditioning.check_size(width, height)
    frames = conditioning.latent_frames(length)
    _check_v5_vae(video_vae)
    start = _frame_at(start_image, 0, width, height, "start_image")
    end = _frame_at(end_image, -1, width, height, "end_image") if end_image is not None else None
    video, mask = conditioning.inpaint_video(start, end, length)
    masked = video_vae.encode(video)
    channels = torch.cat([conditioning.mask_latent(mask, masked.shape, video_vae.scaling_factor), masked], dim=1)
    latent = torch.zeros(batch_size, conditioning.LATENT_CHANNELS, frames, height // 8, width // 8)
    return channels, latent


def control_channels(control_latent: torch.Tensor, reference_latent: torch.Tensor | None,
                     control_vae_version: str | None, reference_vae_version: str | None, batch_size: int):
    """(Control channels [B,32,T,h,w], empty latent [batch,16,T,h,w]) from Video VAE Encode latents."""
    for latent, version, name in ((control_latent, control_vae_version, "control_video"),
                                  (reference_latent, reference_vae_version, "reference_image")):
        if latent is None:
            continue
        if version is not None and version != "easyanimate-v5":
            raise EasyAnimateInputError(f"{name} was encoded by the {version} VAE; EasyAnimate V5.1 reads latents of the "
                             f"V5/V5.1 VAE: encode it with Load Video VAE (MotionKit) on EasyAnimateV5.1's vae/")
        check_latent(latent)
    if control_latent.shape[2] < 1:
        raise EasyAnimateInputError("control_video has 0 frames: encode a video of 4k+1 frames")
    if reference_latent is not None and reference_latent.shape[-2:] != control_latent.shape[-2:]:
        raise EasyAnimateInputError(f"reference_image is {reference_latent.shape[-1] * 8}x{reference_latent.shape[-2] * 8} pixels "
                         f"but control_video is {control_latent.shape[-1] * 8}x{control_latent.shape[-2] * 8}: resize "
                         f"the reference image to the video's size")
    channels = torch.cat([control_latent, conditioning.reference_channels(reference_latent, control_latent)], dim=1)
    latent = torch.zeros(batch_size, conditioning.LATENT_CHANNELS, *control_latent.shape[2:])
    return channels, latent


def attach(conditioning_list, key: str, value: torch.Tensor):
    """Copies of a CONDITIONING list with `key` set on every entry."""
    return [[c[0], {**c[1], key: value}] for c in conditioning_list]
