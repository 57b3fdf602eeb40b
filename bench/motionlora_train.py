"""Benchmark: one MotionLoRA training step, ours against the reference, and its full-size GPU memory.

    .venv/bin/python -m bench.motionlora_train                      # tiny config on CPU, then the full-size trace
    .venv/bin/python -m bench.motionlora_train --device cuda        # the tiny comparison on the GPU (real memory)
    .venv/bin/python -m bench.motionlora_train --skip-full --rounds 5

1. Tiny config, same run: our step (Train MotionLoRA's: ComfyUI's UNet with the motion module injected, the
   LoRA as low-rank layers, called through CFGGuider.sample, AdamW) against the reference step (diffusers'
   UNetMotionModel with the same LoRA by hand, AnimateDiff's loss through DDPMScheduler, AdamW), both with and
   without gradient checkpointing (diffusers: enable_gradient_checkpointing). The two alternate step by step so
   the machine's load hits both alike; time is the median step, memory the peak of tensors alive during a step
   (references/peak_memory on CPU, torch.cuda.max_memory_allocated on a GPU). Goals: time <= 1.0x, peak <= 0.7x.
2. Full size, traced under torch's FakeTensorMode (shapes, no data): SD1.5's UNet (ComfyUI's UNetModel, fp16)
   with the v2 motion module (fp16) injected and a rank-64 float32 MotionLoRA, 16 frames at 512x512 (64x64
   latents), batch 1: the peak of a forward and backward plus the weights, the LoRA and its AdamW moments.
   Goal: <= 8 GB (AnimateDiff-MotionDirector reports 13.5 GB). The fake tensors sit on the CPU device, where
   PyTorch picks its fused attention kernel, which keeps no [tokens x tokens] matrix, as flash attention on a GPU
   (ComfyUI's default there). Not traced: allocator fragmentation, cuDNN workspaces.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

GIB = 2 ** 30


def _setup(cpu: bool) -> None:
    from scripts import harness

    if "motionkit" not in sys.modules:
        harness.setup_comfy_in_process(work_dir=Path(tempfile.mkdtemp(prefix="motionkit-bench-")), cpu=cpu,
                                       pytorch_attention=True)
    harness.import_pack()


def _timed(device: torch.device, step) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _peak(device: torch.device, step) -> int:
    """Peak bytes of tensors made during `step` (a separate run from the timed ones: the tracer slows each op)."""
    from references.peak_memory import PeakMemory

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with PeakMemory() as meter:
        step()
    return meter.peak


def tiny_comparison(device: torch.device, frames: int, size: int, rounds: int, rank: int) -> list[str]:
    from references import animatediff_reference as ref
    from references import motionlora_reference as mref
    from motionkit.models.animatediff import loader
    from motionkit.models.animatediff.motion_lora import MotionLoRA
    from motionkit.models.animatediff.schedule import SCHEDULES
    from motionkit.models.animatediff.training import LoRATrainer, TrainingItem, TrainingSettings, motion_lora_shapes
    from motionkit.models.comfy_glue import animatediff as injection
    from motionkit.models.comfy_glue import lora_training

    torch.manual_seed(0)
    reference = ref.diffusers_motion_unet(4, True, 32, std=None)
    image, motion_state = ref.split_state(reference)
    with torch.inference_mode():
        motion = loader.build_motion_module(ref.diffusers_to_original_motion_keys(motion_state), "bench", dtype=torch.float32)
        model = ref.comfy_model_patcher(4, image)
    model.load_device = motion.patcher.load_device = device
    g = torch.Generator().manual_seed(1)
    positive = [[torch.randn(1, 77, ref.CONTEXT, generator=g), {}]]
    item = TrainingItem(torch.randn(frames, 4, size, size, generator=g), torch.randn(frames, 4, size, size, generator=g), 500, 0)
    lines = []
    for checkpointing in (False, True):
        shapes = motion_lora_shapes(motion.model)
        pairs = {p: (torch.nn.Parameter(torch.randn(rank, i, generator=g, device="cpu").to(device) / rank),
                     torch.nn.Parameter(torch.zeros(o, rank, device=device))) for p, (o, i) in shapes.items()}
        trainer = LoRATrainer(pairs, TrainingSettings(rank=rank, frames=frames, batch_size=1, learning_rate=1e-4), device)
        patched = injection.apply_motion_module(model, motion, [MotionLoRA("bench", pairs, 1.0)],
                                                gradient_checkpointing=checkpointing)
        patched = injection.animatediff_beta_schedule(patched, SCHEDULES[0])
        patched.model_options["transformer_options"][injection.FRAMES_PER_VIDEO] = frames
        unet = patched.get_model_object("diffusion_model")
        patches = lora_training.frozen_conv_patches(unet)
        if checkpointing:
            patches.update(lora_training.gradient_checkpointing_patches(unet))
        for key, forward in patches.items():
            patched.add_object_patch(key, forward)

        ref_model = ref.original_formulation(copy.deepcopy(reference), frames, joint_unet_groupnorm=False).to(device)
        layers = mref.add_motion_lora(ref_model, pairs)
        if checkpointing:
            ref_model.enable_gradient_checkpointing()
        ref_model.train()
        ref_params = [p for layer in layers.values() for p in (layer.down, layer.up)]
        ref_optimizer = torch.optim.AdamW(ref_params, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        scheduler = mref.ddpm_scheduler()
        latents = item.latents.to(device).unsqueeze(0).transpose(1, 2)
        noise = item.noise.to(device).unsqueeze(0).transpose(1, 2)
        context = positive[0][0].to(device).repeat(frames, 1, 1)
        timesteps = torch.tensor([item.timestep], device=device)

        def reference_step():
            loss = mref.training_loss(ref_model, scheduler, latents, noise, timesteps, context)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref_params, 1.0)
            ref_optimizer.step()
            ref_optimizer.zero_grad(set_to_none=True)

        times = {"ours": [], "reference": []}
        peaks = {}

        def run(predict_noise):
            def our_step():
                trainer.accumulate([item], predict_noise)
                trainer.apply_gradients()
            peaks["ours"], peaks["reference"] = _peak(device, our_step), _peak(device, reference_step)  # also a warm-up
            for _ in range(rounds):
                times["ours"].append(_timed(device, our_step))
                times["reference"].append(_timed(device, reference_step))

        lora_training.with_noise_predictor(patched, positive, (frames, 4, size, size), run)
        ours_t, ref_t = statistics.median(times["ours"]), statistics.median(times["reference"])
        ours_m, ref_m = peaks["ours"], peaks["reference"]
        label = "with gradient checkpointing" if checkpointing else "plain"
        lines.append(f"tiny ({frames} frames, {size}x{size} latents, rank {rank}, {device.type}), {label}: "
                     f"time {ours_t * 1000:.0f} ms vs {ref_t * 1000:.0f} ms = {ours_t / ref_t:.2f}x (goal <= 1.0); "
                     f"peak {ours_m / 2**20:.1f} MiB vs {ref_m / 2**20:.1f} MiB = {ours_m / ref_m:.2f}x (goal <= 0.7)")
        print(lines[-1], flush=True)
    return lines


SD15_UNET = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
                 adm_in_channels=None, in_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], channel_mult=[1, 2, 4, 4], transformer_depth_middle=1,
                 use_linear_in_transformer=False, context_dim=768, num_heads=8, num_head_channels=-1,
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
"""SD1.5's UNet as ComfyUI detects it (comfy/supported_models.py SD15)."""


