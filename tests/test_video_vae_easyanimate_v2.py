"""EasyAnimate V2 mag VAE (official `slice_mag_vae`): parity with the official sliced algorithm.

diffusers has no V2 class, so the reference below re-implements the official decode and encode
(easyanimate/vae/ldm/models/omnigen_enc_dec.py, padding mode 0): independent slices of 3 latent
frames (9 image frames), each padded causally by repeating its first frame, whole-slice GroupNorm,
mid-block 3D attention, and temporal upsamplers that keep the slice's first frame apart. The
residual blocks and causal convolutions are diffusers' AutoencoderKLMagvit modules with their
caches cleared before every slice (their first-call path is the official padding mode 0).
"""
import sys

import pytest
import torch
import torch.nn.functional as F

import harness

pack = harness.import_pack()
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


def _attention(p: dict, x: torch.Tensor) -> torch.Tensor:
    """Official Attention3D, one head: GroupNorm over channels, softmax(q k^T / sqrt(c)) v, out, + x."""
    b, c, t, h, w = x.shape
    tokens = F.group_norm(x.reshape(b, c, -1), GROUPS, p["group_norm.weight"], p["group_norm.bias"], 1e-6)
    tokens = tokens.transpose(1, 2)
    q, k, v = (tokens @ p[f"{n}.weight"].T + p[f"{n}.bias"] for n in ("to_q", "to_k", "to_v"))
    scores = (q @ k.transpose(1, 2) * c ** -0.5).softmax(dim=-1)
    out = (scores @ v) @ p["to_out.weight"].T + p["to_out.bias"]
    return out.transpose(1, 2).reshape(b, c, t, h, w) + x


def _upsample(upsampler, x: torch.Tensor) -> torch.Tensor:
    x = upsampler.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))
    if upsampler.temporal_upsample and x.shape[2] > 1:
        x = torch.cat([x[:, :, :1], F.interpolate(x[:, :, 1:], scale_factor=(2, 1, 1), mode="trilinear")], dim=2)
    return x


def _mid(block, attention: dict, x):
    x = block.convs[0](x)
    return block.convs[1](_attention(attention, x))


def official_v2_decode(ref, attentions, z: torch.Tensor) -> torch.Tensor:
    slices = []
    for i in range(0, z.shape[2], 3):
        ref._clear_conv_cache()
        d = ref.decoder
        h = _mid(d.mid_block, attentions["decoder"], d.conv_in(ref.post_quant_conv(z[:, :, i:i + 3])))
        for block in d.up_blocks:
            for conv in block.convs:
                h = conv(h)
            if block.upsampler is not None:
                h = _upsample(block.upsampler, h)
        slices.append(d.conv_out(F.silu(d.conv_norm_out(h))))
    ref._clear_conv_cache()
    return torch.cat(slices, dim=2)


def official_v2_encode(ref, attentions, x: torch.Tensor) -> torch.Tensor:
    slices = []
    for i in range(0, x.shape[2], 9):
        ref._clear_conv_cache()
        e = ref.encoder
        h = e.conv_in(x[:, :, i:i + 9])
        for block in e.down_blocks:
            h = block(h)
        h = _mid(e.mid_block, attentions["encoder"], h)
        slices.append(ref.quant_conv(e.conv_out(F.silu(e.conv_norm_out(h)))))
    ref._clear_conv_cache()
    return torch.cat(slices, dim=2)[:, :4]


@pytest.fixture(scope="module")
def v2():
    from diffusers import AutoencoderKLMagvit

    torch.manual_seed(0)
    ref = AutoencoderKLMagvit(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=2,
                              norm_num_groups=GROUPS, spatial_group_norm=False).eval()
    for block in ref.decoder.mid_block.convs:  # the official V2 decoder normalises whole slices
        block.spatial_group_norm = False
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    state = dict(ref.state_dict())
    attentions = {}
    for part in ("encoder", "decoder"):
        c = 16
        p = {"group_norm.weight": 1 + 0.1 * torch.randn(c, generator=generator),
             "group_norm.bias": 0.1 * torch.randn(c, generator=generator)}
        for name in ("to_q", "to_k", "to_v", "to_out"):
            p[f"{name}.weight"] = torch.randn(c, c, generator=generator) * 0.3
            p[f"{name}.bias"] = torch.randn(c, generator=generator) * 0.1
        attentions[part] = p
        state.update({f"{part}.mid_block.attentions.0.{k}": v for k, v in p.items()})
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
        expected = (official_v2_decode(ref, attentions, z) / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1)
    got = ours.decode(z * 0.1825)
    assert got.shape == expected.shape == ((9 + 9 + 1 if latent_frames == 7 else 9), 40, 48, 3)
    assert (got - expected).abs().max().item() <= TOL


def test_v2_encode_equals_official_sliced_encode(v2):
    ref, attentions, _, ours = v2
    frames = torch.rand(1, 18, 32, 40, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = official_v2_encode(ref, attentions, frames.permute(0, 4, 1, 2, 3) * 2 - 1) * 0.1825
    got = ours.encode(frames)
    assert got.shape == expected.shape == (1, 4, 6, 4, 5)
    assert (got - expected).abs().max().item() <= TOL


def test_v2_batch_of_two_equals_two_singles(v2):
    *_, ours = v2
    z = torch.randn(2, 4, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    singles = torch.cat([ours.decode(z[:1]), ours.decode(z[1:])])
    assert (ours.decode(z) - singles).abs().max().item() <= TOL


def test_slice_vae_without_config_or_with_v3_flags_is_refused(v2):
    *_, state, _ = v2
    with pytest.raises(ValueError, match=r"^tiny-v2 is an official EasyAnimate slice VAE \(mid-block attention keys\) "
                                         r"but there is no config.json beside it"):
        video_vae.build_video_vae(state, None, name="tiny-v2")
    v3 = dict(CONFIG, slice_mag_vae=False, slice_compression_vae=True)
    with pytest.raises(ValueError) as error:
        video_vae.build_video_vae(state, v3, name="tiny-v3")
    assert str(error.value) == ("config.json beside tiny-v3 sets slice_compression_vae: V3 (slice VAE); this pack "
                                "decodes the V2 mag VAE (slice_mag_vae) of the official slice VAEs; V3 and V4 are "
                                "not supported yet")
    assert ea_keys.official_mode(CONFIG, "x") == "slice_mag_vae"
