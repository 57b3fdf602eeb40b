"""AnimateDiff: key layouts, parity with diffusers' UNetMotionModel in ComfyUI's own UNet, MotionLoRA,
context windows, beta schedule and bad input."""
from __future__ import annotations

import re

import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from references import animatediff_reference as ref  # noqa: E402

from motionkit.models.animatediff import keys, loader, motion_lora  # noqa: E402
from motionkit.models.animatediff.motion_module import MotionModel, MotionModuleConfig  # noqa: E402

pytestmark = pytest.mark.host
FULL_SD15, FULL_SDXL = (320, 640, 1280, 1280), (320, 640, 1280)


# ---------------------------------------------------------------- layouts
def diffusers_layout(channels, mid, max_frames) -> dict:
    from diffusers import MotionAdapter

    with torch.device("meta"):
        adapter = MotionAdapter(block_out_channels=channels, motion_layers_per_block=2, motion_num_attention_heads=8,
                                motion_max_seq_length=max_frames, use_motion_mid_block=mid)
    return adapter.state_dict()


def to_layout(diffusers_state: dict, layout: str) -> dict:
    """Write a diffusers MotionAdapter state in one of the published layouts."""
    if layout == "diffusers MotionAdapter":
        return dict(diffusers_state)
    original = ref.diffusers_to_original_motion_keys(diffusers_state)
    if layout == "AnimateDiff":
        return original
    if layout == "AnimateLCM":
        return {k: v for k, v in original.items() if "pos_encoder" not in k}
    if layout == "HotshotXL":
        return {re.sub(r"motion_modules\.(\d+)\.temporal_transformer\.", r"temporal_attentions.\1.", k)
                .replace("pos_encoder.pe", "pos_encoder.positional_encoding"): v for k, v in original.items()}
    raise AssertionError(layout)


PUBLISHED = {  # file: (channels, mid block, position-encoding length, layout, expected kind)
    "mm_sd_v14.ckpt": (FULL_SD15, False, 24, "AnimateDiff", "v1"),
    "mm_sd_v15.ckpt": (FULL_SD15, False, 24, "AnimateDiff", "v1"),
    "mm_sd_v15_v2.ckpt": (FULL_SD15, True, 32, "AnimateDiff", "v2"),
    "v3_sd15_mm.ckpt": (FULL_SD15, False, 32, "AnimateDiff", "v3"),
    "mm_sdxl_v10_beta.ckpt": (FULL_SDXL, False, 32, "AnimateDiff", "sdxl"),
    "hsxl_temporal_layers.f16.safetensors": (FULL_SDXL, False, 32, "HotshotXL", "hotshotxl"),
    "AnimateLCM_sd15_t2v.ckpt": (FULL_SD15, True, 32, "AnimateLCM", "animatelcm"),
    "animatediff-motion-adapter-v1-5-2 (diffusers)": (FULL_SD15, True, 32, "diffusers MotionAdapter", "v2"),
    "animatediff-motion-adapter-v1-5-3 (diffusers)": (FULL_SD15, False, 32, "diffusers MotionAdapter", "v3"),
    "animatediff-motion-adapter-sdxl-beta (diffusers)": (FULL_SDXL, False, 32, "diffusers MotionAdapter", "sdxl"),
}


