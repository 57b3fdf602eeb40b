"""Video VAE nodes: load an EasyAnimate or CogVideoX VAE, decode latents in slices, encode frames."""
from __future__ import annotations

import torch

from ..models import host
from ..models import video_vae as video_vae_module
from .types import VIDEO_VAE
DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

TILE_INPUTS = {
    "tile_size": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 8,
                          "tooltip": "Frames larger than this many pixels (height or width) are processed in "
                                     "overlapping spatial tiles, each streamed over time; 0 turns tiling off."}),
    "tile_overlap": ("INT", {"default": 64, "min": 0, "max": 1024, "step": 8,
                             "tooltip": "Pixels by which neighbouring tiles overlap; the overlap is blended "
                                        "linearly to hide seams. Must be smaller than tile_size."}),
}


class MotionKitLoadVideoVAE:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (host.model_filenames("vae"), {
                "tooltip": "A video VAE from ComfyUI/models/vae: EasyAnimate V2, V3, V4, V5/V5.1 or CogVideoX, "
                           "as a single safetensors file or the published folder (diffusion_pytorch_model."
                           "safetensors with its config.json beside it; V2/V3/V4 need the config.json). The "
                           "version is detected from the weights and the config."}),
            "scaling_factor": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.0001,
                                         "tooltip": "Latent scaling factor; 0 takes it from config.json beside "
                                                    "the file, else the version's default (CogVideoX-2b 1.15258, "
                                                    "EasyAnimate V5 0.7125, V2-V4 0.1825). CogVideoX-5b/1.5 "
                                                    "single files need 0.7."}),
            "precision": (list(DTYPES), {"default": "auto",
                                         "tooltip": "Weight and compute precision; auto picks what ComfyUI "
                                                    "chooses for VAEs on this device."}),
        }}

    RETURN_TYPES = (VIDEO_VAE,)
    RETURN_NAMES = ("video_vae",)
    FUNCTION = "load"
    CATEGORY = "MotionKit/Video VAE"
    DESCRIPTION = ("Loads an EasyAnimate or CogVideoX video VAE under ComfyUI's model management "
                   "(loaded to the GPU when used, offloaded after).")

    def load(self, vae_name, scaling_factor, precision):
        path = host.model_path("vae", vae_name)
        return (video_vae_module.load_video_vae(path, scaling_factor=scaling_factor, dtype=DTYPES[precision]),)


class MotionKitSliceVAEDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video_vae": (VIDEO_VAE, {"tooltip": "The video VAE from Load Video VAE."}),
            "samples": ("LATENT", {"tooltip": "A video latent [B,C,T,H,W] made for this VAE."}),
            **TILE_INPUTS,
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "decode"
    CATEGORY = "MotionKit/Video VAE"
    DESCRIPTION = ("Decodes a video latent slice by slice: the latent frames are walked in the version's own "
                   "chunks carrying only the causal state, so memory does not grow with clip length. Output "
                   "equals the version's official decode. Batches give their frames one after the other.")

    def decode(self, video_vae, samples, tile_size, tile_overlap):
        video_vae.check_made_by(samples.get(video_vae_module.LATENT_FAMILY_KEY))
        return (video_vae.decode(samples["samples"], video_vae.tile_plan(tile_size, tile_overlap, True)),)


class MotionKitVideoVAEEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video_vae": (VIDEO_VAE, {"tooltip": "The video VAE from Load Video VAE."}),
            "images": ("IMAGE", {"tooltip": "Video frames; height and width are cropped (centred) to multiples "
                                            "of 8. EasyAnimate V5 needs 4k+1 frames (extra frames are dropped)."}),
            **TILE_INPUTS,
        }}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("samples",)
    FUNCTION = "encode"
    CATEGORY = "MotionKit/Video VAE"
    DESCRIPTION = ("Encodes video frames into a video latent [1,C,T,H,W] (already multiplied by the scaling "
                   "factor), streamed chunk by chunk, for image-to-video and video-to-video graphs.")

    def encode(self, video_vae, images, tile_size, tile_overlap):
        latent = video_vae.encode(images, video_vae.tile_plan(tile_size, tile_overlap, False))
        return ({"samples": latent, video_vae_module.LATENT_FAMILY_KEY: video_vae.version},)


NODE_CLASS_MAPPINGS = {
    "MotionKitLoadVideoVAE": MotionKitLoadVideoVAE,
    "MotionKitSliceVAEDecode": MotionKitSliceVAEDecode,
    "MotionKitVideoVAEEncode": MotionKitVideoVAEEncode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitLoadVideoVAE": "Load Video VAE (MotionKit)",
    "MotionKitSliceVAEDecode": "Slice VAE Decode (MotionKit)",
    "MotionKitVideoVAEEncode": "Video VAE Encode (MotionKit)",
}
