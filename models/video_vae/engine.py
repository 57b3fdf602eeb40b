"""The streaming engine shared by every video VAE of the pack: EasyAnimate V2 (mag VAE), V3 (slice VAE),
V4, V5/V5.1 (cache mag VAE) and CogVideoX.

`VideoVAE` (the node type MOTIONKIT_VIDEO_VAE) streams `decode` and `encode`: the latent (or the
frames) are walked in the version's own temporal chunks, each chunk goes through the network with
the causal state of the previous chunk (a `StreamState`), and its frames are written to the output
on the intermediate device at once. Only one chunk's activations (per tile) and the small causal
state are alive on the compute device, so peak memory does not grow with clip length. Each version
plugs in as a network following `VideoVAENetwork`.
"""
from __future__ import annotations

import logging
from typing import Protocol

import torch

from .. import host
from ..errors import MotionKitError
from .stream import StreamState
from .tiles import TilePlan, tiled_step

log = logging.getLogger("MotionKit")

LATENT_FAMILY_KEY = "motionkit_vae_family"
"""Key of a LATENT dict naming the video VAE version that encoded it (core samplers copy it through)."""


class VideoVAEError(MotionKitError):
    pass


class VideoVAENetwork(Protocol):
    """What a video VAE version gives the engine. A chunk is (start, end, total) in the input's frames.

    The version's behaviour (slicing, padding, temporal upsampling) is fixed by its class when it is
    built; per chunk it only reads and updates the StreamState it is handed.
    """

    version: str
    """Name of the version ("easyanimate-v5", "cogvideox", ...): messages and LATENT_FAMILY_KEY."""
    cfg: object
    """Its config: `latent_channels`, `scaling_factor`, `block_out_channels`, `temporal_ratio`."""
    spatial_ratio: int
    """Image pixels per latent pixel."""

    def decode_plan(self, latent_frames: int) -> list[tuple[int, int]]:
        """The latent chunks (start, end) decoded one after another."""

    def decode_window(self, start: int, end: int, total: int) -> tuple[int, int]:
        """The latent frames a chunk reads: the chunk itself, or with neighbours (V3 slices)."""

    def decoded_frames(self, index: int, n: int) -> int:
        """Image frames chunk `index` of `n` latent frames decodes to."""

    def decode_step(self, z: torch.Tensor, state: StreamState, chunk: tuple[int, int, int]) -> torch.Tensor:
        """Latent chunk (unscaled) -> image chunk in -1..1, updating the stream state."""

    def check_frames(self, frames: int) -> int:
        """How many of `frames` image frames the version encodes (e.g. 1 + 4k)."""

    def encode_plan(self, frames: int) -> list[tuple[int, int]]:
        """The image chunks (start, end) encoded one after another."""

    def encoded_frames(self, index: int, n: int) -> int:
        """Latent frames chunk `index` of `n` image frames encodes to."""

    def encode_step(self, x: torch.Tensor, state: StreamState, chunk: tuple[int, int, int]) -> torch.Tensor:
        """Image chunk in -1..1 -> latent mean chunk (unscaled), updating the stream state."""


class VideoVAE:
    """A loaded video VAE under ComfyUI's model management (type MOTIONKIT_VIDEO_VAE).

    `encode(images)` takes IMAGE frames [F,H,W,3] or [B,F,H,W,3] in 0..1 and returns the
    latent [B,C,T,h,w] multiplied by `scaling_factor`; `decode(latent)` is the inverse and
    returns IMAGE frames [B*F,H,W,3] in 0..1. Both run chunk by chunk with a progress bar
    and an interrupt check between chunks.
    """

    def __init__(self, net: VideoVAENetwork, name: str = "", dtype: torch.dtype = torch.float32):
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

    def check_made_by(self, family: str | None) -> None:
        """Refuse a latent another video VAE made (its LATENT's LATENT_FAMILY_KEY); an untagged latent passes."""
        if family and family != self.version:
            raise VideoVAEError(f"the latent was encoded by the {family} VAE, but the video VAE here is '{self.name}' "
                                f"({self.version}): their latent spaces differ (even with the same channel count), "
                                f"so it would decode to noise. Load the {family} VAE to decode it")

    def _prepare(self, work_bytes: int) -> torch.device:
        host.load_models([self.model_patcher], memory_required=work_bytes)
        return self.model_patcher.load_device

    # -- the streaming loop
    def _stream(self, x: torch.Tensor, chunks, step, counts: list[int], out: torch.Tensor, write,
                tiles: TilePlan | None, out_hw: tuple[int, int], device: torch.device, window=None) -> None:
        """Run `step(piece, state, (start, end, total))` over the chunks; `window(start, end, total)` gives
        the frames a chunk reads (its neighbours too, for versions that look at them)."""
        states: dict[tuple[int, int], StreamState] = {}
        bar = host.progress_bar(len(chunks))
        total = x.shape[2]
        try:
            frame = 0
            for (start, end), count in zip(chunks, counts):
                host.check_interrupt()
                low, high = window(start, end, total) if window else (start, end)
                chunk = (start, end, total)
                with torch.inference_mode():
                    # contiguous, as the official pipelines' tensors are: kernels may round by memory layout
                    piece = x[:, :, low:high].to(device=device, dtype=self.dtype,
                                                 memory_format=torch.contiguous_format)
                    if tiles is not None and tiles.needed(*piece.shape[-2:]):
                        y = tiled_step(piece, step, states, tiles, *out_hw, chunk)
                    else:
                        y = step(piece, states.setdefault((0, 0), StreamState()), chunk)
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
                     self.net.decode_window)
        return out.flatten(0, 1)

    def encode(self, images: torch.Tensor, tiles: TilePlan | None = None, posterior: bool = False) -> torch.Tensor:
        """IMAGE [F,H,W,3] or [B,F,H,W,3] in 0..1 -> latent [B,C,T,h,w] times scaling_factor, streamed.

        Height and width are cropped (centred) to multiples of the spatial ratio. With `posterior`, the
        result is the posterior's moments instead: [B,2C,T,h,w] = [mean | logvar], unscaled, in the
        VAE's compute dtype (for versions whose network has `encode_posterior_step`).
        """
        if posterior and not hasattr(self.net, "encode_posterior_step"):
            raise ValueError(f"the video VAE '{self.name}' ({self.version}) does not give its posterior's moments; "
                             f"encode with the posterior mean instead")
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
        channels, dtype = (2 * self.latent_channels, self.dtype) if posterior else (self.latent_channels, torch.float32)
        out = torch.empty((b, channels, sum(counts), h, w), dtype=dtype, device=host.intermediate_device())
        work_h, work_w = (min(h * ratio, tiles.tile_h), min(w * ratio, tiles.tile_w)) if tiles else (h * ratio, w * ratio)
        device = self._prepare(self._work_bytes(b, max(e - s for s, e in chunks), work_h, work_w))
        scale = self.scaling_factor
        encode_step = self.net.encode_posterior_step if posterior else self.net.encode_step

        def step(piece, state, chunk):
            return encode_step(piece * 2 - 1, state, chunk)

        def write(out, frame, y):
            out[:, :, frame:frame + y.shape[2]] = (y if posterior else y.float() * scale).to(out.device)

        self._stream(x, chunks, step, counts, out, write, tiles, (h, w), device)
        return out

    def _work_bytes(self, batch: int, frames: int, height: int, width: int) -> int:
        """Rough activation memory of one chunk at full resolution (widest full-resolution level)."""
        channels = self.net.cfg.block_out_channels[0]
        itemsize = torch.finfo(self.dtype).bits // 8
        return int(batch * frames * height * width * channels * itemsize * 6)
