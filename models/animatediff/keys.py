"""Motion module and MotionLoRA files: detection from keys and rename tables.

Every layout is converted to the original AnimateDiff key names (the module tree of
`motion_module.MotionModel`):

- original AnimateDiff (mm_sd_v14/v15, mm_sd_v15_v2, v3_sd15_mm, mm_sdxl_v10_beta,
  AnimateLCM): `down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight`
- diffusers `MotionAdapter`: `down_blocks.0.motion_modules.0.proj_in.weight`,
  `attn1/attn2/norm1/norm2/norm3`, one `pos_embed.pe` per transformer block
- HotshotXL: `down_blocks.0.temporal_attentions.0.proj_in.weight`,
  `pos_encoder.positional_encoding`

Versions (`kind`): v1 = SD1.5, no middle block, 24-frame position encoding; v2 = a middle
block; v3 = SD1.5, no middle block, 32 frames; sdxl = 3 UNet levels; hotshotxl = the
HotshotXL layout; animatelcm = SD1.5 without stored position encodings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .motion_module import MotionModuleConfig, sinusoidal_encoding
from ..errors import MotionKitError

# ---------------------------------------------------------------- format markers
MOTION_MODULE_MARKERS: dict[str, re.Pattern] = {
    "AnimateDiff": re.compile(r"^down_blocks\.\d+\.motion_modules\.\d+\.temporal_transformer\.proj_in\.weight$"),
    "diffusers MotionAdapter": re.compile(r"^down_blocks\.\d+\.motion_modules\.\d+\.proj_in\.weight$"),
    "HotshotXL": re.compile(r"^down_blocks\.\d+\.temporal_attentions\.\d+\.proj_in\.weight$"),
}
MOTION_LORA_MARKERS: dict[str, re.Pattern] = {
    "AnimateDiff MotionLoRA": re.compile(r"\.attention_blocks\.\d+\.processor\.to_(q|k|v|out)_lora\.(down|up)\.weight$"),
    "diffusers MotionLoRA": re.compile(r"\.attn\d\.(processor\.)?to_(q|k|v|out)(_lora|\.lora)\.(down|up)\.weight$"),
}
SD_LORA_MARKER = re.compile(r"^(lora_unet_|lora_te_?\d?_|unet\.|lycoris_)")
SD_CHECKPOINT_MARKER = re.compile(r"^(model\.diffusion_model\.|first_stage_model\.|cond_stage_model\.|conditioner\.)")

# ---------------------------------------------------------------- rename tables (anchored, order-free)
DIFFUSERS_RENAMES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^((?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.(\d+)\."), r"\1.motion_modules.\2.temporal_transformer."),
    (re.compile(r"\.transformer_blocks\.(\d+)\.attn1\."), r".transformer_blocks.\1.attention_blocks.0."),
    (re.compile(r"\.transformer_blocks\.(\d+)\.attn2\."), r".transformer_blocks.\1.attention_blocks.1."),
    (re.compile(r"\.transformer_blocks\.(\d+)\.norm1\."), r".transformer_blocks.\1.norms.0."),
    (re.compile(r"\.transformer_blocks\.(\d+)\.norm2\."), r".transformer_blocks.\1.norms.1."),
    (re.compile(r"\.transformer_blocks\.(\d+)\.norm3\."), r".transformer_blocks.\1.ff_norm."),
]
DIFFUSERS_POS_EMBED = re.compile(r"^(.*\.transformer_blocks\.\d+)\.pos_embed\.pe$")
HOTSHOT_RENAMES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^((?:down_blocks|up_blocks)\.\d+|mid_block)\.temporal_attentions\.(\d+)\."), r"\1.motion_modules.\2.temporal_transformer."),
    (re.compile(r"\.pos_encoder\.positional_encoding$"), r".pos_encoder.pe"),
]
LORA_RENAMES: list[tuple[re.Pattern, str]] = [
    # AnimateDiff: ...attention_blocks.0.processor.to_q_lora.down.weight -> ...attention_blocks.0.to_q (down)
    (re.compile(r"\.processor\.to_(q|k|v)_lora\.(down|up)\.weight$"), r".to_\1.\2"),
    (re.compile(r"\.processor\.to_out_lora\.(down|up)\.weight$"), r".to_out.0.\1"),
    # diffusers: ...attn1.to_q.lora.down.weight / attn1.processor.to_q_lora.down.weight
    (re.compile(r"\.to_(q|k|v)\.lora\.(down|up)\.weight$"), r".to_\1.\2"),
    (re.compile(r"\.to_out\.0\.lora\.(down|up)\.weight$"), r".to_out.0.\1"),
]

MOTION_LORA_SAVE_RENAMES: list[tuple[re.Pattern, str]] = [
    # module path + half -> the original layout of the published v2_lora_* files
    (re.compile(r"\.to_(q|k|v)\.(down|up)$"), r".processor.to_\1_lora.\2.weight"),
    (re.compile(r"\.to_out\.0\.(down|up)$"), r".processor.to_out_lora.\1.weight"),
]

SD_TYPES = {4: "SD1.5", 3: "SDXL"}
ACROSS_FRAMES, PER_FRAME = "across frames", "per frame"
GROUPNORM_MODES = ("auto", PER_FRAME, ACROSS_FRAMES)
"""Apply Motion Module's groupnorm choices: auto takes the version's own."""


class MotionFileError(MotionKitError):
    """A file that is not what the loader that was given it expects."""


@dataclass(frozen=True)
class MotionModuleInfo:
    """What a motion module file is: its version, layout, the UNet it fits, and how that UNet's GroupNorm sees frames."""
    name: str
    kind: str
    layout: str
    sd_type: str
    config: MotionModuleConfig
    unet_groupnorm: str

    def describe(self) -> str:
        return f"'{self.name}' ({self.kind}, {self.layout} layout, for {self.sd_type}, up to {self.config.max_frames} frames per pass)"


