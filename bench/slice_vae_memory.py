"""Benchmark: GPU memory of Slice VAE Decode on the full-size EasyAnimate V5.1 VAE, traced without a GPU.

    .venv/bin/python -m bench.slice_vae_memory                       # 49, 97, 193 frames at 768x768
    .venv/bin/python -m bench.slice_vae_memory --frames 49 --size 1024 --tile-size 384

The V5.1 VAE (`alibaba-pai/EasyAnimateV5.1-12b-zh/vae/config.json`: diffusers' AutoencoderKLMagvit
defaults, bf16) is built under torch's FakeTensorMode, as bench/motion_vae_memory.py does: fake
tensors on the meta device stand for the GPU, fake CPU tensors for ComfyUI's host memory, and
references/peak_memory.PeakMemory counts the most bytes of GPU-side tensors alive at once during the
call (weights excluded). The latent starts on the host, as a LATENT does in ComfyUI.

- ours: VideoVAE.decode, the call MotionKitSliceVAEDecode makes (the latent moved to the GPU one
  chunk at a time, every chunk's frames written back to the host at once; with `--tile-size`, each
  tile's causal state parked on the host between chunks).
- diffusers: AutoencoderKLMagvit.decode on the latent moved to the GPU (its pipelines decode
  there), plain and with enable_tiling() at the same tile size and overlap.

The ratio the issue sets is each run's peak over diffusers' plain decode at the same length
(goals: ours at most 0.7, ours tiled at most 0.35, both flat in length). Not traced: cuDNN
workspaces and the allocator's fragmentation.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from bench.motion_vae_memory import GIB, GPU, build_fake_vaes
from references.peak_memory import peak_bytes

EASYANIMATE_V51_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
    down_block_types=("SpatialDownBlock3D",) + ("SpatialTemporalDownBlock3D",) * 3,
    up_block_types=("SpatialUpBlock3D",) + ("SpatialTemporalUpBlock3D",) * 3,
    layers_per_block=2, act_fn="silu", norm_num_groups=32, scaling_factor=0.7125, spatial_group_norm=True)
"""EasyAnimateV5.1 vae/config.json (V5: the same architecture)."""


def diffusers_decode(reference, tiled: bool, device):
    """`reference.decode(z).sample` on the device with its tiling (set up once by enable_tiling with the
    tile sizes) switched on or off for the call: one model serves the plain and the tiled runs."""
    def decode(z):
        reference.enable_tiling() if tiled else reference.disable_tiling()
        return reference.decode(z.to(device)).sample
    return decode


def trace(mode: FakeTensorMode, decode, frames: int, size: int, on_gpu: bool) -> int:
    """GPU peak bytes of `decode(latent)` for a latent of `frames` video frames at size x size."""
    with mode, torch.no_grad():
        latent = torch.randn(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8, dtype=torch.bfloat16)
        if on_gpu:
            latent = latent.to(GPU)
        peak, video = peak_bytes(decode, latent, devices=(GPU.type,))
    if video.numel() != frames * size * size * 3:
        raise RuntimeError(f"decoded {tuple(video.shape)}, expected {frames} frames of {size}x{size}")
    return peak


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default="49,97,193", help="video frames (4k+1), comma separated")
    parser.add_argument("--size", type=int, default=768, help="frame height and width in pixels")
    parser.add_argument("--tile-size", type=int, default=384, help="Slice VAE Decode's tile_size for the tiled run")
    parser.add_argument("--tile-overlap", type=int, default=64)
    args = parser.parse_args(argv)

    mode = FakeTensorMode()
    reference, ours, weights = build_fake_vaes(mode, EASYANIMATE_V51_VAE, diffusers_class="AutoencoderKLMagvit")
    video_vae = sys.modules["motionkit.models.video_vae"]
    plan = video_vae.TilePlan.for_decode(args.tile_size, args.tile_overlap, ours.spatial_ratio)
    stride = args.tile_size - args.tile_overlap
    reference.enable_tiling(tile_sample_min_height=args.tile_size, tile_sample_min_width=args.tile_size,
                                  tile_sample_stride_height=stride, tile_sample_stride_width=stride)
    scale = ours.scaling_factor
    runs = {
        "ours": (lambda z: ours.decode(z * scale), False),
        "ours tiled": (lambda z: ours.decode(z * scale, plan), False),
        "diffusers": (diffusers_decode(reference, False, GPU), True),
        "diffusers tiled": (diffusers_decode(reference, True, GPU), True),
    }
    print(f"EasyAnimate V5.1 VAE, bf16 weights {weights / GIB:.2f} GiB, {args.size}x{args.size} frames, tiles "
          f"{args.tile_size}px overlapping {args.tile_overlap}px; GPU peak of tensors alive at once (GiB), weights "
          f"excluded")
    print(f"{'frames':>6} | " + " | ".join(f"{name:>15}" for name in runs) +
          " | ours/diffusers, ours tiled/diffusers, ours tiled/diffusers tiled")
    for frames in (int(f) for f in args.frames.split(",")):
        start = time.perf_counter()
        peaks = {name: trace(mode, decode, frames, args.size, on_gpu) for name, (decode, on_gpu) in runs.items()}
        cells = " | ".join(f"{peaks[name] / GIB:15.2f}" for name in runs)
        print(f"{frames:>6} | {cells} | {peaks['ours'] / peaks['diffusers']:.2f}, "
              f"{peaks['ours tiled'] / peaks['diffusers']:.2f}, {peaks['ours tiled'] / peaks['diffusers tiled']:.2f}"
              f"  (traced in {time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
