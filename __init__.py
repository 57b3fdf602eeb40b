"""ComfyUI-MotionKit: Tora trajectories, EasyAnimate's Slice VAE and AnimateDiff as ComfyUI nodes.

ComfyUI imports this folder as a package under whatever name it was cloned as,
so everything inside the pack uses relative imports.
"""
WEB_DIRECTORY = "./web"

# pytest collects the repository root and imports this file as a lone module
# (no parent package, e.g. when the folder name is not an identifier): register nothing then.
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
