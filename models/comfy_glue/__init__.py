"""The ComfyUI-facing glue: the only model code that subclasses or reaches into ComfyUI's classes.

These modules import ComfyUI openly and are imported only inside ComfyUI (by the nodes that need it):
- `cogvideox`: CogVideoX as a native ComfyUI model (BaseModel, model sampling, latent format, loading);
- `animatediff`: the motion module's injection into ComfyUI's UNet through a ModelPatcher clone;
- `easyanimate_v3`: EasyAnimate V3 as a native ComfyUI model (BaseModel, model sampling, latent format, loading);
- `tora`: Tora's fusers attached to a CogVideoX ModelPatcher clone, Tora files as a patcher.
- `lora_training`: MotionLoRA and domain adapter training run inside CFGGuider.sample on a ModelPatcher clone.
Everything else under models/ is plain torch and imports with ComfyUI absent (models/host.py adapts).
"""
