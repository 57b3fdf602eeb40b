"""Benchmark: Tora-guided CogVideoX sampling, this pack (core KSampler) vs the diffusers reference.

    .venv/bin/python -m bench.tora                      # tiny 5B-shaped DiT on CPU (CI-sized)
    .venv/bin/python -m bench.tora --config 5b --device cuda --dtype bf16 --frames 49 --height 480 \\
        --width 720 --steps 50 --repeat 1               # CogVideoX-5B-sized random weights on a GPU

Both sides run the same random weights (a CogVideoX-5B-shaped DiT and Tora modules) for the same
number of steps with CFG (batch 2 per step), each in a fresh subprocess so its peak memory is its own
(CPU: VmHWM; GPU: torch.cuda.max_memory_allocated):
- ours: MotionKit's CogVideoX model + Apply Tora, sampled by ComfyUI's common_ksampler (euler), with
  ComfyUI's model management (weights loaded to the device by ComfyUI, offloaded as it sees fit);
- reference: diffusers' CogVideoXTransformer3DModel with the official Tora extractor and fusers
  (references/tora_reference.py), stepped by CogVideoXDDIMScheduler (the official pipeline's loop,
  extractor run every step as the official code does), everything on the device.
One warm-up step precedes each timed run. Prints seconds and peak MiB per side (the best of --repeat
alternating runs) and the ratios ours/reference.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "tiny": (dict(num_attention_heads=4, attention_head_dim=32, in_channels=16, out_channels=16, time_embed_dim=64,
                  text_embed_dim=64, num_layers=4), dict(flow_channels=32)),
    "5b": (dict(num_attention_heads=48, attention_head_dim=64, in_channels=16, out_channels=16, time_embed_dim=512,
                text_embed_dim=4096, num_layers=42), dict(flow_channels=128)),
}


def _configs(args):
    dit, tora = CONFIGS[args.config]
    dit = dict(dit, num_layers=args.layers or dit["num_layers"])
    tora = dict(tora, dim=dit["num_attention_heads"] * dit["attention_head_dim"], blocks=dit["num_layers"])
    return dit, tora


def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _random_state(module, seed: int, dtype) -> dict:
    """Deterministic random tensors for every entry of a (meta) module's state dict, made one by one."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = (0.5 + torch.rand(tensor.shape, generator=generator)).to(dtype)
        elif tensor.ndim == 1 and "norm" in name and name.endswith("weight"):
            state[name] = (1 + 0.1 * torch.randn(tensor.shape, generator=generator)).to(dtype)
        else:
            fan_in = tensor[0].numel() if tensor.ndim > 1 else 64
            state[name] = (torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5).to(dtype)
    return state


def _setup(args):
    """ComfyUI importable in this process (CPU or GPU mode), the pack imported as `motionkit`."""
    from scripts import harness

    comfy_host = harness.host_module("comfy_host")

    comfy_host.setup(cpu=args.device == "cpu")
    if args.attention == "pytorch":  # as `main.py --use-pytorch-cross-attention` (before model_management loads)
        import comfy.cli_args

        comfy.cli_args.args.use_pytorch_cross_attention = True
    harness.import_pack()


def _weights(args):
    import torch

    from motionkit.models.cogvideox.transformer import CogVideoXTransformer
    from motionkit.models.tora.fuser import ToraModel

    dit, tora = _configs(args)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    return (_random_state(CogVideoXTransformer(**dit, device="meta"), 11, dtype),
            _random_state(ToraModel(**tora, device="meta"), 12, dtype))


def _inputs(args):
    import torch

    dit, _tora = _configs(args)
    generator = torch.Generator().manual_seed(0)
    t, h, w = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    motion = torch.randn(1, 16, t, h, w, generator=generator)
    positive = torch.randn(1, 226, dit["text_embed_dim"], generator=generator)
    negative = torch.randn(1, 226, dit["text_embed_dim"], generator=generator)
    return motion, positive, negative, (t, h, w)


