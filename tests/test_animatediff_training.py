"""MotionLoRA and domain adapter training: file layouts, gradient parity with diffusers' UNetMotionModel,
gradient checkpointing, resume, the clips reader and bad input. Tiny random weights on CPU."""
from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from references import animatediff_reference as ref  # noqa: E402
from references import motionlora_reference as mref  # noqa: E402
from motionkit.models.animatediff import clips as clip_data  # noqa: E402
from motionkit.models.animatediff import keys, loader, motion_lora  # noqa: E402
from motionkit.models.animatediff.schedule import SCHEDULES  # noqa: E402
from motionkit.models.comfy_glue import animatediff as injection  # noqa: E402
from motionkit.models.animatediff.motion_module import MotionModel, MotionModuleConfig  # noqa: E402
from motionkit.models.animatediff.training import (LatentClip, LoRATrainer, TrainingItem, TrainingSettings,  # noqa: E402
                                                   TrainingSettingsError, motion_lora_shapes, new_lora_pairs,
                                                   noise_prediction_loss)

pytestmark = pytest.mark.host
FRAMES, SIZE = 8, 8


@pytest.fixture(scope="module")
def tiny():
    """A tiny SD1.5-shaped ComfyUI model and v2-style motion module built under inference_mode, as ComfyUI's loaders
    run, with the diffusers UNetMotionModel holding the same weights."""
    torch.manual_seed(0)
    reference = ref.diffusers_motion_unet(4, True, 16, std=None)
    image, motion_state = ref.split_state(reference)
    with torch.inference_mode():
        motion = loader.build_motion_module(ref.diffusers_to_original_motion_keys(motion_state), "tiny_v2.safetensors",
                                            dtype=torch.float32)
        model = ref.comfy_model_patcher(4, image)
        g = torch.Generator().manual_seed(7)
        clips = [LatentClip(f"clip{i}", torch.randn(10, 4, SIZE, SIZE, generator=g), 0) for i in range(3)]
        positive = [[torch.randn(1, 7, ref.CONTEXT, generator=g), {}]]
    return dict(reference=reference, motion=motion, model=model, clips=clips, positive=positive)


@pytest.fixture
def model_folders(tmp_path, monkeypatch):
    """Fresh animatediff_motion_lora and loras folders (ComfyUI's folder_paths) and output folder for a test."""
    import folder_paths

    for name in ("animatediff_motion_lora", "loras"):
        (tmp_path / name).mkdir()
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(tmp_path / name)], {".safetensors", ".ckpt"}))
    (tmp_path / "output").mkdir()
    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path / "output"))
    return tmp_path


def job(**kwargs):
    from motionkit.models.comfy_glue import lora_training

    settings = dict(rank=4, learning_rate=1e-3, steps=2, frames=FRAMES, batch_size=1, loss_scaling=False)
    settings.update({k: kwargs.pop(k) for k in list(kwargs) if k in settings})
    kwargs.setdefault("resolution", 0)
    kwargs.setdefault("gradient_checkpointing", False)
    return lora_training.TrainingJob(settings=TrainingSettings(**settings), **kwargs)


# ---------------------------------------------------------------- formats
def test_saved_layout_is_the_published_v2_motion_lora_layout():
    """Full-size v2 module at rank 64: the keys and shapes of v2_lora_*.ckpt (19.3M parameters, 77 MB as float32)."""
    with torch.device("meta"):
        model = MotionModel(MotionModuleConfig(mid_block=True), operations=torch.nn)
    pairs = new_lora_pairs(motion_lora_shapes(model), 64, torch.Generator().manual_seed(0), "meta")
    state = keys.motion_lora_file_state(pairs)
    published = mref.published_motion_lora_layout(64)
    assert {k: tuple(v.shape) for k, v in state.items()} == published
    assert len(state) == 2 * 4 * 2 * 21  # down/up x q,k,v,out x 2 attentions x 21 temporal transformers
    params = sum(math.prod(s) for s in published.values())
    assert params == 19_333_120 and params * 4 == 77_332_480
    assert set(keys.motion_lora_pairs(state, "v2_lora_PanRight.ckpt")) == set(pairs)  # our loader reads it back


