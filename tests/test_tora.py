"""Tora: extractor/fuser parity with the official semantics, every checkpoint layout, and Apply Tora in ComfyUI."""
import argparse
import json
import sys

import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from scripts.tiny_checkpoints import cogvideox as tiny_cog  # noqa: E402
from scripts.tiny_checkpoints import tora as tiny_tora  # noqa: E402

from motionkit.models.tora import keys, loading  # noqa: E402
from references.tora_reference import RefTora, reference_denoise, reference_dit, reference_rope, reference_tora  # noqa: E402
from motionkit.models.tora.fuser import ToraModel  # noqa: E402


# ---------------------------------------------------------------- modules
def test_extractor_and_fuser_match_official_semantics():
    sd = tiny_tora.tiny_state_dict()
    ref = reference_tora(sd, tiny_tora.TINY_CONFIG).double()
    ours = ToraModel(**tiny_tora.TINY_CONFIG).double()
    ours.load_state_dict(sd)
    torch.manual_seed(0)
    motion = torch.randn(2, 16, 3, 7, 9, dtype=torch.float64)  # odd sizes: zero padding to the patch grid
    with torch.no_grad():
        expected, got = ref.traj_extractor(motion), ours.traj_extractor(motion)
        assert len(got) == len(expected) == 2
        for a, b in zip(got, expected):
            assert a.shape == b.shape == (6, 32, 4, 5)
            assert (a - b).abs().max().item() <= 1e-10
        h = torch.randn(6, 32, 4, 5, dtype=torch.float64)
        fused = ours.fuser[1](h, got[1], 3)
        assert (fused - ref.fuser[1](h, expected[1], 3)).abs().max().item() <= 1e-10
        half = ours.fuser[1](h, got[1], 3, strength=0.5)
        assert torch.allclose(half, h + 0.5 * (fused - h), atol=1e-12)
        assert torch.equal(ours.fuser[1](h, got[1], 3, strength=0.0), h)


def test_extractor_ignores_batch_statistics():
    """The published port ran BatchNorm in training mode; ours normalizes with running statistics only."""
    ours = ToraModel(**tiny_tora.TINY_CONFIG)
    ours.load_state_dict(tiny_tora.tiny_state_dict())
    ours.train()
    motion = torch.randn(1, 16, 2, 4, 4)
    alone = ours.traj_extractor(motion)[0]
    together = ours.traj_extractor(torch.cat([motion, 5 * torch.randn(1, 16, 2, 4, 4)]))[0][:2]
    assert torch.allclose(alone, together, atol=1e-6)


# ---------------------------------------------------------------- layouts
def _official_layouts(sd):
    """The tiny weights written in each published layout (file name -> tensors)."""
    extractor = {k[len("traj_extractor."):]: v for k, v in sd.items() if k.startswith("traj_extractor.")}
    fusers = {k[len("fuser."):]: v for k, v in sd.items() if k.startswith("fuser.")}
    cogvideox = {"patch_embed.proj.weight": torch.zeros(2, 16, 2, 2), "proj_out.weight": torch.zeros(2, 2)}
    return {
        "diffusers": [{**sd, **cogvideox}],
        "SAT": [{"module": {**{"model.diffusion_model.traj_extractor." + k: v for k, v in extractor.items()},
                            **{"model.diffusion_model.mixins.adaln_layer.fuser_list." + k: v for k, v in fusers.items()},
                            "model.diffusion_model.mixins.patch_embed.proj.weight": torch.zeros(2, 16, 2, 2)}}],
        "split": [fusers, extractor],
    }


