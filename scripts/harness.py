"""Runs the pack the way users do, for the demo and the tests.

- `import_pack()` imports the repository root as the package `motionkit`
  (ComfyUI imports it under its folder name, which varies between clones).
- `write_tiny_checkpoints()` writes every family's tiny random checkpoints
  (scripts/tiny_checkpoints/<family>.py, real key names) into a models folder.
- `ComfyServer` starts the pinned ComfyUI from ../shared/comfyui-host with the
  pack loaded and runs UI-format workflows through the real frontend.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK_ALIAS = "motionkit"


def find_host() -> Path | None:
    """The ComfyUI host folder (the pinned ComfyUI and its scripts, with comfy_host.py): $COMFYUI_PATH when it is
    set (an error if it holds no host), else ../shared/comfyui-host beside the repository, else None."""
    chosen = os.environ.get("COMFYUI_PATH")
    if chosen:
        if not (Path(chosen) / "comfy_host.py").is_file():
            raise RuntimeError(f"COMFYUI_PATH={chosen} holds no comfy_host.py: point it at a comfyui-host folder "
                               f"(the pinned ComfyUI with its scripts), or unset it to use ../shared/comfyui-host")
        return Path(chosen).resolve()
    beside = ROOT.parent / "shared" / "comfyui-host"
    return beside.resolve() if (beside / "comfy_host.py").is_file() else None


def setup_comfy_in_process(work_dir: Path | None = None, cpu: bool = True, pytorch_attention: bool = False) -> bool:
    """Make `comfy.*` importable in this process (before the pack is imported); `cpu=False`: ComfyUI's
    model management uses the GPU, as the server does; `pytorch_attention`: ComfyUI's
    --use-pytorch-cross-attention (its default on GPUs; on CPU it picks sub-quadratic attention)."""
    if find_host() is None:
        return False
    comfy_host = host_module("comfy_host")
    comfy_host.setup(cpu=cpu, work_dir=str(work_dir) if work_dir else None)
    if pytorch_attention:
        import comfy.cli_args

        comfy.cli_args.args.use_pytorch_cross_attention = True
    # Bind ComfyUI's top-level `nodes` now: pytest may later put the pack's root, which
    # has a `nodes/` folder of its own, first on sys.path.
    import nodes  # noqa: F401
    return True


def host_module(name: str):
    """Import one of the host folder's scripts (comfy_host, ui_workflow); the host folder joins sys.path
    (first, as ComfyUI's own modules must win over this repository's `nodes/` and `models/`)."""
    host = find_host()
    if host is None:
        raise RuntimeError("no ComfyUI host found: set COMFYUI_PATH or provide ../shared/comfyui-host")
    if str(host) not in sys.path:
        sys.path.insert(0, str(host))
    return importlib.import_module(name)


def import_pack():
    """Import the repo root as the package `motionkit` and return it."""
    if PACK_ALIAS in sys.modules:
        return sys.modules[PACK_ALIAS]
    spec = importlib.util.spec_from_file_location(PACK_ALIAS, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_ALIAS] = module
    spec.loader.exec_module(module)
    return module


def write_tiny_checkpoints(models_dir: Path) -> list[Path]:
    """Write each family's tiny checkpoints into `models_dir` (ComfyUI layout); return the files."""
    import_pack()
    from . import tiny_checkpoints

    written = []
    for info in sorted(pkgutil.iter_modules(tiny_checkpoints.__path__), key=lambda m: m.name):
        family = importlib.import_module(f"{tiny_checkpoints.__name__}.{info.name}")
        written += family.write(Path(models_dir))
    return written


def panning_frames(seed: int, frames: int, height: int, width: int, step: int):
    """A smooth random colour texture seen through a window that moves `step` pixels right per frame
    (a camera panning right; negative: left), as float32 RGB frames [frames, height, width, 3] in 0..1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    full = width + abs(step) * (frames - 1)
    texture = rng.random((height // 4 + 2, full // 4 + 2, 3))
    rows = np.linspace(0, texture.shape[0] - 1.001, height)
    cols = np.linspace(0, texture.shape[1] - 1.001, full)
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    smooth = (texture[r0][:, c0] * (1 - fr) * (1 - fc) + texture[r0 + 1][:, c0] * fr * (1 - fc)
              + texture[r0][:, c0 + 1] * (1 - fr) * fc + texture[r0 + 1][:, c0 + 1] * fr * fc)
    starts = [f * abs(step) for f in range(frames)]
    if step < 0:
        starts = starts[::-1]
    return np.stack([smooth[:, s:s + width] for s in starts]).astype(np.float32)


def write_training_clips(folder: Path, clips: int = 3, frames: int = 10, size: int = 64) -> list[Path]:
    """A folder of tiny panning-right training clips (animated webp, one with a caption file) for the examples."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(clips):
        video = (panning_frames(seed=100 + i, frames=frames, height=size, width=size, step=2) * 255).round().astype("uint8")
        path = folder / f"pan_right_{i + 1:02d}.webp"
        Image.fromarray(video[0]).save(path, save_all=True, append_images=[Image.fromarray(f) for f in video[1:]],
                                       lossless=True, duration=125, loop=0)
        written.append(path)
    (folder / "pan_right_01.txt").write_text("a camera panning right over a colourful texture\n")
    return written


WAN_ATI_EXAMPLE = "wan_ati_trajectory_tracks"
"""The example workflow that needs Wan 2.1 weights; tests and the demo run it up to WanTrackToVideo's output."""


