"""EasyAnimate V2, V3 and V4 slice VAEs: parity with the official sliced algorithms.

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


def test_slice_vae_without_config_or_with_two_flags_is_refused(v2):
    *_, state, _ = v2
    with pytest.raises(ValueError, match=r"^tiny-v2 is an official EasyAnimate slice VAE \(mid-block attention keys\) "
                                         r"but there is no config.json beside it"):
        video_vae.build_video_vae(state, None, name="tiny-v2")
    both = dict(CONFIG, slice_compression_vae=True)
    with pytest.raises(ValueError) as error:
        video_vae.build_video_vae(state, both, name="tiny-both")
    assert str(error.value) == ("config.json beside tiny-both sets slice_mag_vae: V2 (mag VAE), slice_compression_vae: "
                                "V3 (slice VAE); an official slice VAE with mid-block attention sets exactly one of "
                                "slice_mag_vae (V2), slice_compression_vae (V3), cache_compression_vae (V4)")
    assert ea_keys.official_mode(CONFIG, "x") == "slice_mag_vae"


# ---------------------------------------------------------------- V3 and V4: the official algorithm, by hand
V3_CONFIG = dict(CONFIG, slice_mag_vae=False, slice_compression_vae=True, mini_batch_encoder=8, mini_batch_decoder=2)
V4_CONFIG = dict(V3_CONFIG, slice_compression_vae=False, cache_compression_vae=True)


def _zero_padded(conv, x):
    """Official padding modes 1 and 2: one zero frame on each side."""
    return F.conv3d(F.pad(x, (0, 0, 0, 0, 1, 1)), conv.weight, conv.bias, conv.stride, conv.padding)


def _cached(cache: dict):
    """Official padding modes 5 and 6: the first slice repeats its first frame, later ones take the
    previous slice's last two frames."""
    def conv3d(conv, x):
        previous = cache.get(id(conv))
        x = torch.cat([x[:, :, :1], x[:, :, :1], x] if previous is None else [previous, x], dim=2)
        cache[id(conv)] = x[:, :, -2:]
        return F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding)
    return conv3d


def _gn(norm, x):
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def _resnet(block, x, conv):
    h = conv(block.conv1, F.silu(_gn(block.norm1, x)))
    h = conv(block.conv2, F.silu(_gn(block.norm2, h)))
    return h + (x if isinstance(block.shortcut, torch.nn.Identity) else block.shortcut(x))


def _decode_slice(ref, attention, z, conv, double, before=0, keep=None):
    d = ref.decoder
    h = _resnet(d.mid_block.convs[0], conv(d.conv_in, z), conv)
    h = _resnet(d.mid_block.convs[1], _attention(attention, h), conv)
    h = h[:, :, before:before + (keep or h.shape[2])]
    for block in d.up_blocks:
        for resnet in block.convs:
            h = _resnet(resnet, h, conv)
        if block.upsampler is not None:
            h = conv(block.upsampler.conv, F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest"))
            if block.upsampler.temporal_upsample and double:
                h = F.interpolate(h, scale_factor=(2, 1, 1), mode="trilinear")
    return conv(d.conv_out, F.silu(_gn(d.conv_norm_out, h)))


def official_v3_decode(ref, attentions, z):
    z, a = ref.post_quant_conv(z), attentions["decoder"]
    total, out, start = z.shape[2], [], 0
    if total % 2:
        out.append(_decode_slice(ref, a, z[:, :, :1], _zero_padded, double=False))
        start = 1
    previous = None
    for i in range(start, total, 2):
        after = z[:, :, i + 2:i + 4] if i + 2 < total else None
        parts = [p for p in (previous, z[:, :, i:i + 2], after) if p is not None]
        before = 0 if previous is None else previous.shape[2]
        out.append(_decode_slice(ref, a, torch.cat(parts, dim=2), _zero_padded, True, before, z[:, :, i:i + 2].shape[2]))
        previous = z[:, :, i:i + 2]
    return torch.cat(out, dim=2)


def official_v4_decode(ref, attentions, z):
    z, a = ref.post_quant_conv(z), attentions["decoder"]
    if z.shape[2] == 1:
        return _decode_slice(ref, a, z, _zero_padded, double=False)
    conv = _cached({})
    return torch.cat([_decode_slice(ref, a, z[:, :, i:i + 2], conv, double=True) for i in range(0, z.shape[2], 2)], dim=2)


def official_v3_encode(ref, attentions, x):
    e, total = ref.encoder, x.shape[2]
    starts = ([0] if total % 2 else []) + list(range(total % 2, total, 8))
    out = []
    for i in starts:
        h = _zero_padded(e.conv_in, x[:, :, i:i + (1 if i == 0 and total % 2 else 8)])
        for block in e.down_blocks:
            for resnet in block.convs:
                h = _resnet(resnet, h, _zero_padded)
            if block.downsampler is not None:
                h = _zero_padded(block.downsampler.conv, F.pad(h, (0, 1, 0, 1)))
        h = _resnet(e.mid_block.convs[0], h, _zero_padded)
        h = _resnet(e.mid_block.convs[1], _attention(attentions["encoder"], h), _zero_padded)
        out.append(ref.quant_conv(_zero_padded(e.conv_out, F.silu(_gn(e.conv_norm_out, h)))))
    return torch.cat(out, dim=2)[:, :4]


def _frames(decoded):
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1)


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


@pytest.mark.parametrize("config", [V3_CONFIG, V4_CONFIG], ids=["v3", "v4"])
def test_v3_v4_encode_equal_official_encode(v2, config):
    ref, attentions, state, _ = v2
    ours = video_vae.build_video_vae(state, config, name="tiny", dtype=torch.float32)
    frames = torch.rand(1, 17, 32, 40, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = official_v3_encode(ref, attentions, frames.permute(0, 4, 1, 2, 3) * 2 - 1) * 0.1825
    got = ours.encode(frames)
    assert got.shape == expected.shape == (1, 4, 5, 4, 5)
    assert (got - expected).abs().max().item() <= TOL
