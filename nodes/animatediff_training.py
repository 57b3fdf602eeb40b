"""AnimateDiff training nodes: training clips in, a MotionLoRA or a domain adapter out."""
import torch

from ..models import host
from ..models.animatediff import clips as clip_data
from ..models.animatediff.training import TrainingSettings
from .types import MOTION_LORA, MOTION_MODULE, TRAINING_CLIPS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CATEGORY = "MotionKit/AnimateDiff"


def _training_inputs(rank_default: int, lr_default: float, batch_default: int, lora_default: str, folder: str) -> dict:
    return {
        "rank": ("INT", {"default": rank_default, "min": 1, "max": 512,
                         "tooltip": "LoRA rank. The published MotionLoRAs (v2_lora_*) use 64: about 77 MB as float32."}),
        "learning_rate": ("FLOAT", {"default": lr_default, "min": 1e-7, "max": 1.0, "step": 1e-6, "round": False,
                                    "tooltip": "AdamW learning rate (AnimateDiff's training uses 1e-4)."}),
        "steps": ("INT", {"default": 2000, "min": 1, "max": 100000,
                          "tooltip": "Optimiser steps in all (the paper trains a MotionLoRA for about 2,000). A resumed run continues up to this count."}),
        "resolution": ("INT", {"default": 512, "min": 0, "max": 2048, "step": 8,
                               "tooltip": "Frames are resized and centre-cropped to resolution x resolution; 0 keeps the clips' size."}),
        "batch_size": ("INT", {"default": batch_default, "min": 1, "max": 256, "tooltip": "Samples per optimiser step."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                         "tooltip": "Seeds the LoRA's initial weights and the draws of samples, timesteps and noise."}),
        "gradient_checkpointing": ("BOOLEAN", {"default": True,
                                               "tooltip": "Recompute each layer during the backward pass instead of keeping its activations: much less memory, about a third slower."}),
        "training_dtype": (list(DTYPES), {"default": "bf16",
                                          "tooltip": "The dtype the frozen model computes in. The LoRA weights and the optimiser stay float32 (fp16 uses loss scaling)."}),
        "lora_name": ("STRING", {"default": lora_default,
                                 "tooltip": f"File name in models/{folder} (.safetensors added; end it in .ckpt for the original AnimateDiff scripts). "
                                            "An existing file is never overwritten unless resume is on. Empty: nothing is saved."}),
        "resume": ("BOOLEAN", {"default": False,
                               "tooltip": "Continue the training saved under lora_name (LoRA, optimiser state and step count) up to steps."}),
        "save_every": ("INT", {"default": 100, "min": 0, "max": 100000,
                               "tooltip": "Save the file and the training state every this many steps (0: only at the end). Cancel also saves."}),
    }


def _job(frames, rank, learning_rate, steps, resolution, batch_size, seed, gradient_checkpointing, training_dtype,
         lora_name, resume, save_every):
    from ..models.comfy_glue import lora_training

    dtype = DTYPES[training_dtype]
    settings = TrainingSettings(rank=rank, learning_rate=learning_rate, steps=steps, batch_size=batch_size, frames=frames,
                                seed=seed, loss_scaling=dtype == torch.float16)
    return lora_training.TrainingJob(settings=settings, resolution=resolution, dtype=dtype,
                                     gradient_checkpointing=gradient_checkpointing, lora_name=lora_name, resume=resume,
                                     save_every=save_every)


