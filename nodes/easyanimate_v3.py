"""EasyAnimate V3 nodes: the transformer as a ComfyUI MODEL, its text encoding, latent, InP inputs and schedule."""
from __future__ import annotations

from ..models import host
from ..models.easyanimate import v3_schedule, v3_video
from .types import VIDEO_VAE
from .video_transformer import CONDITIONING_PAIR_INPUTS, PROMPT_INPUT, SchedulerNode, TransformerLoaderNode

CATEGORY = "MotionKit/EasyAnimate"


class MotionKitLoadEasyAnimateV3(TransformerLoaderNode):
    DESCRIPTION = ("Loads an EasyAnimate V3 transformer (EasyAnimateV3-XL-2-InP-512x512/768x768/960x960: the "
                   "transformer/ folder's diffusion_pytorch_model.safetensors, or a single converted file) from "
                   "models/diffusion_models as a MODEL for core KSampler. Text: T5-XXL; latents: the V3 slice VAE.")
    MODEL_NAME_TOOLTIP = ("The V3 transformer file in models/diffusion_models (a sharded folder: pick any shard; "
                          "its config.json is read when it sits beside the file).")
    CATEGORY = CATEGORY

    def glue_loader(self):
        host.require_comfyui("MotionKit Load EasyAnimate V3")
        from ..models.comfy_glue import easyanimate_v3

        return easyanimate_v3.load_easyanimate_v3


class MotionKitEasyAnimateV3TextEncode:
    DESCRIPTION = ("Encodes a prompt with T5-XXL (Load T5 (MotionKit), or core Load CLIP type sd3) as the V3 pipeline "
                   "does: lower-cased, at most 120 tokens with the end token, no padding (the pipeline masks it out).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP", {"tooltip": "A T5-XXL text encoder."}),
            "text": PROMPT_INPUT,
            "max_tokens": ("INT", {"default": v3_video.MAX_TEXT_TOKENS, "min": 1, "max": 4096,
                                   "tooltip": "Most tokens kept, the end token included (the V3 pipelines: 120)."}),
            "lowercase": ("BOOLEAN", {"default": True,
                                      "tooltip": "Lower-case and strip the prompt, as the pipeline's text "
                                                 "preprocessing does when bs4/ftfy are not installed."}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY

    def encode(self, clip, text, max_tokens=v3_video.MAX_TEXT_TOKENS, lowercase=True):
        prompt = v3_video.official_caption(text) if lowercase else text
        return (clip.encode_from_tokens_scheduled(v3_video.v3_text_tokens(clip.tokenize(prompt), max_tokens)),)


class MotionKitEasyAnimateV3EmptyLatent:
    DESCRIPTION = ("An empty EasyAnimate V3 latent: 4 channels, 2 latent frames per 8 video frames (1 for an "
                   "image), 1/8 of the size. V3 was trained at up to 960x960 and 144 frames.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 672, "min": 16, "max": 4096, "step": 16,
                              "tooltip": "Video width in pixels (a multiple of 16)."}),
            "height": ("INT", {"default": 384, "min": 16, "max": 4096, "step": 16,
                               "tooltip": "Video height in pixels (a multiple of 16)."}),
            "frames": ("INT", {"default": 144, "min": 1, "max": 4096, "step": 1,
                               "tooltip": "Video frames: 1 (an image) or a multiple of 8 (others are cut down to "
                                          "one); V3 was trained with 144."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Videos sampled at once."}),
        }}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY

    def generate(self, width, height, frames, batch_size=1):
        return ({"samples": v3_video.empty_latent(batch_size, width, height, frames, host.intermediate_device())},)


