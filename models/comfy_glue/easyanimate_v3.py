"""EasyAnimate V3 as a native ComfyUI model: model class, sampling, latent format, loading.

Imported only inside ComfyUI. `EasyAnimateV3Model` is a
`comfy.model_base.BaseModel` with epsilon prediction on the V3 schedule (betas linear 1e-4..0.02),
so core KSampler / SamplerCustom drive it; its inputs are checked
when the sampler prepares the conditioning, before the first step.
"""
from __future__ import annotations

import os

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.supported_models_base
import comfy.utils
import torch

from .. import host
from ..cogvideox.keys import read_sharded_state_dict
from ..easyanimate import v3_keys, v3_schedule
from ..easyanimate.v3_transformer import EasyAnimateV3Transformer
from .cogvideox import set_compute_dtype, text_and_concat_conds

LATENT_CHANNELS = 4
TEMPORAL_RATIO = 4
"""The V3 slice VAE: 8 frames per 2 latent frames."""
INPAINT_NODE = "EasyAnimate V3 Inpaint Conditioning (MotionKit)"
EMPTY_NODE = "EasyAnimate V3 Empty Latent (MotionKit)"


class EasyAnimateV3LatentFormat(comfy.latent_formats.LatentFormat):
    """4-channel 3D latents of the V3 slice VAE, already multiplied by its scaling factor (0.1825)."""
    latent_channels = LATENT_CHANNELS
    latent_dimensions = 3
    scale_factor = 1.0


class EasyAnimateV3ModelSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
    """Discrete epsilon prediction on the V3 schedule, sigmas as the official scheduler computes them."""

    def __init__(self, model_config=None):
        torch.nn.Module.__init__(self)
        self.num_timesteps = v3_schedule.TRAIN_STEPS
        self.linear_start, self.linear_end, self.zsnr = v3_schedule.BETA_START, v3_schedule.BETA_END, False
        self.set_sigmas(v3_schedule.model_sigmas())
        self.sigma_data = 1.0


class EasyAnimateV3ModelConfig(comfy.supported_models_base.BASE):
    unet_config = {"image_model": "easyanimate_v3"}
    unet_extra_config = {}
    sampling_settings = {}
    latent_format = EasyAnimateV3LatentFormat
    supported_inference_dtypes = [torch.bfloat16, torch.float16, torch.float32]
    memory_usage_factor = 1.1
    """ComfyUI's estimate (latent pixels x 2 bytes x 0.01 MiB x factor) covers the traced peak of
    bench/easyanimate_v3.py: factor 1.06 at 36 frames, 0.61 at 144 frames (960x960, batch 2)."""

    def get_model(self, state_dict, prefix="", device=None):
        return EasyAnimateV3Model(self, device=device)


def check_latent(noise: torch.Tensor) -> None:
    """The latent must be V3's: 4 channels, 1 or an even number of frames (8 video frames per 2)."""
    if noise.ndim != 5:
        raise ValueError(f"EasyAnimate V3 samples video latents [B, 4, T, H, W]; got shape {list(noise.shape)}: "
                         f"start from {EMPTY_NODE}")
    channels, frames = noise.shape[1], noise.shape[2]
    if channels != LATENT_CHANNELS:
        raise ValueError(f"the latent has {channels} channels, but EasyAnimate V3 (slice VAE) latents have "
                         f"{LATENT_CHANNELS} (16 are CogVideoX or EasyAnimate V5 latents): start from {EMPTY_NODE}")
    if frames == 0:
        raise ValueError(f"the latent has 0 frames: set frames to 1 (an image) or a multiple of 8 in {EMPTY_NODE}")
    if frames != 1 and frames % 2:
        raise ValueError(f"the latent has {frames} frames; EasyAnimate V3 makes 1 or an even number (8 video frames "
                         f"per 2 latent frames): generate {frames // 2 * 8} or {(frames // 2 + 1) * 8} frames")


class EasyAnimateV3Model(comfy.model_base.BaseModel):
    """ComfyUI model around EasyAnimateV3Transformer: T5 text -> c_crossattn, InP latents -> c_concat,
    CLIP image embedding -> clip_image_embeds; epsilon prediction."""

    def __init__(self, model_config, device=None):
        super().__init__(model_config, comfy.model_base.ModelType.EPS, device=device,
                         unet_model=EasyAnimateV3Transformer)
        self.model_sampling = EasyAnimateV3ModelSampling(model_config)

    def extra_conds(self, **kwargs):
        noise = kwargs.get("noise", None)
        if noise is not None:
            check_latent(noise)
        out = text_and_concat_conds(self, kwargs)
        image = kwargs.get("clip_image_embeds", None)
        if image is not None and self.diffusion_model.clip_projection is not None:
            out["clip_image_embeds"] = comfy.conds.CONDRegular(image)
            out["clip_apply_ratio"] = comfy.conds.CONDConstant(float(kwargs.get("clip_apply_ratio", 0.5)))
        return out

    def concat_cond(self, **kwargs):
        """InP: the mask latents and the masked-video latents (8 channels) beside the noise."""
        extra = self.diffusion_model.in_channels - LATENT_CHANNELS
        noise = kwargs.get("noise", None)
        if extra <= 0 or noise is None:
            return None
        inpaint = kwargs.get("easyanimate_inpaint_latents", None)
        if inpaint is None:
            raise ValueError(f"this EasyAnimate V3 model is an InP model ({self.diffusion_model.in_channels} input "
                             f"channels): it needs the mask and masked-video latents even for text-to-video; add "
                             f"{INPAINT_NODE} between the text encoders and the sampler")
        if inpaint.shape[1] != extra or inpaint.shape[2:] != noise.shape[2:]:
            raise ValueError(f"the inpaint latents have shape {list(inpaint.shape)}, but the sampled latent is "
                             f"{list(noise.shape)}: feed {INPAINT_NODE} the same latent the sampler gets")
        return comfy.utils.resize_to_batch_size(inpaint.to(noise), noise.shape[0])


def is_easyanimate_v3(model_patcher) -> bool:
    return isinstance(getattr(model_patcher, "model", None), EasyAnimateV3Model)


def load_easyanimate_v3(path: str, weight_dtype: str = "default"):
    """A ModelPatcher holding the V3 transformer of `path` (official keys, one file or diffusers shards)."""
    state_dict = read_sharded_state_dict(path, "EasyAnimate V3 transformer")
    return build_easyanimate_v3(state_dict, f"'{os.path.basename(path)}'", v3_keys.read_folder_config(path),
                                weight_dtype)


def build_easyanimate_v3(state_dict: dict, source: str = "the checkpoint", folder_config: dict | None = None,
                         weight_dtype: str = "default"):
    sd = v3_keys.detect(state_dict, source)
    config = v3_keys.config_from_state_dict(sd, folder_config, source)
    load_device, offload = host.torch_device(), host.offload_device()
    config_obj = EasyAnimateV3ModelConfig(config)
    set_compute_dtype(config_obj, sd, source, weight_dtype, load_device)
    model = config_obj.get_model(sd, "", device=offload)
    v3_keys.check_keys(model.diffusion_model, sd, source)
    model.load_model_weights(sd, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)
