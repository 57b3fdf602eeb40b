"""Tiny Tora image-to-video files: a CogVideoX-5B-I2V-shaped DiT and Tora I2V weights in the SAT layout.

- diffusion_models/motionkit_tiny_cogvideox_i2v/diffusion_pytorch_model.safetensors + config.json: the
  published `THUDM/CogVideoX-5b-I2V` transformer folder's layout (32 input channels = noise + image
  latents, learned position embeddings for one size) at the tiny CogVideoX's widths, trained for
  9 frames at 96x64 (3 latent frames of 8x12).
- tora/motionkit_tiny_tora_i2v_sat.safetensors: Tora I2V's fusers and trajectory extractor with the
  SAT key names of `ckpts/tora/i2v/mp_rank_00_model_states.pt` (as scripts/convert_tora_checkpoint.py
  writes them), for the tiny DiT (2 blocks of width 32).
"""
import json
from pathlib import Path

import safetensors.torch

from . import cogvideox, tora

I2V_CONFIG = dict(cogvideox.TINY_CONFIG, in_channels=32, use_rotary_positional_embeddings=True,
                  use_learned_positional_embeddings=True, sample_height=8, sample_width=12, sample_frames=9)
DIT_FOLDER = "motionkit_tiny_cogvideox_i2v"
TORA_FILENAME = "motionkit_tiny_tora_i2v_sat.safetensors"
SAT_PREFIXES = {"traj_extractor.": "model.diffusion_model.traj_extractor.",
                "fuser.": "model.diffusion_model.mixins.adaln_layer.fuser_list."}


def tiny_dit_state_dict():
    return cogvideox.tiny_state_dict(I2V_CONFIG, seed=3)


def tiny_tora_state_dict():
    """The Tora I2V tensors in the target (diffusers-version) names."""
    return tora.tiny_state_dict(seed=4)


def sat_layout(state_dict: dict) -> dict:
    """Target names -> the SAT checkpoint's names."""
    out = {}
    for key, value in state_dict.items():
        prefix = next(p for p in SAT_PREFIXES if key.startswith(p))
        out[SAT_PREFIXES[prefix] + key[len(prefix):]] = value
    return out


def write(models_dir: Path) -> list[Path]:
    folder = Path(models_dir) / "diffusion_models" / DIT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    dit = folder / "diffusion_pytorch_model.safetensors"
    safetensors.torch.save_file(tiny_dit_state_dict(), str(dit))
    config = folder / "config.json"
    config.write_text(json.dumps({"_class_name": "CogVideoXTransformer3DModel", **I2V_CONFIG}, indent=2))
    path = Path(models_dir) / "tora" / TORA_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(sat_layout(tiny_tora_state_dict()), str(path))
    return [dit, config, path]