def test_trained_motion_lora_file_loads_and_merges_like_the_original(tiny, model_folders):
    from motionkit.models.comfy_glue import lora_training

    lora, plot = lora_training.train_motion_lora_on_latents(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"],
                                                           job(lora_name="pan_right", learning_rate=5e-3))
    path = model_folders / "animatediff_motion_lora" / "pan_right.safetensors"
    state = safetensors.torch.load_file(str(path))
    expected = {k.replace("down_blocks", "down_blocks") for k in keys.motion_lora_file_state(lora.pairs)}
    assert set(state) == expected and all(re.search(r"\.processor\.to_(q|k|v|out)_lora\.(down|up)\.weight$", k) for k in state)
    assert all(state[k].dtype == torch.float32 for k in state)
    assert plot.shape == (1, 320, 640, 3) and plot.min() >= 0 and plot.max() <= 1
    assert not any(isinstance(m, motion_lora.LowRankLinear) for m in tiny["motion"].model.modules())  # unloaded after
    loaded = loader.load_motion_lora(str(path), 1.0)  # this pack's Load MotionLoRA
    assert set(loaded.pairs) == set(lora.pairs)
    assert all(torch.equal(loaded.pairs[p][0], lora.pairs[p][0]) and torch.equal(loaded.pairs[p][1], lora.pairs[p][1])
               for p in lora.pairs)
    assert max(up.abs().max().item() for _, up in lora.pairs.values()) > 0  # trained: up moved away from its zero start
    # its effect: this pack's low-rank layers equal the original AnimateDiff's dense merge of the file
    merged = ref.original_motion_lora_merge(tiny["motion"].model, [(state, 0.7)])
    layers = motion_lora.low_rank_patches(tiny["motion"].model, [motion_lora.MotionLoRA("x", loaded.pairs, 0.7)])
    assert set(layers) == set(lora.pairs)
    x = torch.randn(5, 64)
    with torch.no_grad():
        for path, layer in layers.items():
            width = layer.in_features
            assert torch.allclose(layer(x[:, :width]), merged.get_submodule(path)(x[:, :width]), atol=1e-5), path
    # .ckpt: a plain torch pickle of the same keys, as the original AnimateDiff scripts torch.load
    lora_training.train_motion_lora_on_latents(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"],
                                               job(lora_name="pan_right.ckpt", learning_rate=5e-3))
    pickled = torch.load(str(model_folders / "animatediff_motion_lora" / "pan_right.ckpt"), weights_only=True)
    assert set(pickled) == set(state) and all(torch.equal(pickled[k], state[k]) for k in state)


def test_domain_adapter_loads_through_core_lora_loader(tiny, model_folders):
    import comfy.sd
    from motionkit.models.comfy_glue import lora_training

    adapted, _ = lora_training.train_domain_adapter_on_latents(tiny["model"], tiny["clips"], tiny["positive"],
                                                               job(lora_name="my_adapter", frames=1, batch_size=4, learning_rate=5e-3))
    state = safetensors.torch.load_file(str(model_folders / "loras" / "my_adapter.safetensors"))
    names = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in state}
    assert all(n.startswith("lora_unet_") and re.search(r"_attn[12]_to_(q|k|v|out_0)$", n) for n in names)
    unet = tiny["model"].model.diffusion_model
    targets = [n for n, _ in unet.named_modules() if lora_training.SPATIAL_ATTENTION.search(n)]
    assert len(names) == len(targets) == 4 * 2 * 16  # q,k,v,out x attn1/attn2 x 16 transformer blocks (tiny SD1.5)
    import comfy.lora

    key_map = comfy.lora.model_lora_keys_unet(tiny["model"].model, {})  # ComfyUI's own names for each UNet weight
    patched, _ = comfy.sd.load_lora_for_models(tiny["model"], None, state, 1.0, 0)
    assert len(patched.patches) == len(targets)  # every file key reached a UNet weight
    before = {k: v.clone() for k, v in tiny["model"].model.state_dict().items()}
    patched.patch_model()
    try:
        after = tiny["model"].model.state_dict()
        for name in names:
            key = key_map[name]
            update = state[f"{name}.lora_up.weight"] @ state[f"{name}.lora_down.weight"]
            assert torch.allclose(after[key], before[key] + update, atol=1e-6), key  # alpha = rank: scale 1
    finally:
        patched.unpatch_model()
    assert len(adapted.patches) == len(targets)
    assert max(state[f"{n}.lora_up.weight"].abs().max().item() for n in names) > 0


