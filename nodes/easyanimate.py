"""EasyAnimate V5.1 nodes: the transformer as a MODEL, Qwen2-VL as a CLIP, empty latents, image-to-video and
control conditioning, and the pipelines' sigmas (with euler in SamplerCustomAdvanced: the pipelines' loop)."""
from __future__ import annotations

from ..models import host
from ..models.easyanimate import conditioning, schedule
from ..models.video_vae import LATENT_FAMILY_KEY
from .types import VIDEO_VAE
from .video_transformer import CONDITIONING_PAIR_INPUTS, SchedulerNode, TransformerLoaderNode

CATEGORY = "MotionKit/EasyAnimate"
SIZE_INPUTS = {
    "width": ("INT", {"default": 672, "min": 16, "max": 2048, "step": 16,
                      "tooltip": "Video width in pixels (multiple of 16); V5.1 was trained at 512-1024."}),
    "height": ("INT", {"default": 384, "min": 16, "max": 2048, "step": 16,
                       "tooltip": "Video height in pixels (multiple of 16)."}),
    "length": ("INT", {"default": 49, "min": 1, "max": 1024, "step": 4,
                       "tooltip": "Frames: 4k+1 (1, 5, ..., 49); V5.1 was trained with 49 frames at 8 fps."}),
    "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Videos sampled at once."}),
}


def _glue():
    host.require_comfyui("EasyAnimate V5.1")
    from ..models.comfy_glue import easyanimate_v51

    return easyanimate_v51


class MotionKitLoadEasyAnimateV51(TransformerLoaderNode):
    DESCRIPTION = ("Loads an EasyAnimate V5.1 transformer (12B or 7B; text-to-video, InP image-to-video or Control) "
                   "from models/diffusion_models as a MODEL for core KSampler: the transformer/ folder of the "
                   "published weights (diffusers or official layout; pick any shard) or one safetensors file. The "
                   "variant is read from the weights; a scheduler/ folder beside transformer/ sets the shift.")
    WEIGHT_DTYPE_TOOLTIP = ("Weight dtype; default lets ComfyUI pick for your device (bf16 on recent GPUs, fp32 on "
                            "CPU). fp8 halves the 12B model's memory; ComfyUI offloads what does not fit.")
    CATEGORY = CATEGORY

    def glue_loader(self):
        return _glue().load_easyanimate_v51


class MotionKitLoadEasyAnimateQwen2VL:
    DESCRIPTION = ("Loads EasyAnimate V5.1's text encoder, Qwen2-VL-7B (the text_encoder/ folder of the published "
                   "weights, pick any shard, or one safetensors file), from models/text_encoders as a CLIP. Core "
                   "CLIP Text Encode then gives exactly the pipeline's conditioning: the prompt in Qwen2-VL's chat "
                   "template, 256 tokens, the second-to-last layer.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder_name": (host.model_filenames("text_encoders"), {
                "tooltip": "The Qwen2-VL-7B file in models/text_encoders (for a sharded folder pick any shard)."}),
        }}

    RETURN_TYPES = ("CLIP",)
    RETURN_NAMES = ("clip",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, text_encoder_name):
        return (_glue().load_qwen2vl(host.model_path("text_encoders", text_encoder_name)),)


class MotionKitEmptyEasyAnimateV51Latent:
    DESCRIPTION = "An empty EasyAnimate V5.1 video latent [batch, 16, (length - 1) / 4 + 1, height / 8, width / 8]."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(SIZE_INPUTS)}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY

    def generate(self, width, height, length, batch_size=1):
        import torch

        conditioning.check_size(width, height)
        frames = conditioning.latent_frames(length)
        return ({"samples": torch.zeros(batch_size, conditioning.LATENT_CHANNELS, frames, height // 8, width // 8,
                                        device=host.intermediate_device())},)


