"""EasyAnimate V3: parity with the official transformer, published key sets, the official DPM++ loop
through core samplers, the InP inputs, and the errors a user can run into."""
import json
import re

import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from scripts.tiny_checkpoints import cogvideox as tiny_cog  # noqa: E402
from scripts.tiny_checkpoints import easyanimate_v3 as tiny  # noqa: E402

from motionkit.models.easyanimate import v3_keys, v3_schedule, v3_video  # noqa: E402
from motionkit.models.easyanimate.v3_transformer import EasyAnimateV3Transformer  # noqa: E402
from references.easyanimate_v3_reference import (PUBLISHED_V3_CONFIG, ReferenceV3Transformer,  # noqa: E402
                                                 reference_state_dict_keys)

REFERENCE_TINY = dict(num_attention_heads=16, attention_head_dim=2, in_channels=12, out_channels=8, num_layers=28,
                      caption_channels=64, cross_attention_dim=32, max_frames=tiny.STORED_FRAMES)


def _reference(in_channels=12, seed=0):
    """The official-structure reference holding the tiny checkpoint's weights (the file's own key names)."""
    config = dict(tiny.TINY_CONFIG, in_channels=in_channels, clip_channels=768 if in_channels == 12 else 0)
    state = tiny.tiny_state_dict(config, seed=seed)
    reference = ReferenceV3Transformer(**dict(REFERENCE_TINY, in_channels=in_channels)).eval()
    reference.load_state_dict(state, strict=True)
    return reference, state, config


def _ours(state, config):
    model = EasyAnimateV3Transformer(**config).eval()
    model.load_state_dict(v3_keys.detect(state), strict=True)
    return model


def _padded(texts, length):
    """Texts of different lengths as the pipeline feeds them: padded to `length`, with the attention mask."""
    padded = torch.zeros(len(texts), length, texts[0].shape[-1])
    mask = torch.zeros(len(texts), length)
    for i, text in enumerate(texts):
        padded[i, :text.shape[1]] = text[0]
        mask[i, :text.shape[1]] = 1
    return padded, mask


# ---------------------------------------------------------------- the transformer
def test_inp_transformer_matches_the_official_reference():
    reference, state, config = _reference()
    ours = _ours(state, config)
    torch.manual_seed(1)
    b, t, h, w = 2, 6, 6, 4
    noise, inpaint = torch.randn(b, 4, t, h, w), torch.randn(b, 8, t, h, w)
    texts = [torch.randn(1, 9, 64), torch.randn(1, 5, 64)]
    text, text_mask = _padded(texts, 12)
    clip = torch.randn(b, 768)
    clip_mask = torch.tensor([[1.0] * 8, [0.0] * 8])  # the second sample runs without image tokens (masked out)
    timesteps = torch.tensor([999.0, 321.0])
    with torch.no_grad():
        expected = reference(noise, timesteps, text, text_mask, inpaint, clip, clip_mask)
        x = torch.cat([noise, inpaint], dim=1)
        got = [ours.predict(x[:1], timesteps[:1], texts[0], clip[:1]), ours.predict(x[1:], timesteps[1:], texts[1])]
        eps = ours(x[:1], timesteps[:1], texts[0], clip[:1])
    assert expected.shape == (2, 8, t, h, w) and expected.abs().max() > 0.5
    assert (torch.cat(got) - expected).abs().max().item() <= 1e-5
    assert torch.equal(eps, got[0][:, :4])  # forward: the epsilon half (the pipeline's learned-sigma split)


def test_t2v_transformer_matches_the_official_reference():
    reference, state, config = _reference(in_channels=4, seed=3)
    ours = _ours(state, config)
    assert ours.clip_projection is None
    torch.manual_seed(2)
    noise, text = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 7, 64)
    with torch.no_grad():
        expected = reference(noise, torch.tensor([500.0]), text, torch.ones(1, 7))
        got = ours.predict(noise, torch.tensor([500.0]), text)
    assert (got - expected).abs().max().item() <= 1e-5


