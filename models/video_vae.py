"""One object for every video VAE of the pack: EasyAnimate V2 (mag VAE), V3 (slice VAE), V4,
V5/V5.1 (cache mag VAE) and CogVideoX.

`load_video_vae(path)` detects the version from the keys (and config.json beside the
file, when there is one) and returns a `VideoVAE`: the node type MOTIONKIT_VIDEO_VAE.
Its `decode` and `encode` stream: the latent (or the frames) are walked in the version's
own temporal chunks, each chunk goes through the network with the causal state of the
previous chunk, and its frames are written to the output on the intermediate device
at once. Only one chunk's activations (per tile) and the small causal state are alive
on the compute device, so peak memory does not grow with clip length. Large frames are
cut into overlapping spatial tiles; each tile keeps its own causal state and the tiles
of a chunk are blended as soon as the chunk is done.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

import torch

from . import host, model_file
from .cogvideox import vae as cogvideox_vae
from .cogvideox import vae_keys as cogvideox_keys
from .easyanimate import keys as easyanimate_keys
from .easyanimate import magvit

log = logging.getLogger("MotionKit")


# ---------------------------------------------------------------- spatial tiles
@dataclass(frozen=True)
class TilePlan:
    """Overlapping tiles in the input's space, blended in the output's space.

    tile_*: tile size in input pixels (latent pixels for decode); stride_*: step between
    tiles; blend_*: output rows/columns blended with the neighbour above/left; keep_*:
    output rows/columns each tile contributes.
    """

    tile_h: int
    tile_w: int
    stride_h: int
    stride_w: int
    blend_h: int
    blend_w: int
    keep_h: int
    keep_w: int

    @classmethod
    def for_decode(cls, tile_px: int, overlap_px: int, ratio: int) -> "TilePlan":
        """Tiles of `tile_px` output pixels overlapping by `overlap_px` (rounded to latent pixels)."""
        tile, stride = max(tile_px // ratio, 1), max((tile_px - overlap_px) // ratio, 1)
        return cls(tile, tile, stride, stride, (tile - stride) * ratio, (tile - stride) * ratio,
                   stride * ratio, stride * ratio)

    @classmethod
    def for_encode(cls, tile_px: int, overlap_px: int, ratio: int) -> "TilePlan":
        """Tiles of `tile_px` input pixels overlapping by `overlap_px` (multiples of the ratio)."""
        tile, stride = max(tile_px // ratio, 1) * ratio, max((tile_px - overlap_px) // ratio, 1) * ratio
        return cls(tile, tile, stride, stride, (tile - stride) // ratio, (tile - stride) // ratio,
                   stride // ratio, stride // ratio)

    def needed(self, height: int, width: int) -> bool:
        return height > self.tile_h or width > self.tile_w


def _blend_rows(above: torch.Tensor, below: torch.Tensor, extent: int) -> None:
    """Fade the top `extent` rows of `below` in from the bottom rows of `above` (in place)."""
    extent = min(above.shape[3], below.shape[3], extent)
    for y in range(extent):
        below[:, :, :, y] = above[:, :, :, y - extent] * (1 - y / extent) + below[:, :, :, y] * (y / extent)


def _blend_columns(left: torch.Tensor, right: torch.Tensor, extent: int) -> None:
    extent = min(left.shape[4], right.shape[4], extent)
    for x in range(extent):
        right[..., x] = left[..., x - extent] * (1 - x / extent) + right[..., x] * (x / extent)


def _move_state(state: dict, device: torch.device) -> None:
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.device != device:
            state[key] = value.to(device, non_blocking=device.type != "cpu")  # a copy to the host waits


def _tiled_step(piece: torch.Tensor, step: Callable, states: dict, plan: TilePlan,
                out_h: int, out_w: int, chunk: tuple) -> torch.Tensor:
    """One chunk through every tile, each with its own causal state, blended and cropped.

    Between chunks a tile's state waits on the intermediate device (when that is not the
    compute device), so the compute device holds one tile's state and activations at a time."""
    height, width = piece.shape[-2:]
    parking = host.intermediate_device()

    def run(i: int, j: int) -> torch.Tensor:
        state = states.setdefault((i, j), {})
        _move_state(state, piece.device)
        y = step(piece[..., i:i + plan.tile_h, j:j + plan.tile_w], state, chunk)
        _move_state(state, parking)
        return y

    rows = [[run(i, j) for j in range(0, width, plan.stride_w)] for i in range(0, height, plan.stride_h)]
    result = []
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if i > 0:
                _blend_rows(rows[i - 1][j], tile, plan.blend_h)
            if j > 0:
                _blend_columns(row[j - 1], tile, plan.blend_w)
        result.append(torch.cat([tile[..., :plan.keep_h, :plan.keep_w] for tile in row], dim=4))
    return torch.cat(result, dim=3)[..., :out_h, :out_w]


