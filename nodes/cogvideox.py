"""CogVideoX nodes: load the transformer as a ComfyUI MODEL, encode text to 226 T5 tokens, its schedule."""
from __future__ import annotations

from ..models import host
from ..models.cogvideox import schedule
from ..models.cogvideox.sampling import OFFICIAL_SAMPLERS
from ..models.cogvideox.text import fixed_length_t5_tokens
from .video_transformer import CONDITIONING_PAIR_INPUTS, PROMPT_INPUT, SchedulerNode, TransformerLoaderNode

CATEGORY = "MotionKit/CogVideoX"


class MotionKitLoadCogVideoX(TransformerLoaderNode):
    DESCRIPTION = ("Loads a CogVideoX-2B/5B/5B-I2V transformer (diffusers format: one safetensors file or the shards "
                   "of a transformer/ folder) from models/diffusion_models as a MODEL for core KSampler.")
    CATEGORY = CATEGORY

    def glue_loader(self):
        host.require_comfyui("Load CogVideoX (MotionKit)")
        from ..models.comfy_glue import cogvideox as comfy_glue

        return comfy_glue.load_cogvideox


class MotionKitCogVideoXTextEncode:
    DESCRIPTION = ("Encodes a prompt with T5-XXL (load it with core Load CLIP, type sd3) into the 226-token "
                   "conditioning CogVideoX was trained with: truncated to 226 tokens and padded with T5's pad token.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP", {"tooltip": "A T5-XXL text encoder (core Load CLIP with type sd3)."}),
            "text": PROMPT_INPUT,
            "max_tokens": ("INT", {"default": 226, "min": 1, "max": 4096,
                                   "tooltip": "Token count of the conditioning; CogVideoX 1.0 uses 226."}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY

    def encode(self, clip, text, max_tokens=226):
        tokens = fixed_length_t5_tokens(clip.tokenize(text), max_tokens)
        return (clip.encode_from_tokens_scheduled(tokens),)


class MotionKitLoadT5:
    DESCRIPTION = ("Loads a T5 v1.1 encoder of any size from models/text_encoders as a CLIP (T5-XXL for CogVideoX, or "
                   "a smaller one), reading its size from the weights; core Load CLIP (type sd3) also loads T5-XXL.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "t5_name": (host.model_filenames("text_encoders"), {
                "tooltip": "The T5 encoder file in models/text_encoders (e.g. t5xxl_fp16.safetensors)."}),
        }}

    RETURN_TYPES = ("CLIP",)
    RETURN_NAMES = ("clip",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, t5_name):
        host.require_comfyui("Load T5 (MotionKit)")
        from ..models.comfy_glue import cogvideox as comfy_glue

        return (comfy_glue.load_t5(host.model_path("text_encoders", t5_name)),)


class MotionKitCogVideoXScheduler(SchedulerNode):
    DESCRIPTION = ("CogVideoX's DDIM/DPM timesteps ('trailing' spacing) as SIGMAS for SamplerCustom(Advanced); "
                   "core 'simple' matches them only when 1000 is divisible by the step count.")
    MODEL_TOOLTIP = "A CogVideoX model from Load CogVideoX (MotionKit)."
    CATEGORY = CATEGORY

    def schedule(self, model_sampling, steps, denoise):
        return schedule.sigmas_for_timesteps(model_sampling.sigmas, schedule.trailing_timesteps(steps), denoise)


class MotionKitCogVideoXSampler:
    DESCRIPTION = ("CogVideoX's official scheduler step as a SAMPLER for SamplerCustomAdvanced / SamplerCustom: it "
                   "evaluates the model at the sigmas' timesteps and moves the latent to t - 1000 // steps, as "
                   "diffusers' CogVideoXDDIMScheduler / CogVideoXDPMScheduler do, so any step count reproduces the "
                   "official loop. Give it the sigmas of CogVideoX Scheduler (MotionKit) (denoise 1).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sampler": (list(OFFICIAL_SAMPLERS), {
                "default": "ddim (official)",
                "tooltip": "ddim (official): CogVideoXDDIMScheduler, deterministic. dpm (official): "
                           "CogVideoXDPMScheduler, the stochastic DPM-Solver++(2M) the Tora and CogVideoX-5B demos "
                           "use; its noise comes from the sampler's seed, drawn as the official pipelines draw it."}),
        }}

    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    FUNCTION = "get_sampler"
    CATEGORY = CATEGORY

    def get_sampler(self, sampler):
        host.require_comfyui("CogVideoX Sampler (MotionKit)")
        from ..models.comfy_glue import cogvideox as comfy_glue

        return (comfy_glue.official_sampler(sampler),)


class MotionKitCogVideoXDynamicCFG:
    DESCRIPTION = ("CogVideoX's dynamic guidance (the pipelines' use_dynamic_cfg, recommended for 5B): the CFG scale "
                   "of the sampler grows along a cosine ramp over the steps instead of staying constant.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "A CogVideoX model; the sampler's cfg is the ramp's scale."})}}

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "patch"
    CATEGORY = CATEGORY

    def patch(self, model):
        host.require_comfyui("CogVideoX Dynamic CFG (MotionKit)")
        from ..models.comfy_glue import cogvideox as comfy_glue

        return (comfy_glue.with_dynamic_cfg(model),)


class MotionKitCogVideoXImageToVideo:
    DESCRIPTION = ("For CogVideoX-5B-I2V: attaches the start image's latent (Video VAE Encode of one frame with the "
                   "CogVideoX VAE) to both conditionings; the model sees it, zero-padded over time, beside the noise.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **CONDITIONING_PAIR_INPUTS,
            "start_latent": ("LATENT", {"tooltip": "The start image encoded by the CogVideoX VAE (its first latent "
                                                   "frame is used); same size as the sampled video."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "attach"
    CATEGORY = CATEGORY

    def attach(self, positive, negative, start_latent):
        image = start_latent["samples"][:, :, :1]
        return tuple([[c[0], {**c[1], "concat_latent_image": image}] for c in cond] for cond in (positive, negative))


NODE_CLASS_MAPPINGS = {
    "MotionKitLoadCogVideoX": MotionKitLoadCogVideoX,
    "MotionKitCogVideoXTextEncode": MotionKitCogVideoXTextEncode,
    "MotionKitCogVideoXScheduler": MotionKitCogVideoXScheduler,
    "MotionKitCogVideoXSampler": MotionKitCogVideoXSampler,
    "MotionKitLoadT5": MotionKitLoadT5,
    "MotionKitCogVideoXDynamicCFG": MotionKitCogVideoXDynamicCFG,
    "MotionKitCogVideoXImageToVideo": MotionKitCogVideoXImageToVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitLoadCogVideoX": "Load CogVideoX (MotionKit)",
    "MotionKitCogVideoXTextEncode": "CogVideoX Text Encode (MotionKit)",
    "MotionKitCogVideoXScheduler": "CogVideoX Scheduler (MotionKit)",
    "MotionKitCogVideoXSampler": "CogVideoX Sampler (MotionKit)",
    "MotionKitLoadT5": "Load T5 (MotionKit)",
    "MotionKitCogVideoXDynamicCFG": "CogVideoX Dynamic CFG (MotionKit)",
    "MotionKitCogVideoXImageToVideo": "CogVideoX Image to Video (MotionKit)",
}
