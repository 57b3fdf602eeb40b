"""EasyAnimate V5/V5.1 VAE: parity with diffusers' AutoencoderKLMagvit, streaming, tiles, batches, loading."""
import json
import sys

import pytest
import torch

from scripts import harness

harness.import_pack()
from references.slice_vae_official import as_images  # noqa: E402
video_vae = sys.modules["motionkit.models.video_vae"]
from motionkit.models.easyanimate import keys as ea_keys  # noqa: E402

ROOT = harness.ROOT
TOL = 1e-5


def _reference(spatial_group_norm: bool):
    from diffusers import AutoencoderKLMagvit

    torch.manual_seed(0)
    ref = AutoencoderKLMagvit(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1,
                              norm_num_groups=4, spatial_group_norm=spatial_group_norm).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.2)
    config = dict(ref.config, _class_name="AutoencoderKLMagvit")
    return ref, video_vae.build_video_vae(ref.state_dict(), config, name="tiny-v5", dtype=torch.float32)


@pytest.fixture(scope="module")
def magvit():
    return _reference(True)


@pytest.fixture(scope="module")
def magvit_chunk_norm():
    return _reference(False)


def test_v5_config_from_keys_and_config_json(magvit):
    ref, ours = magvit
    assert (ours.version, ours.latent_channels, ours.scaling_factor) == ("easyanimate-v5", 4, 0.7125)
    cfg = ea_keys.magvit_config(ref.state_dict(), {"norm_num_groups": 4})
    assert (cfg.block_out_channels, cfg.layers_per_block, cfg.latent_channels, cfg.temporal_ratio) == \
        ((8, 8, 16, 16), 1, 4, 4)
    assert set(ours.net.state_dict()) == set(ref.state_dict())


