"""Motion VAE Encode's posterior: the official Tora pipeline's seeded sample, bit for bit, or the mean."""
import pytest
import torch

from scripts import harness

harness.import_pack()
from references.cogvideox_official import official_motion_latents  # noqa: E402


@pytest.fixture(scope="module")
def vae_pair():
    """A small CogVideoX VAE (16 latent channels, as Tora needs) in diffusers and in the pack, same weights."""
    from motionkit.models import video_vae
    from scripts.tiny_checkpoints.video_vae import diffusers_cogvideox_vae

    reference, config = diffusers_cogvideox_vae(latent_channels=16)
    return reference, lambda dtype: video_vae.build_video_vae(reference.state_dict(), config, name="tiny", dtype=dtype)


def _flow(frames=17, height=48, width=64, seed=1):
    """An RGB flow video as torchvision's flow_to_image gives it (uint8)."""
    return torch.randint(0, 256, (frames, height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("seed", [0, 1234])
def test_official_sample_reproduces_the_pipeline_bit_for_bit(vae_pair, dtype, seed):
    from motionkit.models.tora.motion import encode_motion

    reference, build = vae_pair
    flow = _flow()
    expected = official_motion_latents(reference.to(dtype), flow, seed, dtype).transpose(1, 2)
    got = encode_motion(build(dtype), flow.float() / 255, 0.7, posterior="sample (official)", seed=seed)
    assert got.dtype == torch.float32 and got.shape == expected.shape == (1, 16, 5, 6, 8)
    assert torch.equal(got, expected.float())
    other = encode_motion(build(dtype), flow.float() / 255, 0.7, posterior="sample (official)", seed=seed + 1)
    assert not torch.equal(other, got)


def test_official_sample_with_tiles_equals_the_pipeline_with_diffusers_tiling(vae_pair):
    from motionkit.models import video_vae
    from motionkit.models.tora.motion import encode_motion

    reference, build = vae_pair
    flow = _flow(9, 80, 64, seed=3)
    reference.float().enable_tiling(tile_sample_min_height=48, tile_sample_min_width=40)
    try:
        expected = official_motion_latents(reference, flow, 42).transpose(1, 2)
    finally:
        reference.disable_tiling()
    # diffusers' tiles: 48x40 pixels, stride 40x32, blend 1 latent pixel each way (as tests/test_video_vae.py)
    plan = video_vae.TilePlan(48, 40, 40, 32, 1, 1, 5, 4)
    got = encode_motion(build(torch.float32), flow.float() / 255, 0.7, plan, posterior="sample (official)", seed=42)
    assert torch.equal(got, expected)


def test_mean_is_the_posterior_mean(vae_pair):
    from motionkit.models.tora.motion import encode_motion

    reference, build = vae_pair
    flow = _flow()
    video = flow.permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = reference.float().encode(video).latent_dist.mode() * 0.7
    got = encode_motion(build(torch.float32), flow.float() / 255, 0.7, posterior="mean")
    assert (got - expected).abs().max().item() <= 1e-6


def test_unknown_posterior_is_refused(vae_pair):
    from motionkit.models.tora.motion import MotionEncodeError, encode_motion

    _reference, build = vae_pair
    with pytest.raises(MotionEncodeError) as error:
        encode_motion(build(torch.float32), _flow().float() / 255, 0.7, posterior="mode")
    assert "'sample (official)', 'mean'" in str(error.value) and "'mode'" in str(error.value)
