"""Tora nodes: load the fuser and trajectory-extractor weights, apply them to a CogVideoX MODEL."""
from __future__ import annotations

from ..models import host
from ..models.tora.motion import POSTERIORS
from .types import TORA, VIDEO_VAE
from .video_vae import TILE_INPUTS

CATEGORY = "MotionKit/Tora"
NONE = "none"


class MotionKitLoadTora:
    DESCRIPTION = ("Loads Tora's motion-guidance fusers and trajectory extractor from models/tora: the SAT checkpoint, "
                   "the diffusers Tora transformer (one file, or any of its shards: the index locates the Tora tensors), or the split fuser.safetensors + traj_extractor.safetensors "
                   "(give the second one as extractor_file). The layout is detected from the keys.")

    @classmethod
    def INPUT_TYPES(cls):
        files = host.model_filenames("tora")
        return {"required": {
            "tora_name": (files, {"tooltip": "A Tora file in models/tora (SAT .pt, diffusers transformer or any "
                                         "of its shards, or fuser.safetensors)."}),
            "extractor_name": ([NONE] + files, {"default": NONE,
                                                "tooltip": "For the split layout: traj_extractor.safetensors; else none."}),
        }}

    RETURN_TYPES = (TORA,)
    RETURN_NAMES = ("tora",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, tora_name, extractor_name=NONE):
        from ..models.tora.loading import load_tora

        paths = [host.model_path("tora", tora_name)]
        if extractor_name != NONE:
            paths.append(host.model_path("tora", extractor_name))
        return (load_tora(paths),)


class MotionKitApplyTora:
    DESCRIPTION = ("Steers a CogVideoX MODEL with trajectory motion latents through Tora's fusers; returns a patched "
                   "clone for core KSampler. The extractor runs once per generation; strength 0 leaves the model unchanged.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "A CogVideoX-5B MODEL from Load CogVideoX (MotionKit)."}),
            "tora": (TORA, {"tooltip": "Tora weights from Load Tora (MotionKit)."}),
            "motion_latents": ("LATENT", {"tooltip": "The trajectory flow encoded by Motion VAE Encode (MotionKit); "
                                                     "same frames and size as the latent you sample."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                                   "tooltip": "Scale of the fusers' motion term; 0 disables Tora exactly."}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                        "tooltip": "Sampling progress at which the guidance starts."}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                      "tooltip": "Sampling progress at which the guidance stops."}),
        }}

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, tora, motion_latents, strength, start_percent=0.0, end_percent=1.0):
        host.require_comfyui("Apply Tora (MotionKit)")
        from ..models.comfy_glue.tora import apply_tora

        return (apply_tora(model, tora, motion_latents["samples"], strength, start_percent, end_percent),)


class MotionKitMotionVAEEncode:
    DESCRIPTION = ("Encodes the trajectory flow video (from Trajectories to Flow) into Tora's motion latents with the "
                   "CogVideoX VAE, streamed in temporal chunks (and spatial tiles), scaled by 0.7 as Tora does; by "
                   "default sampled from the posterior exactly as the official pipeline does with the seed.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video_vae": (VIDEO_VAE, {"tooltip": "The CogVideoX VAE from Load Video VAE (MotionKit)."}),
            "flow_video": ("IMAGE", {"tooltip": "The RGB flow video: 4k+1 frames, width and height multiples of 16, "
                                                "the same as the video you sample."}),
            "scaling_factor": ("FLOAT", {"default": 0.7, "min": 0.0001, "max": 10.0, "step": 0.0001,
                                         "tooltip": "Latent scale of the motion latents; Tora (CogVideoX-5B) uses 0.7."}),
            "posterior": (list(POSTERIORS), {"default": POSTERIORS[0], "tooltip": (
                "sample (official): draw from the VAE posterior as the official diffusers Tora pipeline does with "
                "this seed (the same weights, flow and seed give the same motion latents); mean: the posterior "
                "mean, no noise.")}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                             "tooltip": "The seed the official pipeline gets as generator=torch.Generator()"
                                        ".manual_seed(seed); used by 'sample (official)' only."}),
            **TILE_INPUTS,
        }}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("motion_latents",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY

    def encode(self, video_vae, flow_video, scaling_factor, tile_size, tile_overlap, posterior=POSTERIORS[0], seed=0):
        from ..models.tora.motion import encode_motion

        tiles = video_vae.tile_plan(tile_size, tile_overlap, False)
        return ({"samples": encode_motion(video_vae, flow_video, scaling_factor, tiles, posterior, seed)},)


NODE_CLASS_MAPPINGS = {"MotionKitLoadTora": MotionKitLoadTora, "MotionKitApplyTora": MotionKitApplyTora,
                       "MotionKitMotionVAEEncode": MotionKitMotionVAEEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"MotionKitLoadTora": "Load Tora (MotionKit)", "MotionKitApplyTora": "Apply Tora (MotionKit)",
                              "MotionKitMotionVAEEncode": "Motion VAE Encode (MotionKit)"}