@pytest.mark.parametrize("fixture", ["magvit", "magvit_chunk_norm"])
@pytest.mark.parametrize("latent_frames", [1, 5])
def test_v5_decode_equals_diffusers(request, fixture, latent_frames):
    ref, ours = request.getfixturevalue(fixture)
    z = torch.randn(1, 4, latent_frames, 6, 5, generator=torch.Generator().manual_seed(latent_frames))
    with torch.no_grad():
        expected = as_images(ref.decode(z).sample)
    got = ours.decode(z * 0.7125)
    assert got.shape == expected.shape == ((latent_frames - 1) * 4 + 1, 48, 40, 3)
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("fixture", ["magvit", "magvit_chunk_norm"])
def test_v5_encode_equals_diffusers(request, fixture):
    ref, ours = request.getfixturevalue(fixture)
    frames = torch.rand(13, 40, 48, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref.encode(frames.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode() * 0.7125
    got = ours.encode(frames)
    assert got.shape == expected.shape == (1, 4, 4, 5, 6)
    assert (got - expected).abs().max().item() <= TOL


def test_v5_extra_frames_are_dropped_like_the_official_4k_plus_1(magvit):
    _, ours = magvit
    frames = torch.rand(15, 16, 16, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(ours.encode(frames), ours.encode(frames[:13]))


def test_v5_streamed_equals_whole_clip_decode(magvit):
    """Per-frame norms and causal convolutions: the first latent frame, then all others in one
    chunk (the whole clip), gives the frames of the one-at-a-time stream."""
    _, ours = magvit
    z = torch.randn(1, 4, 6, 4, 4, generator=torch.Generator().manual_seed(3))
    streamed = ours.decode(z)
    ours.net.decode_chunk = 5
    try:
        whole = ours.decode(z)
    finally:
        ours.net.decode_chunk = 1
    assert (streamed - whole).abs().max().item() <= TOL


def test_v5_tiled_decode_equals_diffusers_tiled_decode(magvit):
    ref, ours = magvit
    z = torch.randn(1, 4, 3, 6, 5, generator=torch.Generator().manual_seed(4))
    ref.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32,
                      tile_sample_stride_height=24, tile_sample_stride_width=24)
    try:
        with torch.no_grad():
            expected = as_images(ref.decode(z).sample)
    finally:
        ref.disable_tiling()
    got = ours.decode(z * 0.7125, video_vae.TilePlan.for_decode(32, 8, 8))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL


def test_v5_batch_of_two_equals_two_singles(magvit):
    _, ours = magvit
    z = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    singles = torch.cat([ours.decode(z[:1]), ours.decode(z[1:])])
    assert (ours.decode(z) - singles).abs().max().item() <= TOL
    frames = torch.rand(2, 5, 32, 32, 3, generator=torch.Generator().manual_seed(6))
    singles = torch.cat([ours.encode(frames[:1]), ours.encode(frames[1:])])
    assert (ours.encode(frames) - singles).abs().max().item() <= TOL


def test_tenth_decode_keeps_nothing_on_the_modules(magvit):
    _, ours = magvit
    z = torch.randn(1, 4, 3, 4, 4)
    first = ours.decode(z)
    for _ in range(9):
        last = ours.decode(z)
    assert torch.equal(first, last)
    assert [k for m in ours.net.modules() for k, v in vars(m).items() if isinstance(v, torch.Tensor)] == []


def test_v5_wrong_block_types_in_config_is_a_clear_error(magvit):
    ref, _ = magvit
    config = dict(ref.config, _class_name="AutoencoderKLMagvit", down_block_types=["SpatialDownBlock3D"] * 3)
    with pytest.raises(ValueError) as error:
        video_vae.build_video_vae(ref.state_dict(), config)
    assert all(fact in str(error.value) for fact in ("config.json", "3 down and 4 up", "4 levels")), str(error.value)


def test_cogvideox_latent_to_v5_vae_names_both(magvit):
    _, ours = magvit
    with pytest.raises(ValueError, match=r"^the latent has 16 channels but the video VAE 'tiny-v5' \(easyanimate-v5\) "
                                         r"expects 4: "):
        ours.decode(torch.zeros(1, 16, 2, 4, 4))


@pytest.mark.host
def test_example_workflow_decodes_nine_frames(comfy_server):
    outputs = comfy_server.run_ui_workflow(ROOT / "example_workflows" / "slice_vae_easyanimate_v5.json")
    (video,) = comfy_server.output_files(outputs)
    frames = comfy_server.video_frames(video)
    # 9 frames -> latents 1 + 2 -> 1 + 4 + 4 frames
    assert len(frames) == 9 and frames[0].shape == (48, 64, 3)


@pytest.mark.host
def test_published_folder_loads_through_the_node(models_dir, monkeypatch):
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "vae",
                        ([str(models_dir / "vae")], folder_paths.supported_pt_extensions))
    nodes = sys.modules["motionkit.nodes.video_vae"]
    name = "motionkit_tiny_easyanimate_v5/diffusion_pytorch_model.safetensors"
    assert name in folder_paths.get_filename_list("vae")
    (vae,) = nodes.MotionKitLoadVideoVAE().load(name, 0.0, "fp32")
    config = json.loads((models_dir / "vae" / "motionkit_tiny_easyanimate_v5" / "config.json").read_text())
    assert (vae.version, vae.latent_channels, vae.scaling_factor) == ("easyanimate-v5", 16, config["scaling_factor"])
    (latent,) = nodes.MotionKitVideoVAEEncode().encode(vae, torch.rand(5, 32, 40, 3), 0, 64)
    assert latent["samples"].shape == (1, 16, 2, 4, 5)
    (images,) = nodes.MotionKitSliceVAEDecode().decode(vae, latent, 0, 64)
    assert images.shape == (5, 32, 40, 3)


@pytest.mark.parametrize("kind", ["stride 1", "stride 2", "upsample", "zero padding", "consume"])
def test_causal_conv_fast_path_equals_the_plain_path(kind):
    """The in-place, frame-by-frame causal convolution equals the plain one, chunk after chunk (float64)."""
    from motionkit.models.easyanimate import magvit
    from motionkit.models.video_vae import StreamState

    stride = (2, 2, 2) if kind == "stride 2" else 1
    conv = magvit.causal_conv3d(torch.nn)(4, 4, 3, stride=stride, padding=0 if kind == "stride 2" else 1,
                                          dtype=torch.float64, upsample=kind == "upsample")
    conv.state_key = "conv"
    fast, plain = StreamState(zero_padding=kind == "zero padding"), StreamState(zero_padding=kind == "zero padding")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for frames in (1, 4, 2, 4, 8) if kind == "stride 2" else (1, 4, 2, 1, 5):  # the encoder's chunks: 1, then 4
            x = torch.randn(2, 4, frames, 6, 6, generator=g, dtype=torch.float64)
            want = conv.forward_plain(x, plain)
            got = conv(x.clone(), fast, consume=kind == "consume")
            assert got.shape == want.shape and torch.allclose(got, want, rtol=0, atol=1e-12), (kind, frames)
            assert fast.frames.keys() == plain.frames.keys()
            assert all(torch.equal(fast.frames[k], plain.frames[k]) for k in fast.frames)
