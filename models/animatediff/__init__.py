"""AnimateDiff: motion modules (temporal transformers) injected into ComfyUI's SD1.5/SDXL UNet."""
