"""Slice VAE decode against diffusers and the official sliced decode, same latents, same run: time and peak memory.

    .venv/bin/python -m bench.slice_vae [--size 64] [--repeats 3] [--versions easyanimate-v5,cogvideox]
    .venv/bin/python -m bench.slice_vae --device cuda --dtype bf16 --config full --size 768 --versions easyanimate-v5

For EasyAnimate V5/V5.1 (vs diffusers' AutoencoderKLMagvit, plain and tiled decode),
CogVideoX (vs AutoencoderKLCogVideoX) and EasyAnimate V2/V3/V4 (vs the official sliced decode,
re-implemented in references/slice_vae_official.py), on random weights, at 1x, 2x and 4x clip length
(4, 7 and 13 latent frames: 49 frames at 4x for V5 and CogVideoX). `--config mid` (default) is a
mid-size config for the CPU; `--config full` the published ones (V5.1 VAE, CogVideoX-5B VAE, the
V2/V3/V4 widths). Tiles are half the frame, overlapping an eighth. Time is the best of `--repeats`
interleaved runs (one thread on the CPU). Memory is the peak working memory of one decode:
- CPU: the peak of tensor storage alive during the call (references/peak_memory.py) on an emulated
  compute device: our decode writes each chunk's frames to the intermediate device as they are
  made, so its output does not count; the references keep the whole video on the compute
  device, so theirs counts.
- GPU (`--device cuda`, ComfyUI's model management in GPU mode, as the server runs it):
  torch.cuda.max_memory_allocated during the call above what was allocated before it (weights).
  Our frames go to the host as they are made; the references' video stays on the GPU, as in
  their pipelines.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from bench.motion_vae_memory import COGVIDEOX_5B_VAE
from bench.slice_vae_memory import EASYANIMATE_V51_VAE, diffusers_decode
from references import slice_vae_official
from references.peak_memory import peak_bytes
from scripts import harness

MIB = 1024 * 1024
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CONFIGS = {
    "mid": {"easyanimate-v5": dict(block_out_channels=(16, 32, 64, 64), latent_channels=16, layers_per_block=1,
                                   norm_num_groups=16),
            "cogvideox": dict(block_out_channels=(16, 32, 64, 64), latent_channels=16, layers_per_block=1,
                              norm_num_groups=16),
            "slice": dict(block_out_channels=(16, 32, 64, 64), latent_channels=4, groups=16)},
    "full": {"easyanimate-v5": EASYANIMATE_V51_VAE, "cogvideox": COGVIDEOX_5B_VAE,
             "slice": dict(block_out_channels=(128, 256, 512, 512), latent_channels=4, groups=32)},
}
"""Per config: the diffusers constructor arguments of V5 and CogVideoX, and the official slice VAEs' widths."""


def _move(tree, device, dtype):
    """The official references' attention weights (nested dicts of tensors) on the device."""
    if isinstance(tree, dict):
        return {k: _move(v, device, dtype) for k, v in tree.items()}
    return tree.to(device, dtype) if isinstance(tree, torch.Tensor) else tree


def build_diffusers(kind: str, config: dict, device, dtype):
    """(diffusers VAE, the pack's VideoVAE on the same random weights)."""
    from diffusers import AutoencoderKLCogVideoX, AutoencoderKLMagvit

    from motionkit.models import video_vae

    torch.manual_seed(0)
    cls = AutoencoderKLMagvit if kind == "easyanimate-v5" else AutoencoderKLCogVideoX
    ref = cls(**config).eval().requires_grad_(False)
    ours = video_vae.build_video_vae(ref.state_dict(), dict(ref.config, _class_name=cls.__name__),
                                     name=kind, dtype=dtype)
    return _on(ref, device, dtype), ours


def _on(module: torch.nn.Module, device, dtype) -> torch.nn.Module:
    """`module` on the device, cast only when the dtype differs (diffusers warns about every cast)."""
    return module.to(device) if dtype == torch.float32 else module.to(device, dtype)


def peak_mib(fn, latent, output_offloaded: bool, device: torch.device) -> float:
    """Peak working memory of one decode on the compute device, in MiB (see the module docstring)."""
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            fn(latent)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated(device) - before) / MIB
        peak, out = peak_bytes(fn, latent)
    return (peak - (out.numel() * out.element_size() if output_offloaded else 0)) / MIB