def test_original_layout_matches_diffusers_own_converter():
    """Our original-layout key generator is the inverse of diffusers' convert_animatediff_checkpoint_to_diffusers."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    state = diffusers_layout(FULL_SD15, True, 32)
    original = to_layout(state, "AnimateDiff")
    back = convert_animatediff_checkpoint_to_diffusers(original)
    assert set(back) == {k for k in state if not k.endswith("pos_embed.pe")}
    assert sum(1 for k in original if k.endswith("pos_encoder.pe")) == 2 * sum(1 for k in state if k.endswith("pos_embed.pe"))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_layout_loads_full_size_on_meta(name):
    channels, mid, max_frames, layout, kind = PUBLISHED[name]
    state = to_layout(diffusers_layout(channels, mid, max_frames), layout)
    motion = loader.build_motion_module(state, name, dtype=torch.float16)
    info = motion.info
    assert (info.kind, info.sd_type, info.config.block_channels, info.config.mid_block, info.config.max_frames) == (
        kind, "SDXL" if len(channels) == 3 else "SD1.5", channels, mid, max_frames)
    assert info.layout == ("AnimateDiff" if layout == "AnimateLCM" else layout)
    assert info.unet_groupnorm == (keys.ACROSS_FRAMES if kind == "v1" else keys.PER_FRAME)
    loaded = motion.model.state_dict()
    assert len(loaded) == len(keys.to_original_layout(state, name)[0]) + (0 if layout != "AnimateLCM" else
                                                                        sum(k.endswith("pos_encoder.pe") for k in loaded))
    # 22c^2 + 21c parameters per temporal transformer of width c; v2 453M, v3 417M, SDXL beta 237M
    params = sum(p.numel() for p in motion.model.parameters())
    assert params == {(FULL_SD15, True): 453_209_280, (FULL_SD15, False): 417_137_600,
                      (FULL_SDXL, False): 236_779_200}[channels, mid]


# ---------------------------------------------------------------- parity in ComfyUI's UNet
PARITY = {  # kind: (UNet levels, mid block, frames the module holds, file layout, UNet GroupNorm across frames)
    "v1": (4, False, 24, "AnimateDiff", True),
    "v2": (4, True, 32, "diffusers MotionAdapter", False),
    "v3": (4, False, 32, "AnimateDiff", False),
    "animatelcm": (4, True, 32, "AnimateLCM", False),
    "sdxl": (3, False, 32, "AnimateDiff", False),
    "hotshotxl": (3, False, 32, "HotshotXL", False),
}
FRAMES, SIZE = 8, 16


def comfy_forward(patched, x, t, ctx, cond_or_uncond):
    """Run the patched ComfyUI UNet as the sampler does (loaded with its additional models, injected)."""
    import comfy.model_management
    import comfy.patcher_extension

    comfy.model_management.load_models_gpu([patched] + patched.get_nested_additional_models())
    options = dict(patched.model_options["transformer_options"], cond_or_uncond=list(cond_or_uncond))
    options["wrappers"] = comfy.patcher_extension.copy_nested_dicts(patched.wrappers)  # as sampler_helpers does
    with torch.no_grad():
        return patched.model.diffusion_model(x, t, ctx, transformer_options=options)


def parity_inputs(frames=FRAMES, videos=2):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(videos, 4, frames, SIZE, SIZE, generator=g)
    ctx = torch.randn(videos, 7, ref.CONTEXT, generator=g)
    return x, ctx


def as_batch(video):  # diffusers [b, c, f, h, w] -> ComfyUI's frames-in-batch [(b f), c, h, w]
    return video.transpose(1, 2).reshape(-1, *video.shape[1:2], *video.shape[3:])


@pytest.fixture
def unload():
    import comfy.model_management

    yield
    comfy.model_management.unload_all_models()


@pytest.mark.parametrize("kind", list(PARITY))
def test_parity_with_diffusers_unet_motion_model(kind, unload):
    from motionkit.models.comfy_glue import animatediff as injection

    levels, mid, max_frames, layout, joint = PARITY[kind]
    reference = ref.diffusers_motion_unet(levels, mid, max_frames)
    image, motion_state = ref.split_state(reference)
    motion = loader.build_motion_module(to_layout(motion_state, layout), f"tiny_{kind}", dtype=torch.float32)
    assert motion.info.kind == kind
    patched = injection.apply_motion_module(ref.comfy_model_patcher(levels, image), motion)
    x, ctx = parity_inputs()
    t = torch.full((1,), 421.0)
    got = comfy_forward(patched, as_batch(x), t.repeat(2 * FRAMES), ctx.repeat_interleave(FRAMES, 0), [0, 1])
    with torch.no_grad():
        plain_diffusers = as_batch(reference(x, t, ctx.repeat_interleave(FRAMES, 0)).sample)
        want = as_batch(ref.original_formulation(reference, FRAMES, joint)(x, t, ctx.repeat_interleave(FRAMES, 0)).sample)
    assert (got - want).abs().max().item() <= 1e-5
    # diffusers normalises the motion module's input over all frames; the original (and this pack) per frame
    assert (got - plain_diffusers).abs().max().item() > 1e-3


def test_cond_and_uncond_videos_are_kept_apart(unload):
    """Two videos in one batch give what each gives alone (the motion module never mixes them)."""
    from motionkit.models.comfy_glue import animatediff as injection

    reference = ref.diffusers_motion_unet(4, False, 24)
    image, motion_state = ref.split_state(reference)
    motion = loader.build_motion_module(to_layout(motion_state, "AnimateDiff"), "tiny_v1", dtype=torch.float32)
    patched = injection.apply_motion_module(ref.comfy_model_patcher(4, image), motion)  # v1: frame-joint GroupNorm too
    x, ctx = parity_inputs()
    t = torch.full((2 * FRAMES,), 300.0)
    both = comfy_forward(patched, as_batch(x), t, ctx.repeat_interleave(FRAMES, 0), [1, 0])
    first = comfy_forward(patched, as_batch(x[:1]), t[:FRAMES], ctx[:1].repeat_interleave(FRAMES, 0), [1])
    second = comfy_forward(patched, as_batch(x[1:]), t[:FRAMES], ctx[1:].repeat_interleave(FRAMES, 0), [0])
    assert (both - torch.cat([first, second])).abs().max().item() <= 1e-5


def test_a_video_latent_says_what_the_motion_model_expects(unload):
    from motionkit.models.comfy_glue import animatediff as injection

    reference = ref.diffusers_motion_unet(4, False, 24)
    image, motion_state = ref.split_state(reference)
    motion = loader.build_motion_module(to_layout(motion_state, "AnimateDiff"), "tiny_v1", dtype=torch.float32)
    patched = injection.apply_motion_module(ref.comfy_model_patcher(4, image), motion)
    x, ctx = parity_inputs(videos=1)
    with pytest.raises(injection.MotionModuleError) as error:
        comfy_forward(patched, x, torch.full((1,), 300.0), ctx, [0])
    assert all(fact in str(error.value) for fact in ("5D", "[1, 4, 8, 16, 16]", "Empty Latent Image", "batch_size"))


def test_motion_scale_zero_is_the_image_model_and_scale_changes_output(unload):
    from motionkit.models.comfy_glue import animatediff as injection

    reference = ref.diffusers_motion_unet(3, False, 32)
    image, motion_state = ref.split_state(reference)
    motion = loader.build_motion_module(motion_state, "tiny_sdxl", dtype=torch.float32)
    base = ref.comfy_model_patcher(3, image)
    x, ctx = parity_inputs()
    args = (as_batch(x), torch.full((2 * FRAMES,), 600.0), ctx.repeat_interleave(FRAMES, 0), [0, 1])
    plain = comfy_forward(base, *args)
    still = comfy_forward(injection.apply_motion_module(base, motion, scale=0.0), *args)
    half = comfy_forward(injection.apply_motion_module(base, motion, scale=0.5), *args)
    full = comfy_forward(injection.apply_motion_module(base, motion, scale=1.0), *args)
    assert (still - plain).abs().max().item() <= 1e-6
    assert (half - plain).abs().max().item() > 1e-3 and (half - full).abs().max().item() > 1e-3
    # the original model is untouched once the patched clones are unloaded
    import comfy.model_management

    comfy.model_management.unload_all_models()
    assert all(type(m).__name__ != "VanillaTemporalModule" for m in base.model.modules())
    assert (comfy_forward(base, *args) - plain).abs().max().item() == 0.0


# ---------------------------------------------------------------- MotionLoRA
def tiny_motion_model(seed=0) -> MotionModel:
    config = MotionModuleConfig(block_channels=(32, 64), mid_block=True, max_frames=16)
    torch.manual_seed(seed)
    model = MotionModel(config, operations=torch.nn)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def write_motion_lora(path, model: MotionModel, rank: int, seed: int) -> None:
    """A MotionLoRA file in the original layout (attention_blocks.N.processor.to_q_lora.down/up.weight)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in model.named_modules():
        match = re.match(r"(.*\.attention_blocks\.\d+)\.(to_q|to_k|to_v|to_out\.0)$", name)
        if match:
            proj = match.group(2).replace(".0", "")
            prefix = f"{match.group(1)}.processor.{proj}_lora"
            state[f"{prefix}.down.weight"] = torch.randn(rank, module.in_features, generator=g) * 0.1
            state[f"{prefix}.up.weight"] = torch.randn(module.out_features, rank, generator=g) * 0.1
    safetensors.torch.save_file(state, str(path))


