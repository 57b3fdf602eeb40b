"""Per-step time and peak memory: ComfyUI's UNet with this pack's injected motion module vs
diffusers' UNetMotionModel (AnimateDiff pipeline's denoiser), same tiny random weights, same run.

    .venv/bin/python -m bench.animatediff [--frames 16] [--size 32] [--steps 3] [--rounds 1]

Each side runs in its own child process (one thread) so peak memory is its own: the peak
resident set (VmHWM, reset after the weights are loaded) gives the activation peak, and the
peak with the weights counted is printed beside it. The time ratio comes from one more child
that holds both models and alternates their steps, so the shared machine's load hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _setup(pytorch_attention: bool):
    from scripts import harness

    harness.setup_comfy_in_process()
    import comfy.cli_args

    # ComfyUI's --use-pytorch-cross-attention (its default on GPUs; on CPU it picks sub-quadratic attention)
    comfy.cli_args.args.use_pytorch_cross_attention = pytorch_attention
    harness.import_pack()


def _steps(sides: list[str], frames: int, size: int) -> dict:
    """One denoiser call per side, on the same random weights and inputs."""
    import torch
    from references import animatediff_reference as ref
    from motionkit.models.animatediff import injection, loader

    torch.set_num_threads(1)
    levels = 4
    reference = ref.diffusers_motion_unet(levels, True, 32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, frames, size, size, generator=g)
    ctx = torch.randn(2, 77, ref.CONTEXT, generator=g).repeat_interleave(frames, 0)
    t = torch.full((1,), 500.0)
    steps = {}
    if "diffusers" in sides:
        def diffusers_step():
            with torch.no_grad():
                return reference(x, t, ctx).sample
        steps["diffusers"] = diffusers_step
    if any(side.startswith("pack") for side in sides):
        import comfy.model_management
        import comfy.patcher_extension

        image, motion_state = ref.split_state(reference)
        motion = loader.build_motion_module(motion_state, "bench", dtype=torch.float32)
        patched = injection.apply_motion_module(ref.comfy_model_patcher(levels, image), motion)
        comfy.model_management.load_models_gpu([patched] + patched.get_nested_additional_models())
        options = dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1])
        options["wrappers"] = comfy.patcher_extension.copy_nested_dicts(patched.wrappers)
        xb = x.transpose(1, 2).reshape(2 * frames, 4, size, size)
        tb = t.repeat(2 * frames)
        unet = patched.model.diffusion_model

        def pack_step():
            with torch.no_grad():
                return unet(xb, tb, ctx, transformer_options=options)
        steps["pack"] = pack_step
    if "diffusers" not in sides:
        del reference
    return steps


def child(side: str, frames: int, size: int, steps: int) -> dict:
    """Peak memory of one side alone (and its time) in this process."""
    import gc

    _setup(pytorch_attention=side == "pack")
    step = _steps([side], frames, size)["pack" if side.startswith("pack") else side]
    gc.collect()
    step()  # warm-up
    gc.collect()
    resident = _vm("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = _vm("VmHWM")
    return {"step_s": statistics.median(times), "peak_bytes": peak, "activation_bytes": peak - resident}


def interleaved(frames: int, size: int, steps: int) -> dict:
    """Time of both sides in one process, steps alternating, so load changes hit both alike."""
    _setup(pytorch_attention=True)
    funcs = _steps(["pack", "diffusers"], frames, size)
    times = {name: [] for name in funcs}
    for fn in funcs.values():
        fn()
    for _ in range(steps):
        for name, fn in funcs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", choices=("pack", "pack-comfy-cpu-attention", "diffusers", "interleaved"))
    args = parser.parse_args()
    if args.child == "interleaved":
        print("RESULT " + json.dumps(interleaved(args.frames, args.size, args.steps)))
        return 0
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.frames, args.size, args.steps)))
        return 0
    results = {"pack": [], "diffusers": [], "pack-comfy-cpu-attention": [], "interleaved": []}
    # large blocks straight from mmap and back on free: the resident set then follows live tensors, so
    # VmHWM is the peak of what each side holds rather than of what malloc kept cached
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MALLOC_MMAP_THRESHOLD_="65536")
    for _ in range(args.rounds):
        for side in ("pack", "diffusers", "pack-comfy-cpu-attention", "interleaved"):
            done = subprocess.run([sys.executable, "-m", "bench.animatediff", "--child", side, "--frames", str(args.frames),
                                   "--size", str(args.size), "--steps", str(args.steps)],
                                  capture_output=True, text=True, env=env, cwd=ROOT)
            line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            if done.returncode or not line:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[side].append(json.loads(line[0][7:]))
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in results.items()}
    print(f"AnimateDiff denoiser step, tiny SD1.5-shaped UNet (channels 32/32/64/64) + v2-style motion module, "
          f"2 videos x {args.frames} frames, {args.size}x{args.size} latents, CPU, 1 thread, median of {args.rounds} rounds")
    for side, label in (("pack", "MotionKit (ComfyUI UNet + injected module)"), ("diffusers", "diffusers UNetMotionModel"),
                        ("pack-comfy-cpu-attention", "MotionKit, ComfyUI's CPU default attention")):
        m = med[side]
        print(f"  {label:45s} {m['step_s'] * 1000:8.1f} ms/step   activation peak {m['activation_bytes'] / 2**20:7.1f} MiB"
              f"   process peak {m['peak_bytes'] / 2**20:7.1f} MiB")
    both = med["interleaved"]
    print(f"  interleaved in one process: MotionKit {both['pack'] * 1000:.1f} ms/step, diffusers "
          f"{both['diffusers'] * 1000:.1f} ms/step")
    print(f"  ratio pack/diffusers: time {both['pack'] / both['diffusers']:.2f}x (interleaved; separate processes "
          f"{med['pack']['step_s'] / med['diffusers']['step_s']:.2f}x), "
          f"activation memory {med['pack']['activation_bytes'] / med['diffusers']['activation_bytes']:.2f}x, "
          f"process peak {med['pack']['peak_bytes'] / med['diffusers']['peak_bytes']:.2f}x")
    print("  (MotionKit rows run ComfyUI with --use-pytorch-cross-attention, its GPU default; the last row keeps its CPU "
          "default, sub-quadratic attention in the image model's own layers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
