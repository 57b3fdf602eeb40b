"""Benchmark: GPU memory of Motion VAE Encode on the full-size CogVideoX VAE, traced without a GPU.

    .venv/bin/python -m bench.motion_vae_memory                  # 205 frames at 720x480 and 1280x720
    .venv/bin/python -m bench.motion_vae_memory --no-tiled       # plain encodes only (under a minute)
    .venv/bin/python -m bench.motion_vae_memory --sizes 720x480 --frames 49 --tile-size 384

The CogVideoX-5B VAE (the published vae/config.json, 215.6M parameters, bf16) is built under
torch's FakeTensorMode: tensors carry shapes and dtypes but no data, so nothing is computed and a
205-frame 1280x720 encode is traced in seconds of CPU. Fake tensors on the meta device stand for
the GPU, fake CPU tensors for ComfyUI's host memory; references/peak_memory.PeakMemory counts the most
bytes of GPU-side tensors alive at once during the call (weights excluded: they are made before).

- ours: models/tora/motion.encode_motion, the function MotionKitMotionVAEEncode calls, on the
  pack's VideoVAE (flow IMAGE on the host, temporal chunks moved to the GPU one by one, the latent
  written back to the host), without tiles and with `--tile-size/--tile-overlap` tiles. The one
  step left out is ComfyUI moving the weights to the GPU (module.to() cannot swap FakeTensor
  parameters): the fake weights are made on the GPU side directly.
- diffusers: AutoencoderKLCogVideoX.encode on the flow video moved to the GPU (as its pipelines do),
  plain and after enable_tiling() (its default tiles).

Tora's paper reports 204-frame 720p videos; CogVideoX samples 4k+1 frames, so 205 is the count
measured. CogVideoX calls 720x480 its native size; 720p proper is 1280x720: both are measured.
The plain traces take seconds; the tiled ones minutes (every tile of every chunk is a pass of
fake-tensor ops, each dispatched in Python). Not traced: cuDNN workspaces and the allocator's
fragmentation (a real card needs some headroom).
"""
from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from references.peak_memory import peak_bytes

GIB = 2 ** 30
GPU = torch.device("meta")
"""The device fake tensors use for the GPU side."""
COGVIDEOX_5B_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 256, 512),
    down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
    layers_per_block=3, act_fn="silu", norm_num_groups=32, norm_eps=1e-6, temporal_compression_ratio=4,
    sample_height=480, sample_width=720, scaling_factor=0.7, use_quant_conv=False, use_post_quant_conv=False)
"""THUDM/CogVideoX-5b vae/config.json (2B: scaling_factor 1.15258426, same architecture)."""


def _setup() -> None:
    """The pack imported as `motionkit` with ComfyUI in-process (CPU mode), as the tests run it."""
    from scripts import harness

    if "motionkit" not in sys.modules:
        work = Path(tempfile.mkdtemp(prefix="motionkit-bench-"))
        atexit.register(shutil.rmtree, work, True)  # ComfyUI's folders go with the run
        harness.setup_comfy_in_process(work_dir=work)
    harness.import_pack()


def build_fake_vaes(mode: FakeTensorMode, config: dict = COGVIDEOX_5B_VAE, dtype=torch.bfloat16,
                    diffusers_class: str = "AutoencoderKLCogVideoX"):
    """(the diffusers VAE, the pack's VideoVAE, weight bytes), with fake weights on GPU."""
    _setup()
    import diffusers

    video_vae = sys.modules["motionkit.models.video_vae"]

    class OnDevice(video_vae.VideoVAE):
        """The pack's VideoVAE whose weights already sit on the (fake) GPU: ComfyUI's load step skipped."""

        def _prepare(self, work_bytes: int) -> torch.device:
            return GPU

    previous = torch.get_default_dtype()
    with mode, torch.device(GPU):
        torch.set_default_dtype(dtype)
        try:
            reference = getattr(diffusers, diffusers_class)(**config).eval().requires_grad_(False)
        finally:
            torch.set_default_dtype(previous)
        built = video_vae.build_video_vae(reference.state_dict(), dict(config, _class_name=diffusers_class),
                                          name=f"{diffusers_class} (fake weights)", dtype=dtype)
    ours = OnDevice(built.net, built.name, built.dtype)
    weights = sum(p.numel() * p.element_size() for p in reference.parameters())
    return reference, ours, weights


