"""What the video-transformer nodes (CogVideoX, EasyAnimate V3 and V5.1) share: the loader node's inputs and
outputs, the scheduler node's, and the prompt inputs. Each family's node module subclasses these."""
from __future__ import annotations

from ..models import host

WEIGHT_DTYPES = ["default", "fp32", "bf16", "fp16", "fp8_e4m3fn"]
COMPUTE_DTYPE_TOOLTIP = "Compute dtype; default lets ComfyUI pick for your device (bf16 on recent GPUs, fp32 on CPU)."
PROMPT_INPUT = ("STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The prompt (or the negative prompt)."})
CONDITIONING_PAIR_INPUTS = {
    "positive": ("CONDITIONING", {"tooltip": "The prompt's conditioning."}),
    "negative": ("CONDITIONING", {"tooltip": "The negative prompt's conditioning."}),
}


class TransformerLoaderNode:
    """A transformer file of models/diffusion_models and a weight dtype -> MODEL; subclasses set the tooltips and
    `glue_loader()`."""
    MODEL_NAME_TOOLTIP = "The transformer file in models/diffusion_models (for a sharded folder pick any shard)."
    WEIGHT_DTYPE_TOOLTIP = COMPUTE_DTYPE_TOOLTIP

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (host.model_filenames("diffusion_models"), {"tooltip": cls.MODEL_NAME_TOOLTIP}),
            "weight_dtype": (WEIGHT_DTYPES, {"default": "default", "tooltip": cls.WEIGHT_DTYPE_TOOLTIP}),
        }}

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    def load(self, model_name, weight_dtype="default"):
        load_model = self.glue_loader()
        return (load_model(host.model_path("diffusion_models", model_name), weight_dtype),)

    def glue_loader(self):
        """The comfy_glue function (path, weight_dtype) -> ModelPatcher; refuses outside ComfyUI."""
        raise NotImplementedError


class SchedulerNode:
    """A model, steps and denoise -> SIGMAS; subclasses set the tooltips, the default step count and
    `schedule(model_sampling, steps, denoise)`."""
    MODEL_TOOLTIP = ""
    DEFAULT_STEPS = 50
    STEPS_TOOLTIP = "Sampling steps (published: 50)."
    DENOISE_TOOLTIP = "Fraction of the schedule to run, from its low-noise end."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": cls.MODEL_TOOLTIP}),
            "steps": ("INT", {"default": cls.DEFAULT_STEPS, "min": 1, "max": 1000, "tooltip": cls.STEPS_TOOLTIP}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": cls.DENOISE_TOOLTIP}),
        }}

    RETURN_TYPES = ("SIGMAS",)
    RETURN_NAMES = ("sigmas",)
    FUNCTION = "sigmas"

    def sigmas(self, model, steps, denoise=1.0):
        return (self.schedule(model.get_model_object("model_sampling"), steps, denoise),)

    def schedule(self, model_sampling, steps: int, denoise: float):
        raise NotImplementedError