def test_query_chunked_attention_equals_one_call(monkeypatch):
    from motionkit.models.easyanimate import v3_motion_module

    q, k, v = torch.randn(3, 50, 32), torch.randn(3, 70, 32), torch.randn(3, 70, 32)
    whole = v3_motion_module.attention(q, k, v, 4)
    monkeypatch.setattr(v3_motion_module, "ATTENTION_ELEMENTS", 3 * 70 * 4 * 7)  # 7 queries per call
    chunked = v3_motion_module.attention(q, k, v, 4)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_token_chunked_layers_equal_the_plain_model(monkeypatch):
    """The memory-saving path (feed-forwards and temporal attention in token chunks, parked U-ViT skips) equals
    the plain one."""
    from motionkit.models.easyanimate import v3_motion_module, v3_transformer

    _reference_model, state, config = _reference()
    ours = _ours(state, config)
    torch.manual_seed(4)
    x, text = torch.randn(1, 12, 4, 6, 8), torch.randn(1, 5, 64)
    with torch.no_grad():
        plain = ours.predict(x, torch.tensor([700.0]), text, torch.randn(1, 768))
        monkeypatch.setattr(v3_motion_module, "CHUNK_TOKENS", 10)  # 48 tokens: 5 chunks; 4 frames: 2 positions each
        monkeypatch.setattr(v3_motion_module.by_token_chunks, "__defaults__", (10,))
        monkeypatch.setattr(v3_transformer, "PARKED_SKIP_ELEMENTS", 1)  # the skips take the parking path too
        torch.manual_seed(4)
        x, text = torch.randn(1, 12, 4, 6, 8), torch.randn(1, 5, 64)
        chunked = ours.predict(x, torch.tensor([700.0]), text, torch.randn(1, 768))
    assert torch.allclose(chunked, plain, atol=1e-6)


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("in_channels", [12, 4], ids=["InP", "T2V"])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_published_key_set_fills_the_full_size_model_on_meta(in_channels, prefix):
    published = reference_state_dict_keys(dict(PUBLISHED_V3_CONFIG, in_channels=in_channels))
    assert sum(k.endswith("pos_encoder.pe") for k in published) == 56
    file = {prefix + k: torch.empty(shape, device="meta") for k, shape in published.items()}
    sd = v3_keys.detect(file, "EasyAnimateV3-XL-2-InP-512x512")
    config = v3_keys.config_from_state_dict(sd)
    name = "EasyAnimateV3-XL-2-InP" if in_channels == 12 else "EasyAnimateV3-XL-2 (text-to-video, 4 input channels)"
    for key, value in v3_keys.PUBLISHED[name].items():
        assert config[key] == value, key
    model = EasyAnimateV3Transformer(**config, device="meta")
    v3_keys.check_keys(model, sd)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    assert len(sd) == len(published) - 56
    parameters = sum(v.numel() for v in model.state_dict().values())
    assert parameters == (1_538_364_704 if in_channels == 12 else 1_446_296_864)  # counted on the reference


