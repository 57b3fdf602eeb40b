"""EasyAnimate V5.1: parity with diffusers, checkpoint layouts, the ComfyUI model under core samplers, Qwen2-VL text."""
import re

import pytest
import torch

from scripts import harness

harness.import_pack()
from scripts.tiny_checkpoints import easyanimate_v51 as tiny  # noqa: E402

from motionkit.models.easyanimate import conditioning, dit_keys, schedule  # noqa: E402
from motionkit.models.easyanimate.transformer_v51 import EasyAnimateV51Transformer  # noqa: E402

SMALL = dict(num_attention_heads=2, attention_head_dim=16, out_channels=16, patch_size=2, num_layers=2,
             time_embed_dim=24, text_embed_dim=20, add_norm_text_encoder=True)


def _diffusers():
    from diffusers import EasyAnimateTransformer3DModel

    return EasyAnimateTransformer3DModel


def _reference(in_channels, seed=0):
    torch.manual_seed(seed)
    reference = _diffusers()(**SMALL, in_channels=in_channels, mmdit_layers=SMALL["num_layers"]).eval()
    state = {k: torch.randn_like(v) * 0.3 for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    return reference, state


@pytest.mark.parametrize("variant,channels", [("T2V", 16), ("InP", 33), ("Control", 48)])
@pytest.mark.parametrize("size", [(6, 10), (8, 8)])
def test_transformer_matches_diffusers(variant, channels, size):
    reference, state = _reference(channels)
    sd = dit_keys.detect(state, variant)
    config = dit_keys.config_from_state_dict(sd, variant)
    assert dit_keys.VARIANTS[config["in_channels"]] == variant
    ours = EasyAnimateV51Transformer(**config).eval()
    ours.load_state_dict(sd, strict=True)
    h, w = size
    torch.manual_seed(1)
    x, t, context = torch.randn(2, 16, 3, h, w), torch.tensor([999.0, 421.5]), torch.randn(2, 7, 20)
    extra = torch.randn(2, channels - 16, 3, h, w)
    kwargs = {"T2V": {}, "InP": {"inpaint_latents": extra}, "Control": {"control_latents": extra}}[variant]
    with torch.no_grad():
        expected = reference(x, t, encoder_hidden_states=context, return_dict=False, **kwargs)[0]
        got = ours(torch.cat([x, extra], dim=1), t, context)
    assert got.shape == (2, 16, 3, h, w)
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("tokens", [1, 7, 672])
def test_chunked_feed_forward_equals_the_plain_one(tokens):
    ours = EasyAnimateV51Transformer(**dict(SMALL, in_channels=16)).eval()
    block = ours.transformer_blocks[0]
    x = torch.randn(2, tokens, 32)
    with torch.no_grad():
        plain, chunked = block.feed(block.ff, x), block.feed_chunked(block.ff, x)
    assert (plain - chunked).abs().max().item() <= 1e-6


def test_official_layout_renames_each_text_stream_key_once():
    state = tiny.tiny_state_dict("inp")
    official = tiny.official_names(state)
    assert "transformer_blocks.1.attn2.to_out.0.weight" in official
    assert "transformer_blocks.1.attn1.to_add_out.weight" not in official
    renamed = dit_keys.detect({"model.diffusion_model." + k: v for k, v in official.items()}, "official")
    assert sorted(renamed) == sorted(state)
    assert all(torch.equal(renamed[k], state[k]) for k in state)
    hits = {k: sum(bool(p.match(k)) for p, _ in dit_keys.OFFICIAL_RENAMES) for k in official}
    assert max(hits.values()) == 1 and sum(hits.values()) == 12 * tiny.TINY_CONFIG["num_layers"]  # 6 modules, weight and bias


PUBLISHED_INP_PARAMETERS = {"EasyAnimateV5.1-12b": 11_799_265_856, "EasyAnimateV5.1-7b": 6_814_670_912}
"""Parameter counts of the published -InP transformers (their safetensors metadata)."""


@pytest.mark.parametrize("name", sorted(dit_keys.PUBLISHED))
@pytest.mark.parametrize("channels,variant", sorted(dit_keys.VARIANTS.items()))
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_published_key_sets_fill_our_model_on_meta(name, channels, variant, prefix):
    with torch.device("meta"):
        reference = _diffusers()(**dit_keys.PUBLISHED[name], in_channels=channels)
    published = {prefix + k: v for k, v in reference.state_dict().items()}
    sd = dit_keys.detect(published, name)
    config = dit_keys.config_from_state_dict(sd, name)
    assert {k: config[k] for k in dit_keys.PUBLISHED[name]} == dit_keys.PUBLISHED[name]
    model = EasyAnimateV51Transformer(**config, device="meta")
    dit_keys.check_keys(model, sd, name)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    parameters = sum(v.numel() for v in sd.values())
    if variant == "InP":
        assert parameters == PUBLISHED_INP_PARAMETERS[name]
    assert dit_keys.describe(config, parameters) == f"EasyAnimate V5.1 {name.split('-')[-1].upper()} {variant}"


def test_7b_single_stream_blocks_match_the_official_attention():
    """The 7B layout (MMDiT blocks first, then single-stream ones) against diffusers' model with the official
    single-stream attention (references/easyanimate_reference.py: diffusers' port differs there)."""
    from references.easyanimate_reference import official_single_stream

    torch.manual_seed(0)
    config = dict(SMALL, num_layers=3, mmdit_layers=1, in_channels=33)
    reference = official_single_stream(_diffusers()(**config).eval())
    state = {k: torch.randn_like(v) * 0.3 for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    sd = dit_keys.detect(state, "7b-like")
    ours_config = dit_keys.config_from_state_dict(sd, "7b-like")
    assert (ours_config["num_layers"], ours_config["mmdit_layers"]) == (3, 1)
    ours = EasyAnimateV51Transformer(**ours_config).eval()
    ours.load_state_dict(sd, strict=True)
    x, extra, context = torch.randn(2, 16, 3, 6, 10), torch.randn(2, 17, 3, 6, 10), torch.randn(2, 7, 20)
    t = torch.tensor([999.0, 421.5])
    with torch.no_grad():
        expected = reference(x, t, encoder_hidden_states=context, inpaint_latents=extra, return_dict=False)[0]
        got = ours(torch.cat([x, extra], dim=1), t, context)
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("keys,names", [
    ({"patch_embed.proj.weight": (3072, 16, 2, 2), "patch_embed.text_proj.weight": (3072, 4096)},
     ("CogVideoX transformer", "MotionKit Load CogVideoX")),
    ({"adaln_single.linear.weight": (6, 4), "pos_embed.proj.weight": (4, 4)},
     ("EasyAnimate V2/V3", "Load EasyAnimate V3 (MotionKit)")),
    ({"encoder.down_blocks.0.convs.0.conv1.weight": (4, 4)}, ("video VAE", "Load Video VAE (MotionKit)")),
    ({"model.layers.0.self_attn.q_proj.weight": (4, 4)}, ("Qwen2-VL text encoder", "Load EasyAnimate Qwen2-VL")),
    ({"first_stage_model.x.weight": (1,)}, ("not an EasyAnimate V5.1 transformer", "missing keys proj.weight")),
])
def test_other_files_are_refused_with_what_they_are_and_the_loader_that_fits(keys, names):
    with pytest.raises(dit_keys.EasyAnimateFormatError) as error:
        dit_keys.detect({k: torch.zeros(s, device="meta") for k, s in keys.items()}, "'x.safetensors'")
    message = str(error.value)
    assert "'x.safetensors'" in message and all(n in message for n in names), message


def test_v5_and_unknown_variants_are_refused():
    state = tiny.tiny_state_dict("t2v")
    v5 = dict(state, **{"text_proj.weight": torch.zeros(64, 1024), "text_proj_t5.weight": torch.zeros(64, 4096)})
    with pytest.raises(dit_keys.EasyAnimateFormatError, match="V5 transformer .*Bert \\+ T5.*V5.1"):
        dit_keys.detect(v5, "v5")
    odd = dict(state, **{"proj.weight": torch.zeros(32, 22, 2, 2)})
    with pytest.raises(dit_keys.EasyAnimateFormatError, match="22 input channels.*16 \\(T2V\\), 33 \\(InP\\), 48 \\(Control\\)"):
        dit_keys.config_from_state_dict(dit_keys.detect(odd, "odd"), "odd")


@pytest.mark.parametrize("steps,shift,dynamic", [(5, 1.0, False), (8, 3.0, False), (50, 1.0, False),
                                                 (25, float(torch.e), True), (50, float(torch.e), True)])
def test_flow_sigmas_equal_the_pipeline_scheduler(steps, shift, dynamic):
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0 if dynamic else shift, use_dynamic_shifting=dynamic)
    scheduler.set_timesteps(steps, mu=1)  # as the V5.1 pipelines call it
    assert torch.allclose(schedule.flow_sigmas(steps, shift, dynamic), scheduler.sigmas.float(), atol=1e-6, rtol=0)
    kept = schedule.flow_sigmas(steps, shift, dynamic, denoise=0.5)
    assert torch.equal(kept, schedule.flow_sigmas(steps, shift, dynamic)[-(steps // 2 + 1):])


@pytest.mark.host
def test_core_normal_scheduler_equals_the_pipeline_sigmas_for_a_static_shift(tiny_models):
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    from diffusers import FlowMatchEulerDiscreteScheduler

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue

    model = comfy_glue.load_easyanimate_v51(str(_t2v_path(tiny_models)))
    for steps, shift in ((5, 1.0), (8, 3.0), (50, 1.0), (25, 2.0)):
        patched = ModelSamplingSD3().patch(model, shift)[0]
        sigmas = comfy.samplers.calculate_sigmas(patched.get_model_object("model_sampling"), "normal", steps)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
        scheduler.set_timesteps(steps, mu=1)
        assert torch.allclose(sigmas.float(), scheduler.sigmas.float(), atol=1e-6, rtol=0), (steps, shift)


def test_mask_latent_equals_the_inpaint_pipeline_resize():
    from diffusers.pipelines.easyanimate.pipeline_easyanimate_inpaint import resize_mask

    start = torch.rand(32, 48, 3)
    _video, mask = conditioning.inpaint_video(start, torch.rand(32, 48, 3), 9)
    latent = torch.zeros(1, 16, 3, 4, 6)
    expected = resize_mask(1 - mask, latent, True) * 0.7125
    assert torch.equal(conditioning.mask_latent(mask, latent.shape, 0.7125), expected)
    assert mask[0, 0, 0].sum() == 0 and mask[0, 0, -1].sum() == 0 and mask[0, 0, 1:-1].all()


@pytest.mark.parametrize("frames", [0, 48, 50])
def test_frame_counts_other_than_4k_plus_1_are_refused(frames):
    with pytest.raises(ValueError) as error:
        conditioning.latent_frames(frames)
    assert f"length is {frames} frames" in str(error.value) and "4k+1" in str(error.value)


# ---------------------------------------------------------------- in ComfyUI
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ea51_models")
    tiny.write(folder)
    return folder


def _t2v_path(tiny_models):
    return tiny_models / "diffusion_models" / tiny.FOLDER / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors"


@pytest.mark.host
def test_any_shard_loads_the_whole_model_and_variants_are_detected(tiny_models):
    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue

    patcher = comfy_glue.load_easyanimate_v51(str(_t2v_path(tiny_models)))
    sampling = patcher.model.model_sampling  # the tiny folder's scheduler_config.json is the published one
    assert patcher.model.variant == "T2V" and (float(sampling.shift), sampling.dynamic_shifting) == (float(torch.e), True)
    expected = tiny.tiny_state_dict("t2v")
    got = patcher.model.diffusion_model.state_dict()
    assert sorted(got) == sorted(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    inp = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / tiny.INP_FILE))
    control = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / tiny.CONTROL_FILE))
    assert (inp.model.variant, control.model.variant) == ("InP", "Control")


def _pipeline_t2v(transformer, scheduler):
    from diffusers import AutoencoderKLMagvit, EasyAnimatePipeline

    vae = AutoencoderKLMagvit(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4, latent_channels=16)
    return EasyAnimatePipeline(vae=vae, text_encoder=None, tokenizer=None, transformer=transformer, scheduler=scheduler)


@pytest.mark.host
@pytest.mark.parametrize("schedule_kind", ["published", "static_shift_3"])
def test_core_sampler_reproduces_the_easyanimate_pipeline_loop(tiny_models, schedule_kind):
    """EasyAnimatePipeline.__call__ (flow-matching Euler, CFG 6) against core samplers: the published dynamic
    shifting through SamplerCustom + euler + EasyAnimate V5.1 Scheduler, a static shift through KSampler (euler,
    normal) after core ModelSamplingSD3."""
    import comfy.sample
    import nodes
    from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    from diffusers import FlowMatchEulerDiscreteScheduler

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue
    from motionkit.nodes.easyanimate import MotionKitEasyAnimateV51Scheduler, MotionKitEmptyEasyAnimateV51Latent

    model = comfy_glue.load_easyanimate_v51(str(_t2v_path(tiny_models)))
    reference = _diffusers()(**tiny.TINY_CONFIG).eval()
    reference.load_state_dict(tiny.tiny_state_dict("t2v"))
    torch.manual_seed(0)
    positive, negative = torch.randn(1, 12, 128), torch.randn(1, 12, 128)
    (latent,) = MotionKitEmptyEasyAnimateV51Latent().generate(48, 32, 9, 1)
    conds = [[positive, {}]], [[negative, {}]]
    if schedule_kind == "published":
        (sigmas,) = MotionKitEasyAnimateV51Scheduler().sigmas(model, 4)
        (sampler,) = KSamplerSelect().get_sampler("euler")
        (ours,) = SamplerCustom().sample(model, True, 5, 6.0, *conds, sampler, sigmas, latent)[:1]
        scheduler = FlowMatchEulerDiscreteScheduler(**{k: v for k, v in tiny.SCHEDULER_CONFIG.items() if k[0] != "_"})
    else:
        (model,) = ModelSamplingSD3().patch(model, 3.0)
        (ours,) = nodes.common_ksampler(model, 5, 4, 6.0, "euler", "normal", *conds, latent)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    noise = comfy.sample.prepare_noise(latent["samples"], 5)
    mask = torch.ones(1, 12, dtype=torch.long)
    with torch.no_grad():
        expected = _pipeline_t2v(reference, scheduler)(
            prompt_embeds=positive, negative_prompt_embeds=negative, prompt_attention_mask=mask,
            negative_prompt_attention_mask=mask, latents=noise, num_frames=9, height=32, width=48,
            guidance_scale=6.0, num_inference_steps=4, output_type="latent").frames
    assert ours["samples"].shape == expected.shape == (1, 16, 3, 4, 6)
    assert (ours["samples"] - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()


@pytest.mark.host
@pytest.mark.parametrize("variant", ["InP", "Control"])
def test_inp_and_control_channels_reach_the_transformer_like_the_pipelines(tiny_models, variant):
    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue

    name = tiny.INP_FILE if variant == "InP" else tiny.CONTROL_FILE
    patcher = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / name))
    channels = 33 if variant == "InP" else 48
    reference = _diffusers()(**dict(tiny.TINY_CONFIG, in_channels=channels)).eval()
    reference.load_state_dict(tiny.tiny_state_dict(variant.lower(), seed=1))
    torch.manual_seed(2)
    noise, context = torch.randn(1, 16, 3, 4, 6), torch.randn(1, 12, 128)
    extra = torch.randn(1, channels - 16, 3, 4, 6)
    key = comfy_glue.INPAINT_KEY if variant == "InP" else comfy_glue.CONTROL_KEY
    conds = patcher.model.extra_conds(noise=noise, cross_attn=context, **{key: extra})
    sigma = torch.tensor([0.6])
    with torch.no_grad():
        denoised = patcher.model.apply_model(noise, sigma, c_concat=conds["c_concat"].cond, c_crossattn=context)
        kwargs = {"inpaint_latents" if variant == "InP" else "control_latents": extra}
        velocity = reference(noise, torch.tensor([600.0]), encoder_hidden_states=context, return_dict=False, **kwargs)[0]
    assert (denoised - (noise - 0.6 * velocity)).abs().max().item() <= 1e-5


