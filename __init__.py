"""ComfyUI-MotionKit: Tora trajectories, EasyAnimate's Slice VAE and AnimateDiff as ComfyUI nodes.

ComfyUI imports this folder as a package under whatever name it was cloned as,
so everything inside the pack uses relative imports.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