class MotionKitEasyAnimateV3Inpaint:
    DESCRIPTION = ("The InP inputs of EasyAnimate V3 (the published models are all InP): the mask and the masked "
                   "video encoded by the V3 slice VAE (Video VAE Encode), attached to both conditionings. Without "
                   "images it makes the text-to-video inputs; with a start (and end) image, image-to-video. A CLIP "
                   "vision output of the start image joins the positive prompt for the last part of the steps.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **CONDITIONING_PAIR_INPUTS,
            "video_vae": (VIDEO_VAE, {"tooltip": "The EasyAnimate V3 slice VAE (Load Video VAE)."}),
            "latent": ("LATENT", {"tooltip": "The latent the sampler starts from (EasyAnimate V3 Empty Latent); sets "
                                             "the size and length."}),
            "clip_apply_ratio": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                           "tooltip": "Fraction of the steps, at the end, that see the CLIP image "
                                                      "tokens (the pipeline's clip_apply_ratio, 0.5)."}),
        }, "optional": {
            "start_image": ("IMAGE", {"tooltip": "Frames the video starts with (image-to-video); resized to the size."}),
            "end_image": ("IMAGE", {"tooltip": "Frames the video ends with (needs start_image)."}),
            "clip_vision_output": ("CLIP_VISION_OUTPUT", {
                "tooltip": "CLIP Vision Encode of the start image (the V3 folder's image_encoder, CLIP ViT-L/14)."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "attach"
    CATEGORY = CATEGORY

    def attach(self, positive, negative, video_vae, latent, clip_apply_ratio=0.5, start_image=None, end_image=None,
               clip_vision_output=None):
        inpaint = v3_video.inpaint_latents(video_vae, latent["samples"], start_image, end_image)
        extra = {"easyanimate_inpaint_latents": inpaint}
        image = {} if clip_vision_output is None else {"clip_image_embeds": clip_vision_output.image_embeds,
                                                       "clip_apply_ratio": clip_apply_ratio}
        return ([[c[0], {**c[1], **extra, **image}] for c in positive],
                [[c[0], {**c[1], **extra}] for c in negative])


class MotionKitEasyAnimateV3Scheduler(SchedulerNode):
    DESCRIPTION = ("The official V3 sampling schedule as SIGMAS for SamplerCustom: DPMSolverMultistepScheduler's "
                   "'linspace' timesteps (use sampler dpmpp_2m for the official DPM++ loop). KSampler with dpmpp_2m "
                   "and sgm_uniform comes close (unrounded timesteps).")
    MODEL_TOOLTIP = "An EasyAnimate V3 model."
    DEFAULT_STEPS = 25
    STEPS_TOOLTIP = "Sampling steps (official: 25)."
    CATEGORY = CATEGORY

    def schedule(self, model_sampling, steps, denoise):
        return v3_schedule.sigmas_for_timesteps(model_sampling.sigmas, v3_schedule.linspace_timesteps(steps), denoise)


NODE_CLASS_MAPPINGS = {
    "MotionKitLoadEasyAnimateV3": MotionKitLoadEasyAnimateV3,
    "MotionKitEasyAnimateV3TextEncode": MotionKitEasyAnimateV3TextEncode,
    "MotionKitEasyAnimateV3EmptyLatent": MotionKitEasyAnimateV3EmptyLatent,
    "MotionKitEasyAnimateV3Inpaint": MotionKitEasyAnimateV3Inpaint,
    "MotionKitEasyAnimateV3Scheduler": MotionKitEasyAnimateV3Scheduler,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitLoadEasyAnimateV3": "Load EasyAnimate V3 (MotionKit)",
    "MotionKitEasyAnimateV3TextEncode": "EasyAnimate V3 Text Encode (MotionKit)",
    "MotionKitEasyAnimateV3EmptyLatent": "EasyAnimate V3 Empty Latent (MotionKit)",
    "MotionKitEasyAnimateV3Inpaint": "EasyAnimate V3 Inpaint Conditioning (MotionKit)",
    "MotionKitEasyAnimateV3Scheduler": "EasyAnimate V3 Scheduler (MotionKit)",
}
