"""Tora: extractor/fuser parity with the official semantics, every checkpoint layout, and Apply Tora in ComfyUI."""
import argparse
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
    assert str(error.value) == ("'fuser.safetensors' lacks the trajectory extractor (traj_extractor.safetensors): give "
                                "Load Tora (MotionKit) both split files, or one file holding both (the SAT checkpoint or "
                                "the diffusers Tora transformer)")


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
    assert str(error.value) == (
        "the motion latents (2 latent frames of 96x64 pixels, batch 1, 16 channels, shape (1, 16, 2, 8, 12)) do not "
        "fit the sampled latent (shape (1, 16, 3, 8, 12), 3 latent frames of 96x64 pixels): encode the trajectory "
        "flow with the frame count and size of the video you sample (9 frames)")


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
    assert str(error.value) == ("Apply Tora (MotionKit) needs a CogVideoX MODEL (from Load CogVideoX (MotionKit)); the "
                                "model input is a SD15 model. Tora's fusers only fit CogVideoX-5B's blocks")
    wide = tmp_path / "wide.safetensors"
    safetensors.torch.save_file(tiny_tora.tiny_state_dict(dict(dim=64, blocks=2, flow_channels=32)), str(wide))
    with pytest.raises(ToraModelError) as error:
        apply_tora(cog, load_tora([str(wide)]), torch.zeros(1, 16, 3, 8, 12), 1.0)
    assert str(error.value) == ("the Tora weights have 2 fusers of width 64, but the CogVideoX model has 2 blocks of "
                                "width 32: Tora was trained for CogVideoX-5B (42 blocks of width 3072); load that "
                                "transformer")


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
    (latents,) = MotionKitMotionVAEEncode().encode(vae, flow, 0.7, 0, 64)
    plain = vae.encode(flow)
    assert latents["samples"].shape == (1, 16, 3, 4, 6)
    assert torch.allclose(latents["samples"], plain * (0.7 / vae.scaling_factor), atol=1e-6)
    with pytest.raises(MotionEncodeError) as error:
        MotionKitMotionVAEEncode().encode(vae, torch.rand(8, 40, 48, 3), 0.7, 0, 64)
    assert str(error.value) == ("the flow video has 8 frames (CogVideoX needs 4k+1 frames, e.g. 5 or 9) and 48x40 "
                                "pixels (width and height must be multiples of 16): make the trajectory flow with the "
                                "frame count and size of the video you sample")



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
