"""CogVideoX: parity with diffusers, checkpoint layouts, and the ComfyUI model sampled by core samplers."""
import re
import types
from pathlib import Path

import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from scripts.tiny_checkpoints import cogvideox as tiny  # noqa: E402

from motionkit.models.cogvideox import keys, schedule  # noqa: E402
from motionkit.models.cogvideox.text import fixed_length_t5_tokens  # noqa: E402
from motionkit.models.cogvideox.transformer import CogVideoXTransformer  # noqa: E402

TINY = dict(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=24,
            text_embed_dim=20, num_layers=2, sample_height=8, sample_width=12, sample_frames=9, max_text_seq_length=7)


def _diffusers():
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel


def _reference_rope(head_dim, frames, height, width, base_h, base_w):
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    crops = get_resize_crop_region_for_grid((height, width), base_w, base_h)
    return get_3d_rotary_pos_embed(head_dim, crops, (height, width), frames)


def _random_pair(config, seed=0):
    torch.manual_seed(seed)
    reference = _diffusers()(**config).eval()
    state = {k: torch.randn_like(v) * 0.3 for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    ours = CogVideoXTransformer(**config).eval()
    ours.load_state_dict(state, strict=True)
    return reference, ours


@pytest.mark.parametrize("variant,rope,learned,size", [
    ("5B-rope", True, False, (6, 10)),
    ("2B-sincos", False, False, (6, 10)),
    ("5B-I2V-learned", True, True, (8, 12)),
])
def test_transformer_matches_diffusers(variant, rope, learned, size):
    config = dict(TINY, use_rotary_positional_embeddings=rope, use_learned_positional_embeddings=learned)
    reference, ours = _random_pair(config)
    h, w = size
    x = torch.randn(2, 4, 3, h, w, dtype=torch.float64)
    t = torch.tensor([999.0, 421.0])
    context = torch.randn(2, 7, 20, dtype=torch.float64)
    rotary = _reference_rope(16, 3, h // 2, w // 2, 4, 6) if rope else None
    reference.double(), ours.double()
    with torch.no_grad():
        expected = reference(x.transpose(1, 2), context, t, image_rotary_emb=rotary, return_dict=False)[0].transpose(1, 2)
        got = ours(x, t, context)
    assert got.shape == (2, 4, 3, h, w)
    # the same tokens; float32 T5 implementations (ComfyUI's and transformers') differ in summation order only
    assert (got - expected).abs().max().item() <= 5e-5


def test_rope_for_non_default_aspect_matches_pipeline():
    from motionkit.models.cogvideox.transformer import rope_3d

    for grid in ((13, 30, 45), (5, 24, 24), (2, 40, 16)):
        cos, sin = rope_3d(64, *grid, 30, 45)
        ref_cos, ref_sin = _reference_rope(64, *grid, 30, 45)
        assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)


def _meta_published(name):
    config = keys.PUBLISHED[name]
    with torch.device("meta"):
        reference = _diffusers()(**config)
    return reference.state_dict()


@pytest.mark.parametrize("name", sorted(keys.PUBLISHED))
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_published_layouts_fill_full_size_configs_on_meta(name, prefix):
    published = {prefix + k: v for k, v in _meta_published(name).items()}
    sd = keys.detect(published, name)
    config = keys.config_from_state_dict(sd)
    expected = keys.PUBLISHED[name]
    for key, value in expected.items():
        assert config[key] == value, (name, key)
    model = CogVideoXTransformer(**config, device="meta")
    keys.check_keys(model, sd, name)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in sd.items()}


def test_tora_diffusers_transformer_loads_as_cogvideox_without_tora_keys():
    sd = dict(_meta_published("CogVideoX-5B"))
    sd["traj_extractor.conv_in.weight"] = torch.empty(128, 64, 3, 3, device="meta")
    sd["fuser.0.flow_gamma_spatial.weight"] = torch.empty(768, 128, 3, 3, device="meta")
    kept = keys.detect(sd, "tora_transformer")
    assert "traj_extractor.conv_in.weight" not in kept and "fuser.0.flow_gamma_spatial.weight" not in kept
    assert len(kept) == len(sd) - 2


