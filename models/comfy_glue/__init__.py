"""ComfyUI-facing glue: code that subclasses or drives ComfyUI's own classes (samplers, guiders, model
management) and so imports ComfyUI openly, through `models.host.comfy`. Everything else under `models/`
imports without ComfyUI."""