def trace_ours(mode: FakeTensorMode, vae, frames: int, height: int, width: int, tiles=None) -> int:
    """GPU peak bytes of Motion VAE Encode's code path on a flow IMAGE [frames,height,width,3] on the host."""
    from motionkit.models.tora.motion import TORA_SCALING_FACTOR, encode_motion

    with mode:
        flow = torch.rand(frames, height, width, 3)
        peak, latent = peak_bytes(encode_motion, vae, flow, TORA_SCALING_FACTOR, tiles, devices=(GPU.type,))
    expected = (1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    if tuple(latent.shape) != expected:
        raise RuntimeError(f"motion latents {tuple(latent.shape)}, expected {expected}")
    return peak


def trace_diffusers(mode: FakeTensorMode, reference, frames: int, height: int, width: int, tiling: bool) -> int:
    """GPU peak bytes of AutoencoderKLCogVideoX.encode, the video moved to the GPU first."""
    if tiling:
        reference.enable_tiling()
    else:
        reference.disable_tiling()

    def encode(flow):
        video = flow.permute(3, 0, 1, 2)[None].to(GPU, reference.dtype) * 2 - 1
        return reference.encode(video).latent_dist.mode() * reference.config.scaling_factor

    with mode, torch.no_grad():
        flow = torch.rand(frames, height, width, 3)
        peak, _ = peak_bytes(encode, flow, devices=(GPU.type,))
    return peak


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=205)
    parser.add_argument("--sizes", default="720x480,1280x720", help="WIDTHxHEIGHT, comma separated")
    parser.add_argument("--tile-size", type=int, default=256, help="Motion VAE Encode's tile_size for the tiled run")
    parser.add_argument("--tile-overlap", type=int, default=64)
    parser.add_argument("--card-gib", type=float, default=24.0)
    parser.add_argument("--no-tiled", action="store_true", help="skip the tiled runs (the slow traces)")
    args = parser.parse_args(argv)

    mode = FakeTensorMode()
    reference, ours, weights = build_fake_vaes(mode)
    video_vae = sys.modules["motionkit.models.video_vae"]
    tiles = video_vae.TilePlan.for_encode(args.tile_size, args.tile_overlap, ours.spatial_ratio)
    print(f"CogVideoX-5B VAE, bf16 weights {weights / GIB:.2f} GiB; {args.frames} frames; GPU peak of tensors "
          f"alive at once (GiB), weights excluded; budget on a {args.card_gib:g} GiB card: "
          f"{args.card_gib - weights / GIB:.2f} GiB")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        runs = {}
        tiled = f"ours tiled {args.tile_size}/{args.tile_overlap}"
        for name, trace in (
                ("ours", lambda: trace_ours(mode, ours, args.frames, height, width)),
                (tiled, lambda: trace_ours(mode, ours, args.frames, height, width, tiles)),
                ("diffusers", lambda: trace_diffusers(mode, reference, args.frames, height, width, False)),
                ("diffusers tiled", lambda: trace_diffusers(mode, reference, args.frames, height, width, True))):
            if args.no_tiled and "tiled" in name:
                continue
            start = time.perf_counter()
            runs[name] = trace()
            print(f"  {width}x{height} {name:>22}: {runs[name] / GIB:6.2f} GiB "
                  f"(traced in {time.perf_counter() - start:.1f} s)", flush=True)
        best = min(runs[name] for name in ("ours", tiled) if name in runs)
        fits = "fits" if best + weights < args.card_gib * GIB else "DOES NOT fit"
        ratios = [f"ours/diffusers {runs['ours'] / runs['diffusers']:.2f}"]
        if not args.no_tiled:
            ratios += [f"ours tiled/diffusers tiled {runs[tiled] / runs['diffusers tiled']:.2f}",
                       f"ours tiled/diffusers {runs[tiled] / runs['diffusers']:.2f}"]
        print(f"  {width}x{height} ratios: {', '.join(ratios)}; ours + weights {fits} in {args.card_gib:g} GiB")

if __name__ == "__main__":
    main()