# ---------------------------------------------------------------- the node object
class VideoVAE:
    """A loaded video VAE under ComfyUI's model management (type MOTIONKIT_VIDEO_VAE).

    `encode(images)` takes IMAGE frames [F,H,W,3] or [B,F,H,W,3] in 0..1 and returns the
    latent [B,C,T,h,w] multiplied by `scaling_factor`; `decode(latent)` is the inverse and
    returns IMAGE frames [B*F,H,W,3] in 0..1. Both run chunk by chunk with a progress bar
    and an interrupt check between chunks.
    """

    def __init__(self, net: torch.nn.Module, name: str = "", dtype: torch.dtype = torch.float32):
        self.net = net
        self.name = name or net.version
        self.dtype = dtype
        self.model_patcher = host.model_patcher(net)

    version = property(lambda self: self.net.version)
    latent_channels = property(lambda self: self.net.cfg.latent_channels)
    scaling_factor = property(lambda self: self.net.cfg.scaling_factor)
    spatial_ratio = property(lambda self: self.net.spatial_ratio)

    def tile_plan(self, tile_size: int, tile_overlap: int, for_decode: bool) -> TilePlan | None:
        """The tiles for `tile_size`/`tile_overlap` output (decode) or input (encode) pixels; None for 0."""
        if tile_size <= 0:
            return None
        if tile_overlap >= tile_size:
            raise ValueError(f"tile_overlap ({tile_overlap}) must be smaller than tile_size ({tile_size})")
        if tile_size < self.spatial_ratio * 2:
            raise ValueError(f"tile_size ({tile_size}) must be at least {self.spatial_ratio * 2} pixels "
                             f"(two latent pixels of '{self.name}'), or 0 for no tiling")
        make = TilePlan.for_decode if for_decode else TilePlan.for_encode
        return make(tile_size, tile_overlap, self.spatial_ratio)

    def __repr__(self) -> str:
        return f"VideoVAE({self.name!r}, version={self.version}, latent_channels={self.latent_channels})"

    # -- checks
    def _check_latent(self, latent: torch.Tensor) -> None:
        if latent.ndim == 4:
            raise ValueError(f"the latent is 4D {list(latent.shape)} (an image latent [B,C,H,W]) but the video VAE "
                             f"'{self.name}' ({self.version}) decodes video latents [B,C,T,H,W] with "
                             f"{self.latent_channels} channels: connect a latent made for this VAE")
        if latent.ndim != 5:
            raise ValueError(f"the latent has shape {list(latent.shape)}; the video VAE '{self.name}' "
                             f"({self.version}) expects [B,C,T,H,W] with {self.latent_channels} channels")
        if latent.shape[1] != self.latent_channels:
            raise ValueError(f"the latent has {latent.shape[1]} channels but the video VAE '{self.name}' "
                             f"({self.version}) expects {self.latent_channels}: decode it with the VAE of the "
                             f"model that made it")

    def _prepare(self, work_bytes: int) -> torch.device:
        host.load_models([self.model_patcher], memory_required=work_bytes)
        return self.model_patcher.load_device

    # -- the streaming loop
    def _stream(self, x: torch.Tensor, chunks, step, counts: list[int], out: torch.Tensor, write,
                tiles: TilePlan | None, out_hw: tuple[int, int], device: torch.device, window=None) -> None:
        """Run `step(piece, state, (start, end, total))` over the chunks; `window(start, end, total)` gives
        the frames a chunk reads (its neighbours too, for versions that look at them)."""
        states: dict = {}
        bar = host.progress_bar(len(chunks))
        total = x.shape[2]
        try:
            frame = 0
            for (start, end), count in zip(chunks, counts):
                host.check_interrupt()
                low, high = window(start, end, total) if window else (start, end)
                chunk = (start, end, total)
                with torch.inference_mode():
                    piece = x[:, :, low:high].to(device=device, dtype=self.dtype)
                    if tiles is not None and tiles.needed(*piece.shape[-2:]):
                        y = _tiled_step(piece, step, states, tiles, *out_hw, chunk)
                    else:
                        y = step(piece, states.setdefault((0, 0), {}), chunk)
                    del piece
                    if y.shape[2] != count:
                        raise RuntimeError(f"chunk {start}:{end} gave {y.shape[2]} frames, expected {count}")
                    write(out, frame, y)
                    del y
                frame += count
                bar.update(1)
        finally:
            states.clear()

    def decode(self, latent: torch.Tensor, tiles: TilePlan | None = None) -> torch.Tensor:
        """Latent [B,C,T,h,w] (scaled) -> IMAGE [B*F,H,W,3] in 0..1, streamed."""
        self._check_latent(latent)
        b, _, t, h, w = latent.shape
        ratio = self.spatial_ratio
        chunks = self.net.decode_plan(t)
        counts = [self.net.decoded_frames(i, e - s) for i, (s, e) in enumerate(chunks)]
        out = torch.empty((b, sum(counts), h * ratio, w * ratio, 3), dtype=torch.float32,
                          device=host.intermediate_device())
        work_h, work_w = (min(h, tiles.tile_h), min(w, tiles.tile_w)) if tiles else (h, w)
        device = self._prepare(self._work_bytes(b, max(counts), work_h * ratio, work_w * ratio))
        scale = self.scaling_factor

        def step(piece, state, chunk):
            return self.net.decode_step(piece / scale, state, chunk)

        def write(out, frame, y):
            y = (y.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1)
            out[:, frame:frame + y.shape[1]] = y.to(out.device)

        self._stream(latent, chunks, step, counts, out, write, tiles, (h * ratio, w * ratio), device,
                     getattr(self.net, "decode_window", None))
        return out.flatten(0, 1)

    def encode(self, images: torch.Tensor, tiles: TilePlan | None = None) -> torch.Tensor:
        """IMAGE [F,H,W,3] or [B,F,H,W,3] in 0..1 -> latent [B,C,T,h,w] times scaling_factor, streamed.

        Height and width are cropped (centred) to multiples of the spatial ratio.
        """
        if images.ndim == 4:
            images = images[None]
        if images.ndim != 5 or images.shape[-1] < 3:
            raise ValueError(f"images have shape {list(images.shape)}; the video VAE '{self.name}' encodes IMAGE "
                             f"frames [F,H,W,3] or [B,F,H,W,3]")
        ratio = self.spatial_ratio
        b, f, height, width = images.shape[:4]
        if height < ratio or width < ratio:
            raise ValueError(f"images of {height}x{width} pixels are smaller than one latent pixel "
                             f"({ratio}x{ratio}) of the video VAE '{self.name}'")
        frames = self.net.check_frames(f)
        if frames != f:
            log.info("MotionKit: %s encodes 1 + %d k frames; the last %d of %d frames are left out",
                     self.version, getattr(self.net.cfg, "temporal_ratio", 4), f - frames, f)
        h, w = height // ratio, width // ratio
        top, left = (height - h * ratio) // 2, (width - w * ratio) // 2
        x = images[:, :frames, top:top + h * ratio, left:left + w * ratio, :3].permute(0, 4, 1, 2, 3)
        chunks = self.net.encode_plan(frames)
        counts = [self.net.encoded_frames(i, e - s) for i, (s, e) in enumerate(chunks)]
        out = torch.empty((b, self.latent_channels, sum(counts), h, w), dtype=torch.float32,
                          device=host.intermediate_device())
        work_h, work_w = (min(h * ratio, tiles.tile_h), min(w * ratio, tiles.tile_w)) if tiles else (h * ratio, w * ratio)
        device = self._prepare(self._work_bytes(b, max(e - s for s, e in chunks), work_h, work_w))
        scale = self.scaling_factor

        def step(piece, state, chunk):
            return self.net.encode_step(piece * 2 - 1, state, chunk)

        def write(out, frame, y):
            out[:, :, frame:frame + y.shape[2]] = (y.float() * scale).to(out.device)

        self._stream(x, chunks, step, counts, out, write, tiles, (h, w), device)
        return out

    def _work_bytes(self, batch: int, frames: int, height: int, width: int) -> int:
        """Rough activation memory of one chunk at full resolution (widest full-resolution level)."""
        channels = self.net.cfg.block_out_channels[0]
        itemsize = torch.finfo(self.dtype).bits // 8
        return int(batch * frames * height * width * channels * itemsize * 6)


