"""Independent references and measuring helpers, shared by the tests and the benchmarks.

Each module re-states a published algorithm or wraps the library that defines it (diffusers,
torchvision, OpenCV), never the pack's own code, so parity against it means something:

- `tora_reference`: Tora's official DiT (diffusers CogVideoX + the official fuser and extractor).
- `trajectory_reference`: Tora's official trajectory -> flow pipeline (OpenCV + torchvision).
- `animatediff_reference`: diffusers' motion UNet and the original AnimateDiff MotionLoRA merge.
- `motionlora_reference`: MotionLoRA training on diffusers' UNetMotionModel (LoRA by hand, DDPM loss), the
  original loader's merge, the published v2_lora_* layout.
- `slice_vae_official`: EasyAnimate's official sliced decode on diffusers' AutoencoderKLMagvit.
- `easyanimate_reference`: the official V5.1 single-stream attention on diffusers' EasyAnimate transformer.
- `easyanimate_trajectory`: EasyAnimate V5.1's trajectory control video (the official ComfyUI node's steps).
- `easyanimate_v3_reference`: EasyAnimate V3's official transformer (PixArt-style DiT, motion modules, U-ViT skips).
- `cogvideox_official`: the official CogVideoX / Tora pipelines' posterior sample and DDIM / DPM loops (diffusers).
- `peak_memory`: peak tensor memory of a call, traced from torch's dispatcher.

Import as `from references import tora_reference` with the repository root on sys.path
(pytest's `pythonpath` setting; `python -m bench.<name>` from the root).
"""