# ---------------------------------------------------------------- exactness
def _random_pairs(motion, rank, seed, std=0.2):
    g = torch.Generator().manual_seed(seed)
    return {p: (torch.nn.Parameter(torch.randn(rank, i, generator=g) * std), torch.nn.Parameter(torch.randn(o, rank, generator=g) * std))
            for p, (o, i) in motion_lora_shapes(motion.model).items()}


def _training_clone(tiny, pairs, gradient_checkpointing=False, frozen_convolutions=True):
    from motionkit.models.comfy_glue import lora_training

    patched = injection.apply_motion_module(tiny["model"], tiny["motion"], [motion_lora.MotionLoRA("t", pairs, 1.0)],
                                            gradient_checkpointing=gradient_checkpointing)
    patched = injection.animatediff_beta_schedule(patched, SCHEDULES[0])
    patched.model_options["transformer_options"][injection.FRAMES_PER_VIDEO] = FRAMES
    if gradient_checkpointing:
        for key, forward in lora_training.gradient_checkpointing_patches(patched.get_model_object("diffusion_model")).items():
            patched.add_object_patch(key, forward)
    if frozen_convolutions:
        for key, forward in lora_training.frozen_conv_patches(patched.get_model_object("diffusion_model")).items():
            patched.add_object_patch(key, forward)
    return patched


def _our_gradients(tiny, pairs, items, gradient_checkpointing=False, frozen_convolutions=True, size=SIZE):
    """(loss, LoRA gradients) of the trainer's accumulate: one model call per video."""
    from motionkit.models.comfy_glue import lora_training

    patched = _training_clone(tiny, pairs, gradient_checkpointing, frozen_convolutions)
    trainer = LoRATrainer(pairs, TrainingSettings(rank=4, frames=FRAMES, batch_size=len(items)))
    losses = []
    lora_training.with_noise_predictor(patched, tiny["positive"], (FRAMES * len(items), 4, size, size),
                                       lambda predict: losses.append(trainer.accumulate(items, predict)))
    return losses[0], {p: (d.grad.clone(), u.grad.clone()) for p, (d, u) in pairs.items()}


def _one_call_gradients(tiny, pairs, items):
    """LoRA gradients of the batch MSE with every video in one model call."""
    from motionkit.models.comfy_glue import lora_training

    latents = torch.cat([i.latents for i in items])
    noise = torch.cat([i.noise for i in items])
    timesteps = torch.tensor([i.timestep for i in items]).repeat_interleave(FRAMES)

    def run(predict):
        noise_prediction_loss(predict(latents, noise, timesteps, 0), noise, noise.numel()).backward()

    lora_training.with_noise_predictor(_training_clone(tiny, pairs), tiny["positive"], tuple(latents.shape), run)
    return {p: (d.grad.clone(), u.grad.clone()) for p, (d, u) in pairs.items()}


def _items(count, seed, size=SIZE, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shape = (FRAMES, 4, size, size)
    return [TrainingItem(torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype), t, 0)
            for t in (421, 77)[:count]]


PARITY_SIZE = 16
"""Latent size of the gradient parity check. At 8x8 the tiny UNet's deepest level is 1x1, where each GroupNorm
group holds 2 numbers: normalising 2 nearly equal numbers amplifies any rounding, and a 1e-7 relative change of
the input moves diffusers' own LoRA gradients by 0.7%. At 16x16 (deepest level 2x2) the same change moves them
by 1e-7 (both measured on this fixture in float64)."""


@pytest.fixture(scope="module")
def tiny_float64(tiny):
    """The tiny fixture's weights in float64: ComfyUI's model and motion module, and diffusers' UNetMotionModel."""
    reference = copy.deepcopy(tiny["reference"]).double()
    image, motion_state = ref.split_state(reference)
    with torch.inference_mode():
        motion = loader.build_motion_module(ref.diffusers_to_original_motion_keys(motion_state), "tiny_v2.safetensors",
                                            dtype=torch.float64)
        model = ref.comfy_model_patcher(4, image, dtype=torch.float64)
    positive = [[tiny["positive"][0][0].double(), {}]]
    return dict(reference=reference, motion=motion, model=model, positive=positive)


