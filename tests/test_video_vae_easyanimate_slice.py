"""EasyAnimate V2, V3 and V4 slice VAEs: parity with the official sliced algorithms.

diffusers has no class for them; the references (references/slice_vae_official.py) re-implement the
official decode and encode of each version from aigc-apps/EasyAnimate.
"""
import sys

import pytest
import torch

from scripts import harness

harness.import_pack()
from references.slice_vae_official import (build_reference, official_v2_decode, official_v2_encode,  # noqa: E402
                                official_v3_decode, official_v3_encode, official_v4_decode)
video_vae = sys.modules["motionkit.models.video_vae"]
from motionkit.models.easyanimate import keys as ea_keys  # noqa: E402

TOL = 1e-5
GROUPS = 4
CONFIG = {"_class_name": "AutoencoderKLMagvit", "slice_mag_vae": True, "slice_compression_vae": False,
          "cache_compression_vae": False, "cache_mag_vae": False, "mini_batch_encoder": 9, "mini_batch_decoder": 3,
          "norm_num_groups": GROUPS, "spatial_group_norm": False, "scaling_factor": 0.1825,
          "mid_block_attention_type": "3d", "mid_block_use_attention": True,
          "down_block_types": "('SpatialDownBlock3D', 'SpatialTemporalDownBlock3D', 'SpatialTemporalDownBlock3D', "
                              "'SpatialTemporalDownBlock3D')"}


def _frames(decoded):
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1)


@pytest.fixture(scope="module")
def v2():
    torch.manual_seed(0)
    ref, attentions, state = build_reference(groups=GROUPS)
    ours = video_vae.build_video_vae(state, CONFIG, name="tiny-v2", dtype=torch.float32)
    return ref, attentions, state, ours


def test_v2_is_detected_from_attention_keys_and_config(v2):
    *_, ours = v2
    assert (ours.version, ours.latent_channels, ours.scaling_factor) == ("easyanimate-v2", 4, 0.1825)
    cfg = ours.net.cfg
    assert (cfg.mid_block_attention, cfg.spatial_group_norm, cfg.slice_latents, cfg.slice_frames) == (True, False, 3, 9)


@pytest.mark.parametrize("latent_frames", [3, 7])
def test_v2_decode_equals_official_sliced_decode(v2, latent_frames):
    ref, attentions, _, ours = v2
    z = torch.randn(1, 4, latent_frames, 5, 6, generator=torch.Generator().manual_seed(latent_frames))
    with torch.no_grad():
        expected = _frames(official_v2_decode(ref, attentions, z))
    got = ours.decode(z * 0.1825)
    assert got.shape == expected.shape == ((9 + 9 + 1 if latent_frames == 7 else 9), 40, 48, 3)
    assert (got - expected).abs().max().item() <= TOL


def test_v2_batch_of_two_equals_two_singles(v2):
    *_, ours = v2
    z = torch.randn(2, 4, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    singles = torch.cat([ours.decode(z[:1]), ours.decode(z[1:])])
    assert (ours.decode(z) - singles).abs().max().item() <= TOL


def test_slice_vae_without_config_or_with_two_flags_is_refused(v2):
    *_, state, _ = v2
    with pytest.raises(ValueError, match=r"^tiny-v2 is an official EasyAnimate slice VAE \(mid-block attention keys\) "
                                         r"but there is no config.json beside it"):
        video_vae.build_video_vae(state, None, name="tiny-v2")
    both = dict(CONFIG, slice_compression_vae=True)
    with pytest.raises(ValueError) as error:
        video_vae.build_video_vae(state, both, name="tiny-both")
    facts = (
        'config.json beside tiny-both', 'slice_mag_vae', 'slice_compression_vae', 'exactly one of',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)
    assert ea_keys.official_mode(CONFIG, "x") == "slice_mag_vae"


# ---------------------------------------------------------------- V3 and V4
V3_CONFIG = dict(CONFIG, slice_mag_vae=False, slice_compression_vae=True, mini_batch_encoder=8, mini_batch_decoder=2)
V4_CONFIG = dict(V3_CONFIG, slice_compression_vae=False, cache_compression_vae=True)


@pytest.mark.parametrize("version,config,reference", [("easyanimate-v3", V3_CONFIG, official_v3_decode),
                                                      ("easyanimate-v4", V4_CONFIG, official_v4_decode)])
@pytest.mark.parametrize("latent_frames", [1, 4, 7])
def test_v3_v4_decode_equal_official_decode(v2, version, config, reference, latent_frames):
    ref, attentions, state, _ = v2
    ours = video_vae.build_video_vae(state, config, name=version, dtype=torch.float32)
    assert ours.version == version
    z = torch.randn(1, 4, latent_frames, 5, 6, generator=torch.Generator().manual_seed(10 + latent_frames))
    with torch.no_grad():
        expected = _frames(reference(ref, attentions, z))
    got = ours.decode(z * 0.1825)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("config,official,frames,latent_frames", [
    (CONFIG, official_v2_encode, 18, 6),  # 2 independent slices of 9 frames
    (V3_CONFIG, official_v3_encode, 17, 5),  # the first frame alone, then 2 slices of 8
    (V4_CONFIG, official_v3_encode, 17, 5),  # V4 encodes as V3
], ids=["v2", "v3", "v4"])
def test_encode_equals_official_sliced_encode(v2, config, official, frames, latent_frames):
    ref, attentions, state, _ = v2
    ours = video_vae.build_video_vae(state, config, name="tiny", dtype=torch.float32)
    images = torch.rand(1, frames, 32, 40, 3, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        expected = official(ref, attentions, images.permute(0, 4, 1, 2, 3) * 2 - 1) * 0.1825
    got = ours.encode(images)
    assert got.shape == expected.shape == (1, 4, latent_frames, 4, 5)
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.host
def test_official_v3_folder_loads_and_streams_through_the_nodes(models_dir, monkeypatch):
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "vae",
                        ([str(models_dir / "vae")], folder_paths.supported_pt_extensions))
    nodes = sys.modules["motionkit.nodes.video_vae"]
    (vae,) = nodes.MotionKitLoadVideoVAE().load("motionkit_tiny_easyanimate_v3/diffusion_pytorch_model.safetensors",
                                                0.0, "fp32")
    assert (vae.version, vae.latent_channels, vae.scaling_factor) == ("easyanimate-v3", 4, 0.1825)
    (latent,) = nodes.MotionKitVideoVAEEncode().encode(vae, torch.rand(17, 32, 32, 3), 0, 64)
    assert latent["samples"].shape == (1, 4, 5, 4, 4)  # the first frame alone, then 2 slices of 8 frames
    (images,) = nodes.MotionKitSliceVAEDecode().decode(vae, latent, 0, 64)
    assert images.shape == (17, 32, 32, 3)  # 1 + 2 slices x 2 latent frames x 4


@pytest.mark.host
def test_example_workflow_decodes_seventeen_frames(comfy_server):
    outputs = comfy_server.run_ui_workflow(harness.ROOT / "example_workflows" / "slice_vae_easyanimate_v3.json")
    (video,) = comfy_server.output_files(outputs)
    frames = comfy_server.video_frames(video)
    # 17 frames -> latents 1 + 2 + 2 -> the lone first frame, then two context slices of 8 frames
    assert len(frames) == 17 and frames[0].shape == (48, 64, 3)