def write_random_wan_vae(models_dir: Path) -> Path:
    """models/vae/wan_2.1_vae.safetensors with random weights (needs ComfyUI in-process, setup_comfy_in_process): core
    ComfyUI builds the Wan 2.1 VAE at its published width (96 channels) whatever the file holds, so it cannot be tiny
    (about 250 MB); built by ComfyUI's own WanVAE class, float16."""
    import torch
    import comfy.ldm.wan.vae
    import comfy.utils

    path = Path(models_dir) / "vae" / "wan_2.1_vae.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        model = comfy.ldm.wan.vae.WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                         temperal_downsample=[False, True, True], dropout=0.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        comfy.utils.save_torch_file({k: v.to(torch.float16) for k, v in model.state_dict().items()}, str(path))
    return path


def wan_ati_up_to_conditioning(workflow: dict) -> dict:
    """The Wan ATI example without a Wan model: the sampling nodes muted, the umt5 loader swapped for the tiny T5 (any
    CLIP gives WanTrackToVideo its conditioning), 64x48, 9 frames; it still runs the tracks through WanTrackToVideo."""
    workflow = json.loads(json.dumps(workflow))
    by_type = {node["type"]: node for node in workflow["nodes"]}
    for muted in ("UNETLoader", "KSampler", "VAEDecode", "CreateVideo", "SaveVideo"):
        by_type[muted]["mode"] = 2
    loader = by_type["CLIPLoader"]
    loader.update(type="MotionKitLoadT5", widgets_values=["motionkit_tiny_t5.safetensors"],
                  properties={"Node name for S&R": "MotionKitLoadT5"})
    loader["outputs"][0]["name"] = "clip"
    by_type["MotionKitTrajectoriesToWanTracks"]["widgets_values"] = [64, 48, 9]
    by_type["WanTrackToVideo"]["widgets_values"][1:4] = [64, 48, 9]
    return workflow


class WorkflowFailed(RuntimeError):
    pass


class ComfyServer:
    """A real ComfyUI server on 127.0.0.1 with this pack loaded."""

    def __init__(self, models_dir: Path, port: int | None = None):
        self.host = find_host()
        if self.host is None:
            raise RuntimeError("no ComfyUI host found: set COMFYUI_PATH or provide ../shared/comfyui-host")
        self.port = port or _free_port()
        env = dict(os.environ, COMFY_MODELS_DIR=str(models_dir), PYTHON=sys.executable)
        started = subprocess.run(["bash", str(self.host / "start.sh"), str(self.port), str(ROOT)],
                                 env=env, capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"ComfyUI did not start:\n{started.stderr}")
        self.work = Path(started.stdout.strip())
        self.output_dir = self.work / "base" / "output"
        self.input_dir = self.work / "base" / "input"
        self.failed = False
        self.completed: dict[Path, dict] = {}
        """Outputs of every workflow that ran to the end on this server, by resolved path."""
        # what the example workflows' Load Image nodes read, and ComfyUI's own input/example.png (core templates)
        for image in [*(ROOT / "example_workflows" / "input").glob("*"), self.host / "ComfyUI" / "input" / "example.png"]:
            shutil.copy(image, self.input_dir / image.name)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The server's log (kept after `stop` when a workflow failed)."""
        return self.work / "comfyui.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_json(self, path: str, timeout: float = 120):
        with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
            return json.load(response)

    def run_ui_workflow(self, workflow: Path, timeout: float = 900, api_out: Path | None = None) -> dict:
        """Load a UI-format workflow in the real frontend, queue it, wait; return the history outputs."""
        command = [sys.executable, str(self.host / "ui_workflow.py"), "run", str(workflow),
                   "--port", str(self.port), "--timeout", str(timeout), "--json"]
        if api_out:
            command += ["--api-out", str(api_out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 180)
        if done.returncode != 0:
            self.failed = True
            raise WorkflowFailed(f"{workflow.name} failed (exit {done.returncode}); the server log is {self.log_path}"
                                 f"\n{done.stderr[-6000:]}")
        outputs = json.loads(done.stdout)
        self.completed[Path(workflow).resolve()] = outputs
        return outputs

    def output_files(self, outputs: dict) -> list[Path]:
        """Paths of the files a run's outputs name (saved outputs and temp previews)."""
        files = []
        for node_output in outputs.values():
            for items in node_output.values():
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and "filename" in item:
                        folder = self.output_dir if item.get("type", "output") == "output" else self.work / "base" / "temp"
                        files.append(folder / item.get("subfolder", "") / item["filename"])
        return files

    @staticmethod
    def video_frames(path: Path) -> list:
        """Every frame of a saved video file, as RGB uint8 arrays [H,W,3] (PyAV)."""
        import av

        with av.open(str(path)) as container:
            return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]

    def stop(self) -> None:
        """Stop the server and delete its working folder, unless a workflow failed (then its log stays)."""
        clean = [] if self.failed else ["--clean"]
        subprocess.run(["bash", str(self.host / "stop.sh"), str(self.work), *clean], capture_output=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    # `python -m scripts.harness host`: print the host folder (empty without one); scripts/install.sh uses it
    if sys.argv[1:] != ["host"]:
        sys.exit("usage: python -m scripts.harness host")
    try:
        print(find_host() or "")
    except RuntimeError as error:
        sys.exit(f"[install] {error}")