def test_one_training_step_gradients_match_diffusers_unet_motion_model(tiny_float64):
    """Our training step (ComfyUI's UNet, injected motion module, low-rank layers, ComfyUI sampling) against
    AnimateDiff's loss on diffusers' UNetMotionModel with the same LoRA by hand, on the same two videos, in
    float64. The agreement (measured: 9e-8) is bounded by the two float32 steps ComfyUI keeps in a float64
    run: its sigma table and its cast of the UNet output to float32 (model_base._apply_model).

    Two videos in one model call give the gradients of the two calls the trainer makes, one per video."""
    tiny = tiny_float64
    pairs = {p: (torch.nn.Parameter(d.detach().double()), torch.nn.Parameter(u.detach().double()))
             for p, (d, u) in _random_pairs(tiny["motion"], 4, seed=3).items()}
    items = _items(2, seed=5, size=PARITY_SIZE, dtype=torch.float64)
    loss, ours = _our_gradients(tiny, pairs, items, size=PARITY_SIZE)

    reference = ref.original_formulation(copy.deepcopy(tiny["reference"]), FRAMES, joint_unet_groupnorm=False)
    layers = mref.add_motion_lora(reference, pairs)
    latents = torch.stack([i.latents for i in items]).transpose(1, 2)  # [b, c, f, h, w]
    noise = torch.stack([i.noise for i in items]).transpose(1, 2)
    context = tiny["positive"][0][0].repeat(len(items) * FRAMES, 1, 1)
    want = mref.training_loss(reference, mref.ddpm_scheduler(), latents, noise, torch.tensor([i.timestep for i in items]),
                              context, dtype=torch.float64)
    want.backward()
    assert abs(loss - want.item()) <= 1e-7 * abs(want.item())
    flat_ours = torch.cat([torch.cat([ours[p][0].flatten(), ours[p][1].flatten()]) for p in pairs])
    flat_ref = torch.cat([torch.cat([layers[p].down.grad.flatten(), layers[p].up.grad.flatten()]) for p in pairs])
    error = ((flat_ours - flat_ref).norm() / flat_ref.norm()).item()
    print(f"float64 LoRA gradients: relative error {error:.2e} (norm {flat_ref.norm().item():.4f})")
    assert flat_ref.norm() > 1e-2 and error <= 1e-6, error

    # both videos in one call (ComfyUI batches them as [2 * frames, C, h, w]) against the per-video sum above
    for d, u in pairs.values():
        d.grad = u.grad = None
    batched = _one_call_gradients(tiny, pairs, items)
    flat_batched = torch.cat([torch.cat([batched[p][0].flatten(), batched[p][1].flatten()]) for p in pairs])
    batch_error = ((flat_batched - flat_ours).norm() / flat_ours.norm()).item()
    print(f"two videos in one call against one call per video: relative difference {batch_error:.2e}")
    assert batch_error <= 1e-9, batch_error


def test_gradient_checkpointing_gives_the_same_gradients(tiny):
    pairs = _random_pairs(tiny["motion"], 4, seed=3)
    items = _items(1, seed=9)
    plain_loss, plain = _our_gradients(tiny, pairs, items)
    for d, u in pairs.values():
        d.grad = u.grad = None
    checked_loss, checked = _our_gradients(tiny, pairs, items, gradient_checkpointing=True)
    assert checked_loss == pytest.approx(plain_loss, rel=1e-6)
    assert max((plain[p][k] - checked[p][k]).abs().max().item() for p in pairs for k in (0, 1)) <= 1e-6


def test_frozen_convolutions_keep_less_and_give_the_same_gradients(tiny):
    """The fast path (convolutions that keep only their weight) against torch's own convolution."""
    from references.peak_memory import PeakMemory

    pairs = _random_pairs(tiny["motion"], 4, seed=3)
    items = _items(1, seed=9)
    with PeakMemory() as plain_meter:
        plain_loss, plain = _our_gradients(tiny, pairs, items, frozen_convolutions=False)
    for d, u in pairs.values():
        d.grad = u.grad = None
    with PeakMemory() as fast_meter:
        fast_loss, fast = _our_gradients(tiny, pairs, items)
    assert fast_loss == pytest.approx(plain_loss, rel=1e-6)
    assert max((plain[p][k] - fast[p][k]).abs().max().item() for p in pairs for k in (0, 1)) <= 1e-6
    print(f"training step peak: torch's convolutions {plain_meter.peak / 2**20:.1f} MiB, frozen {fast_meter.peak / 2**20:.1f} MiB")
    assert fast_meter.peak < plain_meter.peak


