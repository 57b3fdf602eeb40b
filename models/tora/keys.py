"""Tora checkpoints: every published layout, detected from marker keys, renamed to one layout.

Target names (the official diffusers-version `ToraTransformer3DModel`): `traj_extractor.*` and
`fuser.<block>.*`. Sources (RENAMES: anchored prefix -> target prefix):
- "diffusers": the official diffusers-format Tora transformer (its CogVideoX keys are ignored here).
- "SAT": the official SAT checkpoint (`mp_rank_00_model_states.pt`, dict under "module"): the extractor
  under `model.diffusion_model.traj_extractor.`, the fusers in the adaln mixin's `fuser_list`.
- "split fuser" / "split extractor": the two files CogVideoXWrapper users have
  (`fuser/fuser.safetensors`: `<block>.*`; `traj_extractor/traj_extractor.safetensors`: `conv_in.*`, `body.*`).
"""
from __future__ import annotations

import re

import torch
from .. import model_file
from ..errors import MotionKitError

LAYOUTS = {
    "diffusers": {"markers": ("traj_extractor.conv_in.weight", "fuser.0.flow_gamma_spatial.weight"),
                  "renames": {"traj_extractor.": "traj_extractor.", "fuser.": "fuser."}},
    "SAT": {"markers": ("model.diffusion_model.traj_extractor.conv_in.weight",
                        "model.diffusion_model.mixins.adaln_layer.fuser_list.0.flow_gamma_spatial.weight"),
            "renames": {"model.diffusion_model.traj_extractor.": "traj_extractor.",
                        "model.diffusion_model.mixins.adaln_layer.fuser_list.": "fuser."}},
    "split fuser": {"markers": ("0.flow_gamma_spatial.weight",), "renames": {"": "fuser."}},
    "split extractor": {"markers": ("conv_in.weight", "body.0.block1.weight"), "renames": {"": "traj_extractor."}},
}
COGVIDEOX_MARKER = "patch_embed.proj.weight"
FUSER_KEY = re.compile(r"^fuser\.(\d+)\.")
BODY_KEY = re.compile(r"^traj_extractor\.body\.(\d+)\.")
BLOCKS_PER_LEVEL = 2
SAT_CONTAINER = "module"

CONVERT_COMMAND = "python scripts/convert_tora_checkpoint.py <file.pt> <out.safetensors> --trust-pickle"


class ToraFormatError(MotionKitError):
    pass


def unwrap(state: dict) -> dict:
    """The tensors of a SAT checkpoint sit under "module"."""
    inner = state.get(SAT_CONTAINER) if isinstance(state, dict) else None
    return inner if isinstance(inner, dict) else state


def detect_layout(state_dict: dict, source: str) -> str:
    for name, layout in LAYOUTS.items():
        if all(marker in state_dict for marker in layout["markers"]):
            return name
    if COGVIDEOX_MARKER in state_dict or any(k.endswith("." + COGVIDEOX_MARKER) for k in state_dict):
        raise ToraFormatError(f"{source} is a plain CogVideoX transformer without Tora weights: load it with "
                              f"Load CogVideoX (MotionKit); Load Tora (MotionKit) needs the Tora fuser and trajectory-"
                              f"extractor weights (SAT checkpoint, diffusers Tora transformer, or fuser.safetensors + "
                              f"traj_extractor.safetensors)")
    checked = "; ".join(f"{name}: {', '.join(layout['markers'])}" for name, layout in LAYOUTS.items())
    sample = ", ".join(sorted(state_dict)[:6]) or "no keys"
    raise ToraFormatError(f"{source} is not a Tora checkpoint: checked the marker keys of each layout ({checked}); "
                          f"none is complete. The file starts with {sample}")


def convert(state_dict: dict, source: str = "the file") -> tuple[str, dict[str, torch.Tensor]]:
    """(layout, tensors renamed to the target layout); keys outside the layout's prefixes are dropped."""
    state_dict = unwrap(state_dict)
    layout = detect_layout(state_dict, source)
    out = {}
    for key, value in state_dict.items():
        for prefix, target in LAYOUTS[layout]["renames"].items():
            if key.startswith(prefix):
                out[target + key[len(prefix):]] = value
                break
    return layout, out


def config_from_state_dict(sd: dict[str, torch.Tensor], source: str = "the Tora weights") -> dict:
    """ToraModel arguments from key shapes; raises if the extractor or the fusers are missing."""
    has_fusers = any(FUSER_KEY.match(k) for k in sd)
    has_extractor = "traj_extractor.conv_in.weight" in sd
    if not (has_fusers and has_extractor):
        lacking = "the trajectory extractor (traj_extractor.safetensors)" if has_fusers else "the fusers (fuser.safetensors)"
        raise ToraFormatError(f"{source} lacks {lacking}: give Load Tora (MotionKit) both split files, or one file "
                              f"holding both (the SAT checkpoint or the diffusers Tora transformer)")
    blocks = 1 + max(int(FUSER_KEY.match(k).group(1)) for k in sd if FUSER_KEY.match(k))
    body = 1 + max(int(BODY_KEY.match(k).group(1)) for k in sd if BODY_KEY.match(k))
    conv_in = sd["traj_extractor.conv_in.weight"]
    patch = 2
    in_channels = 16
    patch_t = conv_in.shape[1] // (in_channels * patch * patch)
    if body != blocks * BLOCKS_PER_LEVEL:
        raise ToraFormatError(f"{source} has {blocks} fusers but {body} extractor blocks; Tora uses "
                              f"{BLOCKS_PER_LEVEL} extractor blocks per fuser")
    return dict(dim=sd["fuser.0.flow_gamma_temporal.weight"].shape[0], blocks=blocks,
                flow_channels=sd["fuser.0.flow_gamma_spatial.weight"].shape[1], in_channels=in_channels,
                patch_size=patch, patch_size_t=patch_t)


def check_keys(model: torch.nn.Module, sd: dict, source: str = "the Tora weights") -> None:
    mismatch = model_file.state_dict_mismatch(model, sd)
    if mismatch:
        raise ToraFormatError(f"{source} does not fill the Tora modules read from it: {mismatch}")
