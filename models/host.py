"""The host adapter: what the pure model code needs from ComfyUI, as named functions.

The model code asks this adapter for devices, progress bars, interrupt checks, model files,
model patchers, layer operations, the attention kernel and the diffusion-model wrappers.
Inside ComfyUI these are ComfyUI's own (`comfy.model_management`, `comfy.model_patcher.ModelPatcher`,
`comfy.utils.ProgressBar`, `comfy.utils.load_torch_file`, `comfy.ops`, `optimized_attention`,
`folder_paths`); without ComfyUI they fall back to plain torch, so `models/` runs as a library.
It never hands out the `comfy` package: code that subclasses ComfyUI's classes lives in
models/comfy_glue/, which imports ComfyUI openly.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterable

import torch

import torch.nn.functional as F

try:
    import comfy.ldm.modules.attention as _attention
    import comfy.model_management as _mm
    import comfy.model_patcher as _model_patcher
    import comfy.ops as _ops
    import comfy.patcher_extension as _patcher_extension
    import comfy.utils as _comfy_utils
    import folder_paths as _folder_paths
except ImportError:
    _attention = _mm = _model_patcher = _ops = _patcher_extension = _comfy_utils = _folder_paths = None

IN_COMFYUI: bool = _mm is not None
log = logging.getLogger("MotionKit")

MODELS_DIR_ENV = "MOTIONKIT_MODELS_DIR"
"""Without ComfyUI, model folders are looked up under this directory (ComfyUI layout)."""

MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".pt", ".pth", ".ckpt", ".bin"})


def require_comfyui(what: str) -> None:
    """Raise a clear error when ComfyUI-only functionality is used from the library."""
    if not IN_COMFYUI:
        raise RuntimeError(f"{what} needs ComfyUI; it is not importable in this Python")


def operations():
    """Layer classes for weighted modules: ComfyUI's casting ops, or torch.nn."""
    return _ops.manual_cast if IN_COMFYUI else torch.nn


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention of q, k, v [B, heads, N, head_dim] -> [B, N, heads * head_dim]: ComfyUI's chosen kernel
    (pytorch, xformers, sage, flash...) or torch's scaled_dot_product_attention."""
    if IN_COMFYUI:
        return _attention.optimized_attention(q, k, v, heads, skip_reshape=True)
    b, _heads, n, _dim = q.shape
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)


def with_diffusion_model_wrappers(forward: Callable, owner, transformer_options: dict, *args, **kwargs):
    """Call `forward(*args, **kwargs)` through the DIFFUSION_MODEL wrappers of `transformer_options` (ComfyUI's
    WrapperExecutor, as core diffusion models do), or directly when there are none or no ComfyUI."""
    if IN_COMFYUI:
        wrappers = _patcher_extension.get_all_wrappers(_patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options)
        if wrappers:
            return _patcher_extension.WrapperExecutor.new_class_executor(forward, owner, wrappers).execute(*args, **kwargs)
    return forward(*args, **kwargs)


# ---------------------------------------------------------------- devices
def torch_device() -> torch.device:
    """Where models compute."""
    return _mm.get_torch_device() if IN_COMFYUI else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where idle models wait."""
    return _mm.unet_offload_device() if IN_COMFYUI else torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where node outputs (IMAGE, LATENT) are kept between nodes."""
    return _mm.intermediate_device() if IN_COMFYUI else torch.device("cpu")


def soft_empty_cache() -> None:
    if IN_COMFYUI:
        _mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- progress and interrupt
def check_interrupt() -> None:
    """Raise if the user pressed Cancel in ComfyUI; call between chunks of long work."""
    if IN_COMFYUI:
        _mm.throw_exception_if_processing_interrupted()


class _PlainProgress:
    def __init__(self, total: int):
        self.total, self.current = total, 0

    def update(self, value: int) -> None:
        self.current = min(self.current + value, self.total)

    def update_absolute(self, value: int, total: int | None = None, preview=None) -> None:
        self.current = value
        if total is not None:
            self.total = total


def progress_bar(total: int):
    """ComfyUI's ProgressBar (shown on the running node) or a silent counter."""
    return _comfy_utils.ProgressBar(total) if IN_COMFYUI else _PlainProgress(total)