def _tiny_v5_vaes():
    """A tiny diffusers AutoencoderKLMagvit (16 latent channels) and the pack's Video VAE on the same weights."""
    from diffusers import AutoencoderKLMagvit

    from motionkit.models import video_vae

    torch.manual_seed(0)
    vae = AutoencoderKLMagvit(block_out_channels=(8, 8, 16, 16), latent_channels=16, layers_per_block=1,
                              norm_num_groups=4).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.normal_(0, 0.2)
    vae.register_to_config(cache_mag_vae=True)  # the published V5.1 vae/config.json sets it; the pipelines read it
    ours = video_vae.build_video_vae(vae.state_dict(), dict(vae.config, _class_name="AutoencoderKLMagvit"),
                                     name="tiny-v5", dtype=torch.float32)
    return vae, ours


@pytest.mark.host
def test_image_to_video_reproduces_the_inpaint_pipeline(tiny_models):
    """EasyAnimateInpaintPipeline.__call__ on a start image (frame 0 kept, the rest generated, as the official
    get_image_to_video_latent lays it out) against Image to Video -> core KSampler, same VAE and transformer."""
    import nodes
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    from diffusers import EasyAnimateInpaintPipeline, FlowMatchEulerDiscreteScheduler

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue
    from motionkit.nodes.easyanimate import MotionKitEasyAnimateV51ImageToVideo

    vae, ours_vae = _tiny_v5_vaes()
    transformer = _diffusers()(**dict(tiny.TINY_CONFIG, in_channels=33), 
                               add_noise_in_inpaint_model=False).eval()
    transformer.load_state_dict(tiny.tiny_state_dict("inp", seed=1))
    model = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / tiny.INP_FILE))
    positive, negative = torch.randn(1, 12, 128), torch.randn(1, 12, 128)
    image = torch.rand(1, 32, 48, 3)
    pos, neg, latent = MotionKitEasyAnimateV51ImageToVideo().encode([[positive, {}]], [[negative, {}]], ours_vae,
                                                                    image, 48, 32, 9, 1)
    (ours,) = nodes.common_ksampler(ModelSamplingSD3().patch(model, 1.0)[0], 3, 3, 6.0, "euler", "normal", pos, neg,
                                    latent)

    video = image.permute(3, 0, 1, 2)[None].repeat(1, 1, 9, 1, 1)
    mask = torch.ones(1, 1, 9, 32, 48)
    mask[:, :, 0] = 0
    pipe = EasyAnimateInpaintPipeline(vae=vae, text_encoder=None, tokenizer=None, transformer=transformer,
                                      scheduler=FlowMatchEulerDiscreteScheduler())
    attention = torch.ones(1, 12, dtype=torch.long)
    with torch.no_grad():
        expected = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, prompt_attention_mask=attention,
                        negative_prompt_attention_mask=attention, video=video, mask_video=mask,
                        generator=torch.Generator().manual_seed(3),  # the same noise as ComfyUI's prepare_noise
                        num_frames=9, height=32, width=48, guidance_scale=6.0, num_inference_steps=3,
                        output_type="latent").frames
    assert ours["samples"].shape == expected.shape == (1, 16, 3, 4, 6)
    assert (ours["samples"] - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()


@pytest.mark.host
@pytest.mark.parametrize("with_reference", [False, True])
def test_control_reproduces_the_control_pipeline(tiny_models, with_reference):
    """EasyAnimateControlPipeline.__call__ on a control video (and a reference image) against Video VAE Encode ->
    EasyAnimate V5.1 Control -> core KSampler, same VAE and transformer."""
    import nodes
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    from diffusers import EasyAnimateControlPipeline, FlowMatchEulerDiscreteScheduler

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue
    from motionkit.nodes.easyanimate import MotionKitEasyAnimateV51Control
    from motionkit.nodes.video_vae import MotionKitVideoVAEEncode

    vae, ours_vae = _tiny_v5_vaes()
    transformer = _diffusers()(**dict(tiny.TINY_CONFIG, in_channels=48)).eval()
    transformer.load_state_dict(tiny.tiny_state_dict("control", seed=1))
    model = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / tiny.CONTROL_FILE))
    torch.manual_seed(4)
    positive, negative = torch.randn(1, 12, 128), torch.randn(1, 12, 128)
    frames, reference = torch.rand(9, 32, 48, 3), torch.rand(1, 32, 48, 3)
    (control,) = MotionKitVideoVAEEncode().encode(ours_vae, frames, 0, 64)
    ref_latent = MotionKitVideoVAEEncode().encode(ours_vae, reference, 0, 64)[0] if with_reference else None
    pos, neg, latent = MotionKitEasyAnimateV51Control().encode([[positive, {}]], [[negative, {}]], control, 1,
                                                               ref_latent)
    (ours,) = nodes.common_ksampler(ModelSamplingSD3().patch(model, 1.0)[0], 8, 3, 6.0, "euler", "normal", pos, neg,
                                    latent)
    pipe = EasyAnimateControlPipeline(vae=vae, text_encoder=None, tokenizer=None, transformer=transformer,
                                      scheduler=FlowMatchEulerDiscreteScheduler())
    # diffusers 0.42.1's __call__ passes text_encoder_index, which its encode_prompt does not take (unused with
    # prompt_embeds given): accept and drop it on this instance
    encode_prompt = pipe.encode_prompt
    pipe.encode_prompt = lambda text_encoder_index=None, **kwargs: encode_prompt(**kwargs)
    attention = torch.ones(1, 12, dtype=torch.long)
    ref_image = reference.permute(3, 0, 1, 2)[None] if with_reference else None
    with torch.no_grad():
        expected = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, prompt_attention_mask=attention,
                        negative_prompt_attention_mask=attention, control_video=frames.permute(3, 0, 1, 2)[None],
                        ref_image=ref_image, generator=torch.Generator().manual_seed(8), num_frames=9, height=32,
                        width=48, guidance_scale=6.0, num_inference_steps=3, output_type="latent").frames
    assert ours["samples"].shape == expected.shape == (1, 16, 3, 4, 6)
    assert (ours["samples"] - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()


@pytest.mark.host
def test_bad_inputs_are_refused_before_the_first_step(tiny_models):
    import nodes

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue
    from motionkit.nodes.easyanimate import MotionKitEasyAnimateV51Control, MotionKitEmptyEasyAnimateV51Latent

    t2v = comfy_glue.load_easyanimate_v51(str(_t2v_path(tiny_models)))
    inp = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / tiny.INP_FILE))
    control = comfy_glue.load_easyanimate_v51(str(tiny_models / "diffusion_models" / tiny.CONTROL_FILE))
    text = [[torch.randn(1, 12, 128), {}]]
    (latent,) = MotionKitEmptyEasyAnimateV51Latent().generate(48, 32, 9, 1)

    def sample(model, positive, samples):
        return nodes.common_ksampler(model, 0, 1, 1.0, "euler", "normal", positive, positive, {"samples": samples})

    with pytest.raises(ValueError, match="4 channels; EasyAnimate V5.1 samples the 16-channel latents"):
        sample(t2v, text, torch.randn(1, 4, 3, 4, 6))  # an EasyAnimate V3 latent (an all-zero one ComfyUI widens)
    with pytest.raises(ValueError, match="InP model and needs a image: connect EasyAnimate V5.1 Image to Video"):
        sample(inp, text, latent["samples"])
    with pytest.raises(ValueError, match="Qwen2-VL-7B features \\(128 wide\\)"):
        sample(t2v, [[torch.randn(1, 12, 64), {}]], latent["samples"])
    small = {"samples": torch.zeros(1, 16, 2, 4, 6), "motionkit_vae_family": "easyanimate-v5"}
    positive, _negative, _ = MotionKitEasyAnimateV51Control().encode(text, text, small)
    with pytest.raises(ValueError, match=r"control video latents are \[32, 2, 4, 6\].*samples \[3, 4, 6\].*same size and frame count"):
        sample(control, positive, latent["samples"])
    with pytest.raises(ValueError, match="text-to-video model, but the conditioning carries a control video"):
        sample(t2v, positive, torch.zeros(1, 16, 2, 4, 6))
    cogvideox = {"samples": torch.zeros(1, 16, 3, 4, 6), "motionkit_vae_family": "cogvideox"}
    with pytest.raises(ValueError, match="control_video was encoded by the cogvideox VAE.*V5.1 VAE"):
        MotionKitEasyAnimateV51Control().encode(text, text, cogvideox)
    with pytest.raises(ValueError, match="length is 0 frames"):
        MotionKitEmptyEasyAnimateV51Latent().generate(48, 32, 0, 1)