@pytest.mark.parametrize("name,state,expected", [
    ("cogvideox.safetensors", {"patch_embed.proj.weight": 0, "patch_embed.text_proj.weight": 0},
     "is a CogVideoX transformer, not an EasyAnimate V3 transformer: use Load CogVideoX (MotionKit)"),
    ("v51.safetensors", {"time_embedding.linear_1.weight": 0, "transformer_blocks.0.attn1.to_q.weight": 0},
     "is an EasyAnimate V5/V5.1 transformer (diffusers EasyAnimateTransformer3DModel), not an EasyAnimate V3 "
     "transformer: use Load EasyAnimate V5.1 (MotionKit)"),
    ("pixart.safetensors", {"transformer_blocks.0.attn1.to_q.weight": 0, "adaln_single.linear.weight": 0},
     "is a PixArt-alpha image transformer (no motion modules), not an EasyAnimate V3 transformer: use core"),
    ("easyanimate_v1_mm.safetensors", {"transformer_blocks.0.attn_temporal.temporal_transformer.proj_in.weight": 0,
                                       "transformer_blocks.0.attn1.to_q.weight": 0},
     "holds EasyAnimate motion modules only"),
    ("vae.safetensors", {"encoder.conv_in.weight": 0},
     "is not an EasyAnimate V3 transformer: checked the official layout"),
])
def test_other_files_are_refused_naming_what_they_are(name, state, expected):
    with pytest.raises(v3_keys.EasyAnimateV3FormatError) as error:
        v3_keys.detect({k: torch.zeros(1) for k in state}, f"'{name}'")
    assert str(error.value).startswith(f"'{name}' ") and expected in str(error.value)


def test_v2_motion_modules_named_by_config_are_refused():
    sd = v3_keys.detect(tiny.tiny_state_dict())
    with pytest.raises(v3_keys.EasyAnimateV3FormatError, match="basic_block_type 'motionmodule'.*EasyAnimate V3"):
        v3_keys.config_from_state_dict(sd, {"basic_block_type": "motionmodule"}, "'v2.safetensors'")


# ---------------------------------------------------------------- schedule, frames, text
@pytest.mark.parametrize("steps", [25, 50, 7, 2, 1])
def test_linspace_timesteps_match_the_official_dpm_scheduler(steps):
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", steps_offset=1)
    scheduler.set_timesteps(steps)
    assert v3_schedule.linspace_timesteps(steps) == scheduler.timesteps.tolist()


def test_frame_rule():
    assert [v3_video.latent_frames(f) for f in (1, 8, 15, 16, 144)] == [1, 2, 2, 4, 36]
    assert [v3_video.video_frames(t) for t in (1, 2, 36)] == [1, 8, 144]
    for frames in (0, 5):
        with pytest.raises(ValueError, match=f"frames is {frames}: .*set frames to 1 or 8"):
            v3_video.latent_frames(frames)
    with pytest.raises(ValueError, match="multiples of 16.*got 72x64"):
        v3_video.empty_latent(1, 72, 64, 8)


def test_inpaint_pixels_follow_the_official_image_to_video_inputs():
    start, end = torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3)
    mask, masked = v3_video.inpaint_pixels(8, 16, 16, start, end)
    # official: the mask is 0 on kept frames (first and last) and 1 elsewhere, fed to the VAE as is (m in [-1, 1])
    assert torch.equal(mask[:, 0, 0, 0], torch.tensor([0.5, 1, 1, 1, 1, 1, 1, 0.5]))
    assert torch.equal(masked[0], start[0]) and torch.equal(masked[-1], end[0]) and not masked[1:-1].any()
    mask, masked = v3_video.inpaint_pixels(8, 16, 16)  # text-to-video with the InP model
    assert torch.equal(mask, torch.ones_like(mask)) and not masked.any()
    with pytest.raises(ValueError, match="end_image .* without start_image"):
        v3_video.inpaint_pixels(8, 16, 16, None, end)


def test_text_tokens_cut_to_120_with_the_end_token_and_no_padding():
    tokens = {"t5xxl": [[(t, 1.0) for t in range(5, 205)] + [(1, 1.0)] + [(0, 1.0)] * 20]}
    kept = v3_video.v3_text_tokens(tokens)["t5xxl"][0]
    assert [t[0] for t in kept] == list(range(5, 124)) + [1]
    short = v3_video.v3_text_tokens({"t5xxl": [[(7, 1.0), (1, 1.0), (0, 1.0), (0, 1.0)]]})["t5xxl"][0]
    assert short == [(7, 1.0), (1, 1.0)]
    assert v3_video.official_caption("  A Red FOX ") == "a red fox"