def test_resumed_training_continues_exactly(tiny, model_folders):
    from motionkit.models.comfy_glue import lora_training

    train = lora_training.train_motion_lora_on_latents
    straight, _ = train(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"], job(steps=4, lora_name="a"))
    train(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"], job(steps=2, lora_name="b"))
    resumed, _ = train(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"], job(steps=4, lora_name="b", resume=True))
    assert all(torch.allclose(straight.pairs[p][k], resumed.pairs[p][k], atol=1e-7) for p in straight.pairs for k in (0, 1))
    state = safetensors.torch.load_file(str(model_folders / "output" / "motionkit_training" / "b.motionlora.state.safetensors"))
    assert {k.split(".")[0] for k in state} == {"lora", "optimizer", "generator"}


# ---------------------------------------------------------------- clips
def _write_clips(folder, frames=6, size=(40, 24)):
    import av
    from PIL import Image

    folder.mkdir()
    video = (harness.panning_frames(seed=1, frames=frames, height=size[1], width=size[0], step=2) * 255).astype(np.uint8)
    Image.fromarray(video[0]).save(folder / "b.gif", save_all=True, append_images=[Image.fromarray(f) for f in video[1:]], duration=100, loop=0)
    Image.fromarray(video[0]).save(folder / "c.webp", save_all=True, append_images=[Image.fromarray(f) for f in video[1:]], lossless=True)
    (folder / "a").mkdir()
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(folder / "a" / f"frame_{i + 1}.png")
    with av.open(str(folder / "d.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    (folder / "a.txt").write_text("pan right over a texture\n")
    return video


def test_clip_folder_reads_every_format_with_stride_crop_and_captions(tmp_path):
    video = _write_clips(tmp_path / "clips")
    clips = clip_data.load_clip_folder(str(tmp_path / "clips"), stride=2, width=16, height=16)
    assert [c.name for c in clips] == ["a", "b.gif", "c.webp", "d.mp4"]
    assert [c.caption for c in clips] == ["pan right over a texture", None, None, None]
    assert all(c.frames.shape == (3, 16, 16, 3) and c.frames.dtype == torch.uint8 for c in clips)
    expected = clip_data.resize_center_crop(torch.from_numpy(video[::2]), 16, 16)
    assert torch.equal(clips[0].frames, expected) and torch.equal(clips[2].frames, expected)  # lossless formats
    assert (clips[3].frames.float() - expected.float()).abs().mean().item() < 12  # mp4: lossy
    kept = clip_data.load_clip_folder(str(tmp_path / "clips"), max_frames=4)
    assert kept[0].frames.shape == (4, 24, 40, 3)


def test_resize_center_crop_covers_then_crops():
    frames = torch.arange(2 * 4 * 8 * 3, dtype=torch.float32).view(2, 4, 8, 3).to(torch.uint8)
    out = clip_data.resize_center_crop(frames, 4, 4)  # 8x4 -> scale 1 -> crop the middle 4 columns
    assert torch.equal(out, frames[:, :, 2:6])


def test_bad_clips_are_named(tmp_path):
    from PIL import Image

    folder = tmp_path / "clips"
    folder.mkdir()
    with pytest.raises(clip_data.TrainingClipError) as error:
        clip_data.load_clip_folder(str(folder))
    assert "no clips in" in str(error.value) and ".mp4" in str(error.value)
    (folder / "broken.mp4").write_bytes(b"not a video")
    (folder / "mixed").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "mixed" / "0.png")
    Image.new("RGB", (16, 8)).save(folder / "mixed" / "1.png")
    Image.new("RGB", (8, 8)).save(folder / "one.gif")
    with pytest.raises(clip_data.TrainingClipError) as error:
        clip_data.load_clip_folder(str(folder), width=8, height=8)
    message = str(error.value)
    assert "2 bad clip(s)" in message and "'broken.mp4' could not be read" in message
    assert "'mixed' has frames of mixed sizes (8x8, 16x8)" in message and "no clip is skipped silently" in message
    (folder / "broken.mp4").unlink()
    (folder / "mixed" / "1.png").unlink()
    Image.new("RGB", (16, 16)).save(folder / "big.gif")
    with pytest.raises(clip_data.TrainingClipError) as error:
        clip_data.load_clip_folder(str(folder))
    assert "the clips have different sizes" in str(error.value) and "'big.gif' (1 frames, 16x16)" in str(error.value)
    assert "set width and height" in str(error.value)


# ---------------------------------------------------------------- bad input
def test_bad_training_inputs_are_refused_before_training(tiny, model_folders):
    from motionkit.models.comfy_glue import lora_training

    train = lora_training.train_motion_lora_on_latents
    args = (tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"])
    with pytest.raises(TrainingSettingsError, match=r"rank must be 1 or more .* not 0"):
        train(*args, job(rank=0))
    with pytest.raises(TrainingSettingsError, match=r"learning_rate must be a positive finite number .* not nan"):
        train(*args, job(learning_rate=float("nan")))
    with pytest.raises(TrainingSettingsError, match=r"frames is 20, more than the motion module 'tiny_v2.safetensors'.*at most 16"):
        train(*args, job(frames=20))
    with pytest.raises(clip_data.TrainingClipError) as error:
        train(tiny["model"], tiny["motion"], [], tiny["positive"], job())
    assert "no training clips were given" in str(error.value)
    short = [LatentClip("short_clip.mp4", torch.zeros(5, 4, SIZE, SIZE))] + tiny["clips"]
    with pytest.raises(clip_data.TrainingClipError) as error:
        train(tiny["model"], tiny["motion"], short, tiny["positive"], job())
    assert "'short_clip.mp4' (5 frames)" in str(error.value) and "Lower frames to at most 5" in str(error.value)

    class CogVideoXTransformer3D(torch.nn.Module):
        pass

    import comfy.model_patcher

    holder = torch.nn.Module()
    holder.diffusion_model = CogVideoXTransformer3D()
    other = comfy.model_patcher.ModelPatcher(holder, torch.device("cpu"), torch.device("cpu"))
    with pytest.raises(lora_training.TrainingError) as error:
        train(other, tiny["motion"], tiny["clips"], tiny["positive"], job())
    assert str(error.value) == ("Train MotionLoRA needs an SD1.5 or SDXL checkpoint (ComfyUI's UNetModel) as its model; "
                                "this model is a CogVideoXTransformer3D")
    (model_folders / "animatediff_motion_lora" / "taken.safetensors").write_bytes(b"x")
    with pytest.raises(lora_training.TrainingError) as error:
        train(*args, job(lora_name="taken"))
    assert "'taken.safetensors' already exists" in str(error.value) and "choose another lora_name" in str(error.value)
    assert (model_folders / "animatediff_motion_lora" / "taken.safetensors").read_bytes() == b"x"
    with pytest.raises(lora_training.TrainingError, match="no training state to resume for 'fresh.safetensors'"):
        train(*args, job(lora_name="fresh", resume=True))
    with pytest.raises(lora_training.TrainingError, match="must be a file name inside the model folder"):
        train(*args, job(lora_name="../escape"))


def test_cancel_stops_cleanly_keeping_what_was_trained(tiny, model_folders, monkeypatch):
    import json

    import comfy.model_management
    from motionkit.models.comfy_glue import lora_training

    report = lora_training._Reporter.__call__

    def cancel_after_two_steps(self, trainer):
        report(self, trainer)
        if trainer.step == 2:
            comfy.model_management.interrupt_current_processing(True)  # the user presses Cancel

    monkeypatch.setattr(lora_training._Reporter, "__call__", cancel_after_two_steps)
    train = lora_training.train_motion_lora_on_latents
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        train(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"], job(steps=5, lora_name="stopped"))
    saved = model_folders / "animatediff_motion_lora" / "stopped.safetensors"
    with safetensors.safe_open(str(saved), framework="pt") as file:
        assert json.loads(file.metadata()["motionkit"])["steps"] == 2
    assert not any(isinstance(m, motion_lora.LowRankLinear) for m in tiny["motion"].model.modules())
    monkeypatch.setattr(lora_training._Reporter, "__call__", report)
    resumed, _ = train(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"], job(steps=5, lora_name="stopped", resume=True))
    with safetensors.safe_open(str(saved), framework="pt") as file:
        assert json.loads(file.metadata()["motionkit"])["steps"] == 5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_training_keeps_a_float32_lora(tiny, dtype):
    from motionkit.models.comfy_glue import lora_training

    settings = dict(steps=2, learning_rate=5e-3, loss_scaling=dtype == torch.float16)
    lora, _ = lora_training.train_motion_lora_on_latents(tiny["model"], tiny["motion"], tiny["clips"], tiny["positive"],
                                                         job(dtype=dtype, **settings))
    ups = [up for _, up in lora.pairs.values()]
    assert all(t.dtype == torch.float32 for pair in lora.pairs.values() for t in pair)
    assert all(torch.isfinite(u).all() for u in ups) and max(u.abs().max().item() for u in ups) > 0
