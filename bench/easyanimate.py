"""Benchmark: EasyAnimate V5.1 sampling, this pack (core KSampler) vs the diffusers transformer + pipeline loop.

    .venv/bin/python -m bench.easyanimate                 # tiny V5.1-shaped MMDiT on CPU (CI-sized)
    .venv/bin/python -m bench.easyanimate --config full --device cuda --dtype bf16 --frames 49 --height 768 \\
        --width 768 --steps 2 --repeat 1                  # the 12B model's shape, random weights, on a GPU

Both sides run the same random weights for the same steps with CFG (batch 2 per step), each in a fresh
subprocess:
- ours: MotionKit's EasyAnimate V5.1 model sampled by ComfyUI's common_ksampler (euler, normal), with
  ComfyUI's model management (weights loaded to the device by ComfyUI, partially or offloaded as it sees fit);
- reference: diffusers' EasyAnimateTransformer3DModel stepped by FlowMatchEulerDiscreteScheduler exactly as
  EasyAnimatePipeline's loop does, everything on the device.
One warm-up step precedes each timed run. Per side: seconds per step (best of --repeat alternating runs) and
peak memory of the sampling: on a GPU torch.cuda.max_memory_allocated (weights included), on a CPU the
most tensor bytes alive at once during one step (references/peak_memory.py; weights excluded on both sides).
Prints the ratios ours/reference.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from bench.tora import _peak_mib, _random_state, _setup, run_sides_alternating
from references.peak_memory import peak_bytes

CONFIGS = {
    "tiny": dict(num_attention_heads=4, attention_head_dim=32, in_channels=16, out_channels=16, patch_size=2,
                 time_embed_dim=64, text_embed_dim=64, num_layers=4, mmdit_layers=4, add_norm_text_encoder=True),
    "full": dict(num_attention_heads=48, attention_head_dim=64, in_channels=16, out_channels=16, patch_size=2,
                 time_embed_dim=512, text_embed_dim=3584, num_layers=48, mmdit_layers=48, add_norm_text_encoder=True),
}
TEXT_TOKENS = 256


def _config(args):
    config = CONFIGS[args.config]
    layers = args.layers or config["num_layers"]
    return dict(config, num_layers=layers, mmdit_layers=min(layers, config["mmdit_layers"]))


def _weights(args):
    import torch

    from motionkit.models.easyanimate.transformer_v51 import EasyAnimateV51Transformer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    return _random_state(EasyAnimateV51Transformer(**_config(args), device="meta"), 21, dtype)


def _inputs(args):
    import torch

    generator = torch.Generator().manual_seed(0)
    width = _config(args)["text_embed_dim"]
    positive = torch.randn(1, TEXT_TOKENS, width, generator=generator)
    negative = torch.randn(1, TEXT_TOKENS, width, generator=generator)
    return positive, negative, ((args.frames - 1) // 4 + 1, args.height // 8, args.width // 8)


def _measure(device, sample, steps):
    import torch

    with torch.inference_mode():
        sample(1)  # warm-up (ours: ComfyUI loads the weights here)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        sample(steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / steps
        if device.type == "cuda":
            peak = _peak_mib(device)
        else:
            peak = peak_bytes(sample, 1)[0] / 2 ** 20
    return {"seconds_per_step": seconds, "peak_mib": peak}


def run_ours(args) -> dict:
    _setup(args)
    import torch
    import nodes
    import comfy.ldm.modules.attention as attention

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue

    device = torch.device(args.device)
    model = comfy_glue.build_easyanimate_v51(_weights(args), "bench", weight_dtype=args.dtype)
    positive, negative, shape = _inputs(args)
    latent = {"samples": torch.zeros(1, 16, *shape)}

    def sample(steps):
        return nodes.common_ksampler(model, 0, steps, 6.0, "euler", "normal", [[positive, {}]], [[negative, {}]], latent)

    return dict(_measure(device, sample, args.steps), attention=attention.optimized_attention.__name__)


def run_reference(args) -> dict:
    _setup(args)
    import torch
    from diffusers import EasyAnimateTransformer3DModel, FlowMatchEulerDiscreteScheduler

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    config = _config(args)
    with torch.device("meta"):
        transformer = EasyAnimateTransformer3DModel(**config).eval()
    transformer.load_state_dict(_weights(args), assign=True)
    transformer.to(device, dtype)
    positive, negative, shape = _inputs(args)
    context = torch.cat([negative, positive]).to(device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler()

    def sample(steps):
        scheduler.set_timesteps(steps, mu=1)
        latents = torch.randn(1, 16, *shape, generator=torch.Generator().manual_seed(0)).to(device, dtype)
        for step in scheduler.timesteps:
            v = transformer(torch.cat([latents] * 2), step.expand(2).to(device, dtype), encoder_hidden_states=context,
                            return_dict=False)[0]
            uncond, cond = v.chunk(2)
            latents = scheduler.step(uncond + 6.0 * (cond - uncond), step, latents, return_dict=False)[0]
        return latents

    return _measure(device, sample, args.steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--layers", type=int, default=0, help="override the block count (0: the config's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternating; the fastest is reported")
    parser.add_argument("--attention", choices=["default", "pytorch"], default="pytorch",
                        help="ComfyUI's attention: --use-pytorch-cross-attention (SDPA, what diffusers uses) or its "
                             "default for the device")
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps((run_ours if args.side == "ours" else run_reference)(args)))
        return 0
    passed = [f"--{key}={value}" for key, value in vars(args).items() if key not in ("repeat", "side")]
    runs = run_sides_alternating("bench.easyanimate", passed, args.repeat)
    if runs is None:
        return 1
    best = {side: {key: min(r[key] for r in found) for key in ("seconds_per_step", "peak_mib")}
            for side, found in runs.items()}
    config = _config(args)
    print(f"EasyAnimate V5.1 ({args.config}: {config['num_layers']} MMDiT blocks of width "
          f"{config['num_attention_heads'] * config['attention_head_dim']}), {args.frames} frames "
          f"{args.width}x{args.height}, {args.steps} steps with CFG, {args.device} {args.dtype}; ComfyUI attention: "
          f"{runs['ours'][0]['attention']}")
    memory = "GPU max allocated" if args.device.startswith("cuda") else "peak tensor memory of a step"
    for side in ("reference", "ours"):
        print(f"  {side:9s}: {best[side]['seconds_per_step']:.3f} s/step, {memory} {best[side]['peak_mib']:.1f} MiB")
    print(f"  ratio ours/reference: time {best['ours']['seconds_per_step'] / best['reference']['seconds_per_step']:.2f}x, "
          f"peak memory {best['ours']['peak_mib'] / best['reference']['peak_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