def run_motion_model(model, x, frames):
    out = x
    for block in list(model.down_blocks) + [model.mid_block] + list(model.up_blocks):
        for module in block.motion_modules:
            if module.temporal_transformer.norm.num_channels == out.shape[1]:
                out = module(out, frames)
    return out


def test_motion_lora_low_rank_equals_merged_and_stays_small(tmp_path):
    import comfy.model_patcher

    model = tiny_motion_model()
    loras = []
    for i, strength in enumerate((0.8, -0.35)):
        path = tmp_path / f"lora{i}.safetensors"
        write_motion_lora(path, model, rank=4, seed=10 + i)
        loras.append(loader.load_motion_lora(str(path), strength))
    assert len(loras[0].pairs) == 4 * 2 * (2 * 2 + 1 + 2 * 3)  # q, k, v, out x 2 attentions x 11 temporal transformers
    patcher = comfy.model_patcher.ModelPatcher(model, torch.device("cpu"), torch.device("cpu"))
    for path, layer in motion_lora.low_rank_patches(model, loras).items():
        patcher.add_object_patch(path, layer)
    files = [safetensors.torch.load_file(str(tmp_path / f"lora{i}.safetensors")) for i in range(2)]
    merged = ref.original_motion_lora_merge(model, [(f, lora.strength) for f, lora in zip(files, loras)])
    x = torch.randn(2 * 8, 32, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = run_motion_model(model, x, 8)
        patcher.patch_model()
        low_rank = run_motion_model(model, x, 8)
        patcher.unpatch_model()
        after = run_motion_model(model, x, 8)
        dense = run_motion_model(merged, x, 8)
    assert (low_rank - dense).abs().max().item() <= 1e-5
    assert (low_rank - before).abs().max().item() > 1e-3
    assert torch.equal(after, before)
    # resident size: the low-rank layers reference the file's tensors; nothing dense is made
    layers = motion_lora.low_rank_patches(model, loras)
    lora_ptrs = {t.data_ptr() for lora in loras for pair in lora.pairs.values() for t in pair}
    held = {t.data_ptr(): t.numel() * t.element_size() for layer in layers.values() for down, up, _ in layer.updates for t in (down, up)}
    assert set(held) <= lora_ptrs
    resident = sum(held.values())
    file_bytes = sum((tmp_path / f"lora{i}.safetensors").stat().st_size for i in range(2))
    headers = sum(8 + int.from_bytes((tmp_path / f"lora{i}.safetensors").read_bytes()[:8], "little") for i in range(2))
    dense_delta = sum(layer.in_features * layer.out_features * 4 for layer in layers.values()) * len(loras)
    assert resident == sum(lora.resident_bytes() for lora in loras)
    assert resident == file_bytes - headers  # exactly the tensor bytes of the files (safetensors header aside)
    assert resident * 3 < dense_delta
    print(f"MotionLoRA x2 resident {resident} B, files {file_bytes} B, dense deltas would be {dense_delta} B")


# ---------------------------------------------------------------- long videos with ComfyUI's context windows
def test_128_frames_sample_with_a_16_frame_module_through_context_windows(unload):
    import comfy.context_windows as cw
    import comfy.sample
    from motionkit.models.comfy_glue import animatediff as injection

    reference = ref.diffusers_motion_unet(3, False, 16)
    image, motion_state = ref.split_state(reference)
    motion = loader.build_motion_module(to_layout(motion_state, "AnimateDiff"), "tiny_16", dtype=torch.float32)
    assert motion.info.config.max_frames == 16
    patched = injection.apply_motion_module(ref.comfy_model_patcher(3, image), motion)
    seen = []
    patched.add_wrapper_with_key("diffusion_model", "test-spy",
                                 lambda executor, x, *a, **k: (seen.append(x.shape[0]), executor(x, *a, **k))[1])
    frames = 128
    latent = torch.zeros(frames, 4, 8, 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(5))
    positive = [[torch.randn(1, 7, ref.CONTEXT, generator=torch.Generator().manual_seed(6)), {}]]
    negative = [[torch.zeros(1, 7, ref.CONTEXT), {}]]

    with pytest.raises(injection.MotionModuleError) as error:
        comfy.sample.sample(patched, noise, 1, 2.0, "euler", "normal", positive, negative, latent)
    facts = (
        '128 frames', "'tiny_16'", 'up to 16 frames', 'Context Windows (Manual)', 'context_length 16', 'at most 16',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)

    windowed = patched.clone()
    windowed.model_options["context_handler"] = cw.IndexListContextHandler(
        context_schedule=cw.get_matching_context_schedule(cw.ContextSchedules.UNIFORM_STANDARD),
        fuse_method=cw.get_matching_fuse_method(cw.ContextFuseMethods.PYRAMID),
        context_length=16, context_overlap=4, dim=0)
    seen.clear()
    out = comfy.sample.sample(windowed, noise, 2, 2.0, "euler", "normal", positive, negative, latent)
    assert out.shape == (frames, 4, 8, 8) and torch.isfinite(out).all()
    assert seen and max(seen) == 2 * 16 and all(n % 16 == 0 for n in seen)
    assert out.std(dim=(1, 2, 3)).min().item() > 0.05  # every frame was denoised, none left out


# ---------------------------------------------------------------- beta schedule
def test_animatediff_beta_schedule_is_linear_in_beta():
    from motionkit.models.comfy_glue import animatediff as injection

    reference = ref.diffusers_motion_unet(3, False, 16)
    image, _ = ref.split_state(reference)
    base = ref.comfy_model_patcher(3, image)
    patched = injection.animatediff_beta_schedule(base, injection.SCHEDULES[0])
    betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    got = patched.get_model_object("model_sampling").sigmas
    assert torch.allclose(got.double(), sigmas, rtol=1e-6, atol=0)
    default = base.get_model_object("model_sampling").sigmas
    assert (default.double() - sigmas).abs().max().item() > 0.1
    same = injection.animatediff_beta_schedule(base, injection.SCHEDULES[1]).get_model_object("model_sampling").sigmas
    assert torch.equal(same, default)


# ---------------------------------------------------------------- bad input
def test_motion_lora_given_to_module_loader_and_the_other_way_round(tmp_path):
    lora_path = tmp_path / "v2_lora_ZoomIn.safetensors"
    write_motion_lora(lora_path, tiny_motion_model(), rank=2, seed=1)
    with pytest.raises(keys.MotionFileError) as error:
        loader.load_motion_module(str(lora_path))
    facts = (
        "'v2_lora_ZoomIn.safetensors'", 'is a MotionLoRA', 'Load MotionLoRA (MotionKit)', 'animatediff_motion_lora',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)
    module_path = tmp_path / "mm_sd_v15_v2.safetensors"
    safetensors.torch.save_file(tiny_motion_model().state_dict(), str(module_path))
    with pytest.raises(keys.MotionFileError) as error:
        loader.load_motion_lora(str(module_path), 1.0)
    facts = (
        "'mm_sd_v15_v2.safetensors'", 'is a motion module', 'Load Motion Module (MotionKit)', 'animatediff_models',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_truncated_and_unknown_files(tmp_path):
    path = tmp_path / "mm_cut.safetensors"
    safetensors.torch.save_file(tiny_motion_model().state_dict(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        loader.load_motion_module(str(path))
    assert type(error.value).__name__ == "ModelFileError"
    assert all(fact in str(error.value) for fact in ("'mm_cut.safetensors'", "motion module", "download it again"))
    other = tmp_path / "vae.safetensors"
    safetensors.torch.save_file({"encoder.conv_in.weight": torch.zeros(1)}, str(other))
    with pytest.raises(keys.MotionFileError) as error:
        loader.load_motion_module(str(other))
    assert str(error.value).startswith("'vae.safetensors' is not a motion module this pack knows (checked AnimateDiff: a key "
                                       "matching ^down_blocks")
    assert "found 1 keys such as encoder.conv_in.weight" in str(error.value)


def test_sdxl_module_on_sd15_model_is_refused():
    from motionkit.models.comfy_glue import animatediff as injection

    sd15 = ref.diffusers_motion_unet(4, False, 32)
    sdxl = ref.diffusers_motion_unet(3, False, 32)
    image, _ = ref.split_state(sd15)
    _, sdxl_motion = ref.split_state(sdxl)
    motion = loader.build_motion_module(sdxl_motion, "mm_sdxl_v10_beta.safetensors", dtype=torch.float32)
    with pytest.raises(injection.MotionModuleError) as error:
        injection.apply_motion_module(ref.comfy_model_patcher(4, image), motion)
    facts = (
        "'mm_sdxl_v10_beta.safetensors'", 'SD1.5 UNet', '(32, 64, 64)', '(32, 32, 64, 64)', 'SD1.5 motion module',
        'SDXL checkpoint',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_image_lora_and_checkpoint_given_to_the_motion_loaders(tmp_path):
    adapter = tmp_path / "v3_sd15_adapter.safetensors"
    safetensors.torch.save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
                                 "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4)},
                                str(adapter))
    with pytest.raises(keys.MotionFileError) as error:
        loader.load_motion_lora(str(adapter), 1.0)
    facts = (
        "'v3_sd15_adapter.safetensors'", 'image-model LoRA', 'LoraLoader',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)
    checkpoint = tmp_path / "sd15.safetensors"
    safetensors.torch.save_file({"model.diffusion_model.out.2.weight": torch.zeros(4, 320, 3, 3)}, str(checkpoint))
    with pytest.raises(keys.MotionFileError) as error:
        loader.load_motion_module(str(checkpoint))
    facts = (
        "'sd15.safetensors'", 'Stable Diffusion checkpoint', 'Load Checkpoint',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_motion_lora_in_diffusers_names_maps_to_the_same_projections(tmp_path):
    model = tiny_motion_model()
    original = tmp_path / "original.safetensors"
    write_motion_lora(original, model, rank=2, seed=4)
    state = safetensors.torch.load_file(str(original))
    renamed = {}
    for key, value in state.items():  # ...motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor.to_out_lora.up.weight
        key = key.replace(".temporal_transformer.", ".").replace(".attention_blocks.0.", ".attn1.").replace(".attention_blocks.1.", ".attn2.")
        key = re.sub(r"\.processor\.to_(q|k|v)_lora\.", r".to_\1.lora.", key).replace(".processor.to_out_lora.", ".to_out.0.lora.")
        renamed[key] = value
    assert "down_blocks.0.motion_modules.0.transformer_blocks.0.attn2.to_out.0.lora.up.weight" in renamed
    ours = keys.motion_lora_pairs(state, "original")
    theirs = keys.motion_lora_pairs(renamed, "diffusers")
    assert set(ours) == set(theirs) and all(torch.equal(ours[k][0], theirs[k][0]) and torch.equal(ours[k][1], theirs[k][1]) for k in ours)
    assert set(ours) <= set(dict(model.named_modules()))


def test_pinned_comfyui_cannot_step_batch_axis_windows_without_the_per_run_handler():
    """Why Apply Motion Module swaps the handler for its sampling runs: ComfyUI 0.3.64's set_step compares the
    sigmas with the whole per-frame timestep batch."""
    import comfy.context_windows as cw
    from motionkit.models.comfy_glue import animatediff as injection

    settings = dict(context_schedule=cw.get_matching_context_schedule(cw.ContextSchedules.UNIFORM_STANDARD),
                    fuse_method=cw.get_matching_fuse_method(cw.ContextFuseMethods.PYRAMID),
                    context_length=16, context_overlap=4, dim=0)
    options = {"transformer_options": {"sample_sigmas": torch.tensor([14.6, 7.0, 0.0])}}
    timestep = torch.full((24,), 7.0)  # 24 frames at the second step
    with pytest.raises(RuntimeError, match="must match the size"):
        cw.IndexListContextHandler(**settings).set_step(timestep, options)
    fixed = injection._frame_window_handler_class()(**settings)
    fixed.set_step(timestep, options)
    assert fixed._step == 1
