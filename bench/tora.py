"""Benchmark: Tora-guided CogVideoX sampling, this pack (core KSampler) vs the diffusers reference.

    .venv/bin/python bench/tora.py [--steps 10] [--frames 25] [--height 128] [--width 192]

Both sides run the same random weights (a small CogVideoX-5B-shaped DiT and Tora modules) for
the same number of steps with CFG (batch 2 per step), each in a fresh subprocess so its peak
resident memory (VmHWM) is its own:
- ours: MotionKit Load CogVideoX's model + Apply Tora, sampled by ComfyUI's common_ksampler (euler);
- reference: diffusers' CogVideoXTransformer3DModel with the official Tora extractor and fusers
  (tests/tora_reference.py), stepped by CogVideoXDDIMScheduler (the official pipeline's loop,
  extractor run every step as the official code does).
Prints seconds and peak MiB per side (the best of --repeat alternating runs) and the ratios ours/reference.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(num_attention_heads=4, attention_head_dim=32, in_channels=16, out_channels=16, time_embed_dim=64,
              text_embed_dim=64, num_layers=4)
TORA = dict(dim=128, blocks=4, flow_channels=32)


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _weights():
    sys.path.insert(0, str(ROOT / "scripts"))
    from tiny_checkpoints import cogvideox as tiny_cog
    from tiny_checkpoints import tora as tiny_tora

    return tiny_cog.tiny_state_dict(CONFIG, seed=11), tiny_tora.tiny_state_dict(TORA, seed=12)


def _inputs(args):
    import torch

    generator = torch.Generator().manual_seed(0)
    t, h, w = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    motion = torch.randn(1, 16, t, h, w, generator=generator)
    positive = torch.randn(1, 226, CONFIG["text_embed_dim"], generator=generator)
    negative = torch.randn(1, 226, CONFIG["text_embed_dim"], generator=generator)
    return motion, positive, negative, (t, h, w)


def run_ours(args) -> dict:
    sys.path.insert(0, str(ROOT / "scripts"))
    import harness

    harness.setup_comfy_in_process()
    if args.attention == "pytorch":  # as `main.py --use-pytorch-cross-attention` (before model_management loads)
        import comfy.cli_args

        comfy.cli_args.args.use_pytorch_cross_attention = True
    harness.import_pack()
    import torch
    import nodes
    import comfy.ldm.modules.attention as attention

    from motionkit.models.cogvideox import comfy_glue
    from motionkit.models.tora.apply import apply_tora, build_tora

    cog_sd, tora_sd = _weights()
    motion, positive, negative, (t, h, w) = _inputs(args)
    model = apply_tora(comfy_glue.build_cogvideox(cog_sd, "bench"), build_tora(tora_sd, "bench"), motion, 1.0)
    latent = {"samples": torch.zeros(1, 16, t, h, w)}
    start = time.perf_counter()
    with torch.inference_mode():
        nodes.common_ksampler(model, 0, args.steps, 6.0, "euler", "simple", [[positive, {}]], [[negative, {}]],
                              latent, disable_noise=False)
    return {"seconds": time.perf_counter() - start, "attention": attention.optimized_attention.__name__}


def run_reference(args) -> dict:
    sys.path.insert(0, str(ROOT / "scripts"))
    sys.path.insert(0, str(ROOT / "tests"))
    import harness

    harness.setup_comfy_in_process()  # the torchvision shim diffusers' imports need on a CPU-only torch
    harness.import_pack()  # the tiny-checkpoint writers name the weights with the pack's modules
    import torch
    from diffusers import CogVideoXDDIMScheduler
    from tora_reference import reference_denoise, reference_dit, reference_rope, reference_tora

    cog_sd, tora_sd = _weights()
    motion, positive, negative, (t, h, w) = _inputs(args)
    dit = reference_dit(CONFIG, cog_sd)
    tora = reference_tora(tora_sd, TORA)
    scheduler = CogVideoXDDIMScheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                       prediction_type="v_prediction", snr_shift_scale=1.0, clip_sample=False)
    scheduler.set_timesteps(args.steps)
    rope = reference_rope(t, h // 2, w // 2, head_dim=CONFIG["attention_head_dim"])
    context = torch.cat([negative, positive])
    flow = torch.cat([motion] * 2).transpose(1, 2)
    latents = torch.randn(1, t, 16, h, w, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.inference_mode():
        for step in scheduler.timesteps:
            v = reference_denoise(tora, dit, torch.cat([latents] * 2), context, step.expand(2), flow, rope)
            uncond, cond = v.chunk(2)
            latents = scheduler.step(uncond + 6.0 * (cond - uncond), step, latents, return_dict=False)[0]
    return {"seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternating; the fastest is reported")
    parser.add_argument("--attention", choices=["default", "pytorch"], default="default",
                        help="ComfyUI's attention: its default for the device (sub-quadratic on CPU) or "
                             "--use-pytorch-cross-attention (SDPA, what the reference uses)")
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        result = (run_ours if args.side == "ours" else run_reference)(args)
        result["peak_mib"] = _peak_mib()
        print(json.dumps(result))
        return 0
    runs = {"reference": [], "ours": []}
    for _ in range(args.repeat):
        for side in ("reference", "ours"):
            command = [sys.executable, __file__, "--side", side, "--steps", str(args.steps), "--frames",
                       str(args.frames), "--height", str(args.height), "--width", str(args.width),
                       "--attention", args.attention]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = {side: {"seconds": min(r["seconds"] for r in found), "peak_mib": min(r["peak_mib"] for r in found)}
               for side, found in runs.items()}
    attention_used = runs["ours"][0]["attention"]
    print(f"Tora + CogVideoX (tiny 5B-shaped DiT, {CONFIG['num_layers']} blocks), {args.frames} frames "
          f"{args.width}x{args.height}, {args.steps} steps with CFG, CPU; ComfyUI attention: {attention_used}")
    for side in ("reference", "ours"):
        print(f"  {side:9s}: {results[side]['seconds']:.2f} s, peak {results[side]['peak_mib']:.0f} MiB")
    print(f"  ratio ours/reference: time {results['ours']['seconds'] / results['reference']['seconds']:.2f}x, "
          f"peak memory {results['ours']['peak_mib'] / results['reference']['peak_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