def _rename(key: str, table: list[tuple[re.Pattern, str]]) -> str:
    for pattern, replacement in table:
        key = pattern.sub(replacement, key)
    return key


def _matches(state: dict, markers: dict[str, re.Pattern]) -> list[str]:
    return [name for name, pattern in markers.items() if any(pattern.search(k) for k in state)]


def file_kind_error(state: dict, name: str, wanted: str) -> MotionFileError | None:
    """An error naming what a file is when it is the wrong kind for a loader, else None."""
    if wanted == "motion module":
        lora = _matches(state, MOTION_LORA_MARKERS)
        if lora:
            return MotionFileError(f"'{name}' is a MotionLoRA ({lora[0]} keys), not a motion module: load it with "
                                   f"'Load MotionLoRA (MotionKit)' from the animatediff_motion_lora folder and connect it "
                                   f"to Apply Motion Module's motion_lora input")
    else:
        module = _matches(state, MOTION_MODULE_MARKERS)
        if module:
            return MotionFileError(f"'{name}' is a motion module ({module[0]} layout), not a MotionLoRA: load it with "
                                   f"'Load Motion Module (MotionKit)' from the animatediff_models folder")
    if any(SD_CHECKPOINT_MARKER.search(k) for k in state):
        return MotionFileError(f"'{name}' is a Stable Diffusion checkpoint (keys like '{sorted(state)[0]}'), not a {wanted}: "
                               f"load it with ComfyUI's Load Checkpoint and connect its MODEL to Apply Motion Module")
    if any(SD_LORA_MARKER.search(k) for k in state):
        return MotionFileError(f"'{name}' is an image-model LoRA (keys like '{sorted(state)[0]}'), not a {wanted}: "
                               f"load it with ComfyUI's LoraLoader (the AnimateDiff v3 domain adapter is such a LoRA)")
    return None


def _count(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state for m in [re.match(pattern, k)] if m}
    return max(found) + 1 if found else 0


def to_original_layout(state: dict[str, torch.Tensor], name: str) -> tuple[dict[str, torch.Tensor], str]:
    """Rename any known layout to the original AnimateDiff names; return (state, layout name)."""
    error = file_kind_error(state, name, "motion module")
    if error:
        raise error
    layouts = _matches(state, MOTION_MODULE_MARKERS)
    if len(layouts) != 1:
        checked = "; ".join(f"{n}: a key matching {p.pattern}" for n, p in MOTION_MODULE_MARKERS.items())
        sample = ", ".join(sorted(state)[:5]) or "no keys"
        raise MotionFileError(f"'{name}' is not a motion module this pack knows (checked {checked}; "
                              f"found {len(state)} keys such as {sample})")
    layout = layouts[0]
    if layout == "AnimateDiff":
        return dict(state), layout
    if layout == "HotshotXL":
        return {_rename(k, HOTSHOT_RENAMES): v for k, v in state.items()}, layout
    converted = {}
    for key, value in state.items():
        pos = DIFFUSERS_POS_EMBED.match(key)
        if pos:  # diffusers keeps one table per transformer block; the original one per attention
            prefix = _rename(pos.group(1) + ".", DIFFUSERS_RENAMES)
            attentions = {m.group(1) for k in state for m in [re.match(re.escape(pos.group(1)) + r"\.attn(\d+)\.", k)] if m}
            for a in range(len(attentions)):
                converted[f"{prefix}attention_blocks.{a}.pos_encoder.pe"] = value
        else:
            converted[_rename(key, DIFFUSERS_RENAMES)] = value
    return converted, layout