# ---------------------------------------------------------------- inside ComfyUI
@pytest.fixture
def tiny_v3(tmp_path):
    import folder_paths

    paths = tiny.write(tmp_path)
    folder_paths.add_model_folder_path("diffusion_models", str(paths[0].parent))
    return paths[0]


@pytest.mark.host
def test_comfy_model_sigmas_are_the_official_schedule():
    from diffusers import DPMSolverMultistepScheduler

    from motionkit.models.comfy_glue import easyanimate_v3 as v3_comfy_glue

    sampling = v3_comfy_glue.EasyAnimateV3Model(v3_comfy_glue.EasyAnimateV3ModelConfig(
        dict(tiny.TINY_CONFIG))).model_sampling
    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    expected = ((1 - scheduler.alphas_cumprod) / scheduler.alphas_cumprod) ** 0.5
    assert torch.equal(sampling.sigmas, expected.float())


def _official_dpm_loop(reference, noise, steps, cfg, texts, inpaint, clip_image, apply_ratio=0.5):
    """The InP pipeline's loop: DPMSolverMultistepScheduler from the V3 yaml, CFG on [uncond, cond], the
    learned-sigma split, the CLIP tokens zeroed and masked for the first (1 - ratio) of the steps."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", steps_offset=1)
    scheduler.set_timesteps(steps)
    text, text_mask = _padded(texts, 16)
    x = noise * scheduler.init_noise_sigma
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            image_on = not i < len(scheduler.timesteps) * (1 - apply_ratio)
            clip = torch.cat([torch.zeros(1, 768), clip_image if image_on else torch.zeros(1, 768)])
            clip_mask = torch.tensor([[0.0] * 8, [1.0 if image_on else 0.0] * 8])
            out = reference(torch.cat([x, x]), t.expand(2).float(), text, text_mask, torch.cat([inpaint, inpaint]),
                            clip, clip_mask)
            uncond, cond = out.chunk(2)
            eps = (uncond + cfg * (cond - uncond)).chunk(2, dim=1)[0]
            x = scheduler.step(eps, t, x, return_dict=False)[0]
    return x


@pytest.mark.host
def test_core_dpmpp_2m_with_our_sigmas_reproduces_the_official_loop(tiny_v3):
    import comfy.sample
    from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom

    from motionkit.nodes.easyanimate_v3 import MotionKitEasyAnimateV3Scheduler, MotionKitLoadEasyAnimateV3

    (model,) = MotionKitLoadEasyAnimateV3().load(tiny_v3.name)
    reference, _state, _config = _reference()
    torch.manual_seed(5)
    negative, positive = torch.randn(1, 3, 64), torch.randn(1, 11, 64)
    inpaint, clip_image = torch.randn(1, 8, 4, 4, 6) * 0.5, torch.randn(1, 768)
    latent = {"samples": torch.zeros(1, 4, 4, 4, 6)}
    steps, cfg, seed = 6, 7.0, 11
    (sigmas,) = MotionKitEasyAnimateV3Scheduler().sigmas(model, steps)
    (sampler,) = KSamplerSelect().get_sampler("dpmpp_2m")
    conds = {"easyanimate_inpaint_latents": inpaint}
    ours = SamplerCustom().sample(
        model, True, seed, cfg, [[positive, {**conds, "clip_image_embeds": clip_image, "clip_apply_ratio": 0.5}]],
        [[negative, conds]], sampler, sigmas, latent)[0]["samples"]
    noise = comfy.sample.prepare_noise(latent["samples"], seed)
    expected = _official_dpm_loop(reference, noise, steps, cfg, [negative, positive], inpaint, clip_image)
    assert ours.shape == expected.shape == (1, 4, 4, 4, 6)
    assert (ours - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()


@pytest.mark.host
def test_inpaint_node_encodes_mask_and_masked_video_with_the_video_vae(tmp_path):
    from scripts.tiny_checkpoints import video_vae as tiny_vae

    from motionkit.models.video_vae import load_video_vae
    from motionkit.nodes.easyanimate_v3 import MotionKitEasyAnimateV3EmptyLatent, MotionKitEasyAnimateV3Inpaint

    tiny_vae.write(tmp_path)
    vae = load_video_vae(str(tmp_path / "vae" / tiny_vae.EASYANIMATE_V3_FOLDER / "diffusion_pytorch_model.safetensors"))
    (latent,) = MotionKitEasyAnimateV3EmptyLatent().generate(32, 16, 16)
    assert latent["samples"].shape == (1, 4, 4, 2, 4)
    start = torch.rand(1, 16, 32, 3)
    positive, negative = MotionKitEasyAnimateV3Inpaint().attach(
        [[torch.zeros(1, 2, 64), {}]], [[torch.zeros(1, 2, 64), {}]], vae, latent, 0.5, start_image=start)
    inpaint = positive[0][1]["easyanimate_inpaint_latents"]
    assert torch.equal(inpaint, negative[0][1]["easyanimate_inpaint_latents"]) and inpaint.shape == (1, 8, 4, 2, 4)
    mask, masked = v3_video.inpaint_pixels(16, 16, 32, start)
    assert torch.equal(inpaint[:, :4], vae.encode(mask)) and torch.equal(inpaint[:, 4:], vae.encode(masked))
    with pytest.raises(ValueError, match="makes 16-channel latents, but the latent has 4: load the EasyAnimate V3"):
        v5 = load_video_vae(str(tmp_path / "vae" / tiny_vae.EASYANIMATE_V5_FOLDER / "diffusion_pytorch_model.safetensors"))
        MotionKitEasyAnimateV3Inpaint().attach([], [], v5, latent)


@pytest.mark.host
@pytest.mark.parametrize("case", ["cogvideox_latent", "odd_frames", "zero_frames", "inp_without_inpaint"])
def test_bad_inputs_are_refused_before_the_first_step(tiny_v3, case):
    import nodes

    from motionkit.nodes.easyanimate_v3 import MotionKitLoadEasyAnimateV3

    (model,) = MotionKitLoadEasyAnimateV3().load(tiny_v3.name)
    conds = {"easyanimate_inpaint_latents": torch.zeros(1, 8, 2, 4, 4)}
    latent = torch.ones  # a latent with content (core replaces empty latents of another channel count)
    shape, expected = {
        "cogvideox_latent": ((1, 16, 2, 4, 4), "the latent has 16 channels, but EasyAnimate V3 .* have 4 .*Empty Latent"),
        "odd_frames": ((1, 4, 3, 4, 4), "the latent has 3 frames; .*generate 8 or 16 frames"),
        "zero_frames": ((1, 4, 0, 4, 4), "the latent has 0 frames: set frames to 1 .* or a multiple of 8"),
        "inp_without_inpaint": ((1, 4, 2, 4, 4), "InP model \\(12 input channels\\).*add EasyAnimate V3 Inpaint"),
    }[case]
    if case == "inp_without_inpaint":
        conds = {}
    calls = []
    model.set_model_unet_function_wrapper(lambda apply, args: calls.append(1) or apply(args["input"], args["timestep"], **args["c"]))
    positive, negative = [[torch.randn(1, 3, 64), conds]], [[torch.randn(1, 2, 64), conds]]
    with pytest.raises(ValueError, match=expected):
        nodes.common_ksampler(model, 0, 2, 5.0, "dpmpp_2m", "sgm_uniform", positive, negative,
                              {"samples": latent(shape)})
    assert not calls


@pytest.mark.host
def test_load_node_refuses_a_cogvideox_file_naming_its_loader(tmp_path):
    import folder_paths

    from motionkit.nodes.easyanimate_v3 import MotionKitLoadEasyAnimateV3

    path = tiny_cog.write(tmp_path)[0]
    folder_paths.add_model_folder_path("diffusion_models", str(path.parent))
    with pytest.raises(v3_keys.EasyAnimateV3FormatError,
                       match=re.escape(f"'{path.name}' is a CogVideoX transformer, not an EasyAnimate V3 transformer: "
                                       f"use Load CogVideoX (MotionKit)")):
        MotionKitLoadEasyAnimateV3().load(path.name)


@pytest.mark.host
def test_sharded_folder_with_config_loads_from_any_shard(tmp_path):
    from motionkit.models.comfy_glue import easyanimate_v3 as v3_comfy_glue

    state = tiny.tiny_state_dict()
    names = sorted(state)
    folder = tmp_path / "transformer"
    folder.mkdir()
    for i, part in enumerate((names[:len(names) // 2], names[len(names) // 2:]), start=1):
        safetensors.torch.save_file({k: state[k] for k in part},
                                    str(folder / f"diffusion_pytorch_model-0000{i}-of-00002.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "Transformer3DModel", "num_attention_heads": 16,
                                                    "basic_block_type": "global_motionmodule", "sample_size": 64}))
    patcher = v3_comfy_glue.load_easyanimate_v3(str(folder / "diffusion_pytorch_model-00002-of-00002.safetensors"))
    loaded = patcher.model.diffusion_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in v3_keys.detect(state).items())


@pytest.mark.host
def test_text_encode_equals_the_pipeline_prompt_embeds_on_attended_tokens(tiny_t5):
    from motionkit.nodes.easyanimate_v3 import MotionKitEasyAnimateV3TextEncode

    encoder, clip, tokenizer = tiny_t5.encoder, tiny_t5.clip, tiny_t5.tokenizer
    prompt = "A Red fox runs across a snowy field at dawn "
    # the pipeline: lower-cased, padded to 120 with the attention mask, the mask turned into a -10000 bias later
    inputs = tokenizer(prompt.lower().strip(), padding="max_length", max_length=120, truncation=True,
                       return_tensors="pt")
    with torch.no_grad():
        expected = encoder(inputs.input_ids, attention_mask=inputs.attention_mask)[0]
    attended = int(inputs.attention_mask.sum())
    (conditioning,) = MotionKitEasyAnimateV3TextEncode().encode(clip, prompt)
    got = conditioning[0][0]
    assert got.shape == (1, attended, 64)
    # the same tokens; float32 T5 implementations (ComfyUI's and transformers') differ in summation order only
    assert (got - expected[:, :attended]).abs().max().item() <= 5e-5


# ---------------------------------------------------------------- the example workflow in the real ComfyUI
def test_example_workflow_makes_a_144_frame_video(comfy_server, artifacts_dir):
    workflow = harness.ROOT / "example_workflows" / "easyanimate_v3_long_video.json"
    graph = json.loads(workflow.read_text())
    types = {n["type"] for n in graph["nodes"]}
    assert {"MotionKitLoadEasyAnimateV3", "MotionKitLoadT5", "MotionKitEasyAnimateV3TextEncode",
            "MotionKitEasyAnimateV3EmptyLatent", "MotionKitEasyAnimateV3Inpaint", "KSampler",
            "MotionKitSliceVAEDecode", "SaveVideo"} <= types
    frames = next(n for n in graph["nodes"] if n["type"] == "MotionKitEasyAnimateV3EmptyLatent")["widgets_values"][2]
    assert frames == 144
    outputs = comfy_server.run_ui_workflow(workflow)
    (video,) = comfy_server.output_files(outputs)
    decoded = comfy_server.video_frames(video)
    assert len(decoded) == 144 and decoded[0].shape == (64, 64, 3)
    assert any(abs(a.astype(int) - b.astype(int)).max() > 0 for a, b in zip(decoded, decoded[1:]))
    (artifacts_dir / f"easyanimate_v3_long_video{video.suffix}").write_bytes(video.read_bytes())