def run_ours(args) -> dict:
    _setup(args)
    import torch
    import nodes
    import comfy.ldm.modules.attention as attention

    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.models.comfy_glue.tora import apply_tora
    from motionkit.models.tora.loading import build_tora

    device = torch.device(args.device)
    cog_sd, tora_sd = _weights(args)
    motion, positive, negative, (t, h, w) = _inputs(args)
    cog = comfy_glue.build_cogvideox(cog_sd, "bench", weight_dtype=args.dtype)
    model = apply_tora(cog, build_tora(tora_sd, "bench"), motion, 1.0)
    del cog_sd, tora_sd
    latent = {"samples": torch.zeros(1, 16, t, h, w)}
    conds = [[positive, {}]], [[negative, {}]]
    with torch.inference_mode():
        nodes.common_ksampler(model, 0, 1, 6.0, "euler", "simple", *conds, latent)  # warm-up: loads the weights
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        nodes.common_ksampler(model, 0, args.steps, 6.0, "euler", "simple", *conds, latent)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib(device),
            "attention": attention.optimized_attention.__name__}


def run_reference(args) -> dict:
    _setup(args)  # also the torchvision shim diffusers' imports need on a CPU-only torch
    import torch
    from diffusers import CogVideoXDDIMScheduler
    from references.tora_reference import reference_denoise, reference_dit, reference_rope, reference_tora

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    dit_config, tora_config = _configs(args)
    cog_sd, tora_sd = _weights(args)
    motion, positive, negative, (t, h, w) = _inputs(args)
    dit = reference_dit(dit_config, cog_sd).to(device, dtype)
    tora = reference_tora(tora_sd, tora_config).to(device, dtype)
    del cog_sd, tora_sd
    scheduler = CogVideoXDDIMScheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                       prediction_type="v_prediction", snr_shift_scale=1.0, clip_sample=False)
    rope = tuple(r.to(device) for r in reference_rope(t, h // 2, w // 2, head_dim=dit_config["attention_head_dim"]))
    context = torch.cat([negative, positive]).to(device, dtype)
    flow = torch.cat([motion] * 2).transpose(1, 2).to(device, dtype)

    def sample(steps):
        scheduler.set_timesteps(steps)
        latents = torch.randn(1, t, 16, h, w, generator=torch.Generator().manual_seed(0)).to(device, dtype)
        for step in scheduler.timesteps:
            v = reference_denoise(tora, dit, torch.cat([latents] * 2), context, step.expand(2).to(device), flow, rope)
            uncond, cond = v.float().chunk(2)
            latents = scheduler.step(uncond + 6.0 * (cond - uncond), step, latents.float(), return_dict=False)[0].to(dtype)
        return latents

    with torch.inference_mode():
        sample(1)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        sample(args.steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib(device)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--layers", type=int, default=0, help="override the block count (0: the config's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternating; the fastest is reported")
    parser.add_argument("--attention", choices=["default", "pytorch"], default="default",
                        help="ComfyUI's attention: its default for the device (sub-quadratic on a CPU) or "
                             "--use-pytorch-cross-attention (SDPA, what the reference uses)")
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps((run_ours if args.side == "ours" else run_reference)(args)))
        return 0
    runs = {"reference": [], "ours": []}
    passed = [f"--{key}={value}" for key, value in vars(args).items() if key not in ("repeat", "side")]
    for _ in range(args.repeat):
        for side in ("reference", "ours"):
            done = subprocess.run([sys.executable, "-m", "bench.tora", *passed, "--side", side],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = {side: {"seconds": min(r["seconds"] for r in found), "peak_mib": min(r["peak_mib"] for r in found)}
               for side, found in runs.items()}
    dit, _tora = _configs(args)
    print(f"Tora + CogVideoX ({args.config}: {dit['num_layers']} blocks of width "
          f"{dit['num_attention_heads'] * dit['attention_head_dim']}), {args.frames} frames {args.width}x{args.height}, "
          f"{args.steps} steps with CFG, {args.device} {args.dtype}; ComfyUI attention: {runs['ours'][0]['attention']}")
    memory = "GPU max allocated" if args.device.startswith("cuda") else "process peak RSS"
    for side in ("reference", "ours"):
        print(f"  {side:9s}: {results[side]['seconds']:.2f} s, {memory} {results[side]['peak_mib']:.0f} MiB")
    print(f"  ratio ours/reference: time {results['ours']['seconds'] / results['reference']['seconds']:.2f}x, "
          f"peak memory {results['ours']['peak_mib'] / results['reference']['peak_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