# ---------------------------------------------------------------- formats and loading
@dataclass(frozen=True)
class VideoVAEFormat:
    name: str
    """What the version is called in messages."""
    config_classes: tuple
    """diffusers `_class_name` values of a config.json for this format."""
    markers: tuple
    """Keys that must all be present."""
    build: Callable
    """(state_dict, json_config, device, dtype, operations, file name) -> the network."""


def _build_cogvideox(state_dict, json_config, device, dtype, operations, name):
    cfg = cogvideox_keys.config_from_state_dict(state_dict, json_config)
    return cogvideox_vae.CogVideoXVAE(cfg, device=device, dtype=dtype, operations=operations)


def _build_magvit(state_dict, json_config, device, dtype, operations, name):
    cfg = easyanimate_keys.magvit_config(state_dict, json_config)
    return magvit.MagvitVAE(cfg, device=device, dtype=dtype, operations=operations)


SLICE_VAE_CLASSES = {
    "slice_mag_vae": magvit.MagvitSliceVAE,
    "slice_compression_vae": magvit.MagvitSliceCompressionVAE,
    "cache_compression_vae": magvit.MagvitCacheCompressionVAE,
}


def _build_slice_magvit(state_dict, json_config, device, dtype, operations, name):
    cls = SLICE_VAE_CLASSES[easyanimate_keys.official_mode(json_config, name)]
    cfg = easyanimate_keys.slice_config(state_dict, json_config)
    return cls(cfg, device=device, dtype=dtype, operations=operations)


