"""Benchmark: GPU memory of one EasyAnimate V3 transformer call at full size, traced without a GPU.

    .venv/bin/python -m bench.easyanimate_v3                     # 36, 72, 144 frames at 960x960, CFG batch 2
    .venv/bin/python -m bench.easyanimate_v3 --frames 144 --size 512 --batch 1

The published V3 transformer (EasyAnimateV3-XL-2-InP: 28 blocks of width 1152, a motion module in
each, 1.54 B parameters) is built in bf16 under torch's FakeTensorMode on the meta device, as
bench/slice_vae_memory.py traces the VAEs: references/peak_memory.PeakMemory counts the most bytes of
tensors alive at once during one call of the denoiser (weights excluded; they are printed apart).
The call is a sampler step's: noise + InP latents (12 channels), 120 text tokens, batch 2 (the
conditional and unconditional halves of CFG together).

- ours: EasyAnimateV3Transformer (query-chunked attention: at most 2^28 scores per call).
- official: the official V3 module structure (references/easyanimate_v3_reference.py: diffusers
  Attention, the motion module's 512-sequence chunks, no query chunking).

FakeTensorMode runs scaled_dot_product_attention as the math kernel, which holds the whole score
matrix: the traced peaks are what a GPU without a fused kernel needs (flash/memory-efficient
attention, which ComfyUI uses on CUDA, needs less). The global motion attention of V3's odd blocks
sees every token of the clip at once (144 frames at 960x960: 36 x 60 x 60 = 129,600 tokens), which
is what the query chunks bound. Goal: weights + peak within a 24 GB card at 144 frames, 960x960.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from references.peak_memory import peak_bytes
from scripts.harness import import_pack

GIB = 1024 ** 3
CARD = 24 * 10 ** 9


def build(mode: FakeTensorMode):
    import_pack()
    from motionkit.models.easyanimate.v3_keys import PUBLISHED
    from motionkit.models.easyanimate.v3_transformer import EasyAnimateV3Transformer
    from references.easyanimate_v3_reference import PUBLISHED_V3_CONFIG, ReferenceV3Transformer

    default = torch.get_default_dtype()
    try:
        with mode, torch.device("meta"):
            ours = EasyAnimateV3Transformer(**PUBLISHED["EasyAnimateV3-XL-2-InP"], dtype=torch.bfloat16).eval()
            torch.set_default_dtype(torch.bfloat16)  # the official modules take no dtype argument
            official = ReferenceV3Transformer(**PUBLISHED_V3_CONFIG).eval()
    finally:
        torch.set_default_dtype(default)
    weights = sum(p.numel() * p.element_size() for p in ours.parameters())
    return ours, official, weights


def trace(mode, run, weights, batch: int, frames: int, size: int) -> int:
    """Peak bytes of one call for `frames` video frames at size x size (V3 latent: frames // 8 * 2)."""
    latent_frames, side = frames // 8 * 2, size // 8
    with mode, torch.no_grad():
        x = torch.randn(batch, 12, latent_frames, side, side, dtype=torch.bfloat16, device="meta")
        text = torch.randn(batch, 120, 4096, dtype=torch.bfloat16, device="meta")
        timesteps = torch.full((batch,), 999.0, device="meta")
        peak, out = peak_bytes(run, x, timesteps, text, devices=("meta",), existing=weights)
    if out.shape[-3:] != (latent_frames, side, side):
        raise RuntimeError(f"output {tuple(out.shape)} for a {frames}-frame {size}x{size} latent")
    return peak


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default="36,72,144", help="video frames (multiples of 8), comma separated")
    parser.add_argument("--size", type=int, default=960, help="frame height and width in pixels")
    parser.add_argument("--batch", type=int, default=2, help="2: CFG's two halves in one call")
    parser.add_argument("--skip-official", action="store_true", help="trace ours only")
    args = parser.parse_args(argv)

    mode = FakeTensorMode()
    ours, official, weights = build(mode)
    runs = {"ours": (lambda x, t, c: ours(x, t, c), ours)}
    if not args.skip_official:
        runs["official"] = (lambda x, t, c: official(x[:, :4], t, c, torch.ones(c.shape[:2], device=c.device),
                                                     x[:, 4:]), official)
    print(f"EasyAnimate V3 InP transformer, bf16 weights {weights / GIB:.2f} GiB, {args.size}x{args.size}, batch "
          f"{args.batch}, 120 text tokens; peak of tensors alive at once during one call (GiB), weights excluded")
    print(f"{'frames':>6} | {'tokens':>7} | " + " | ".join(f"{name:>9}" for name in runs)
          + " | ours + weights vs a 24 GB card")
    for frames in (int(f) for f in args.frames.split(",")):
        start = time.perf_counter()
        peaks = {name: trace(mode, run, list(model.state_dict().values()), args.batch, frames, args.size)
                 for name, (run, model) in runs.items()}
        tokens = frames // 8 * 2 * (args.size // 16) ** 2
        total = peaks["ours"] + weights
        ratio = f", ours/official {peaks['ours'] / peaks['official']:.4f}" if "official" in peaks else ""
        print(f"{frames:>6} | {tokens:>7} | " + " | ".join(f"{peaks[name] / GIB:9.2f}" for name in runs)
              + f" | {total / GIB:.2f} GiB = {total / CARD:.2f} of 24 GB{ratio}"
              f"  (traced in {time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
