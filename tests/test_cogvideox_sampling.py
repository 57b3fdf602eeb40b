"""The official CogVideoX DDIM and DPM steps (MotionKit CogVideoX Sampler) against diffusers' scheduler loops."""
import pytest
import torch

from scripts import harness

harness.import_pack()
from scripts.tiny_checkpoints import cogvideox as tiny  # noqa: E402

from references.cogvideox_official import official_loop  # noqa: E402


def _reference_rope(head_dim, frames, height, width, base_h, base_w):
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    crops = get_resize_crop_region_for_grid((height, width), base_w, base_h)
    return get_3d_rotary_pos_embed(head_dim, crops, (height, width), frames)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """The tiny CogVideoX as a ComfyUI MODEL and as diffusers' CogVideoXTransformer3DModel (same weights)."""
    from diffusers import CogVideoXTransformer3DModel

    from motionkit.models.comfy_glue import cogvideox as comfy_glue

    model = comfy_glue.load_cogvideox(str(tiny.write(tmp_path_factory.mktemp("models"))[0]))
    reference = CogVideoXTransformer3DModel(**tiny.TINY_CONFIG, use_rotary_positional_embeddings=True).eval()
    reference.load_state_dict(tiny.tiny_state_dict())
    return model, reference


def _sample_both(tiny_pair, kind, steps, seed=5, cfg=6.0):
    import comfy.sample
    from comfy_extras.nodes_custom_sampler import SamplerCustom

    from motionkit.nodes.cogvideox import MotionKitCogVideoXSampler, MotionKitCogVideoXScheduler

    model, reference = tiny_pair
    generator = torch.Generator().manual_seed(11)
    positive, negative = torch.randn(1, 226, 64, generator=generator), torch.randn(1, 226, 64, generator=generator)
    latent = {"samples": torch.zeros(1, 16, 3, 8, 12)}
    (sigmas,) = MotionKitCogVideoXScheduler().sigmas(model, steps)
    (sampler,) = MotionKitCogVideoXSampler().get_sampler(f"{kind} (official)")
    ours = SamplerCustom().sample(model, True, seed, cfg, [[positive, {}]], [[negative, {}]], sampler, sigmas,
                                  latent)[0]["samples"]

    rotary = _reference_rope(16, 3, 4, 6, 30, 45)
    context = torch.cat([negative, positive])

    def v_model(x, t):
        return reference(x, context, t, image_rotary_emb=rotary, return_dict=False)[0]

    noise = comfy.sample.prepare_noise(latent["samples"], seed).transpose(1, 2)  # the same initial noise
    expected = official_loop(v_model, kind, steps, noise, cfg, generator=torch.Generator().manual_seed(seed))
    return ours, expected.transpose(1, 2)


@pytest.mark.host
@pytest.mark.parametrize("steps", [3, 7, 30, 50])
@pytest.mark.parametrize("kind", ["ddim", "dpm"])
def test_official_sampler_reproduces_the_diffusers_scheduler_loop(tiny_pair, kind, steps):
    ours, expected = _sample_both(tiny_pair, kind, steps)
    error = (ours - expected).abs().max().item()
    assert error <= 2e-5 * expected.abs().max().item(), error


@pytest.mark.host
def test_core_euler_misses_the_official_step_when_steps_do_not_divide_1000(tiny_pair):
    """What the sampler fixes: at 3 steps the official DDIM moves the latent to 333 after evaluating at 666."""
    from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom

    from motionkit.nodes.cogvideox import MotionKitCogVideoXScheduler

    model, _ = tiny_pair
    ours, expected = _sample_both(tiny_pair, "ddim", 3)
    (sigmas,) = MotionKitCogVideoXScheduler().sigmas(model, 3)
    (euler,) = KSamplerSelect().get_sampler("euler")
    generator = torch.Generator().manual_seed(11)
    positive, negative = torch.randn(1, 226, 64, generator=generator), torch.randn(1, 226, 64, generator=generator)
    plain = SamplerCustom().sample(model, True, 5, 6.0, [[positive, {}]], [[negative, {}]], euler, sigmas,
                                   {"samples": torch.zeros(1, 16, 3, 8, 12)})[0]["samples"]
    assert (plain - expected).abs().max().item() > 100 * (ours - expected).abs().max().item()


@pytest.mark.host
def test_official_sampler_refuses_other_models():
    import comfy.model_patcher
    import comfy.supported_models
    from comfy_extras.nodes_custom_sampler import SamplerCustom

    from motionkit.nodes.cogvideox import MotionKitCogVideoXSampler

    config = comfy.supported_models.SD15({"use_checkpoint": False, "image_size": 32, "out_channels": 4,
                                          "use_spatial_transformer": True, "legacy": False, "in_channels": 4,
                                          "model_channels": 32, "num_res_blocks": [1], "transformer_depth": [1],
                                          "channel_mult": [1], "transformer_depth_middle": 1,
                                          "use_linear_in_transformer": False, "context_dim": 32, "num_heads": 1,
                                          "transformer_depth_output": [1, 1], "adm_in_channels": None,
                                          "use_temporal_resblock": False, "use_temporal_attention": False})
    unet = config.get_model({})
    patcher = comfy.model_patcher.ModelPatcher(unet, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    (sampler,) = MotionKitCogVideoXSampler().get_sampler("ddim (official)")
    sigmas = torch.tensor([14.6, 1.0, 0.0])
    from motionkit.models.cogvideox.sampling import CogVideoXSamplerError

    with pytest.raises(CogVideoXSamplerError) as error:
        SamplerCustom().sample(patcher, True, 0, 1.0, [[torch.zeros(1, 77, 32), {}]], [[torch.zeros(1, 77, 32), {}]],
                               sampler, sigmas, {"samples": torch.zeros(1, 4, 8, 8)})
    message = str(error.value)
    assert "CogVideoX Sampler (MotionKit) (ddim (official))" in message and "BaseModel" in message
    assert "use a core sampler" in message and "Load CogVideoX (MotionKit)" in message
