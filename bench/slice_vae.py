"""Slice VAE decode against diffusers, same latents, same run: time and peak working memory.

    .venv/bin/python bench/slice_vae.py [--size 64] [--repeats 3] [--versions easyanimate-v5,cogvideox]

For EasyAnimate V5/V5.1 (vs diffusers' AutoencoderKLMagvit, plain and tiled decode),
CogVideoX (vs AutoencoderKLCogVideoX) and EasyAnimate V2/V3/V4 (vs the official sliced decode,
re-implemented in bench/slice_vae_official.py), with a mid-size random-weight config on CPU,
at 1x, 2x and 4x clip length (4, 7 and 13 latent frames). Memory is the peak of tensor storage
alive during the decode (bench/peak_memory.py) on the emulated compute device (see
`peak_mib`); time is the best of `--repeats` interleaved runs on one thread.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402
import slice_vae_official  # noqa: E402
from peak_memory import peak_bytes  # noqa: E402

harness.setup_comfy_in_process()  # torchvision shims diffusers needs on a CPU-only torch
harness.import_pack()
from motionkit.models import video_vae  # noqa: E402

MIB = 1024 * 1024


def build(kind: str):
    from diffusers import AutoencoderKLCogVideoX, AutoencoderKLMagvit

    torch.manual_seed(0)
    cls = AutoencoderKLMagvit if kind == "easyanimate-v5" else AutoencoderKLCogVideoX
    ref = cls(block_out_channels=(16, 32, 64, 64), latent_channels=16, layers_per_block=1, norm_num_groups=16).eval()
    ours = video_vae.build_video_vae(ref.state_dict(), dict(ref.config, _class_name=cls.__name__),
                                     name=kind, dtype=torch.float32)
    return ref, ours


def peak_mib(fn, latent, output_offloaded: bool) -> float:
    """Peak working memory of one decode on the compute device, in MiB.

    Every tensor lives on the CPU here, so the compute device is emulated: our decode writes
    each chunk's frames to the intermediate device as they are made (`output_offloaded`), so
    its output does not count; diffusers keeps the whole decoded video on the compute device,
    so its output counts."""
    with torch.no_grad():
        peak, out = peak_bytes(fn, latent)
    return (peak - (out.numel() * out.element_size() if output_offloaded else 0)) / MIB


def best_times(methods: dict, latent, repeats: int) -> dict:
    """Best wall time of each method over `repeats` rounds, the methods interleaved in each round."""
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, (fn, _offloaded) in methods.items():
            start = time.perf_counter()
            with torch.no_grad():
                fn(latent)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def table(title: str, methods: dict, latent_channels: int, h: int, repeats: int, base: str, tiled_base: str) -> None:
    """Time and memory of each method at 1x, 2x, 4x length, with ours against `base` / `tiled_base`."""
    print(f"\n{title}: seconds and peak working MiB")
    print(f"{'frames':>6} | " + " | ".join(f"{m:>20}" for m in methods) +
          f" | memory ours/{base}, tiled/{base} | time ours/{base}, tiled/{tiled_base}")
    for scale in (1, 2, 4):
        latent = torch.randn(1, latent_channels, 1 + 3 * scale, h, h, generator=torch.Generator().manual_seed(scale))
        times = best_times(methods, latent, repeats)
        mem = {m: peak_mib(fn, latent, offloaded) for m, (fn, offloaded) in methods.items()}
        with torch.no_grad():
            frames = methods["ours"][0](latent).shape[0]
        cells = " | ".join(f"{times[m]:6.2f}s {mem[m]:8.1f}MiB" for m in methods)
        print(f"{frames:>6} | {cells} | {mem['ours'] / mem[base]:8.2f} {mem['ours tiled'] / mem[base]:8.2f} | "
              f"{times['ours'] / times[base]:8.2f} {times['ours tiled'] / times[tiled_base]:8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="frame height and width in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--versions", default="easyanimate-v5,cogvideox,easyanimate-v2,easyanimate-v3,easyanimate-v4",
                        help="comma separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tile, overlap = args.size // 2, args.size // 8
    h = args.size // 8
    plan = video_vae.TilePlan.for_decode(tile, overlap, 8)
    print(f"CPU, 1 thread, float32, {args.size}x{args.size} frames, tiles {tile}px overlapping {overlap}px")
    versions = args.versions.split(",")
    for kind in (v for v in ("easyanimate-v5", "cogvideox") if v in versions):
        ref, ours = build(kind)
        sf = ours.scaling_factor
        ref_tiled = build(kind)[0]
        if kind == "easyanimate-v5":
            ref_tiled.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                                    tile_sample_stride_height=tile - overlap, tile_sample_stride_width=tile - overlap)
        else:
            ref_tiled.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                                    tile_overlap_factor_height=overlap / tile, tile_overlap_factor_width=overlap / tile)
        methods = {
            "ours": (lambda z, ours=ours, sf=sf: ours.decode(z * sf), True),
            "ours tiled": (lambda z, ours=ours, sf=sf: ours.decode(z * sf, plan), True),
            "diffusers": (lambda z, ref=ref: ref.decode(z).sample, False),
            "diffusers tiled": (lambda z, ref_tiled=ref_tiled: ref_tiled.decode(z).sample, False),
        }
        ours.decode(torch.zeros(1, 16, 2, h, h))  # warm-up
        table(kind, methods, 16, h, args.repeats, "diffusers", "diffusers tiled")
    for kind, flag, official in (("easyanimate-v2", "slice_mag_vae", slice_vae_official.official_v2_decode),
                                 ("easyanimate-v3", "slice_compression_vae", slice_vae_official.official_v3_decode),
                                 ("easyanimate-v4", "cache_compression_vae", slice_vae_official.official_v4_decode)):
        if kind not in versions:
            continue
        ref, attentions, state = slice_vae_official.build_reference((16, 32, 64, 64), 4, groups=16)
        config = {"_class_name": "AutoencoderKLMagvit", flag: True, "norm_num_groups": 16}
        ours = video_vae.build_video_vae(state, config, name=kind, dtype=torch.float32)
        sf = ours.scaling_factor
        methods = {
            "ours": (lambda z, ours=ours, sf=sf: ours.decode(z * sf), True),
            "ours tiled": (lambda z, ours=ours, sf=sf: ours.decode(z * sf, plan), True),
            "official sliced": (lambda z, ref=ref, a=attentions, f=official: f(ref, a, z), False),
        }
        ours.decode(torch.zeros(1, 4, 2, h, h))  # warm-up
        table(kind, methods, 4, h, args.repeats, "official sliced", "official sliced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