def best_times(methods: dict, latent, repeats: int, device: torch.device) -> dict:
    """Best wall time of each method over `repeats` rounds, the methods interleaved in each round."""
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, (fn, _offloaded) in methods.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                fn(latent)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def table(title: str, methods: dict, latent_channels: int, h: int, args, base: str, tiled_base: str) -> None:
    """Time and memory of each method at 1x, 2x, 4x length, with ours against `base` / `tiled_base`."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    print(f"\n{title}: seconds and peak working MiB", flush=True)
    print(f"{'frames':>6} | " + " | ".join(f"{m:>20}" for m in methods) +
          f" | memory ours/{base}, tiled/{base} | time ours/{base}, tiled/{tiled_base}")
    for scale in (1, 2, 4):
        latent = torch.randn(1, latent_channels, 1 + 3 * scale, h, h, generator=torch.Generator().manual_seed(scale))
        latent = latent.to(dtype)  # on the host, as a LATENT is in ComfyUI; each method moves what it needs
        times = best_times(methods, latent, args.repeats, device)
        mem = {m: peak_mib(fn, latent, offloaded, device) for m, (fn, offloaded) in methods.items()}
        with torch.no_grad():
            frames = methods["ours"][0](latent).shape[0]
        cells = " | ".join(f"{times[m]:6.2f}s {mem[m]:8.1f}MiB" for m in methods)
        print(f"{frames:>6} | {cells} | {mem['ours'] / mem[base]:8.2f} {mem['ours tiled'] / mem[base]:8.2f} | "
              f"{times['ours'] / times[base]:8.2f} {times['ours tiled'] / times[tiled_base]:8.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="frame height and width in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--versions", default="easyanimate-v5,cogvideox,easyanimate-v2,easyanimate-v3,easyanimate-v4",
                        help="comma separated")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="fp32", choices=tuple(DTYPES))
    parser.add_argument("--config", default="mid", choices=tuple(CONFIGS))
    args = parser.parse_args()
    harness.setup_comfy_in_process(cpu=args.device == "cpu")  # also the torchvision shims diffusers needs
    harness.import_pack()
    from motionkit.models import video_vae

    device, dtype, configs = torch.device(args.device), DTYPES[args.dtype], CONFIGS[args.config]
    if device.type == "cpu":
        torch.set_num_threads(1)
    tile, overlap = args.size // 2, args.size // 8
    h = args.size // 8
    plan = video_vae.TilePlan.for_decode(tile, overlap, 8)
    threads = ", 1 thread" if device.type == "cpu" else ""
    print(f"{device.type.upper()}{threads}, {args.dtype}, {args.config} config, {args.size}x{args.size} frames, "
          f"tiles {tile}px overlapping {overlap}px")
    versions = args.versions.split(",")
    for kind in (v for v in ("easyanimate-v5", "cogvideox") if v in versions):
        ref, ours = build_diffusers(kind, configs[kind], device, dtype)
        if kind == "easyanimate-v5":
            ref.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                                    tile_sample_stride_height=tile - overlap, tile_sample_stride_width=tile - overlap)
        else:
            ref.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                                    tile_overlap_factor_height=overlap / tile, tile_overlap_factor_width=overlap / tile)
        sf, channels = ours.scaling_factor, ours.latent_channels
        methods = {
            "ours": (lambda z, ours=ours, sf=sf: ours.decode(z * sf), True),
            "ours tiled": (lambda z, ours=ours, sf=sf: ours.decode(z * sf, plan), True),
            "diffusers": (diffusers_decode(ref, False, device), False),
            "diffusers tiled": (diffusers_decode(ref, True, device), False),
        }
        ours.decode(torch.zeros(1, channels, 2, h, h, dtype=dtype))  # warm-up; on a GPU, ComfyUI loads it here
        table(kind, methods, channels, h, args, "diffusers", "diffusers tiled")
        del ref, ours, methods
    slice_config = configs["slice"]
    for kind, flag, official in (("easyanimate-v2", "slice_mag_vae", slice_vae_official.official_v2_decode),
                                 ("easyanimate-v3", "slice_compression_vae", slice_vae_official.official_v3_decode),
                                 ("easyanimate-v4", "cache_compression_vae", slice_vae_official.official_v4_decode)):
        if kind not in versions:
            continue
        ref, attentions, state = slice_vae_official.build_reference(**slice_config)
        config = {"_class_name": "AutoencoderKLMagvit", flag: True, "norm_num_groups": slice_config["groups"]}
        ours = video_vae.build_video_vae(state, config, name=kind, dtype=dtype)
        ref, attentions = _on(ref, device, dtype), _move(attentions, device, dtype)
        sf = ours.scaling_factor
        methods = {
            "ours": (lambda z, ours=ours, sf=sf: ours.decode(z * sf), True),
            "ours tiled": (lambda z, ours=ours, sf=sf: ours.decode(z * sf, plan), True),
            "official sliced": (lambda z, ref=ref, a=attentions, f=official: f(ref, a, z.to(device)), False),
        }
        ours.decode(torch.zeros(1, 4, 2, h, h, dtype=dtype))  # warm-up
        table(kind, methods, 4, h, args, "official sliced", "official sliced")
        del ref, ours, methods
    return 0


if __name__ == "__main__":
    sys.exit(main())
