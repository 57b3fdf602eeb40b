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

    .venv/bin/python -m bench.tora --trace               # full-size GPU memory trace, no GPU needed (~1 min)
    .venv/bin/python -m bench.tora --trace --card-gib 12 --frames 49 --height 480 --width 720

`--trace` traces one CFG step (batch 2) of CogVideoX-5B with Tora's 42 fusers and extractor, bf16,
on fake tensors (torch FakeTensorMode; fake tensors on the meta device stand for the GPU, as
bench/motion_vae_memory.py does) and prints the GPU-resident weights and the activation peak
(references/peak_memory.PeakMemory: the most bytes of GPU-side tensors alive at once, weights excluded):
- ours: ComfyUI's model management decides what is resident on a `--card-gib` card: the budget is
  load_models_gpu's lowvram_model_memory with the GPU branch of BaseModel.memory_required (the
  estimate ComfyUI makes with flash/SDPA attention), then ModelPatcher.load picks the modules it loads
  and marks the rest for streaming (comfy_cast_weights: their weights stay on the host and each layer
  casts its weights to the GPU when it runs, inside the trace). One step through BaseModel.apply_model
  with the Apply Tora clone's options (extractor run once, as in a generation).
- reference: diffusers' CogVideoXTransformer3DModel with the official Tora extractor and fusers
  (references/tora_reference.py), as ToraPipeline runs it under enable_model_cpu_offload: the whole
  transformer (with the Tora modules) on the GPU, the extractor inside every step.
Both sides' attention is traced as PyTorch's flash kernel (what SDPA runs on a recent NVIDIA GPU for
bf16, head dim 64, no mask: output + log-sum-exp); meta tensors would otherwise take the math path.
Not traced: the CUDA context, cuDNN/cuBLAS workspaces and the allocator's fragmentation.
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


def run_sides_alternating(module: str, passed: list[str], repeat: int, cwd=None) -> dict[str, list[dict]] | None:
    """Runs `python -m <module> <passed> --side reference|ours` `repeat` times each, alternating, one process a run;
    each side's records (the JSON last line of each run). None, with the failed run's stderr printed, if one fails."""
    runs = {"reference": [], "ours": []}
    for _ in range(repeat):
        for side in ("reference", "ours"):
            done = subprocess.run([sys.executable, "-m", module, *passed, "--side", side],
                                  capture_output=True, text=True, cwd=cwd)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return None
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--layers", type=int, default=0, help="override the block count (0: the config's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, help="default 25 (49 with --trace)")
    parser.add_argument("--height", type=int, help="default 128 (480 with --trace)")
    parser.add_argument("--width", type=int, help="default 192 (720 with --trace)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternating; the fastest is reported")
    parser.add_argument("--attention", choices=["default", "pytorch"], default="default",
                        help="ComfyUI's attention: its default for the device (sub-quadratic on a CPU) or "
                             "--use-pytorch-cross-attention (SDPA, what the reference uses)")
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help="trace the full-size GPU memory of one CFG step (fake "
                        "tensors; --config is 5b, --dtype bf16)")
    parser.add_argument("--card-gib", type=float, default=24.0, help="--trace: the card ComfyUI loads onto")
    parser.add_argument("--json", action="store_true", help="--trace: also print the figures (bytes) as a JSON line")
    args = parser.parse_args()
    for key, run, traced in (("frames", 25, 49), ("height", 128, 480), ("width", 192, 720)):
        if getattr(args, key) is None:
            setattr(args, key, traced if args.trace else run)
    if args.trace:
        return print_trace(args)
    if args.side:
        print(json.dumps((run_ours if args.side == "ours" else run_reference)(args)))
        return 0
    passed = [f"--{key}={value}" for key, value in vars(args).items() if key not in ("repeat", "side", "trace", "card_gib", "json")]
    runs = run_sides_alternating("bench.tora", passed, args.repeat, cwd=ROOT)
    if runs is None:
        return 1
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


# ---------------------------------------------------------------- the full-size memory trace
GIB = 2 ** 30
CUDA_CONTEXT_GIB = 0.5
"""Card memory the CUDA context and the allocator take before ComfyUI loads anything (not traced)."""