FORMATS: list[VideoVAEFormat] = [
    VideoVAEFormat("EasyAnimate V2/V3/V4 slice VAE (official, mid-block attention)",
                   easyanimate_keys.MAGVIT_CONFIG_CLASSES,
                   easyanimate_keys.SLICE_MARKER_KEYS, _build_slice_magvit),
    VideoVAEFormat("EasyAnimate V5/V5.1 VAE", easyanimate_keys.MAGVIT_CONFIG_CLASSES,
                   easyanimate_keys.MAGVIT_MARKER_KEYS, _build_magvit),
    VideoVAEFormat("CogVideoX VAE", ("AutoencoderKLCogVideoX",), cogvideox_keys.MARKER_KEYS, _build_cogvideox),
]


def detect_format(state_dict, name: str = "the file") -> VideoVAEFormat:
    """The format whose marker keys are all present, or an error listing what was checked."""
    for fmt in FORMATS:
        if all(k in state_dict for k in fmt.markers):
            return fmt
    checked = "; ".join(f"{fmt.name}: missing {', '.join(k for k in fmt.markers if k not in state_dict)}"
                        for fmt in FORMATS)
    sample = ", ".join(sorted(state_dict)[:6]) or "no keys at all"
    raise ValueError(f"{name} is not a video VAE this pack knows ({len(state_dict)} keys, e.g. {sample}). "
                     f"Checked: {checked}. Use the VAE's diffusion_pytorch_model.safetensors (with its config.json)")


def read_json_config(path: str) -> dict | None:
    """config.json beside a model file (the published diffusers folder), if there is one."""
    candidate = os.path.join(os.path.dirname(path), "config.json")
    if not os.path.isfile(candidate):
        return None
    return model_file.read_json(candidate, "VAE config")


def build_video_vae(state_dict: dict, json_config: dict | None = None, name: str = "the file",
                    scaling_factor: float = 0.0, dtype: torch.dtype | None = None) -> VideoVAE:
    """Detect, build and load a VideoVAE from a state dict (and the diffusers config.json, if any)."""
    fmt = detect_format(state_dict, name)
    if json_config is not None:
        cls = json_config.get("_class_name")
        if cls not in fmt.config_classes:
            raise ValueError(f"config.json beside {name} describes '{cls}', but the weights are a {fmt.name} "
                             f"(config class {', '.join(fmt.config_classes)}): put the matching config.json "
                             f"beside the file, or remove it")
    load_device = host.torch_device()
    dtype = dtype or host.vae_dtype(load_device)
    net = fmt.build(state_dict, json_config, None, dtype, host.operations(), name)
    if scaling_factor:
        net.cfg.scaling_factor = float(scaling_factor)
    missing, unexpected = net.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(f"{name} looks like a {fmt.name} but does not fit its architecture: "
                         f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
                         f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    net.eval().requires_grad_(False)
    return VideoVAE(net, name=name, dtype=dtype)


def load_video_vae(path: str, scaling_factor: float = 0.0, dtype: torch.dtype | None = None) -> VideoVAE:
    """Load a video VAE file (its config.json beside it is read when present)."""
    json_config = read_json_config(path)
    return build_video_vae(model_file.read_state_dict(path, "video VAE"), json_config, os.path.basename(path), scaling_factor, dtype)