@pytest.mark.parametrize("layout", ["diffusers", "SAT", "split"])
def test_every_published_layout_loads_the_same_weights(tmp_path, layout):
    sd = tiny_tora.tiny_state_dict()
    paths = []
    for i, tensors in enumerate(_official_layouts(sd)[layout]):
        if layout == "SAT":
            path = tmp_path / "mp_rank_00_model_states.pt"
            torch.save(tensors, str(path))
        else:
            path = tmp_path / f"{layout}_{i}.safetensors"
            safetensors.torch.save_file(tensors, str(path))
        paths.append(str(path))
    loaded = loading.load_state_dicts(paths)
    assert set(loaded) == set(sd)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    model = loading.build(loaded, layout)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def _write_sharded_tora(folder, sd, with_index=True):
    """The diffusers Tora transformer as 3 shards + index: CogVideoX tensors in shard 1, the fusers in shard 2,
    the extractor and the rest of the CogVideoX tensors in shard 3 (diffusers' save_pretrained layout)."""
    cogvideox = {"patch_embed.proj.weight": torch.zeros(2, 16, 2, 2), "proj_out.weight": torch.zeros(2, 2),
                 "norm_out.linear.weight": torch.ones(4, 2)}
    shards = [dict(list(cogvideox.items())[:2]),
              {k: v for k, v in sd.items() if k.startswith("fuser.")},
              {**{k: v for k, v in sd.items() if k.startswith("traj_extractor.")}, **dict(list(cogvideox.items())[2:])}]
    weight_map = {}
    for i, tensors in enumerate(shards, 1):
        name = f"diffusion_pytorch_model-{i:05d}-of-00003.safetensors"
        safetensors.torch.save_file(tensors, str(folder / name))
        weight_map.update({k: name for k in tensors})
    if with_index:
        (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return [folder / f"diffusion_pytorch_model-{i:05d}-of-00003.safetensors" for i in (1, 2, 3)]


@pytest.mark.parametrize("with_index", [True, False])
@pytest.mark.parametrize("given", [0, 1, 2])
def test_any_shard_of_the_diffusers_tora_transformer_loads_the_tora_tensors(tmp_path, given, with_index):
    sd = tiny_tora.tiny_state_dict()
    shards = _write_sharded_tora(tmp_path, sd, with_index)
    loaded = loading.load_state_dicts([str(shards[given])])
    assert set(loaded) == set(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_sharded_tora_errors_name_the_missing_shard_and_plain_cogvideox(tmp_path):
    shards = _write_sharded_tora(tmp_path, tiny_tora.tiny_state_dict())
    shards[1].unlink()
    with pytest.raises(FileNotFoundError) as error:
        loading.load_state_dicts([str(shards[0])])
    assert "diffusion_pytorch_model-00002-of-00003.safetensors is missing" in str(error.value)
    plain = tmp_path / "plain"
    plain.mkdir()
    for i in (1, 2):
        safetensors.torch.save_file({f"blocks.{i}.w": torch.zeros(1)},
                                    str(plain / f"diffusion_pytorch_model-{i:05d}-of-00002.safetensors"))
    with pytest.raises(keys.ToraFormatError) as error:
        loading.load_state_dicts([str(plain / "diffusion_pytorch_model-00001-of-00002.safetensors")])
    assert "without Tora weights" in str(error.value) and "MotionKit Load CogVideoX" in str(error.value)


def test_full_size_published_layouts_on_meta():
    with torch.device("meta"):
        ref = RefTora(128, 3072, 42)
    sd = ref.state_dict()
    for layout, files in _official_layouts(sd).items():
        merged = {}
        for tensors in files:
            merged.update(keys.convert(tensors, layout)[1])
        config = keys.config_from_state_dict(merged)
        assert config == dict(dim=3072, blocks=42, flow_channels=128, in_channels=16, patch_size=2, patch_size_t=1)
        keys.check_keys(ToraModel(**config, device="meta"), merged, layout)


def test_plain_cogvideox_given_to_load_tora_is_refused():
    with pytest.raises(keys.ToraFormatError) as error:
        keys.convert(tiny_cog.tiny_state_dict(), "'cogvideox5b.safetensors'")
    assert str(error.value).startswith("'cogvideox5b.safetensors' is a plain CogVideoX transformer without Tora "
                                       "weights: load it with Load CogVideoX (MotionKit);")


def test_split_fuser_without_extractor_names_the_missing_file():
    fusers = {k[len("fuser."):]: v for k, v in tiny_tora.tiny_state_dict().items() if k.startswith("fuser.")}
    _layout, sd = keys.convert(fusers, "'fuser.safetensors'")
    with pytest.raises(keys.ToraFormatError) as error:
        keys.config_from_state_dict(sd, "'fuser.safetensors'")
    facts = (
        "'fuser.safetensors'", 'traj_extractor.safetensors', 'Load Tora (MotionKit)', 'both split files',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_unknown_file_lists_the_checked_markers():
    with pytest.raises(keys.ToraFormatError) as error:
        keys.convert({"foo.weight": torch.zeros(1)}, "'x.safetensors'")
    message = str(error.value)
    assert message.startswith("'x.safetensors' is not a Tora checkpoint: checked the marker keys of each layout "
                              "(diffusers: traj_extractor.conv_in.weight, fuser.0.flow_gamma_spatial.weight; SAT: ")
    assert message.endswith("none is complete. The file starts with foo.weight")


@pytest.mark.host
def test_sat_pickle_with_objects_is_refused_and_names_the_converter(tmp_path):
    sd = tiny_tora.tiny_state_dict()
    checkpoint = _official_layouts(sd)["SAT"][0]
    checkpoint["args"] = argparse.Namespace(lr=1e-4)
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save(checkpoint, str(path))
    with pytest.raises(ValueError) as error:
        loading.load_state_dicts([str(path)])
    message = str(error.value)
    assert type(error.value).__name__ == "ModelFileError"
    assert all(fact in message for fact in ("'mp_rank_00_model_states.pt'", "argparse.Namespace", "weights_only=True",
                                            "python scripts/convert_tora_checkpoint.py", "--trust-pickle"))
    out = tmp_path / "tora.safetensors"
    done = __import__("subprocess").run([sys.executable, str(harness.ROOT / "scripts" / "convert_tora_checkpoint.py"),
                                         str(path), str(out), "--trust-pickle"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    converted = loading.load_state_dicts([str(out)])
    assert set(converted) == set(sd) and all(torch.equal(converted[k], sd[k]) for k in sd)


# ---------------------------------------------------------------- inside ComfyUI
@pytest.fixture
def tiny_models(tmp_path):
    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.models.tora.loading import load_tora

    cog = comfy_glue.load_cogvideox(str(tiny_cog.write(tmp_path)[0]))
    tora = load_tora([str(tiny_tora.write(tmp_path)[0])])
    return cog, tora


def _denoise(patcher, x, sigma, context):
    options = patcher.model_options.get("transformer_options", {}).copy()
    options["sigmas"] = sigma
    with torch.no_grad():
        return patcher.model.apply_model(x, sigma, c_crossattn=context, transformer_options=options)


@pytest.mark.host
def test_patched_denoiser_matches_diffusers_plus_official_tora(tiny_models):
    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.models.comfy_glue.tora import apply_tora

    cog, tora = tiny_models
    torch.manual_seed(3)
    motion = torch.randn(1, 16, 3, 8, 12)
    patched = apply_tora(cog, tora, motion, strength=1.0)
    x = torch.randn(2, 16, 3, 8, 12) * 3  # a CFG batch: [cond, uncond]
    context = torch.randn(2, 226, 64)
    ref_tora = reference_tora(tiny_tora.tiny_state_dict(), tiny_tora.TINY_CONFIG)
    dit = reference_dit(tiny_cog.TINY_CONFIG, tiny_cog.tiny_state_dict())
    alphas = comfy_glue.cogvideox_alphas_cumprod(1.0)
    for timestep in (800, 250):
        sigma = cog.model.model_sampling.sigmas[timestep].expand(2)
        got = _denoise(patched, x, sigma, context)
        a = alphas[timestep].float()
        sample = x * a.sqrt()
        flow = torch.cat([motion] * 2).transpose(1, 2)  # the official pipeline repeats the flow for CFG
        with torch.no_grad():
            v = reference_denoise(ref_tora, dit, sample.transpose(1, 2), context, torch.tensor([timestep] * 2), flow,
                                   reference_rope(3, 4, 6)).transpose(1, 2)
        expected = a.sqrt() * sample - (1 - a).sqrt() * v
        assert (got - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
        plain = _denoise(cog, x, sigma, context)
        assert (got - plain).abs().max().item() > 1e-3  # Tora changes the prediction


@pytest.mark.host
def test_strength_zero_and_inactive_range_are_bit_identical(tiny_models):
    import nodes
    from comfy_extras.nodes_hunyuan import EmptyHunyuanLatentVideo

    from motionkit.models.comfy_glue.tora import apply_tora

    cog, tora = tiny_models
    motion = {"samples": torch.randn(1, 16, 3, 8, 12)}
    latent = EmptyHunyuanLatentVideo().generate(96, 64, 9, 1)[0]
    positive, negative = [[torch.randn(1, 226, 64), {}]], [[torch.randn(1, 226, 64), {}]]

    def sample(model):
        return nodes.common_ksampler(model, 5, 3, 5.0, "euler", "simple", positive, negative, latent)[0]["samples"]

    plain = sample(cog)
    assert torch.equal(sample(apply_tora(cog, tora, motion["samples"], 0.0)), plain)
    guided = sample(apply_tora(cog, tora, motion["samples"], 1.0))
    assert not torch.equal(guided, plain)
    # the guidance only acts inside [start_percent, end_percent]: at the first (highest) sigma it is off
    late = apply_tora(cog, tora, motion["samples"], 1.0, start_percent=0.5, end_percent=1.0)
    x, context = torch.randn(1, 16, 3, 8, 12), torch.randn(1, 226, 64)
    high, low = cog.model.model_sampling.sigmas[990].reshape(1), cog.model.model_sampling.sigmas[10].reshape(1)
    assert torch.equal(_denoise(late, x, high, context), _denoise(cog, x, high, context))
    assert not torch.equal(_denoise(late, x, low, context), _denoise(cog, x, low, context))


@pytest.mark.host
def test_extractor_runs_once_per_generation(tiny_models):
    import nodes
    from comfy_extras.nodes_hunyuan import EmptyHunyuanLatentVideo

    from motionkit.models.comfy_glue.tora import apply_tora

    cog, tora = tiny_models
    calls = []
    handle = tora.model.traj_extractor.register_forward_hook(lambda *_: calls.append(1))
    try:
        patched = apply_tora(cog, tora, torch.randn(1, 16, 3, 8, 12), 1.0)
        latent = EmptyHunyuanLatentVideo().generate(96, 64, 9, 1)[0]
        positive, negative = [[torch.randn(1, 226, 64), {}]], [[torch.randn(1, 226, 64), {}]]
        nodes.common_ksampler(patched, 1, 4, 5.0, "euler", "simple", positive, negative, latent)
        assert len(calls) == 1
        nodes.common_ksampler(patched, 2, 4, 5.0, "euler", "simple", positive, negative, latent)
        assert len(calls) == 2
    finally:
        handle.remove()
    assert all(not k.startswith("motionkit_tora_") for k in patched.model_options.get("transformer_options", {}))


@pytest.mark.host
def test_motion_latents_that_do_not_fit_are_refused_before_sampling(tiny_models):
    import nodes
    from comfy_extras.nodes_hunyuan import EmptyHunyuanLatentVideo

    from motionkit.models.comfy_glue.tora import apply_tora
    from motionkit.models.tora.guidance import ToraMotionLatentsError

    cog, tora = tiny_models
    patched = apply_tora(cog, tora, torch.randn(1, 16, 2, 8, 12), 1.0)
    latent = EmptyHunyuanLatentVideo().generate(96, 64, 9, 1)[0]
    positive, negative = [[torch.randn(1, 226, 64), {}]], [[torch.randn(1, 226, 64), {}]]
    with pytest.raises(ToraMotionLatentsError) as error:
        nodes.common_ksampler(patched, 1, 2, 5.0, "euler", "simple", positive, negative, latent)
    message = str(error.value)
    assert all(fact in message for fact in ("frames and size", "(1, 16, 2, 8, 12)", "(1, 16, 3, 8, 12)", "9 frames"))
    assert "batch:" not in message
    # a batch of 3 videos cannot share 2 motion latents: the message says "batch", not frames and size
    patched = apply_tora(cog, tora, torch.randn(2, 16, 3, 8, 12), 1.0)
    latent = EmptyHunyuanLatentVideo().generate(96, 64, 9, 3)[0]
    positive, negative = [[torch.randn(3, 226, 64), {}]], [[torch.randn(3, 226, 64), {}]]
    with pytest.raises(ToraMotionLatentsError) as error:
        nodes.common_ksampler(patched, 1, 2, 5.0, "euler", "simple", positive, negative, latent)
    assert "batch: 2 motion latents for a batch of 3" in str(error.value) and "frames and size" not in str(error.value)


@pytest.mark.host
def test_apply_tora_refuses_sd15_and_mismatched_widths(tiny_models, tmp_path):
    import comfy.model_patcher
    import comfy.supported_models

    from motionkit.models.comfy_glue.tora import ToraModelError, apply_tora
    from motionkit.models.tora.loading import load_tora

    cog, tora = tiny_models
    sd15_config = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
                   "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
                   "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
                   "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
                   "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                   "use_temporal_resblock": False, "use_temporal_attention": False}
    sd15 = comfy.supported_models.SD15(sd15_config).get_model({}, device="meta")
    patcher = comfy.model_patcher.ModelPatcher(sd15, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    with pytest.raises(ToraModelError) as error:
        apply_tora(patcher, tora, torch.zeros(1, 16, 3, 8, 12), 1.0)
    facts = (
        'Apply Tora (MotionKit)', 'CogVideoX MODEL', 'Load CogVideoX (MotionKit)', 'SD15',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)
    wide = tmp_path / "wide.safetensors"
    safetensors.torch.save_file(tiny_tora.tiny_state_dict(dict(dim=64, blocks=2, flow_channels=32)), str(wide))
    with pytest.raises(ToraModelError) as error:
        apply_tora(cog, load_tora([str(wide)]), torch.zeros(1, 16, 3, 8, 12), 1.0)
    facts = (
        '2 fusers of width 64', '2 blocks of width 32', 'CogVideoX-5B', 'load that transformer',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


# ---------------------------------------------------------------- motion latents
@pytest.mark.host
def test_motion_vae_encode_scales_cogvideox_latents_and_checks_the_flow(tmp_path):
    from scripts.tiny_checkpoints import video_vae as tiny_vae

    from motionkit.models import video_vae
    from motionkit.models.tora.motion import MotionEncodeError
    from motionkit.nodes.tora import MotionKitMotionVAEEncode

    vae = video_vae.load_video_vae(str(tiny_vae.write(tmp_path)[0]))
    torch.manual_seed(0)
    flow = torch.rand(9, 32, 48, 3)
    (latents,) = MotionKitMotionVAEEncode().encode(vae, flow, 0.7, 0, 64, posterior="mean")
    plain = vae.encode(flow)
    assert latents["samples"].shape == (1, 16, 3, 4, 6)
    assert torch.allclose(latents["samples"], plain * (0.7 / vae.scaling_factor), atol=1e-6)
    with pytest.raises(MotionEncodeError) as error:
        MotionKitMotionVAEEncode().encode(vae, torch.rand(8, 40, 48, 3), 0.7, 0, 64)
    facts = (
        '8 frames', '4k+1', '48x40', 'multiples of 16', 'frame count and size',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)



SMALL_VAE = dict(block_out_channels=(16, 32, 32, 64), layers_per_block=1, norm_num_groups=8, latent_channels=16,
                 scaling_factor=0.7)


@pytest.mark.host
def test_motion_vae_encode_gpu_peak_is_flat_in_clip_length_and_fits_24_gib_at_720p():
    """Traced as bench/motion_vae_memory.py does (FakeTensorMode; fake meta tensors stand for the GPU)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from bench import motion_vae_memory as bench

    from motionkit.models import video_vae

    mode = FakeTensorMode()
    reference, ours, _ = bench.build_fake_vaes(mode, dict(bench.COGVIDEOX_5B_VAE, **SMALL_VAE))
    tiles = video_vae.TilePlan.for_encode(24, 8, 8)
    for tile_plan in (None, tiles):
        peaks = [bench.trace_ours(mode, ours, 1 + 16 * length, 32, 32, tile_plan) for length in (1, 2, 4)]
        assert max(peaks) <= 1.10 * min(peaks), (tile_plan, peaks)
    assert bench.trace_ours(mode, ours, 17, 32, 32, tiles) < bench.trace_ours(mode, ours, 17, 32, 32)
    # the same trace sees diffusers' encode grow with the clip (it moves the whole video to the GPU)
    short, long = (bench.trace_diffusers(mode, reference, 1 + 16 * length, 32, 32, False) for length in (1, 4))
    assert long - short >= 48 * 3 * 32 * 32 * 2, (short, long)  # its 48 more frames in bf16

    # full size: the CogVideoX-5B VAE in bf16, 205 frames (204 rounded up to 4k+1) at 1280x720, no tiles
    mode = FakeTensorMode()
    _, ours, weights = bench.build_fake_vaes(mode)
    assert 215_000_000 * 2 < weights < 216_000_000 * 2
    peak = bench.trace_ours(mode, ours, 205, 720, 1280)
    assert peak < 24 * 2 ** 30 - weights, peak / 2 ** 30


@pytest.mark.host
def test_load_t5_reads_the_size_from_the_file(tmp_path):
    from motionkit.models.comfy_glue import cogvideox as comfy_glue

    files = tiny_cog.write(tmp_path)
    assert comfy_glue.t5_config_from_state_dict(tiny_cog.tiny_t5_state_dict()) == tiny_cog.TINY_T5
    clip = comfy_glue.load_t5(str(files[1]))
    from motionkit.nodes.cogvideox import MotionKitCogVideoXTextEncode

    (conditioning,) = MotionKitCogVideoXTextEncode().encode(clip, "a ball")
    assert conditioning[0][0].shape == (1, 226, 64)
    with pytest.raises(ValueError, match=r"'motionkit_tiny_cogvideox.safetensors' is not a T5 v1.1 encoder"):
        comfy_glue.load_t5(str(files[0]))


# ---------------------------------------------------------------- the example workflow in the real ComfyUI
@pytest.mark.host
def test_example_workflow_drives_core_ksampler_with_tora(comfy_server, tmp_path):
    import json

    import numpy as np

    workflow = harness.ROOT / "example_workflows" / "tora_trajectory_to_video.json"
    api = tmp_path / "api.json"
    outputs = comfy_server.run_ui_workflow(workflow, api_out=api)
    prompt = json.loads(api.read_text())
    types = {node["class_type"] for node in prompt.values()}
    assert {"MotionKitDrawTrajectories", "MotionKitApplyTora", "KSampler", "MotionKitMotionVAEEncode", "SaveVideo"} <= types
    (video,) = comfy_server.output_files(outputs)
    guided = comfy_server.video_frames(video)
    assert len(guided) == 9 and guided[0].shape == (64, 96, 3)
    graph = json.loads(workflow.read_text())
    for node in graph["nodes"]:
        if node["type"] == "MotionKitApplyTora":
            node["widgets_values"][0] = 0.0
        if node["type"] == "SaveVideo":
            node["widgets_values"][0] = "video/motionkit_tora_strength0"
    unguided_workflow = tmp_path / "strength0.json"
    unguided_workflow.write_text(json.dumps(graph))
    (unguided_video,) = comfy_server.output_files(comfy_server.run_ui_workflow(unguided_workflow))
    unguided = comfy_server.video_frames(unguided_video)
    assert len(unguided) == 9
    assert np.abs(np.stack(guided).astype(int) - np.stack(unguided).astype(int)).mean() > 0.5


# ---------------------------------------------------------------- image to video
@pytest.fixture
def tiny_i2v_models(tmp_path):
    from scripts.tiny_checkpoints import tora_i2v

    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.models.tora.loading import load_tora

    dit, _config, tora_file = tora_i2v.write(tmp_path)
    return comfy_glue.load_cogvideox(str(dit)), load_tora([str(tora_file)])


@pytest.mark.host
def test_tora_on_the_i2v_model_matches_diffusers_i2v_plus_official_tora(tiny_i2v_models):
    """Tora I2V (SAT-layout weights) on CogVideoX-5B-I2V: the start image's latent beside the noise, the fusers
    after each block's first norm, as the official DiT (learned positions, 32 input channels)."""
    from scripts.tiny_checkpoints import tora_i2v

    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.models.comfy_glue.tora import apply_tora
    from motionkit.nodes.cogvideox import MotionKitCogVideoXImageToVideo

    cog, tora = tiny_i2v_models
    assert cog.model.diffusion_model.in_channels == 32
    torch.manual_seed(5)
    motion, start = torch.randn(1, 16, 3, 8, 12), torch.randn(1, 16, 3, 8, 12)
    positive, negative = [[torch.randn(1, 226, 64), {}]], [[torch.randn(1, 226, 64), {}]]
    positive, negative = MotionKitCogVideoXImageToVideo().attach(positive, negative, {"samples": start})
    patched = apply_tora(cog, tora, motion, strength=1.0)
    x = torch.randn(2, 16, 3, 8, 12) * 3  # a CFG batch
    context = torch.cat([positive[0][0], negative[0][0]])
    concat = cog.model.extra_conds(noise=x, **positive[0][1])["c_concat"].cond
    assert torch.equal(concat[:, :, 0], start[:, :, 0].expand(2, -1, -1, -1)) and not concat[:, :, 1:].any()
    ref_tora = reference_tora(tora_i2v.tiny_tora_state_dict(), tiny_tora.TINY_CONFIG)
    config = {k: v for k, v in tora_i2v.I2V_CONFIG.items() if k != "use_rotary_positional_embeddings"}
    dit = reference_dit(config, tora_i2v.tiny_dit_state_dict())
    alphas = comfy_glue.cogvideox_alphas_cumprod(1.0)
    for timestep in (800, 250):
        sigma = cog.model.model_sampling.sigmas[timestep].expand(2)
        options = {"sigmas": sigma, **patched.model_options.get("transformer_options", {})}
        with torch.no_grad():
            got = patched.model.apply_model(x, sigma, c_concat=concat, c_crossattn=context, transformer_options=options)
            plain = cog.model.apply_model(x, sigma, c_concat=concat, c_crossattn=context)
        a = alphas[timestep].float()
        sample = x * a.sqrt()
        # the official I2V loop: [noise latents | image latents] along the channels, the flow repeated for CFG
        model_input = torch.cat([sample, concat], dim=1).transpose(1, 2)
        with torch.no_grad():
            v = reference_denoise(ref_tora, dit, model_input, context, torch.tensor([timestep] * 2),
                                  torch.cat([motion] * 2).transpose(1, 2), reference_rope(3, 4, 6, base=(4, 6)))
        expected = a.sqrt() * sample - (1 - a).sqrt() * v.transpose(1, 2)
        assert (got - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
        assert (got - plain).abs().max().item() > 1e-3


@pytest.mark.host
def test_image_to_video_workflow_runs_tora_on_the_i2v_model(comfy_server, tmp_path):
    import json

    import numpy as np

    workflow = harness.ROOT / "example_workflows" / "tora_image_to_video.json"
    api = tmp_path / "api.json"
    outputs = comfy_server.run_ui_workflow(workflow, api_out=api)
    prompt = json.loads(api.read_text())
    types = {node["class_type"] for node in prompt.values()}
    assert {"LoadImage", "MotionKitCogVideoXImageToVideo", "MotionKitApplyTora", "KSampler",
            "MotionKitSliceVAEDecode", "SaveVideo"} <= types
    loaders = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert loaders["MotionKitLoadCogVideoX"]["model_name"].startswith("motionkit_tiny_cogvideox_i2v")
    assert loaders["MotionKitLoadTora"]["tora_name"] == "motionkit_tiny_tora_i2v_sat.safetensors"
    (video,) = [f for f in comfy_server.output_files(outputs) if f.name.startswith("motionkit_tora_i2v")]
    frames = comfy_server.video_frames(video)
    assert len(frames) == 9 and frames[0].shape == (64, 96, 3)
    assert np.stack(frames).std() > 1.0  # a decoded video, not a constant


# ---------------------------------------------------------------- full-size memory
@pytest.mark.host
def test_full_size_trace_fits_24_gib_at_half_the_reference_activation_peak():
    """bench/tora.py --trace (CogVideoX-5B + Tora, bf16, 49x480x720, one CFG step, fake tensors) in a fresh
    process, where ComfyUI picks its GPU attention (SDPA) as on a card."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-m", "bench.tora", "--trace", "--json"], cwd=str(harness.ROOT),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # ComfyUI loads all of CogVideoX-5B and Tora on a 24 GiB card: the weights the reference keeps on the GPU
    assert figures["streamed_layers"] == 0  # (ours also counts buffers: the schedule, BatchNorm statistics)
    assert 0 <= figures["ours_weights"] - figures["reference_weights"] < 2 ** 20
    assert 11.6 * 2 ** 30 < figures["ours_weights"] < 11.7 * 2 ** 30
    assert figures["ours_peak"] <= 0.5 * figures["reference_peak"], figures
    assert figures["ours_weights"] + figures["ours_peak"] + figures["cuda_context"] <= figures["card"]
