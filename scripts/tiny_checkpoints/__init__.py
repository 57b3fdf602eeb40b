"""Tiny random checkpoints with the real key names, one module per model family.

Each module defines `write(models_dir: Path) -> list[Path]`, writing its files
into ComfyUI's model-folder layout under `models_dir`. The demo and the tests
against the real ComfyUI use them; they are deterministic (fixed seeds).
"""