def detect(state: dict[str, torch.Tensor], name: str) -> tuple[MotionModuleInfo, dict[str, torch.Tensor]]:
    """Read a motion module's version and shape from its keys; return it with the state in original names."""
    state, layout = to_original_layout(state, name)
    levels = _count(state, r"^down_blocks\.(\d+)\.")
    if levels not in SD_TYPES:
        raise MotionFileError(f"'{name}' has motion modules for {levels} UNet levels; AnimateDiff modules have 4 (SD1.5) or 3 (SDXL)")
    first = "down_blocks.0.motion_modules.0.temporal_transformer."
    pe_keys = [k for k in state if k.endswith(".pos_encoder.pe")]
    has_mid = any(k.startswith("mid_block.") for k in state)
    max_frames = state[pe_keys[0]].shape[1] if pe_keys else 32
    config = MotionModuleConfig(
        block_channels=tuple(state[f"down_blocks.{i}.motion_modules.0.temporal_transformer.norm.weight"].shape[0]
                             for i in range(levels)),
        down_layers=_count(state, r"^down_blocks\.0\.motion_modules\.(\d+)\."),
        up_layers=_count(state, r"^up_blocks\.0\.motion_modules\.(\d+)\."),
        mid_block=has_mid,
        transformer_layers=_count(state, re.escape(first) + r"transformer_blocks\.(\d+)\."),
        attention_blocks=_count(state, re.escape(first) + r"transformer_blocks\.0\.attention_blocks\.(\d+)\."),
        max_frames=int(max_frames),
    )
    sd_type = SD_TYPES[levels]
    if layout == "HotshotXL":
        kind = "hotshotxl"
    elif not pe_keys:
        kind = "animatelcm"
    elif has_mid:
        kind = "v2"
    elif sd_type == "SDXL":
        kind = "sdxl"
    else:
        kind = "v1" if max_frames == 24 else "v3"
    if not pe_keys:  # AnimateLCM stores no tables; they are the fixed sinusoid
        for key in [k for k in state if k.endswith(".to_q.weight")]:
            state[key[: -len("to_q.weight")] + "pos_encoder.pe"] = sinusoidal_encoding(max_frames, state[key].shape[0])
    info = MotionModuleInfo(name=name, kind=kind, layout=layout, sd_type=sd_type, config=config,
                            # v1 was trained on a UNet whose GroupNorms saw all frames of a video at once
                            # (AnimateDiff's use_inflated_groupnorm=False); later versions normalise per frame.
                            unet_groupnorm=ACROSS_FRAMES if kind == "v1" else PER_FRAME)
    return info, state


def check_fits_module(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], name: str) -> None:
    """Raise listing missing, unexpected and mis-shaped keys when a converted state does not fill the module."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(shapes)} with other shapes (e.g. {[(k, tuple(state[k].shape), tuple(expected[k].shape)) for k in shapes[:2]]})" if shapes else ""]
        raise MotionFileError(f"'{name}' does not match the motion module its keys describe: "
                              + "; ".join(p for p in parts if p) + " (a damaged or unsupported file)")


def motion_lora_pairs(state: dict[str, torch.Tensor], name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """MotionLoRA file -> {module path in the motion model: (down [r, in], up [out, r])}."""
    error = file_kind_error(state, name, "MotionLoRA")
    if error:
        raise error
    if not _matches(state, MOTION_LORA_MARKERS):
        checked = "; ".join(f"{n}: {p.pattern}" for n, p in MOTION_LORA_MARKERS.items())
        raise MotionFileError(f"'{name}' is not a MotionLoRA (checked {checked}; found keys such as {sorted(state)[:3]})")
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        renamed = _rename(key, LORA_RENAMES)
        path, half = renamed.rsplit(".", 1)
        if half not in ("down", "up") or renamed == key:
            raise MotionFileError(f"'{name}': key '{key}' is not a MotionLoRA down/up weight")
        path = _rename(path, DIFFUSERS_RENAMES) if ".temporal_transformer." not in path else path
        halves.setdefault(path, {})[half] = value
    pairs = {}
    for path, found in halves.items():
        if set(found) != {"down", "up"}:
            raise MotionFileError(f"'{name}': '{path}' has only its {''.join(found)} weight; a LoRA needs down and up")
        if found["down"].shape[0] != found["up"].shape[1]:
            raise MotionFileError(f"'{name}': '{path}' down {tuple(found['down'].shape)} and up {tuple(found['up'].shape)} ranks differ")
        pairs[path] = (found["down"], found["up"])
    return pairs


def motion_lora_file_state(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """{module path: (down, up)} -> a MotionLoRA state dict in the original AnimateDiff layout
    (`...attention_blocks.0.processor.to_q_lora.down.weight`), the inverse of `motion_lora_pairs`."""
    state = {}
    for path, (down, up) in pairs.items():
        for half, tensor in (("down", down), ("up", up)):
            key = _rename(f"{path}.{half}", MOTION_LORA_SAVE_RENAMES)
            if key == f"{path}.{half}":
                raise MotionFileError(f"'{path}' is not a temporal attention projection (to_q, to_k, to_v, to_out.0)")
            state[key] = tensor
    return state