# ---------------------------------------------------------------- files
def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint without executing anything from it.

    safetensors is read as is; a pickle only through `torch.load(weights_only=True)`,
    which refuses any object that is not a tensor or plain container.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if IN_COMFYUI:
        return _comfy_utils.load_torch_file(path, safe_load=True)
    if os.path.splitext(path)[1].lower() in (".safetensors", ".sft"):
        import safetensors.torch

        return safetensors.torch.load_file(path, device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def register_model_folder(name: str, default_subdir: str | None = None) -> None:
    """Add `models/<default_subdir or name>` to ComfyUI's folder `name`, keeping paths other packs added."""
    if not IN_COMFYUI:
        return
    path = os.path.join(_folder_paths.models_dir, default_subdir or name)
    _folder_paths.add_model_folder_path(name, path)
    paths, extensions = _folder_paths.folder_names_and_paths[name]
    if extensions is not None and len(extensions) == 0:
        _folder_paths.folder_names_and_paths[name] = (paths, set(MODEL_EXTENSIONS))


def _library_folder(name: str) -> str:
    root = os.environ.get(MODELS_DIR_ENV)
    if not root:
        raise RuntimeError(f"not running inside ComfyUI: set {MODELS_DIR_ENV} to a folder laid out like ComfyUI's models/")
    return os.path.join(root, name)


def model_filenames(folder: str) -> list[str]:
    """The files of a model folder, for a node's file list (relative paths, sorted).

    Empty in library mode without $MOTIONKIT_MODELS_DIR; `model_path` then says what to set.
    """
    if IN_COMFYUI:
        return _folder_paths.get_filename_list(folder)
    if not os.environ.get(MODELS_DIR_ENV):
        return []
    base = _library_folder(folder)
    found = []
    for root, _dirs, files in os.walk(base):
        found += [os.path.relpath(os.path.join(root, f), base) for f in files
                  if os.path.splitext(f)[1].lower() in MODEL_EXTENSIONS]
    return sorted(found)


def model_path(folder: str, filename: str) -> str:
    """Full path of `filename` in a model folder, or an error that names the folder and its files."""
    path = _folder_paths.get_full_path(folder, filename) if IN_COMFYUI else os.path.join(_library_folder(folder), filename)
    if path is None or not os.path.isfile(path):
        available = ", ".join(model_filenames(folder)[:20]) or "none"
        raise FileNotFoundError(f"'{filename}' is not in the model folder '{folder}' (files there: {available}); "
                                f"put the file into ComfyUI/models/{folder}/ and refresh the page")
    return path


def output_directory() -> str:
    return _folder_paths.get_output_directory() if IN_COMFYUI else os.path.abspath("output")


# ---------------------------------------------------------------- model management
def model_patcher(model: torch.nn.Module, load_device: torch.device | None = None,
                  offload: torch.device | None = None):
    """Wrap a torch module so ComfyUI's model management loads and offloads it."""
    load_device = load_device or torch_device()
    offload = offload or offload_device()
    if IN_COMFYUI:
        return _model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)
    return _LibraryPatcher(model.to(offload), load_device, offload)


class _LibraryPatcher:
    """The part of ModelPatcher the pack uses, for library mode: the module and its devices."""

    def __init__(self, model: torch.nn.Module, load_device: torch.device, offload: torch.device):
        self.model, self.load_device, self.offload_device = model, load_device, offload

    def clone(self) -> "_LibraryPatcher":
        return _LibraryPatcher(self.model, self.load_device, self.offload_device)


def load_models(patchers: Iterable, memory_required: int = 0) -> None:
    """Move models to the compute device, offloading others as ComfyUI sees fit."""
    patchers = list(patchers)
    if IN_COMFYUI:
        _mm.load_models_gpu(patchers, memory_required=memory_required)
    else:
        for p in patchers:
            p.model.to(p.load_device)


def free_memory_for(memory_required: int, device: torch.device) -> None:
    """Ask ComfyUI to offload other models until `memory_required` bytes are free on `device`."""
    if IN_COMFYUI:
        _mm.free_memory(memory_required, device)


def vae_dtype(device: torch.device, allowed: Iterable[torch.dtype] = (torch.bfloat16, torch.float32)) -> torch.dtype:
    if IN_COMFYUI:
        return _mm.vae_dtype(device, list(allowed))
    return torch.float32


def unet_dtype(parameters: int, supported: Iterable[torch.dtype] = (torch.bfloat16, torch.float16, torch.float32)) -> torch.dtype:
    if IN_COMFYUI:
        return _mm.unet_dtype(model_params=parameters, supported_dtypes=list(supported))
    return torch.float32


def is_interrupt(error: BaseException) -> bool:
    """Whether an exception is ComfyUI's Cancel (raised by `check_interrupt` or a progress update)."""
    return IN_COMFYUI and isinstance(error, _mm.InterruptProcessingException)


def load_models_for_training(patchers: Iterable) -> None:
    """Load models fully onto the compute device for training, offloading every other model first
    (training needs the memory of its activations and gradients, not just an inference pass)."""
    patchers = list(patchers)
    if IN_COMFYUI:
        _mm.load_models_gpu(patchers, memory_required=1e20, force_full_load=True)
    else:
        load_models(patchers)


def unload_models(patchers: Iterable) -> None:
    """Unload these ModelPatchers now (their patches taken out, memory returned), as ComfyUI's free_memory does."""
    if not IN_COMFYUI:
        return
    patchers = list(patchers)
    for loaded in list(_mm.current_loaded_models):
        if any(loaded.model is p for p in patchers):
            loaded.model_unload()
            _mm.current_loaded_models.remove(loaded)
    soft_empty_cache()


def model_folder(name: str) -> str:
    """The folder new files of a model folder are written to (ComfyUI/models/<name>, made if missing)."""
    path = _folder_paths.get_folder_paths(name)[0] if IN_COMFYUI else _library_folder(name)
    os.makedirs(path, exist_ok=True)
    return path


def input_directory() -> str:
    """ComfyUI's input folder (where users put files nodes read, e.g. training clips)."""
    return _folder_paths.get_input_directory() if IN_COMFYUI else os.path.abspath("input")


def input_subfolders() -> list[str]:
    """Folders inside the input folder, for a node's folder list."""
    if IN_COMFYUI:
        return _folder_paths.get_input_subfolders()
    root = input_directory()
    if not os.path.isdir(root):
        return []
    return sorted(os.path.relpath(d, root).replace(os.sep, "/") for d, _, _ in os.walk(root) if d != root)


def run_with_progress(steps: int, step: Callable[[int], None]) -> None:
    """Run `step(i)` for i in range(steps) with a progress bar and an interrupt check before each."""
    bar = progress_bar(steps)
    for i in range(steps):
        check_interrupt()
        step(i)
        bar.update(1)


# ---- trajectory
def temp_directory() -> str:
    """Where previews shown in the browser are written (ComfyUI's temp folder, served by /view?type=temp)."""
    return _folder_paths.get_temp_directory() if IN_COMFYUI else os.path.abspath("temp")