def test_tora_file_given_to_cogvideox_loader_is_refused():
    split_fuser = {"0.flow_gamma_spatial.weight": torch.zeros(1), "0.flow_beta_spatial.weight": torch.zeros(1)}
    with pytest.raises(keys.CogVideoXFormatError) as error:
        keys.detect(split_fuser, "'fuser.safetensors'")
    facts = (
        "'fuser.safetensors'", 'Tora weights', 'Load Tora (MotionKit)', 'models/tora', 'CogVideoX-5B transformer',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_unknown_file_lists_what_was_checked_and_missing():
    with pytest.raises(keys.CogVideoXFormatError) as error:
        keys.detect({"first_stage_model.encoder.conv_in.weight": torch.zeros(1)}, "'vae.safetensors'")
    facts = (
        "'vae.safetensors'", 'not a CogVideoX transformer', 'patch_embed.proj.weight',
        'first_stage_model.encoder.conv_in.weight',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_shards_of_a_transformer_folder_are_found(tmp_path):
    for i in (1, 2):
        (tmp_path / f"diffusion_pytorch_model-0000{i}-of-00002.safetensors").write_bytes(b"")
    paths = keys.shard_paths(str(tmp_path / "diffusion_pytorch_model-00002-of-00002.safetensors"))
    assert [Path(p).name for p in paths] == ["diffusion_pytorch_model-00001-of-00002.safetensors",
                                             "diffusion_pytorch_model-00002-of-00002.safetensors"]
    (tmp_path / "diffusion_pytorch_model-00001-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="00001-of-00002.safetensors is missing"):
        keys.shard_paths(str(tmp_path / "diffusion_pytorch_model-00002-of-00002.safetensors"))


@pytest.mark.parametrize("steps", [50, 30, 7])
def test_scheduler_timesteps_match_cogvideox_ddim(steps):
    from diffusers import CogVideoXDDIMScheduler

    reference = CogVideoXDDIMScheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                       prediction_type="v_prediction", snr_shift_scale=1.0)
    reference.set_timesteps(steps)
    assert schedule.trailing_timesteps(steps) == reference.timesteps.tolist()


def test_fixed_length_tokens_truncate_and_pad():
    tokens = {"t5xxl": [[(5, 1.0), (6, 1.0), (7, 1.0), (1, 1.0), (0, 1.0), (0, 1.0)]], "l": []}
    assert fixed_length_t5_tokens(tokens, 6)["t5xxl"] == [[(5, 1.0), (6, 1.0), (7, 1.0), (1, 1.0), (0, 1.0), (0, 1.0)]]
    assert fixed_length_t5_tokens(tokens, 3)["t5xxl"] == [[(5, 1.0), (6, 1.0), (1, 1.0)]]
    with pytest.raises(ValueError, match="not a T5 text encoder"):
        fixed_length_t5_tokens({"l": [[(49406, 1.0)]]})


# ---------------------------------------------------------------- inside ComfyUI
def _tiny_file(tmp_path):
    return tiny.write(tmp_path)[0]


@pytest.mark.host
def test_comfy_model_schedule_equals_cogvideox_ddim():
    from diffusers import CogVideoXDDIMScheduler
    from motionkit.models.comfy_glue import cogvideox as comfy_glue

    for shift in (1.0, 3.0):
        reference = CogVideoXDDIMScheduler(rescale_betas_zero_snr=True, snr_shift_scale=shift)
        config = types.SimpleNamespace(sampling_settings={"snr_shift_scale": shift})
        sampling = comfy_glue.CogVideoXModelSampling(config)
        alphas = reference.alphas_cumprod[:-1].double()
        expected = ((1 - alphas) / alphas).sqrt()
        assert torch.allclose(sampling.sigmas[:-1].double(), expected, rtol=1e-6)
        assert float(sampling.sigmas[-1]) == pytest.approx(((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08) ** 0.5)


@pytest.mark.host
def test_comfy_denoiser_equals_diffusers_v_prediction(tmp_path):
    """ComfyUI's x0 prediction from our model equals DDIM's pred_original_sample from diffusers' transformer."""
    from motionkit.models.comfy_glue import cogvideox as comfy_glue

    patcher = comfy_glue.load_cogvideox(str(_tiny_file(tmp_path)))
    model = patcher.model
    reference = _diffusers()(**tiny.TINY_CONFIG, use_rotary_positional_embeddings=True).eval()
    reference.load_state_dict(tiny.tiny_state_dict())
    alphas = comfy_glue.cogvideox_alphas_cumprod(1.0)
    torch.manual_seed(1)
    x_comfy = torch.randn(1, 16, 3, 8, 12) * 4
    context = torch.randn(1, 226, 64)
    for timestep in (900, 400, 37):
        sigma = model.model_sampling.sigmas[timestep].reshape(1)
        with torch.no_grad():
            denoised = model.apply_model(x_comfy, sigma, c_crossattn=context)
            sample = x_comfy * alphas[timestep].sqrt().float()
            rotary = _reference_rope(16, 3, 4, 6, 30, 45)
            v = reference(sample.transpose(1, 2), context, torch.tensor([timestep]), image_rotary_emb=rotary,
                          return_dict=False)[0].transpose(1, 2)
            expected = alphas[timestep].sqrt().float() * sample - (1 - alphas[timestep]).sqrt().float() * v
        assert (denoised - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())


@pytest.mark.host
def test_core_ksampler_samples_the_loaded_model(tmp_path):
    import nodes

    from motionkit.nodes.cogvideox import MotionKitLoadCogVideoX
    import folder_paths

    (tmp_path / "diffusion_models").mkdir()
    path = _tiny_file(tmp_path)
    folder_paths.add_model_folder_path("diffusion_models", str(path.parent))
    (model,) = MotionKitLoadCogVideoX().load(path.name)
    from comfy_extras.nodes_hunyuan import EmptyHunyuanLatentVideo  # core 16-channel video latents

    empty = EmptyHunyuanLatentVideo().generate(96, 64, 9, 1)[0]
    assert empty["samples"].shape == (1, 16, 3, 8, 12)
    torch.manual_seed(0)
    positive = [[torch.randn(1, 226, 64), {}]]
    negative = [[torch.randn(1, 226, 64), {}]]
    (out,) = nodes.common_ksampler(model, 3, 3, 6.0, "euler", "simple", positive, negative, empty)
    again = nodes.common_ksampler(model, 3, 3, 6.0, "euler", "simple", positive, negative, empty)[0]
    assert out["samples"].shape == (1, 16, 3, 8, 12)
    assert torch.isfinite(out["samples"]).all() and out["samples"].abs().mean() > 0
    assert torch.equal(out["samples"], again["samples"])


@pytest.mark.host
def test_half_weights_on_cpu_are_refused(tmp_path):
    from motionkit.models.comfy_glue import cogvideox as comfy_glue

    path = tmp_path / "half.safetensors"
    safetensors.torch.save_file({k: v.half() for k, v in tiny.tiny_state_dict().items()}, str(path))
    with pytest.raises(ValueError) as error:
        comfy_glue.load_cogvideox(str(path))
    facts = (
        "'half.safetensors'", 'torch.float16', 'CPU', "weight_dtype to 'fp32'",
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)
    with pytest.raises(ValueError, match=re.escape("weight_dtype 'fp8_e4m3fn', but ComfyUI runs on the CPU")):
        comfy_glue.load_cogvideox(str(_tiny_file(tmp_path)), "fp8_e4m3fn")
    patcher = comfy_glue.load_cogvideox(str(path), "fp32")
    assert patcher.model.get_dtype() == torch.float32


@pytest.mark.host
def test_text_encode_equals_cogvideox_pipeline_prompt_embeds(tiny_t5):
    from diffusers import CogVideoXPipeline

    from motionkit.nodes.cogvideox import MotionKitCogVideoXTextEncode

    encoder, clip, tokenizer = tiny_t5.encoder, tiny_t5.clip, tiny_t5.tokenizer
    prompt = "a red fox runs across a snowy field at dawn"
    pipe = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=encoder)
    with torch.no_grad():
        expected = CogVideoXPipeline._get_t5_prompt_embeds(pipe, prompt, 1, 226, torch.device("cpu"), torch.float32)
    ids = tokenizer(prompt, padding="max_length", max_length=226, truncation=True).input_ids
    ours = fixed_length_t5_tokens(clip.tokenize(prompt))["t5xxl"][0]
    assert [t[0] for t in ours] == ids
    (conditioning,) = MotionKitCogVideoXTextEncode().encode(clip, prompt)
    got = conditioning[0][0]
    assert got.shape == expected.shape == (1, 226, 64)
    # the same tokens; float32 T5 implementations (ComfyUI's and transformers') differ in summation order only
    assert (got - expected).abs().max().item() <= 5e-5


def _diffusers_ddim_sampling(tmp_path, steps, cfg, dynamic, seed=7):
    """The CogVideoX pipeline's loop (CogVideoXDDIMScheduler, trailing, v-pred) and ours through core SamplerCustom."""
    import comfy.sample
    from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom
    from diffusers import CogVideoXDDIMScheduler

    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.nodes.cogvideox import MotionKitCogVideoXDynamicCFG, MotionKitCogVideoXScheduler

    model = comfy_glue.load_cogvideox(str(_tiny_file(tmp_path)))
    if dynamic:
        (model,) = MotionKitCogVideoXDynamicCFG().patch(model)
    reference = _diffusers()(**tiny.TINY_CONFIG, use_rotary_positional_embeddings=True).eval()
    reference.load_state_dict(tiny.tiny_state_dict())
    torch.manual_seed(0)
    positive, negative = torch.randn(1, 226, 64), torch.randn(1, 226, 64)
    latent = {"samples": torch.zeros(1, 16, 3, 8, 12)}
    (sigmas,) = MotionKitCogVideoXScheduler().sigmas(model, steps)
    (sampler,) = KSamplerSelect().get_sampler("euler")
    ours = SamplerCustom().sample(model, True, seed, cfg, [[positive, {}]], [[negative, {}]], sampler, sigmas, latent)[0]

    scheduler = CogVideoXDDIMScheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                       prediction_type="v_prediction", snr_shift_scale=1.0, clip_sample=False)
    scheduler.set_timesteps(steps)
    x = comfy.sample.prepare_noise(latent["samples"], seed).transpose(1, 2)
    rotary = _reference_rope(16, 3, 4, 6, 30, 45)
    with torch.no_grad():
        for t in scheduler.timesteps:
            v = reference(torch.cat([x, x]), torch.cat([negative, positive]), t.expand(2), image_rotary_emb=rotary,
                          return_dict=False)[0]
            uncond, cond = v.chunk(2)
            scale = schedule.dynamic_cfg_scale(cfg, t.item(), steps) if dynamic else cfg
            x = scheduler.step(uncond + scale * (cond - uncond), t, x, return_dict=False)[0]
    return ours["samples"], x.transpose(1, 2)


@pytest.mark.host
@pytest.mark.parametrize("dynamic", [False, True], ids=["cfg", "dynamic_cfg"])
def test_core_euler_with_our_sigmas_reproduces_the_cogvideox_ddim_loop(tmp_path, dynamic):
    # 5 steps: 1000 is divisible by the step count, so the official DDIM steps land on the next timestep exactly
    ours, expected = _diffusers_ddim_sampling(tmp_path, steps=5, cfg=6.0, dynamic=dynamic)
    # the only difference: ComfyUI's stand-in for alpha-bar = 0 at t = 999 (4.9e-8)
    assert (ours - expected).abs().max().item() <= 1e-3 * expected.abs().max().item()


@pytest.mark.host
def test_i2v_model_concatenates_the_start_latent_like_the_pipeline(tmp_path):
    """5B-I2V layout (32 input channels, learned positions) from a diffusers folder with config.json."""
    import json

    import nodes
    from motionkit.models.comfy_glue import cogvideox as comfy_glue
    from motionkit.nodes.cogvideox import MotionKitCogVideoXImageToVideo

    config = dict(tiny.TINY_CONFIG, in_channels=32, sample_height=8, sample_width=12, sample_frames=9,
                  use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True)
    reference = _diffusers()(**config).eval()
    torch.manual_seed(4)
    state = {k: torch.randn_like(v) * 0.2 for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    folder = tmp_path / "transformer"
    folder.mkdir()
    safetensors.torch.save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "CogVideoXTransformer3DModel", **config}))
    patcher = comfy_glue.load_cogvideox(str(folder / "diffusion_pytorch_model.safetensors"))
    model = patcher.model
    start = torch.randn(1, 16, 3, 8, 12)
    positive, negative = [[torch.randn(1, 226, 64), {}]], [[torch.randn(1, 226, 64), {}]]
    positive, _negative = MotionKitCogVideoXImageToVideo().attach(positive, negative, {"samples": start})
    noise = torch.randn(1, 16, 3, 8, 12)
    concat = model.extra_conds(noise=noise, cross_attn=positive[0][0], **positive[0][1])["c_concat"].cond
    assert torch.equal(concat[:, :, :1], start[:, :, :1]) and not concat[:, :, 1:].any()
    sigma = model.model_sampling.sigmas[600].reshape(1)
    alphas = comfy_glue.cogvideox_alphas_cumprod(1.0)
    with torch.no_grad():
        got = model.apply_model(noise, sigma, c_concat=concat, c_crossattn=positive[0][0])
        sample = noise * alphas[600].sqrt().float()
        rotary = _reference_rope(16, 3, 4, 6, 4, 6)
        v = reference(torch.cat([sample, concat], dim=1).transpose(1, 2), positive[0][0], torch.tensor([600]),
                      image_rotary_emb=rotary, return_dict=False)[0].transpose(1, 2)
        expected = alphas[600].sqrt().float() * sample - (1 - alphas[600]).sqrt().float() * v
    assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())
    latent = {"samples": torch.zeros(1, 16, 3, 8, 12)}
    (out,) = nodes.common_ksampler(patcher, 0, 2, 5.0, "euler", "simple", positive, _negative, latent)
    assert out["samples"].shape == (1, 16, 3, 8, 12) and torch.isfinite(out["samples"]).all()


def test_chunked_attention_and_feed_forward_equal_the_plain_paths():
    """The blocks' memory-saving paths (heads / tokens a chunk at a time) against the plain forward."""
    from motionkit.models.cogvideox.transformer import CogVideoXAttention, CogVideoXFeedForward, rope_3d

    torch.manual_seed(2)
    attention = CogVideoXAttention(64, 4, 16).double().eval()
    feed_forward = CogVideoXFeedForward(64, 256).double().eval()
    for module in (attention, feed_forward):
        for p in module.parameters():
            p.data.normal_(0, 0.3)
    tokens = torch.randn(2, 7 + 3 * 4 * 6, 64, dtype=torch.float64)
    rope = tuple(r.double() for r in rope_3d(16, 3, 4, 6, 4, 6))
    with torch.no_grad():
        plain = attention(tokens, 7, rope)
        for heads in (1, 3, 4):
            chunked = attention.attend(*attention.project(tokens), 7, rope, heads)
            assert (chunked - plain).abs().max().item() <= 1e-12
        plain = feed_forward(tokens)
        for size in (5, 64, 1000):
            assert (feed_forward(tokens, size) - plain).abs().max().item() <= 1e-12