class FlashAttentionOnMeta:
    """A TorchFunctionMode routing mask-free F.scaled_dot_product_attention to aten's flash kernel, whose meta
    version allocates what the GPU kernel does (output and log-sum-exp, no N x N matrix)."""

    def __new__(cls):
        import torch
        from torch.overrides import TorchFunctionMode

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func is torch.nn.functional.scaled_dot_product_attention and kwargs.get("attn_mask") is None:
                    q, k, v = args[:3]
                    return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v)[0]
                return func(*args, **kwargs)

        return Mode()


def _fake_like(module, device, mode) -> int:
    """Give `module`'s own parameters and buffers fake storage on `device`; return their bytes."""
    import torch

    size = 0
    with mode:
        for name, tensor in list(module._parameters.items()) + list(module._buffers.items()):
            if tensor is None:
                continue
            fake = torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
            if name in module._parameters:
                module._parameters[name] = torch.nn.Parameter(fake, requires_grad=False)
            else:
                module._buffers[name] = fake
            size += tensor.numel() * tensor.element_size()
    return size


def _comfy_weight_budget(patcher, latent_shape, card_bytes: int, loaded_bytes: int = 0) -> float:
    """load_models_gpu's lowvram_model_memory on an NVIDIA card with `card_bytes` (CUDA context taken off)
    of which `loaded_bytes` hold models loaded before; `latent_shape` is the CFG batch (two latents)."""
    import math

    import comfy.model_management as mm

    model = patcher.model
    dtype = model.get_dtype()
    # sampler_helpers.estimate_memory's minimum: BaseModel.memory_required (flash/xformers branch) of one latent
    area = (latent_shape[0] // 2) * math.prod(latent_shape[2:])
    minimum = area * mm.dtype_size(dtype) * 0.01 * model.memory_usage_factor * 2 ** 20
    minimum_memory_required = max(mm.minimum_inference_memory(), minimum + mm.extra_reserved_memory())
    free = card_bytes - CUDA_CONTEXT_GIB * GIB - loaded_bytes
    return max(128 * 2 ** 20, free - minimum_memory_required, min(0.0, free - mm.minimum_inference_memory()))


def trace_ours(args, latent_shape, mode):
    """(GPU-resident weight bytes, activation peak bytes, modules streamed) of one CFG step, ours."""
    import torch

    from motionkit.models.cogvideox import keys
    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.models.comfy_glue.tora import apply_tora
    from motionkit.models.tora.fuser import ToraModel
    from motionkit.models.tora.guidance import _GenerationState
    from motionkit.models.cogvideox.transformer import VIDEO_NORM_PATCH
    import comfy.model_patcher
    import comfy.ops
    from references.peak_memory import PeakMemory

    meta = torch.device("meta")
    config = comfy_glue.CogVideoXModelConfig(dict(keys.PUBLISHED["CogVideoX-5B"], image_model="cogvideox"), 1.0)
    config.set_inference_dtype(torch.bfloat16, None)
    model = config.get_model({}, device=meta)
    cog = comfy.model_patcher.ModelPatcher(model, load_device=meta, offload_device=meta)
    tora_model = ToraModel(device=meta, dtype=torch.bfloat16, operations=comfy.ops.manual_cast)
    tora = comfy.model_patcher.ModelPatcher(tora_model, load_device=meta, offload_device=meta)
    b, c, t, h, w = latent_shape
    patched = apply_tora(cog, tora, torch.empty(1, c, t, h, w, device=meta), 1.0)
    card = int(args.card_gib * GIB)
    # ComfyUI's choice of resident modules (ModelPatcher.load), the DiT first, then Tora with what is left
    streamed = 0
    resident = 0
    for patcher in (patched, tora):
        budget = _comfy_weight_budget(patched, latent_shape, card, resident)
        patcher.load(meta, lowvram_model_memory=budget, full_load=budget >= patcher.model_size())
        for module in patcher.model.modules():
            own = list(module._parameters.values()) + list(module._buffers.values())
            if not any(tensor is not None for tensor in own):
                continue
            # ModelPatcher.load moved the modules it loads (comfy_patched_weights); the others stream
            host_side = bool(module._parameters) and not getattr(module, "comfy_patched_weights", False)
            streamed += host_side
            placed = _fake_like(module, torch.device("cpu") if host_side else meta, mode)
            resident += 0 if host_side else placed
    options = dict(patched.model_options["transformer_options"])
    guidance = options["patches"][VIDEO_NORM_PATCH][0]
    options[guidance.key] = _GenerationState()
    with mode:
        guidance.motion = torch.empty(1, c, t, h, w, device=meta)
        x = torch.empty(latent_shape, device=meta)
        sigma = torch.empty(b, device=meta)
        context = torch.empty(b, 226, 4096, device=meta)
        with FlashAttentionOnMeta(), PeakMemory(("meta",)) as meter, torch.inference_mode():
            out = patched.model.apply_model(x, sigma, c_crossattn=context, transformer_options=options)
    assert tuple(out.shape) == tuple(latent_shape)
    return resident, meter.peak, streamed


def trace_reference(latent_shape, mode):
    """(GPU-resident weight bytes, activation peak bytes) of one CFG step of diffusers + the official Tora."""
    import torch
    from diffusers import CogVideoXTransformer3DModel
    from references.peak_memory import PeakMemory
    from references.tora_reference import RefTora, reference_denoise, reference_rope

    from motionkit.models.cogvideox import keys

    b, c, t, h, w = latent_shape
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with mode, torch.device("meta"):
            dit = CogVideoXTransformer3DModel(**keys.PUBLISHED["CogVideoX-5B"]).eval().requires_grad_(False)
            tora = RefTora(128, 3072, 42).eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(previous)
    resident = sum(p.numel() * p.element_size() for m in (dit, tora) for p in m.parameters())
    cos, sin = reference_rope(t, h // 2, w // 2, head_dim=64)
    with mode:
        rope = (torch.empty(cos.shape, device="meta"), torch.empty(sin.shape, device="meta"))
        x = torch.empty(b, t, c, h, w, device="meta", dtype=torch.bfloat16)
        context = torch.empty(b, 226, 4096, device="meta", dtype=torch.bfloat16)
        timestep = torch.empty(b, device="meta", dtype=torch.long)
        flow = torch.empty(b, t, c, h, w, device="meta", dtype=torch.bfloat16)  # the pipeline repeats it for CFG
        with FlashAttentionOnMeta(), PeakMemory(("meta",)) as meter, torch.inference_mode():
            out = reference_denoise(tora, dit, x, context, timestep, flow, rope)
    assert tuple(out.shape) == (b, t, c, h, w)
    return resident, meter.peak


def trace(args) -> dict:
    """The figures of `--trace` (bytes), ours and the reference."""
    args.attention = "pytorch"  # SDPA, as ComfyUI uses on a GPU
    _setup(args)
    from torch._subclasses.fake_tensor import FakeTensorMode

    latent_shape = (2, 16, (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8)
    ours = trace_ours(args, latent_shape, FakeTensorMode())
    reference = trace_reference(latent_shape, FakeTensorMode(allow_non_fake_inputs=True))  # BatchNorm makes a real counter
    return {"ours": ours, "reference": reference, "latent_shape": latent_shape}


def print_trace(args) -> int:
    start = time.perf_counter()
    figures = trace(args)
    (weights, peak, streamed), (ref_weights, ref_peak) = figures["ours"], figures["reference"]
    print(f"CogVideoX-5B + Tora (42 fusers, extractor), bf16, {args.frames} frames {args.width}x{args.height}, one CFG "
          f"step (latent {figures['latent_shape']}); GPU memory traced on fake tensors in "
          f"{time.perf_counter() - start:.0f} s")
    print(f"{'':34s} {'resident weights':>17s} {'activation peak':>16s} {'total':>8s}")
    print(f"{'reference (diffusers, cpu offload)':34s} {ref_weights / GIB:13.2f} GiB {ref_peak / GIB:12.2f} GiB "
          f"{(ref_weights + ref_peak) / GIB:6.2f} GiB")
    print(f"{f'ours (ComfyUI, {args.card_gib:g} GiB card)':34s} {weights / GIB:13.2f} GiB {peak / GIB:12.2f} GiB "
          f"{(weights + peak) / GIB:6.2f} GiB   ({streamed} layers streamed from the host)")
    fits = weights + peak + CUDA_CONTEXT_GIB * GIB <= args.card_gib * GIB
    print(f"activation peak ours/reference {peak / ref_peak:.2f}x; ours {'fits' if fits else 'does NOT fit'} a "
          f"{args.card_gib:g} GiB card (with {CUDA_CONTEXT_GIB} GiB for the CUDA context)")
    if args.json:
        print(json.dumps({"ours_weights": weights, "ours_peak": peak, "streamed_layers": streamed,
                          "reference_weights": ref_weights, "reference_peak": ref_peak, "card": args.card_gib * GIB,
                          "cuda_context": CUDA_CONTEXT_GIB * GIB}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
