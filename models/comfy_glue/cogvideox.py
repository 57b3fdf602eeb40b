"""CogVideoX as a native ComfyUI model: model class, sampling, latent format, loading.

Imported only inside ComfyUI. The pinned ComfyUI has no CogVideoX, so
this module provides one the core samplers drive: `CogVideoXModel` is a
`comfy.model_base.BaseModel` with v-prediction on CogVideoX's zero-terminal-SNR
scaled-linear schedule, wrapped in a ModelPatcher like any core model.
"""
from __future__ import annotations

import logging
import os

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.samplers
import comfy.sd
import comfy.supported_models_base
import comfy.text_encoders.sd3_clip
import comfy.utils
import torch

from .. import host, model_file
from ..cogvideox import keys, sampling
from ..cogvideox.transformer import CogVideoXTransformer

log = logging.getLogger("MotionKit")

WEIGHT_DTYPES = {"default": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                 "fp8_e4m3fn": torch.float8_e4m3fn}
HALF_DTYPES = (torch.float16, torch.float8_e4m3fn, torch.float8_e5m2)


def cogvideox_alphas_cumprod(snr_shift_scale: float = 1.0, steps: int = 1000) -> torch.Tensor:
    """alpha-bar of CogVideoXDDIMScheduler: scaled-linear betas 0.00085..0.012, SNR shift, zero terminal SNR.

    Zero terminal SNR after Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed" (2023), alg. 1.
    """
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, steps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    alphas_cumprod = alphas_cumprod / (snr_shift_scale + (1 - snr_shift_scale) * alphas_cumprod)
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    return root ** 2


TERMINAL_ALPHA_CUMPROD = 4.8973451890853435e-08
"""ComfyUI's stand-in for alpha-bar = 0 at the last timestep (the same value as its own zsnr schedules)."""


class CogVideoXLatentFormat(comfy.latent_formats.LatentFormat):
    """16-channel 3D latents, already multiplied by the VAE's scaling factor (0.7) when encoded."""
    latent_channels = 16
    latent_dimensions = 3
    scale_factor = 1.0


class CogVideoXModelSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.V_PREDICTION):
    """Discrete v-prediction sampling with CogVideoX's schedule (sigma = sqrt((1 - a) / a))."""

    def __init__(self, model_config=None):
        torch.nn.Module.__init__(self)
        settings = model_config.sampling_settings if model_config is not None else {}
        self.snr_shift_scale = settings.get("snr_shift_scale", 1.0)
        alphas_cumprod = cogvideox_alphas_cumprod(self.snr_shift_scale)
        alphas_cumprod[-1] = TERMINAL_ALPHA_CUMPROD
        self.num_timesteps = len(alphas_cumprod)
        self.linear_start, self.linear_end, self.zsnr = 0.00085, 0.012, True
        self.set_sigmas(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
        self.sigma_data = 1.0


class CogVideoXModelConfig(comfy.supported_models_base.BASE):
    unet_config = {"image_model": "cogvideox"}
    unet_extra_config = {}
    sampling_settings = {"snr_shift_scale": 1.0}
    latent_format = CogVideoXLatentFormat
    supported_inference_dtypes = [torch.bfloat16, torch.float16, torch.float32]
    memory_usage_factor = 1.6

    def __init__(self, unet_config, snr_shift_scale: float):
        super().__init__(unet_config)
        self.sampling_settings["snr_shift_scale"] = snr_shift_scale
        self.memory_usage_factor = self.unet_config.get("num_attention_heads", 48) * 64 / 3072 * 1.6

    def get_model(self, state_dict, prefix="", device=None):
        return CogVideoXModel(self, device=device)


class CogVideoXModel(comfy.model_base.BaseModel):
    """ComfyUI model around CogVideoXTransformer: text context -> c_crossattn, v-prediction output."""

    def __init__(self, model_config, device=None):
        super().__init__(model_config, comfy.model_base.ModelType.V_PREDICTION, device=device,
                         unet_model=CogVideoXTransformer)
        self.model_sampling = CogVideoXModelSampling(model_config)

    def extra_conds(self, **kwargs):
        return text_and_concat_conds(self, kwargs)

    def concat_cond(self, **kwargs):
        """5B-I2V: the start image's latent frames, zero-padded over time, as extra input channels."""
        noise = kwargs.get("noise", None)
        extra = self.diffusion_model.in_channels - self.latent_format.latent_channels
        if noise is None or extra <= 0:
            return None
        image = kwargs.get("concat_latent_image", None)
        shape = list(noise.shape)
        shape[1] = extra
        padded = torch.zeros(shape, dtype=noise.dtype, device=noise.device)
        if image is None:
            return padded
        if image.ndim != 5 or image.shape[1] != extra or image.shape[-2:] != noise.shape[-2:]:
            raise ValueError(f"the start image latent has shape {tuple(image.shape)}, but this CogVideoX I2V model "
                             f"samples {tuple(noise.shape)}: encode a start image of the video's size with the "
                             f"CogVideoX VAE")
        frames = min(image.shape[2], noise.shape[2])
        image = comfy.utils.resize_to_batch_size(image[:, :, :frames].to(noise), noise.shape[0])
        padded[:, :, :frames] = image
        return padded


def text_and_concat_conds(model, kwargs: dict) -> dict:
    """The conds the video transformers read: the text as c_crossattn, model.concat_cond(...) as c_concat."""
    out = {}
    cross_attn = kwargs.get("cross_attn", None)
    if cross_attn is not None:
        out["c_crossattn"] = comfy.conds.CONDCrossAttn(cross_attn)
    concat = model.concat_cond(**kwargs)
    if concat is not None:
        out["c_concat"] = comfy.conds.CONDNoiseShape(concat)
    return out


def is_cogvideox(model_patcher) -> bool:
    return isinstance(getattr(model_patcher, "model", None), CogVideoXModel)


def load_cogvideox(path: str, weight_dtype: str = "default"):
    """A ModelPatcher holding the CogVideoX transformer of `path` (diffusers keys, one file or shards)."""
    state_dict = keys.read_sharded_state_dict(path, "CogVideoX transformer")
    return build_cogvideox(state_dict, f"'{os.path.basename(path)}'", keys.read_folder_config(path),
                           lambda config: keys.snr_shift_scale(path, config), weight_dtype)


def set_compute_dtype(config_obj, sd: dict, source: str, weight_dtype: str, load_device: torch.device) -> None:
    """The model config's inference dtype: `weight_dtype` ("default": ComfyUI's choice for the file and device);
    half precision on the CPU is refused naming the fix."""
    file_dtype = comfy.utils.weight_dtype(sd)
    wanted = WEIGHT_DTYPES[weight_dtype]
    if load_device.type == "cpu":
        half = wanted if wanted in HALF_DTYPES else (file_dtype if wanted is None and file_dtype in HALF_DTYPES else None)
        if half is not None:
            side = f"weight_dtype '{weight_dtype}'" if wanted is not None else f"{source} stores {half}"
            raise ValueError(f"{side}, but ComfyUI runs on the CPU, which cannot compute in {half}: "
                             f"set weight_dtype to 'fp32' (or load a bf16/fp32 file)")
    supported = config_obj.supported_inference_dtypes
    unet_dtype = wanted or comfy.model_management.unet_dtype(
        model_params=comfy.utils.calculate_parameters(sd), weight_dtype=file_dtype, supported_dtypes=supported)
    config_obj.set_inference_dtype(unet_dtype, comfy.model_management.unet_manual_cast(unet_dtype, load_device, supported))


def build_cogvideox(state_dict: dict, source: str = "the checkpoint", folder_config: dict | None = None,
                    snr_shift_scale=None, weight_dtype: str = "default"):
    """A ModelPatcher for a CogVideoX state dict (any supported key layout); snr_shift_scale(config) -> float."""
    sd = keys.detect(state_dict, source)
    config = keys.config_from_state_dict(sd, folder_config)
    load_device, offload = host.torch_device(), host.offload_device()
    shift = snr_shift_scale(config) if snr_shift_scale else (1.0 if config["use_rotary_positional_embeddings"] else 3.0)
    config_obj = CogVideoXModelConfig(config, snr_shift_scale=shift)
    set_compute_dtype(config_obj, sd, source, weight_dtype, load_device)
    model = config_obj.get_model(sd, "", device=offload)
    keys.check_keys(model.diffusion_model, sd, source)
    model.load_model_weights(sd, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)


# ---------------------------------------------------------------- T5 text encoder of any size
T5_BLOCK = "encoder.block.{}.layer.0.SelfAttention.q.weight"


def t5_config_from_state_dict(sd: dict, source: str = "the file") -> dict:
    """ComfyUI T5 config (t5xxl_model_config) read from the key shapes of a T5 encoder file."""
    needed = ("shared.weight", T5_BLOCK.format(0), "encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
              "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    missing = [k for k in needed if k not in sd]
    if missing:
        raise ValueError(f"{source} is not a T5 v1.1 encoder (as T5-XXL): missing {', '.join(missing)}")
    layers = 0
    while T5_BLOCK.format(layers) in sd:
        layers += 1
    heads = sd[needed[3]].shape[1]
    return dict(vocab_size=sd["shared.weight"].shape[0], d_model=sd["shared.weight"].shape[1], num_layers=layers,
                num_heads=heads, d_kv=sd[needed[1]].shape[0] // heads, d_ff=sd[needed[2]].shape[0])


def load_t5(path: str):
    """A CLIP (T5 only, SD3-type tokenizer) for a T5 v1.1 encoder file of any size, through ComfyUI's CLIP class."""
    source = f"'{os.path.basename(path)}'"
    sd = model_file.read_state_dict(path, "T5 text encoder")
    config = t5_config_from_state_dict(sd, source)
    sd3 = comfy.text_encoders.sd3_clip
    target = comfy.supported_models_base.ClipTarget(sd3.SD3Tokenizer, sd3.sd3_clip(
        clip_l=False, clip_g=False, t5=True, dtype_t5=comfy.utils.weight_dtype(sd)))
    clip = comfy.sd.CLIP(target, parameters=comfy.utils.calculate_parameters(sd),
                         model_options={"t5xxl_model_config": config})
    missing, unexpected = clip.load_sd(sd)
    missing = [k for k in missing if k != "logit_scale"]
    if missing or unexpected:
        raise ValueError(f"{source} does not fill the T5 encoder read from its shapes ({config}): missing "
                         f"{missing[:8]}, unexpected {unexpected[:8]}")
    return clip


# ---------------------------------------------------------------- the official DDIM / DPM steps
def official_sampler(name: str):
    """A core SAMPLER (comfy.samplers.KSAMPLER) that steps as the official scheduler `name` does."""
    step = sampling.OFFICIAL_SAMPLERS[name]

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        model_sampling = model.inner_model.inner_model.model_sampling
        if not isinstance(model_sampling, CogVideoXModelSampling):
            raise sampling.CogVideoXSamplerError(
                f"CogVideoX Sampler (MotionKit) ({name}) steps CogVideoX's own schedule; the sampled model is a "
                f"{type(model.inner_model.inner_model).__name__}: use a core sampler for it, or load a CogVideoX "
                f"model with Load CogVideoX (MotionKit)")

        def timestep_of(sigma):
            return int(round(float(model_sampling.timestep(sigma.reshape(1)).item())))

        return step(model, x, sigmas, extra_args, callback, disable,
                    alphas_cumprod=cogvideox_alphas_cumprod(model_sampling.snr_shift_scale), timestep_of=timestep_of)

    return comfy.samplers.KSAMPLER(sample)


# ---------------------------------------------------------------- dynamic CFG
def with_dynamic_cfg(model):
    """A clone whose CFG scale follows CogVideoX pipelines' `use_dynamic_cfg` (schedule.dynamic_cfg_scale)."""
    from ..cogvideox.schedule import dynamic_cfg_scale

    def cfg_function(args):
        sampling = args["model"].model_sampling
        timestep = float(sampling.timestep(args["sigma"]).reshape(-1)[0])
        sigmas = args["model_options"].get("transformer_options", {}).get("sample_sigmas")
        steps = len(sigmas) - 1 if sigmas is not None else 50
        scale = dynamic_cfg_scale(args["cond_scale"], timestep, steps)
        return args["uncond"] + (args["cond"] - args["uncond"]) * scale

    patched = model.clone()
    patched.set_model_sampler_cfg_function(cfg_function)
    return patched
