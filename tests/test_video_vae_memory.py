"""Peak memory of the streamed decode stays flat in clip length (CPU, no GPU needed).

Peak tensor memory is measured by references/peak_memory.PeakMemory (a TorchDispatchMode
that counts every storage from creation to release). The output video itself grows with
length by definition, so the figure compared is the peak minus the output's bytes: the
decoder's working memory.
"""
import sys

import pytest
import torch

from scripts import harness

harness.import_pack()
video_vae = sys.modules["motionkit.models.video_vae"]
from references.peak_memory import peak_bytes  # noqa: E402
from references.slice_vae_official import build_reference  # noqa: E402

SLICE_FLAGS = {"easyanimate-v2": "slice_mag_vae", "easyanimate-v3": "slice_compression_vae",
               "easyanimate-v4": "cache_compression_vae"}


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind in SLICE_FLAGS:
        ref, _, state = build_reference()
        config = {"_class_name": "AutoencoderKLMagvit", SLICE_FLAGS[kind]: True, "norm_num_groups": 4}
        return ref, video_vae.build_video_vae(state, config, dtype=torch.float32)
    if kind == "easyanimate-v5":
        from diffusers import AutoencoderKLMagvit as cls
        name = "AutoencoderKLMagvit"
    else:
        from diffusers import AutoencoderKLCogVideoX as cls
        name = "AutoencoderKLCogVideoX"
    ref = cls(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4).eval()
    ours = video_vae.build_video_vae(ref.state_dict(), dict(ref.config, _class_name=name), dtype=torch.float32)
    return ref, ours


def _working_memory(vae, latent, tiles=None) -> int:
    vae.decode(latent[:, :, :2], tiles)  # warm-up: the first call of a process allocates once-only buffers
    peak, images = peak_bytes(vae.decode, latent, tiles)
    return peak - images.numel() * images.element_size()


@pytest.mark.parametrize("kind", ["easyanimate-v5", "cogvideox", "easyanimate-v2", "easyanimate-v3", "easyanimate-v4"])
def test_streamed_decode_peak_is_flat_in_clip_length(kind):
    ref, ours = _tiny(kind)
    assert ours.version == kind
    peaks = []
    for length in (1, 2, 4):
        latent = torch.randn(1, 4, 1 + 3 * length, 8, 8, generator=torch.Generator().manual_seed(length))
        peaks.append(_working_memory(ours, latent))
    assert max(peaks) <= 1.10 * min(peaks), peaks
    if kind in SLICE_FLAGS:
        return
    # the same measurement sees diffusers' plain decode grow with length (it keeps every decoded chunk)
    small, _ = peak_bytes(lambda z: ref.decode(z).sample, torch.randn(1, 4, 5, 8, 8))
    large, _ = peak_bytes(lambda z: ref.decode(z).sample, torch.randn(1, 4, 17, 8, 8))
    assert large > 2.5 * small


@pytest.mark.parametrize("kind", ["easyanimate-v2", "easyanimate-v3"])
def test_tiled_slices_keep_no_state_and_need_less_than_untiled(kind):
    """Independent slices keep no state after a tile is done, so tiling cuts the working memory."""
    _, ours = _tiny(kind)
    tiles = video_vae.TilePlan.for_decode(32, 8, 8)
    peaks = [_working_memory(ours, torch.randn(1, 4, frames, 10, 10, generator=torch.Generator().manual_seed(frames)),
                             tiles) for frames in (3, 9)]
    assert max(peaks) <= 1.10 * min(peaks), peaks
    untiled = _working_memory(ours, torch.randn(1, 4, 9, 10, 10))
    assert max(peaks) < 0.6 * untiled, (peaks, untiled)


def test_tiled_streamed_decode_peak_is_flat_and_below_diffusers_tiled():
    ref, ours = _tiny("easyanimate-v5")
    tiles = video_vae.TilePlan.for_decode(32, 8, 8)
    peaks = []
    for length in (1, 2, 4):
        latent = torch.randn(1, 4, 1 + 2 * length, 10, 10, generator=torch.Generator().manual_seed(length))
        peaks.append(_working_memory(ours, latent, tiles))
    assert max(peaks) <= 1.10 * min(peaks), peaks
    ref.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32,
                      tile_sample_stride_height=24, tile_sample_stride_width=24)
    latent = torch.randn(1, 4, 9, 10, 10)
    diffusers_peak, images = peak_bytes(lambda z: ref.decode(z).sample, latent)
    assert max(peaks) < 0.5 * (diffusers_peak - images.numel() * images.element_size()), (peaks, diffusers_peak)


@pytest.mark.host
def test_v5_gpu_peak_at_full_size_meets_the_goals_and_is_flat():
    """Traced as bench/slice_vae_memory.py does (FakeTensorMode; fake meta tensors stand for the GPU): the
    full-size EasyAnimate V5.1 VAE in bf16 at 768x768, the latent on the host as in ComfyUI."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from bench import slice_vae_memory as bench

    mode = FakeTensorMode()
    reference, ours, weights = bench.build_fake_vaes(mode, bench.EASYANIMATE_V51_VAE,
                                                     diffusers_class="AutoencoderKLMagvit")
    assert 0.45 * 2 ** 30 < weights < 0.47 * 2 ** 30
    scale = ours.scaling_factor
    plain = [bench.trace(mode, lambda z: ours.decode(z * scale), frames, 768, False) for frames in (49, 97)]
    assert max(plain) <= 1.10 * min(plain), plain
    tiles = video_vae.TilePlan.for_decode(384, 64, 8)
    tiled = bench.trace(mode, lambda z: ours.decode(z * scale, tiles), 49, 768, False)
    diffusers = bench.trace(mode, lambda z: reference.decode(z).sample, 49, 768, True)
    # the goals are 0.7 and 0.35; these bounds hold the measured 0.55 and 0.14 (one frame at a
    # time through the up levels, tile states parked on the host)
    assert plain[0] <= 0.6 * diffusers and tiled <= 0.2 * diffusers, (plain, tiled, diffusers)