def full_size_trace(frames: int, size: int, rank: int, checkpointing: bool) -> tuple[int, int]:
    """(peak bytes of one training step's forward + backward, resident bytes of weights + LoRA + AdamW), traced."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    import comfy.ldm.modules.diffusionmodules.openaimodel as openaimodel
    import comfy.ops
    from references.peak_memory import peak_bytes
    from motionkit.models.animatediff.motion_lora import LowRankLinear
    from motionkit.models.animatediff.motion_module import MotionModel, MotionModuleConfig
    from motionkit.models.animatediff.training import motion_lora_shapes
    from motionkit.models.comfy_glue import animatediff as injection
    from motionkit.models.comfy_glue import lora_training

    # Fake tensors on the CPU device: PyTorch then picks its fused (flash) attention kernel, which, like flash
    # attention on a GPU, keeps no [tokens x tokens] matrix; on the meta device it would trace the math attention.
    gpu = torch.device("cpu")
    mode = FakeTensorMode()
    with mode, torch.device(gpu):
        unet = openaimodel.UNetModel(**SD15_UNET, dtype=torch.float16, operations=comfy.ops.manual_cast).requires_grad_(False)
        motion = MotionModel(MotionModuleConfig(mid_block=True), dtype=torch.float16, operations=comfy.ops.manual_cast).requires_grad_(False)
        pairs = {p: (torch.zeros(rank, i, requires_grad=True), torch.zeros(o, rank, requires_grad=True))
                 for p, (o, i) in motion_lora_shapes(motion).items()}
        modules = dict(motion.named_modules())
        for path, (down, up) in pairs.items():
            parent, child = path.rsplit(".", 1)
            target = modules[parent]
            if child.isdigit():
                target[int(child)] = LowRankLinear(modules[path], [(down, up, 1.0)])
            else:
                setattr(target, child, LowRankLinear(modules[path], [(down, up, 1.0)]))
        for block, module, where in injection.motion_slots(unet, motion):
            injection._insert(block, module, where)
        patches = lora_training.frozen_conv_patches(unet)
        if checkpointing:
            patches.update(lora_training.gradient_checkpointing_patches(unet))
        for key, forward in patches.items():  # what the clone's object patches set, on this traced model directly
            setattr(unet.get_submodule(key[len("diffusion_model."):-len(".forward")]), "forward", forward)

        def run_motion_module(layer, x, emb, context, transformer_options, *args, **kwargs):
            if checkpointing:
                return torch.utils.checkpoint.checkpoint(layer, x, frames, 1.0, use_reentrant=False)
            return layer(x, frames, 1.0)

        options = {"patches": {"forward_timestep_embed_patch": [(type(motion.down_blocks[0].motion_modules[0]), run_motion_module)]}}
        x = torch.randn(frames, 4, size // 8, size // 8, dtype=torch.float16)
        t = torch.full((frames,), 500.0)
        context = torch.randn(frames, 77, 768, dtype=torch.float16)
        noise = torch.randn(frames, 4, size // 8, size // 8)

        def step():
            with injection.frames_scope(frames):
                out = unet(x, t, context, transformer_options=options)
            loss = torch.nn.functional.mse_loss(out.float(), noise)
            loss.backward()
            return loss

        peak, _ = peak_bytes(step, devices=(gpu.type,))
    unique = {id(p): p for p in list(unet.parameters()) + list(motion.parameters())}  # the motion modules sit in the UNet
    weights = sum(p.numel() * p.element_size() for p in unique.values() if not p.requires_grad)
    lora = sum(t.numel() * 4 for pair in pairs.values() for t in pair)
    return peak, weights + lora * 4  # LoRA, its gradient and AdamW's two moments, float32


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the tiny comparison runs")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=16, help="latent height and width of the tiny comparison")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-full", action="store_true", help="skip the full-size trace")
    parser.add_argument("--full-frames", type=int, default=16)
    parser.add_argument("--full-size", type=int, default=512)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    _setup(cpu=device.type == "cpu")
    torch.set_num_threads(1) if device.type == "cpu" else None
    tiny_comparison(device, args.frames, args.size, args.rounds, args.rank)
    if not args.skip_full:
        for checkpointing in (False, True):
            start = time.time()
            peak, resident = full_size_trace(args.full_frames, args.full_size, 64, checkpointing)
            label = "with gradient checkpointing" if checkpointing else "plain"
            print(f"full size (SD1.5 + v2 module fp16, rank-64 fp32 MotionLoRA, {args.full_frames} frames at "
                  f"{args.full_size}x{args.full_size}, batch 1), {label}: activations peak {peak / GIB:.2f} GiB + weights, "
                  f"LoRA and AdamW {resident / GIB:.2f} GiB = {(peak + resident) / GIB:.2f} GiB (goal <= 8 GB = 7.45 GiB; "
                  f"traced in {time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
