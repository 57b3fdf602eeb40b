"""Node registration.

Each module in this package that defines NODE_CLASS_MAPPINGS contributes its
nodes. A module whose optional Python dependency is missing is skipped with a
log line naming the package, so ComfyUI always starts.
"""
import importlib
import logging
import pkgutil

from ..models import host

log = logging.getLogger("MotionKit")

# Folders shared with the packs users already have (AnimateDiff-Evolved uses the first two).
# Core folders used too: vae, diffusion_models, text_encoders.
MODEL_FOLDERS = ("animatediff_models", "animatediff_motion_lora", "tora")
for _folder in MODEL_FOLDERS:
    host.register_model_folder(_folder)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    try:
        _module = importlib.import_module(f".{_info.name}", __name__)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] == __name__.split(".")[0]:
            raise
        log.error("MotionKit: the nodes in nodes/%s.py are unavailable: Python package '%s' is missing "
                  "(install the pack's requirements.txt)", _info.name, error.name)
        continue
    except ImportError as error:  # an installed package that fails to load, e.g. opencv-python without libGL
        if error.name and error.name.split(".")[0] == __name__.split(".")[0]:
            raise
        log.error("MotionKit: the nodes in nodes/%s.py are unavailable: a Python package they need failed to "
                  "import (%s); reinstall it (see the README's OpenCV notes for cv2)", _info.name, error)
        continue
    NODE_CLASS_MAPPINGS.update(getattr(_module, "NODE_CLASS_MAPPINGS", {}))
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_module, "NODE_DISPLAY_NAME_MAPPINGS", {}))