class MotionKitEasyAnimateV51ImageToVideo:
    DESCRIPTION = ("For EasyAnimate V5.1 InP models: the start image (and an optional end image) become the first "
                   "(and last) frame of a video whose other frames are blacked out; its latents, encoded with the "
                   "V5.1 VAE, and a mask of the frames to keep go to the model beside the noise, as in "
                   "EasyAnimateInpaintPipeline. Outputs the conditionings and the empty latent to sample.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **CONDITIONING_PAIR_INPUTS,
            "video_vae": (VIDEO_VAE, {"tooltip": "The EasyAnimate V5.1 VAE from Load Video VAE (MotionKit)."}),
            "start_image": ("IMAGE", {"tooltip": "The first frame; resized (centre crop) to width x height."}),
            **SIZE_INPUTS,
        }, "optional": {
            "end_image": ("IMAGE", {"tooltip": "Optional last frame; the video then moves from start to end."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "encode"
    CATEGORY = CATEGORY

    def encode(self, positive, negative, video_vae, start_image, width, height, length, batch_size=1, end_image=None):
        glue = _glue()
        channels, latent = glue.image_to_video(video_vae, start_image, end_image, width, height, length, batch_size)
        return (glue.attach(positive, glue.INPAINT_KEY, channels), glue.attach(negative, glue.INPAINT_KEY, channels),
                {"samples": latent})


class MotionKitEasyAnimateV51Control:
    DESCRIPTION = ("For EasyAnimate V5.1 Control models: the control video's latents (Canny, depth, pose or "
                   "trajectory video through Video VAE Encode with the V5.1 VAE) and an optional reference image's "
                   "latent go to the model beside the noise, as in EasyAnimateControlPipeline. Outputs the "
                   "conditionings and an empty latent of the control video's size and length.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **CONDITIONING_PAIR_INPUTS,
            "control_video": ("LATENT", {"tooltip": "The control video encoded by Video VAE Encode (MotionKit) with "
                                                    "the V5.1 VAE; its size and frames set the video's."}),
            "batch_size": SIZE_INPUTS["batch_size"],
        }, "optional": {
            "reference_image": ("LATENT", {"tooltip": "Optional: a start image encoded with the V5.1 VAE (one frame, "
                                                      "same size), shown to the model as the reference."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "encode"
    CATEGORY = CATEGORY

    def encode(self, positive, negative, control_video, batch_size=1, reference_image=None):
        glue = _glue()
        reference = reference_image["samples"] if reference_image is not None else None
        version = reference_image.get(LATENT_FAMILY_KEY) if reference_image is not None else None
        channels, latent = glue.control_channels(control_video["samples"], reference, control_video.get(LATENT_FAMILY_KEY),
                                                 version, batch_size)
        return (glue.attach(positive, glue.CONTROL_KEY, channels), glue.attach(negative, glue.CONTROL_KEY, channels),
                {"samples": latent})


class MotionKitEasyAnimateV51Scheduler(SchedulerNode):
    DESCRIPTION = ("The V5.1 pipelines' flow-matching sigmas (FlowMatchEulerDiscreteScheduler with the model's shift; "
                   "the published dynamic shifting with mu=1) as SIGMAS: with the euler sampler in "
                   "SamplerCustomAdvanced this is the pipelines' loop. KSampler's 'normal' scheduler gives the same "
                   "sigmas for a static shift and nearly the same for the published dynamic one.")
    MODEL_TOOLTIP = "An EasyAnimate V5.1 model (its shift and shifting mode are used)."
    DENOISE_TOOLTIP = "The pipelines' strength: the last int(steps * denoise) steps run."
    CATEGORY = CATEGORY

    def schedule(self, model_sampling, steps, denoise):
        return schedule.flow_sigmas(steps, float(model_sampling.shift), getattr(model_sampling, "dynamic_shifting", False),
                                    denoise)


NODE_CLASS_MAPPINGS = {
    "MotionKitLoadEasyAnimateV51": MotionKitLoadEasyAnimateV51,
    "MotionKitLoadEasyAnimateQwen2VL": MotionKitLoadEasyAnimateQwen2VL,
    "MotionKitEmptyEasyAnimateV51Latent": MotionKitEmptyEasyAnimateV51Latent,
    "MotionKitEasyAnimateV51ImageToVideo": MotionKitEasyAnimateV51ImageToVideo,
    "MotionKitEasyAnimateV51Control": MotionKitEasyAnimateV51Control,
    "MotionKitEasyAnimateV51Scheduler": MotionKitEasyAnimateV51Scheduler,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitLoadEasyAnimateV51": "Load EasyAnimate V5.1 (MotionKit)",
    "MotionKitLoadEasyAnimateQwen2VL": "Load EasyAnimate Qwen2-VL (MotionKit)",
    "MotionKitEmptyEasyAnimateV51Latent": "Empty EasyAnimate V5.1 Latent (MotionKit)",
    "MotionKitEasyAnimateV51ImageToVideo": "EasyAnimate V5.1 Image to Video (MotionKit)",
    "MotionKitEasyAnimateV51Control": "EasyAnimate V5.1 Control (MotionKit)",
    "MotionKitEasyAnimateV51Scheduler": "EasyAnimate V5.1 Scheduler (MotionKit)",
}