@pytest.mark.host
def test_image_to_video_and_text_encoder_inputs_are_checked(tiny_models):
    import types

    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue
    from motionkit.nodes.easyanimate import MotionKitEasyAnimateV51ImageToVideo

    _vae, v5 = _tiny_v5_vaes()
    text = [[torch.randn(1, 12, 128), {}]]
    node = MotionKitEasyAnimateV51ImageToVideo()
    with pytest.raises(ValueError, match="start_image is nothing.*needs an IMAGE.*Load Image"):
        node.encode(text, text, v5, None, 48, 32, 9, 1)
    with pytest.raises(ValueError, match=r"start_image is shape \[0, 32, 48, 3\]"):
        node.encode(text, text, v5, torch.zeros(0, 32, 48, 3), 48, 32, 9, 1)
    cogvideox_vae = types.SimpleNamespace(name="cogvideox_vae.safetensors", version="cogvideox", latent_channels=16)
    with pytest.raises(ValueError, match="cogvideox_vae.safetensors \(cogvideox\).*V5/V5.1 VAE"):
        node.encode(text, text, cogvideox_vae, torch.rand(1, 32, 48, 3), 48, 32, 9, 1)
    with pytest.raises(ValueError, match="width x height is 40x32.*multiples of 16.*32x32"):
        node.encode(text, text, v5, torch.rand(1, 32, 48, 3), 40, 32, 9, 1)
    with pytest.raises(ValueError, match="length is 10 frames.*use 9 or 13"):
        node.encode(text, text, v5, torch.rand(1, 32, 48, 3), 48, 32, 10, 1)
    transformer_file = tiny_models / "diffusion_models" / tiny.CONTROL_FILE
    with pytest.raises(ValueError, match="is a diffusion transformer, not a text encoder: load it with Load EasyAnimate V5.1"):
        comfy_glue.load_qwen2vl(str(transformer_file))
    with pytest.raises(ValueError, match="is a Qwen2-VL text encoder: load it with Load EasyAnimate Qwen2-VL"):
        comfy_glue.load_easyanimate_v51(str(tiny_models / "text_encoders" / tiny.QWEN_FILE))


