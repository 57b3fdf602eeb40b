"""EasyAnimate's official slice-VAE decode and encode (V2, V3, V4), re-implemented as references.

Read from aigc-apps/EasyAnimate (easyanimate/vae/ldm/models/omnigen_enc_dec.py, the padding modes
of vaemodules/common.py CausalConv3d and upsamplers.py): written here independently of the pack's
streaming code, on top of diffusers' AutoencoderKLMagvit modules (same weights and key names) with
their caches cleared where the official code starts afresh. Like the official code they keep every
slice's output on the compute device and concatenate at the end. Used by
tests/test_video_vae_easyanimate_slice.py (parity) and bench/slice_vae.py (time and memory); `as_images`
by every video VAE parity test.

- V2 mag VAE (`slice_mag_vae`): independent slices of 3 latent / 9 image frames, padded causally by
  repeating the slice's first frame (mode 0); the temporal upsamplers keep the slice's first frame apart.
- V3 slice VAE (`slice_compression_vae`): an odd clip's first frame alone, then slices of 2 latent / 8
  image frames; temporal convolutions zero-pad one frame on each side (modes 1, 2); the decoder's
  input convolution and mid block also see the previous and next slice (cropped after).
- V4 (`cache_compression_vae`): the V3 encoder; the decoder carries each convolution's last two
  frames from slice to slice (modes 5, 6) and doubles every frame in time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def as_images(video: torch.Tensor) -> torch.Tensor:
    """A decoded [B,3,F,H,W] in -1..1 -> IMAGE [B*F,H,W,3] in 0..1, as the pipelines post-process."""
    return (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1)


def build_reference(block_out_channels=(8, 8, 16, 16), latent_channels=4, groups=4, seed=1):
    """diffusers' AutoencoderKLMagvit with random weights (whole-slice norms, 2 layers per block) plus
    random mid-block attention weights; returns (model, attentions, the official state dict)."""
    from diffusers import AutoencoderKLMagvit

    ref = AutoencoderKLMagvit(block_out_channels=block_out_channels, latent_channels=latent_channels,
                              layers_per_block=2, norm_num_groups=groups, spatial_group_norm=False).eval()
    for block in ref.decoder.mid_block.convs:  # the official slice VAEs normalise whole slices here too
        block.spatial_group_norm = False
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    state = dict(ref.state_dict())
    attentions = {"groups": groups}
    c = block_out_channels[-1]
    for part in ("encoder", "decoder"):
        p = {"group_norm.weight": 1 + 0.1 * torch.randn(c, generator=generator),
             "group_norm.bias": 0.1 * torch.randn(c, generator=generator)}
        for name in ("to_q", "to_k", "to_v", "to_out"):
            p[f"{name}.weight"] = torch.randn(c, c, generator=generator) * 0.3
            p[f"{name}.bias"] = torch.randn(c, generator=generator) * 0.1
        attentions[part] = p
        state.update({f"{part}.mid_block.attentions.0.{k}": v for k, v in p.items()})
    return ref, attentions, state


def _attention(p: dict, x: torch.Tensor, groups: int) -> torch.Tensor:
    """Official Attention3D, one head: GroupNorm over channels, softmax(q k^T / sqrt(c)) v, out, + x."""
    b, c, t, h, w = x.shape
    tokens = F.group_norm(x.reshape(b, c, -1), groups, p["group_norm.weight"], p["group_norm.bias"], 1e-6)
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


def _mid(block, attention: dict, groups: int, x):
    x = block.convs[0](x)
    return block.convs[1](_attention(attention, x, groups))


def official_v2_decode(ref, attentions, z: torch.Tensor) -> torch.Tensor:
    slices = []
    for i in range(0, z.shape[2], 3):
        ref._clear_conv_cache()
        d = ref.decoder
        h = _mid(d.mid_block, attentions["decoder"], attentions["groups"], d.conv_in(ref.post_quant_conv(z[:, :, i:i + 3])))
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
        h = _mid(e.mid_block, attentions["encoder"], attentions["groups"], h)
        slices.append(ref.quant_conv(e.conv_out(F.silu(e.conv_norm_out(h)))))
    ref._clear_conv_cache()
    return torch.cat(slices, dim=2)[:, : ref.config.latent_channels]


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


def _decode_slice(ref, attentions, z, conv, double, before=0, keep=None):
    d = ref.decoder
    h = _resnet(d.mid_block.convs[0], conv(d.conv_in, z), conv)
    h = _resnet(d.mid_block.convs[1], _attention(attentions["decoder"], h, attentions["groups"]), conv)
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
    z, a = ref.post_quant_conv(z), attentions
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
    z, a = ref.post_quant_conv(z), attentions
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
        h = _resnet(e.mid_block.convs[1], _attention(attentions["encoder"], h, attentions["groups"]), _zero_padded)
        out.append(ref.quant_conv(_zero_padded(e.conv_out, F.silu(_gn(e.conv_norm_out, h)))))
    return torch.cat(out, dim=2)[:, : ref.config.latent_channels]
