"""AnimateDiff nodes: load a motion module and MotionLoRAs, apply them to an SD1.5/SDXL MODEL."""
from ..models import host
from ..models.animatediff import keys, loader, schedule
from .types import MOTION_LORA, MOTION_MODULE


class MotionKitLoadMotionModule:
    DESCRIPTION = ("Loads an AnimateDiff motion module (v1, v2, v3, SDXL beta, HotshotXL, AnimateLCM; original or "
                   "diffusers MotionAdapter layout) from models/animatediff_models. The version is read from the keys.")
    CATEGORY = "MotionKit/AnimateDiff"
    RETURN_TYPES = (MOTION_MODULE,)
    RETURN_NAMES = ("motion_module",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (host.model_filenames("animatediff_models"),
                           {"tooltip": "Motion module file in ComfyUI/models/animatediff_models (e.g. mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt)."}),
        }}

    def load(self, model_name):
        return (loader.load_motion_module(host.model_path("animatediff_models", model_name)),)


class MotionKitLoadMotionLoRA:
    DESCRIPTION = ("Loads a MotionLoRA (camera motions such as zoom or pan) from models/animatediff_motion_lora. "
                   "Chain several through prev_motion_lora; each keeps its own strength and stays low-rank in memory.")
    CATEGORY = "MotionKit/AnimateDiff"
    RETURN_TYPES = (MOTION_LORA,)
    RETURN_NAMES = ("motion_lora",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "lora_name": (host.model_filenames("animatediff_motion_lora"),
                              {"tooltip": "MotionLoRA file in ComfyUI/models/animatediff_motion_lora (e.g. v2_lora_ZoomIn.ckpt)."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                       "tooltip": "How strongly this MotionLoRA changes the motion module (0 = off, 1 = as trained)."}),
            },
            "optional": {
                "prev_motion_lora": (MOTION_LORA, {"tooltip": "MotionLoRAs loaded before this one; they are applied together."}),
            },
        }

    def load(self, lora_name, strength, prev_motion_lora=None):
        lora = loader.load_motion_lora(host.model_path("animatediff_motion_lora", lora_name), strength)
        return (list(prev_motion_lora or []) + [lora],)


class MotionKitApplyMotionModule:
    DESCRIPTION = ("Returns a copy of the SD1.5/SDXL MODEL that animates: the motion module is injected into ComfyUI's "
                   "own UNet and the frames are the latent batch. Sample with the KSampler; for more frames than the "
                   "module holds add ComfyUI's 'Context Windows (Manual)' node after this one.")
    CATEGORY = "MotionKit/AnimateDiff"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.5 or SDXL model (from Load Checkpoint, after any LoRA such as the v3 domain adapter)."}),
                "motion_module": (MOTION_MODULE, {"tooltip": "From Load Motion Module; its base model family must match the model's."}),
                "motion_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                                           "tooltip": "Multiplies what the motion module adds to each block (0 = still images, 1 = as trained)."}),
                "groupnorm": (list(keys.GROUPNORM_MODES),
                              {"tooltip": "How the UNet's ResBlock GroupNorms see frames. auto: as the module was trained "
                                          "(v1: across all frames of a video; others: per frame)."}),
            },
            "optional": {
                "motion_lora": (MOTION_LORA, {"tooltip": "MotionLoRAs from Load MotionLoRA, applied low-rank to the motion module's attention."}),
            },
        }

    def apply(self, model, motion_module, motion_scale, groupnorm, motion_lora=None):
        host.require_comfyui("Apply Motion Module (MotionKit)")
        from ..models.comfy_glue import animatediff as injection

        return (injection.apply_motion_module(model, motion_module, motion_lora, motion_scale, groupnorm),)


class MotionKitAnimateDiffSchedule:
    DESCRIPTION = ("Sets the MODEL's noise schedule. AnimateDiff's motion modules were trained with a linear beta "
                   "schedule from 0.00085 to 0.012; SD checkpoints default to ComfyUI's scaled linear one.")
    CATEGORY = "MotionKit/AnimateDiff"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5/SDXL model (with or without a motion module)."}),
            "beta_schedule": (list(schedule.SCHEDULES), {"tooltip": "animatediff linear: the schedule the motion "
                                                                       "modules were trained with; sd scaled linear: ComfyUI's SD default."}),
        }}

    def apply(self, model, beta_schedule):
        host.require_comfyui("AnimateDiff Beta Schedule (MotionKit)")
        from ..models.comfy_glue import animatediff as injection

        return (injection.animatediff_beta_schedule(model, beta_schedule),)


NODE_CLASS_MAPPINGS = {
    "MotionKitLoadMotionModule": MotionKitLoadMotionModule,
    "MotionKitLoadMotionLoRA": MotionKitLoadMotionLoRA,
    "MotionKitApplyMotionModule": MotionKitApplyMotionModule,
    "MotionKitAnimateDiffSchedule": MotionKitAnimateDiffSchedule,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitLoadMotionModule": "Load Motion Module (MotionKit)",
    "MotionKitLoadMotionLoRA": "Load MotionLoRA (MotionKit)",
    "MotionKitApplyMotionModule": "Apply Motion Module (MotionKit)",
    "MotionKitAnimateDiffSchedule": "AnimateDiff Beta Schedule (MotionKit)",
}