class MotionKitLoadTrainingClips:
    DESCRIPTION = ("Reads the training clips of one motion from a folder in ComfyUI's input folder: videos (mp4, webm, mov, "
                   "mkv), animated gif/webp and folders of frames. A .txt file of the same name is the clip's caption. "
                   "Every bad clip is reported by name.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRAINING_CLIPS,)
    RETURN_NAMES = ("clips",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "folder": (host.input_subfolders(), {"tooltip": "A folder inside ComfyUI/input holding the clips (20 to 50 clips of one motion)."}),
            "stride": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Keep every stride-th frame (AnimateDiff's training samples every 4th)."}),
            "width": ("INT", {"default": 512, "min": 0, "max": 4096, "step": 8,
                              "tooltip": "Resize (aspect kept) and centre-crop every clip to width x height; 0 x 0 keeps the clips' own size."}),
            "height": ("INT", {"default": 512, "min": 0, "max": 4096, "step": 8, "tooltip": "See width."}),
            "max_frames": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip": "Read at most this many frames (after the stride) per clip; 0: all."}),
        }}

    def load(self, folder, stride, width, height, max_frames):
        import os

        path = os.path.join(host.input_directory(), folder)
        return (clip_data.load_clip_folder(path, stride=stride, width=width, height=height, max_frames=max_frames),)


class MotionKitTrainingClipFromImages:
    DESCRIPTION = ("Makes a training clip from an IMAGE batch (e.g. core Load Video's frames) and adds it to the clips "
                   "given in prev_clips.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRAINING_CLIPS,)
    RETURN_NAMES = ("clips",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The clip's frames, in order."}),
                "name": ("STRING", {"default": "clip", "tooltip": "The clip's name in messages."}),
                "caption": ("STRING", {"default": "", "multiline": True, "tooltip": "Its caption (used when the trainer has a CLIP connected)."}),
                "stride": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Keep every stride-th frame."}),
            },
            "optional": {"prev_clips": (TRAINING_CLIPS, {"tooltip": "Clips to add this one to."})},
        }

    def make(self, images, name, caption, stride, prev_clips=None):
        return (list(prev_clips or []) + [clip_data.clip_from_images(images, name, caption, stride)],)


class MotionKitTrainMotionLoRA:
    DESCRIPTION = ("Trains a MotionLoRA (AnimateDiff sec. 4.3): low-rank adapters on the motion module's temporal attention "
                   "(q, k, v, out), the UNet and motion module frozen, on AnimateDiff's noise-prediction objective and linear "
                   "beta schedule. Saves it to models/animatediff_motion_lora in the original MotionLoRA layout and outputs it "
                   "for Apply Motion Module. The progress bar previews the loss; Cancel stops and saves what was trained.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (MOTION_LORA, "IMAGE")
    RETURN_NAMES = ("motion_lora", "loss_plot")
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {
            "model": ("MODEL", {"tooltip": "The SD1.5/SDXL model the motion module is used with (frozen)."}),
            "motion_module": (MOTION_MODULE, {"tooltip": "From Load Motion Module (frozen); the MotionLoRA is made for it."}),
            "vae": ("VAE", {"tooltip": "Encodes the clips' frames to latents (once, before training)."}),
            "clips": (TRAINING_CLIPS, {"tooltip": "From Load Training Clips / Training Clip From Images."}),
            "positive": ("CONDITIONING", {"tooltip": "One prompt for all clips, or one per clip in the clips' order."}),
            "frames": ("INT", {"default": 16, "min": 1, "max": 32, "tooltip": "Consecutive frames per training sample (AnimateDiff trains with 16)."}),
        }
        inputs.update(_training_inputs(64, 1e-4, 1, "my_motion_lora", "animatediff_motion_lora"))
        return {"required": inputs,
                "optional": {"clip": ("CLIP", {"tooltip": "When connected, clips with a caption file are conditioned on their caption."})}}

    def train(self, model, motion_module, vae, clips, positive, frames, rank, learning_rate, steps, resolution, batch_size,
              seed, gradient_checkpointing, training_dtype, lora_name, resume, save_every, clip=None):
        job = _job(frames, rank, learning_rate, steps, resolution, batch_size, seed, gradient_checkpointing,
                   training_dtype, lora_name, resume, save_every)
        from ..models.comfy_glue import lora_training

        lora, plot = lora_training.train_motion_lora(model, motion_module, vae, clips, positive, job, clip)
        return ([lora], plot)


class MotionKitTrainDomainAdapter:
    DESCRIPTION = ("Trains an AnimateDiff v3-style domain adapter: a LoRA on the UNet's spatial attention, trained on single "
                   "frames of the clips so the image model learns their look (and the motion module need not). Saves it to "
                   "models/loras in a layout core LoraLoader reads and outputs the model with it applied.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "IMAGE")
    RETURN_NAMES = ("model", "loss_plot")
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {
            "model": ("MODEL", {"tooltip": "The SD1.5/SDXL image model (before Apply Motion Module)."}),
            "vae": ("VAE", {"tooltip": "Encodes the clips' frames to latents (once, before training)."}),
            "clips": (TRAINING_CLIPS, {"tooltip": "From Load Training Clips / Training Clip From Images; every frame is a training image."}),
            "positive": ("CONDITIONING", {"tooltip": "One prompt for all clips, or one per clip in the clips' order."}),
        }
        inputs.update(_training_inputs(64, 1e-4, 4, "my_domain_adapter", "loras"))
        return {"required": inputs,
                "optional": {"clip": ("CLIP", {"tooltip": "When connected, clips with a caption file are conditioned on their caption."})}}

    def train(self, model, vae, clips, positive, rank, learning_rate, steps, resolution, batch_size, seed,
              gradient_checkpointing, training_dtype, lora_name, resume, save_every, clip=None):
        job = _job(1, rank, learning_rate, steps, resolution, batch_size, seed, gradient_checkpointing,
                   training_dtype, lora_name, resume, save_every)
        from ..models.comfy_glue import lora_training

        return lora_training.train_domain_adapter(model, vae, clips, positive, job, clip)


NODE_CLASS_MAPPINGS = {
    "MotionKitLoadTrainingClips": MotionKitLoadTrainingClips,
    "MotionKitTrainingClipFromImages": MotionKitTrainingClipFromImages,
    "MotionKitTrainMotionLoRA": MotionKitTrainMotionLoRA,
    "MotionKitTrainDomainAdapter": MotionKitTrainDomainAdapter,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitLoadTrainingClips": "Load Training Clips (MotionKit)",
    "MotionKitTrainingClipFromImages": "Training Clip From Images (MotionKit)",
    "MotionKitTrainMotionLoRA": "Train MotionLoRA (MotionKit)",
    "MotionKitTrainDomainAdapter": "Train Domain Adapter (MotionKit)",
}
