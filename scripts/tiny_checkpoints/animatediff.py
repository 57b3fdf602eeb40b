"""AnimateDiff demo/test files: random weights with the real key names, deterministic.

- checkpoints/motionkit_random_sd15.safetensors: an SD1.5-shaped checkpoint in the original
  LDM layout (model.diffusion_model.*, cond_stage_model.transformer.text_model.*,
  first_stage_model.*), fp16, ~2 GB: ComfyUI's CheckpointLoaderSimple recognises SD1.5
  only at its real widths (see ../shared/comfyui-host/FACTS.md).
- animatediff_models/motionkit_random_mm_sd15_v2.safetensors: a v2 motion module in the
  original AnimateDiff layout (it must match the real UNet's widths, so it is full size).
- animatediff_motion_lora/motionkit_random_motion_lora.safetensors: a rank-2 MotionLoRA in
  the original layout (attention_blocks.N.processor.to_q_lora.down/up.weight).
- loras/motionkit_random_domain_adapter.safetensors: a rank-4 image-model LoRA on the UNet's
  attention projections (kohya layout, as ComfyUI's LoraLoader reads; the v3 domain adapter's role).

Shapes come from ComfyUI's and this pack's own modules built on the meta device; values are
slices of one seeded random pool (small-std normal; 1-D weights around 1), so writing takes
seconds. The work happens in a child process so its memory is returned when it ends. The files are
written once into a cache folder (`cache_folder()`: ~/.cache/motionkit or $MOTIONKIT_CACHE) and
linked into each models folder, so the tests and the demo share one copy (about 3 GB).

    .venv/bin/python -m scripts.tiny_checkpoints.animatediff MODELS_DIR   # from the repository root
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CHECKPOINT = "checkpoints/motionkit_random_sd15.safetensors"
MOTION_MODULE = "animatediff_models/motionkit_random_mm_sd15_v2.safetensors"
MOTION_LORA = "animatediff_motion_lora/motionkit_random_motion_lora.safetensors"
DOMAIN_LORA = "loras/motionkit_random_domain_adapter.safetensors"
FILES = (CHECKPOINT, MOTION_MODULE, MOTION_LORA, DOMAIN_LORA)
ROOT = Path(__file__).resolve().parents[2]

SD15_UNET = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
                 adm_in_channels=None, in_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], channel_mult=[1, 2, 4, 4], transformer_depth_middle=1,
                 use_linear_in_transformer=False, context_dim=768, num_heads=8, num_head_channels=-1,
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
SD_VAE = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4, 4],
              num_res_blocks=2, attn_resolutions=[], dropout=0.0)


def cache_folder() -> Path:
    """Where the files are kept between runs: $MOTIONKIT_CACHE (else ~/.cache/motionkit), in a folder named by a
    hash of this generator's source and the motion module's, so a change to either (shapes, key names, seed,
    values) writes new files."""
    root = Path(os.environ.get("MOTIONKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "motionkit")
    sources = hashlib.sha256()
    for source in (Path(__file__), ROOT / "models" / "animatediff" / "motion_module.py"):
        sources.update(source.read_bytes())
    return root / f"random-animatediff-{sources.hexdigest()[:16]}"


def write(models_dir: Path) -> list[Path]:
    """Link the AnimateDiff files into models_dir (ComfyUI layout), writing them once into the cache folder (in a
    child process, so its memory is returned); return their paths in models_dir."""
    models_dir, cache = Path(models_dir), cache_folder()
    if not all((cache / f).is_file() for f in FILES):
        partial = cache.with_name(f"{cache.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([sys.executable, "-m", __name__, str(partial)], check=True, cwd=ROOT)
        try:
            partial.rename(cache)  # atomic: a concurrent writer that finished first wins, this copy goes
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    for name in FILES:
        target = models_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(cache / name, target)  # same file system: no copy, no second 2 GB
        except OSError:
            target.symlink_to(cache / name)
    return [models_dir / f for f in FILES]


class _Pool:
    """Deterministic values: consecutive slices of one seeded normal pool."""

    def __init__(self, seed: int, size: int = 1 << 22):
        import torch

        self.values = torch.randn(size, generator=torch.Generator().manual_seed(seed))
        self.offset = 0

    def take(self, shape, std: float, mean: float = 0.0):
        import torch

        n = 1
        for s in shape:
            n *= s
        size = self.values.numel()
        reps = (self.offset + n) // size + 1
        flat = self.values.repeat(reps)[self.offset:self.offset + n] if reps > 1 else self.values[self.offset:self.offset + n]
        self.offset = (self.offset + n * 7 + 13) % size
        return (flat.reshape(shape) * std + mean).to(torch.float16).contiguous()


def _random_state(shapes: dict, pool: _Pool, std: float = 0.02) -> dict:
    return {k: pool.take(s, std, 1.0 if (len(s) == 1 and k.endswith(".weight")) else 0.0)
            for k, s in sorted(shapes.items())}


def _shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _main(models_dir: Path) -> None:
    from scripts import harness

    harness.setup_comfy_in_process()
    harness.import_pack()
    import comfy.ldm.models.autoencoder
    import comfy.ldm.modules.diffusionmodules.openaimodel
    import comfy.ops
    import comfy.sd1_clip
    import safetensors.torch
    import torch
    from motionkit.models.animatediff.motion_module import MotionModel, MotionModuleConfig

    UNetModel = comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel
    ops = comfy.ops.disable_weight_init
    with torch.device("meta"):
        unet = _shapes(UNetModel(**SD15_UNET, device="meta", operations=ops))
        clip = comfy.sd1_clip.SDClipModel(device="meta")
        text = {k: v for k, v in _shapes(clip.transformer).items() if k.startswith("text_model.")}
        vae = _shapes(comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=SD_VAE, embed_dim=4))
        motion = MotionModel(MotionModuleConfig(mid_block=True, max_frames=32), operations=ops)
    pool = _Pool(seed=20231208)
    for name in FILES:
        (models_dir / name).parent.mkdir(parents=True, exist_ok=True)

    state = {f"model.diffusion_model.{k}": v for k, v in _random_state(unet, pool).items()}
    state.update({f"cond_stage_model.transformer.{k}": v for k, v in _random_state(text, pool).items()})
    state.update({f"first_stage_model.{k}": v for k, v in _random_state(vae, pool).items()})
    safetensors.torch.save_file(state, str(models_dir / CHECKPOINT), metadata={"motionkit": "random SD1.5-shaped weights"})
    del state

    from motionkit.models.animatediff.motion_module import sinusoidal_encoding

    motion_shapes = _shapes(motion)
    mm = _random_state({k: s for k, s in motion_shapes.items() if not k.endswith("pos_encoder.pe")}, pool)
    mm.update({k: sinusoidal_encoding(s[1], s[2]) for k, s in motion_shapes.items() if k.endswith("pos_encoder.pe")})
    safetensors.torch.save_file(mm, str(models_dir / MOTION_MODULE))
    del mm

    lora = {}
    for key, shape in sorted(motion_shapes.items()):
        found = re.match(r"(.*\.attention_blocks\.\d+)\.(to_q|to_k|to_v|to_out\.0)\.weight$", key)
        if found:
            prefix = f"{found.group(1)}.processor.{found.group(2).replace('.0', '')}_lora"
            lora[f"{prefix}.down.weight"] = pool.take((2, shape[1]), 0.05)
            lora[f"{prefix}.up.weight"] = pool.take((shape[0], 2), 0.05)
    safetensors.torch.save_file(lora, str(models_dir / MOTION_LORA))

    adapter = {}
    for key, shape in sorted(unet.items()):
        found = re.match(r"(.*\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0))\.weight$", key)
        if found:
            kohya = "lora_unet_" + _diffusers_name(found.group(1)).replace(".", "_")
            adapter[f"{kohya}.lora_down.weight"] = pool.take((4, shape[1]), 0.05)
            adapter[f"{kohya}.lora_up.weight"] = pool.take((shape[0], 4), 0.05)
            adapter[f"{kohya}.alpha"] = torch.tensor(4.0)
    safetensors.torch.save_file(adapter, str(models_dir / DOMAIN_LORA))


def _diffusers_name(ldm_key: str) -> str:
    """LDM UNet name of an attention projection -> diffusers name (what kohya LoRA keys are built from)."""
    import comfy.utils

    reverse = {v: k for k, v in comfy.utils.unet_to_diffusers(SD15_UNET).items()}
    return reverse[ldm_key + ".weight"][: -len(".weight")]


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
