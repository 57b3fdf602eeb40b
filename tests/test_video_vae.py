"""Video VAE (CogVideoX): parity with diffusers, streaming, tiles, batches, loading and bad input."""
import json
import sys

import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from references.slice_vae_official import as_images  # noqa: E402
video_vae = sys.modules["motionkit.models.video_vae"]
from motionkit.models.cogvideox import vae_keys as cog_keys  # noqa: E402

ROOT = harness.ROOT
TOL = 1e-5


@pytest.fixture(scope="module")
def cogvideox():
    from scripts.tiny_checkpoints.video_vae import diffusers_cogvideox_vae

    ref, config = diffusers_cogvideox_vae(latent_channels=4)
    ours = video_vae.build_video_vae(ref.state_dict(), config, name="tiny-cogvideox", dtype=torch.float32)
    return ref, ours


def test_cogvideox_detects_config_from_keys(cogvideox):
    ref, ours = cogvideox
    cfg = cog_keys.config_from_state_dict(ref.state_dict(), {"norm_num_groups": 4, "scaling_factor": 0.7})
    assert (cfg.block_out_channels, cfg.layers_per_block, cfg.latent_channels) == ((8, 8, 16, 16), 1, 4)
    assert (ours.version, ours.latent_channels, ours.scaling_factor) == ("cogvideox", 4, 0.7)
    assert set(ours.net.state_dict()) == set(ref.state_dict())


@pytest.mark.parametrize("latent_frames", [1, 4, 7])
def test_cogvideox_decode_equals_diffusers(cogvideox, latent_frames):
    ref, ours = cogvideox
    z = torch.randn(1, 4, latent_frames, 5, 6, generator=torch.Generator().manual_seed(latent_frames))
    with torch.no_grad():
        expected = as_images(ref.decode(z).sample)
    got = ours.decode(z * 0.7)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL


def test_cogvideox_encode_equals_diffusers(cogvideox):
    ref, ours = cogvideox
    frames = torch.rand(17, 40, 48, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref.encode(frames.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode() * 0.7
    got = ours.encode(frames)
    assert got.shape == expected.shape == (1, 4, 5, 5, 6)
    assert (got - expected).abs().max().item() <= TOL


def _tiled_reference(ref, call):
    """diffusers' result with its tiling on (48x40-pixel tiles, CogVideoX's overlap factors 1/6 and 1/5)."""
    ref.enable_tiling(tile_sample_min_height=48, tile_sample_min_width=40)
    try:
        with torch.no_grad():
            return call()
    finally:
        ref.disable_tiling()


def test_cogvideox_tiled_decode_equals_diffusers_tiled_decode(cogvideox):
    ref, ours = cogvideox
    z = torch.randn(1, 4, 5, 10, 9, generator=torch.Generator().manual_seed(2))
    expected = as_images(_tiled_reference(ref, lambda: ref.decode(z).sample))
    # diffusers' CogVideoX tiles: 6x5 latents, stride int(6*5/6)=5 and int(5*4/5)=4, blend 48/6=8 and 40/5=8
    plan = video_vae.TilePlan(6, 5, 5, 4, 8, 8, 40, 32)
    got = ours.decode(z * 0.7, plan)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL


def test_cogvideox_tiled_encode_equals_diffusers_tiled_encode(cogvideox):
    ref, ours = cogvideox
    frames = torch.rand(1, 9, 80, 72, 3, generator=torch.Generator().manual_seed(7))
    expected = _tiled_reference(ref, lambda: ref.encode(frames.permute(0, 4, 1, 2, 3) * 2 - 1).latent_dist.mode()) * 0.7
    # diffusers: 48x40-pixel tiles, stride int(48*5/6)=40 and int(40*4/5)=32, blend int(6/6)=1 and int(5/5)=1
    plan = video_vae.TilePlan(48, 40, 40, 32, 1, 1, 5, 4)
    got = ours.encode(frames, plan)
    assert got.shape == expected.shape == (1, 4, 3, 10, 9)
    assert (got - expected).abs().max().item() <= TOL


def test_cogvideox_batch_of_two_equals_two_singles(cogvideox):
    _, ours = cogvideox
    z = torch.randn(2, 4, 5, 4, 4, generator=torch.Generator().manual_seed(3))
    both = ours.decode(z)
    singles = torch.cat([ours.decode(z[:1]), ours.decode(z[1:])])
    assert (both - singles).abs().max().item() <= TOL
    frames = torch.rand(2, 9, 32, 32, 3, generator=torch.Generator().manual_seed(4))
    both = ours.encode(frames)
    singles = torch.cat([ours.encode(frames[:1]), ours.encode(frames[1:])])
    assert (both - singles).abs().max().item() <= TOL


def test_decode_reports_progress_per_chunk_and_keeps_no_state(cogvideox, monkeypatch):
    _, ours = cogvideox
    host = sys.modules["motionkit.models.host"]
    bars = []

    class Bar:
        def __init__(self, total):
            self.total, self.steps = total, 0
            bars.append(self)

        def update(self, n):
            self.steps += n

    monkeypatch.setattr(host, "progress_bar", Bar)
    ours.decode(torch.randn(1, 4, 7, 3, 3))
    assert [(b.total, b.steps) for b in bars] == [(3, 3)]  # 7 latent frames: chunks 0:3, 3:5, 5:7
    tensors = [k for m in ours.net.modules() for k, v in vars(m).items() if isinstance(v, torch.Tensor)]
    assert tensors == []


def test_interrupt_between_chunks_stops_decode(cogvideox, monkeypatch):
    _, ours = cogvideox
    host = sys.modules["motionkit.models.host"]
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("cancelled")

    monkeypatch.setattr(host, "check_interrupt", interrupt)
    with pytest.raises(KeyboardInterrupt):
        ours.decode(torch.randn(1, 4, 7, 3, 3))
    assert len(calls) == 2


# ---------------------------------------------------------------- bad input
def test_channel_mismatch_names_both_sides(cogvideox):
    _, ours = cogvideox
    with pytest.raises(ValueError) as error:
        ours.decode(torch.zeros(1, 16, 3, 4, 4))
    facts = (
        '16 channels', "'tiny-cogvideox'", 'expects 4', 'the VAE of the model that made it',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_image_latent_is_refused(cogvideox):
    _, ours = cogvideox
    with pytest.raises(ValueError) as error:
        ours.decode(torch.zeros(1, 4, 8, 8))
    facts = (
        '4D [1, 4, 8, 8]', "'tiny-cogvideox'", '[B,C,T,H,W]', 'a latent made for this VAE',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_unknown_weights_list_what_was_checked():
    with pytest.raises(ValueError) as error:
        video_vae.build_video_vae({"first_stage_model.decoder.conv_in.weight": torch.zeros(1)}, name="sd.safetensors")
    facts = (
        'sd.safetensors', 'not a video VAE', 'first_stage_model.decoder.conv_in.weight',
        'EasyAnimate V5/V5.1 VAE: missing', 'CogVideoX VAE: missing', 'config.json',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_unknown_config_names_both_sides(tmp_path, cogvideox):
    ref, _ = cogvideox
    folder = tmp_path / "CogVideoX-5b"
    folder.mkdir()
    safetensors.torch.save_file(ref.state_dict(), str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan"}))
    with pytest.raises(ValueError) as error:
        video_vae.load_video_vae(str(folder / "diffusion_pytorch_model.safetensors"))
    facts = (
        'config.json beside diffusion_pytorch_model.safetensors', "'AutoencoderKLWan'", 'CogVideoX VAE',
        'matching config.json',
    )
    assert all(fact in str(error.value) for fact in facts), str(error.value)


def test_published_folder_reads_config_json(tmp_path, cogvideox):
    ref, ours = cogvideox
    folder = tmp_path / "CogVideoX-5b" / "vae"
    folder.mkdir(parents=True)
    safetensors.torch.save_file(ref.state_dict(), str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps(dict(ref.config, _class_name="AutoencoderKLCogVideoX")))
    loaded = video_vae.load_video_vae(str(folder / "diffusion_pytorch_model.safetensors"), dtype=torch.float32)
    assert (loaded.version, loaded.scaling_factor, loaded.net.cfg.norm_num_groups) == ("cogvideox", 0.7, 4)
    z = torch.randn(1, 4, 3, 4, 4)
    assert torch.equal(loaded.decode(z), ours.decode(z))


# ---------------------------------------------------------------- in ComfyUI
@pytest.mark.host
def test_nodes_load_from_the_vae_folder_under_model_management(models_dir, monkeypatch):
    import comfy.model_management
    import comfy.model_patcher
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "vae",
                        ([str(models_dir / "vae")], folder_paths.supported_pt_extensions))
    nodes = sys.modules["motionkit.nodes.video_vae"]
    (vae,) = nodes.MotionKitLoadVideoVAE().load("motionkit_tiny_cogvideox_vae.safetensors", 0.0, "auto")
    assert isinstance(vae.model_patcher, comfy.model_patcher.ModelPatcher)
    assert (vae.version, vae.latent_channels, vae.scaling_factor) == ("cogvideox", 16, cog_keys.SCALING_FACTOR_2B)
    frames = torch.rand(9, 48, 64, 3, generator=torch.Generator().manual_seed(5))
    (latent,) = nodes.MotionKitVideoVAEEncode().encode(vae, frames, 0, 64)
    assert latent["samples"].shape == (1, 16, 3, 6, 8)
    assert any(m.model is vae.model_patcher for m in comfy.model_management.current_loaded_models)
    (images,) = nodes.MotionKitSliceVAEDecode().decode(vae, latent, 0, 64)
    assert images.shape == (9, 48, 64, 3)
    (tiled,) = nodes.MotionKitSliceVAEDecode().decode(vae, latent, 32, 16)
    assert tiled.shape == (9, 48, 64, 3)
    with pytest.raises(ValueError, match=r"tile_overlap \(32\) must be smaller than tile_size \(32\)"):
        nodes.MotionKitSliceVAEDecode().decode(vae, latent, 32, 32)


@pytest.mark.host
def test_example_workflow_decodes_nine_frames(comfy_server):
    outputs = comfy_server.run_ui_workflow(ROOT / "example_workflows" / "slice_vae_cogvideox.json")
    (video,) = comfy_server.output_files(outputs)
    frames = comfy_server.video_frames(video)
    # 9 frames -> one encoder chunk -> 3 latent frames -> one decoder chunk of 3 -> 9 frames
    assert len(frames) == 9 and frames[0].shape == (48, 64, 3)


def test_latents_carry_their_vae_and_a_known_mismatch_is_refused(tmp_path):
    from scripts.tiny_checkpoints import video_vae as tiny_vae

    nodes = sys.modules["motionkit.nodes.video_vae"]
    cogvideox_file, v5_file = tiny_vae.write(tmp_path)[:2]  # both 16-channel
    cog, v5 = video_vae.load_video_vae(str(cogvideox_file)), video_vae.load_video_vae(str(v5_file))
    frames = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    (latent,) = nodes.MotionKitVideoVAEEncode().encode(v5, frames, 0, 64)
    assert latent[video_vae.LATENT_FAMILY_KEY] == "easyanimate-v5"
    with pytest.raises(video_vae.VideoVAEError) as error:
        nodes.MotionKitSliceVAEDecode().decode(cog, latent, 0, 64)
    assert all(fact in str(error.value) for fact in ("easyanimate-v5", "cogvideox", cog.name, "Load the easyanimate-v5"))
    assert nodes.MotionKitSliceVAEDecode().decode(v5, latent, 0, 64)[0].shape == (5, 32, 32, 3)
    untagged = {"samples": latent["samples"]}  # e.g. from another pack's node: both have 16 channels, accepted
    assert nodes.MotionKitSliceVAEDecode().decode(cog, untagged, 0, 64)[0].shape[1:] == (32, 32, 3)