@pytest.mark.host
def test_half_weights_on_cpu_are_refused(tiny_models):
    from motionkit.models.comfy_glue import easyanimate_v51 as comfy_glue

    path = str(tiny_models / "diffusion_models" / tiny.CONTROL_FILE)
    with pytest.raises(ValueError, match=re.escape("weight_dtype 'fp8_e4m3fn', but ComfyUI runs on the CPU")):
        comfy_glue.load_easyanimate_v51(path, "fp8_e4m3fn")
    assert comfy_glue.load_easyanimate_v51(path, "bf16").model.get_dtype() == torch.bfloat16


QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == "
    "'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}")
"""The chat template Qwen2-VL-7B-Instruct publishes (chat_template.json), which the V5.1 pipelines apply."""


@pytest.mark.host
@pytest.mark.parametrize("prompt", ["a red fox runs across a snowy field at dawn", "一只狐狸在雪地里奔跑。" * 40])
def test_text_encode_equals_the_pipeline_prompt_embeds(tiny_models, prompt):
    """Core CLIP Text Encode on our Qwen2-VL CLIP against EasyAnimatePipeline.encode_prompt with transformers'
    Qwen2-VL on the same weights (the second prompt is longer than 256 tokens: truncated alike)."""
    import types
    from pathlib import Path

    import comfy.text_encoders.qwen_image as qwen_image
    import nodes
    from diffusers import EasyAnimatePipeline
    from transformers import Qwen2Tokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from motionkit.nodes.easyanimate import MotionKitLoadEasyAnimateQwen2VL
    import folder_paths

    folder_paths.add_model_folder_path("text_encoders", str(tiny_models / "text_encoders"))
    (clip,) = MotionKitLoadEasyAnimateQwen2VL().load(tiny.QWEN_FILE)
    (conditioning_out,) = nodes.CLIPTextEncode().encode(clip, prompt)
    got = conditioning_out[0][0]

    c = tiny.TINY_QWEN
    config = Qwen2VLConfig(text_config=dict(**c, rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=512,
                                            rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
                           vision_config=dict(depth=1, embed_dim=32, hidden_size=128, num_heads=2))
    encoder = Qwen2VLForConditionalGeneration(config).eval()
    published = {k: v.float() for k, v in tiny.tiny_qwen_state_dict().items() if not k.startswith("visual.")}
    state = {k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k: v
             for k, v in published.items()}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("model.visual.") for k in missing)
    tokenizer = Qwen2Tokenizer.from_pretrained(str(Path(qwen_image.__file__).parent / "qwen25_tokenizer"))
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    pipe = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=encoder, enable_text_attention_mask=True)
    with torch.no_grad():
        expected, _neg, mask, _ = EasyAnimatePipeline.encode_prompt(pipe, prompt, do_classifier_free_guidance=False,
                                                                    device=torch.device("cpu"), dtype=torch.float32)
    assert got.shape == expected.shape == (1, 256, 128)
    assert torch.equal(conditioning_out[0][1]["attention_mask"].bool(), mask.bool())
    # the same tokens and mask; float32 Llama implementations (ComfyUI's, transformers') differ in summation order
    assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())
