"""EasyAnimate V3's transformer as the official code builds it, for parity tests and key sets.

Written from aigc-apps/EasyAnimate at the V3 release (commit f9eeabe, 2024-07-05; unchanged for
the V3 path up to V4): `easyanimate/models/transformer3d.py` (`Transformer3DModel` with
`basic_block_type: global_motionmodule`, `enable_uvit: true`, `norm_type: ada_norm_single`),
`attention.py` (`TemporalTransformerBlock`), `motion_module.py` (`VanillaTemporalModule`,
`TemporalTransformer3DModel`, `VersatileAttention`), `norm.py` (`FP32LayerNorm`,
`AdaLayerNormSingle`) and config/easyanimate_video_slicevae_motion_module_v3.yaml. It is built
from the same diffusers classes the official modules are (Attention with AttnProcessor2_0,
FeedForward, PatchEmbed, PixArtAlphaTextProjection, Timesteps, TimestepEmbedding), keeps the
official tensor layouts (einops rearranges between (b f) d c, (b d) f c and b (f d) c), the
padded 120-token text with its attention mask turned into a -10000 bias, the 8 CLIP tokens with
their own mask, the persistent 4096-frame position tables, and the U-ViT indices as the official
loop writes them (`index < 13` store, `index >= 15` add). How it was checked: each forward was
read line by line beside the official one (same order of norms, modulations, residuals, the
same rearrange patterns), and its state_dict keys equal the official module's names for the
published config (the key-set test builds the published file's keys from this class).
It shares no code with the pack's models/easyanimate/v3_*.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.embeddings import PatchEmbed, PixArtAlphaTextProjection, TimestepEmbedding, Timesteps
from einops import rearrange
from torch import nn

PUBLISHED_V3_CONFIG = dict(
    num_attention_heads=16, attention_head_dim=72, in_channels=12, out_channels=8, num_layers=28, patch_size=2,
    sample_size=64, caption_channels=4096, cross_attention_dim=1152, norm_eps=1e-6, motion_heads=16,
    max_frames=4096)
"""transformer/config.json of EasyAnimateV3-XL-2-InP-{512x512,768x768,960x960} with the V3 yaml's additions."""


class FP32LayerNorm(nn.LayerNorm):
    def forward(self, x):
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        frequencies = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(1, max_len, d_model)
        table[0, :, 0::2] = torch.sin(position * frequencies)
        table[0, :, 1::2] = torch.cos(position * frequencies)
        self.register_buffer("pe", table)

    def forward(self, x):
        return x + self.pe[:, :x.size(1)]


class VersatileAttention(Attention):
    def __init__(self, attention_mode, max_len, **kwargs):
        super().__init__(processor=AttnProcessor2_0(), **kwargs)
        self.attention_mode = attention_mode
        self.pos_encoder = PositionalEncoding(kwargs["query_dim"], max_len)

    def forward(self, hidden_states, video_length=None):
        if self.attention_mode == "Temporal":
            d = hidden_states.shape[1]
            hidden_states = rearrange(hidden_states, "(b f) d c -> (b d) f c", f=video_length)
            hidden_states = self.pos_encoder(hidden_states)
        else:
            d = hidden_states.shape[1]
            hidden_states = rearrange(hidden_states, "(b f) d c -> (b d) f c", f=video_length)
            hidden_states = self.pos_encoder(hidden_states)
            hidden_states = rearrange(hidden_states, "(b d) f c -> b (f d) c", f=video_length, d=d)
        outputs = [super(VersatileAttention, self).forward(hidden_states[i:i + 512])
                   for i in range(0, hidden_states.shape[0], 512)]
        hidden_states = torch.cat(outputs, dim=0)
        if self.attention_mode == "Temporal":
            return rearrange(hidden_states, "(b d) f c -> (b f) d c", d=d)
        return rearrange(hidden_states, "b (f d) c -> (b f) d c", f=video_length, d=d)


class MotionBlock(nn.Module):
    def __init__(self, dim, heads, modes, max_len):
        super().__init__()
        self.attention_blocks = nn.ModuleList([
            VersatileAttention(mode, max_len, query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
            for mode in modes])
        self.norms = nn.ModuleList([FP32LayerNorm(dim) for _ in modes])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = FP32LayerNorm(dim)

    def forward(self, hidden_states, video_length):
        for attention_block, norm in zip(self.attention_blocks, self.norms):
            hidden_states = attention_block(norm(hidden_states), video_length=video_length) + hidden_states
        return self.ff(self.ff_norm(hidden_states)) + hidden_states


class TemporalTransformer3DModel(nn.Module):
    def __init__(self, dim, heads, modes, max_len):
        super().__init__()
        self.norm = nn.GroupNorm(32, dim, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([MotionBlock(dim, heads, modes, max_len)])
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, hidden_states):
        video_length = hidden_states.shape[2]
        hidden_states = rearrange(hidden_states, "b c f h w -> (b f) c h w")
        batch, channel, height, width = hidden_states.shape
        residual = hidden_states
        hidden_states = self.norm(hidden_states)
        hidden_states = hidden_states.permute(0, 2, 3, 1).reshape(batch, height * width, channel)
        hidden_states = self.proj_in(hidden_states)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, video_length)
        hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(batch, height, width, channel).permute(0, 3, 1, 2).contiguous()
        return rearrange(hidden_states + residual, "(b f) c h w -> b c f h w", f=video_length)


class VanillaTemporalModule(nn.Module):
    def __init__(self, dim, heads, modes, max_len):
        super().__init__()
        self.temporal_transformer = TemporalTransformer3DModel(dim, heads, modes, max_len)

    def forward(self, x):
        return self.temporal_transformer(x)


class PixArtMotionBlock(nn.Module):
    """The official TemporalTransformerBlock for norm_type ada_norm_single."""

    def __init__(self, dim, heads, head_dim, cross_dim, eps, motion_heads, modes, max_len):
        super().__init__()
        self.norm1 = FP32LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=head_dim, bias=True, processor=AttnProcessor2_0())
        self.attn_temporal = VanillaTemporalModule(dim, motion_heads, modes, max_len)
        self.norm2 = FP32LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.attn2 = Attention(query_dim=dim, cross_attention_dim=cross_dim, heads=heads, dim_head=head_dim, bias=True,
                               processor=AttnProcessor2_0())
        self.ff = FeedForward(dim, activation_fn="gelu-approximate")
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim ** 0.5)

    def forward(self, hidden_states, encoder_hidden_states, encoder_attention_mask, timestep, num_frames, height, width):
        batch_size = hidden_states.shape[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + timestep.reshape(batch_size, 6, -1)).chunk(6, dim=1)
        norm_hidden_states = self.norm1(hidden_states) * (1 + scale_msa) + shift_msa
        norm_hidden_states = norm_hidden_states.squeeze(1)
        norm_hidden_states = rearrange(norm_hidden_states, "b (f d) c -> (b f) d c", f=num_frames)
        attn_output = self.attn1(norm_hidden_states)
        attn_output = rearrange(attn_output, "(b f) d c -> b (f d) c", f=num_frames)
        hidden_states = gate_msa * attn_output + hidden_states
        motion = rearrange(hidden_states, "b (f h w) c -> b c f h w", f=num_frames, h=height, w=width)
        hidden_states = rearrange(self.attn_temporal(motion), "b c f h w -> b (f h w) c")
        hidden_states = self.attn2(hidden_states, encoder_hidden_states=encoder_hidden_states,
                                   attention_mask=encoder_attention_mask) + hidden_states
        norm_hidden_states = self.norm2(hidden_states) * (1 + scale_mlp) + shift_mlp
        return gate_mlp * self.ff(norm_hidden_states) + hidden_states


class CLIPProjection(nn.Module):
    def __init__(self, in_features, hidden_size):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_size)
        self.act_1 = nn.GELU(approximate="tanh")
        self.linear_2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, caption):
        return self.linear_2(self.act_1(self.linear_1(caption)))


class AdaLayerNormSingle(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.emb = nn.Module()
        self.emb.time_proj = Timesteps(num_channels=256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.emb.timestep_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=dim)
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, timestep, hidden_dtype):
        embedded = self.emb.timestep_embedder(self.emb.time_proj(timestep).to(dtype=hidden_dtype))
        return self.linear(self.silu(embedded)), embedded


class ReferenceV3Transformer(nn.Module):
    """The official V3 Transformer3DModel (global_motionmodule, U-ViT, adaLN-single); returns all out_channels."""

    def __init__(self, num_attention_heads=16, attention_head_dim=72, in_channels=12, out_channels=8, num_layers=28,
                 patch_size=2, sample_size=64, caption_channels=4096, cross_attention_dim=1152, norm_eps=1e-6,
                 motion_heads=16, max_frames=4096):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        self.patch_size, self.out_channels = patch_size, out_channels
        self.pos_embed = PatchEmbed(height=sample_size, width=sample_size, patch_size=patch_size,
                                    in_channels=in_channels, embed_dim=dim,
                                    interpolation_scale=max(sample_size // 64, 1))
        self.transformer_blocks = nn.ModuleList([
            PixArtMotionBlock(dim, num_attention_heads, attention_head_dim, cross_attention_dim, norm_eps, motion_heads,
                              ("Temporal", "Temporal") if d % 2 == 0 else ("Temporal", "Global"), max_frames)
            for d in range(num_layers)])
        self.long_connect_fc = nn.ModuleList([nn.Linear(dim, dim, True) for _ in range(13)])
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim ** 0.5)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaln_single = AdaLayerNormSingle(dim)
        self.caption_projection = PixArtAlphaTextProjection(in_features=caption_channels, hidden_size=dim)
        self.clip_projection = CLIPProjection(768, dim * 8) if in_channels == 12 else None

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask, inpaint_latents=None,
                clip_encoder_hidden_states=None, clip_attention_mask=None):
        if clip_attention_mask is not None:
            encoder_attention_mask = torch.cat([encoder_attention_mask, clip_attention_mask], dim=1)
        encoder_attention_mask = ((1 - encoder_attention_mask.to(encoder_hidden_states.dtype)) * -10000.0).unsqueeze(1)
        if inpaint_latents is not None:
            hidden_states = torch.concat([hidden_states, inpaint_latents], 1)
        video_length = hidden_states.shape[-3]
        height, width = hidden_states.shape[-2] // self.patch_size, hidden_states.shape[-1] // self.patch_size
        hidden_states = rearrange(hidden_states, "b c f h w -> (b f) c h w")
        hidden_states = self.pos_embed(hidden_states)
        timestep, embedded_timestep = self.adaln_single(timestep, hidden_states.dtype)
        hidden_states = rearrange(hidden_states, "(b f) (h w) c -> b c f h w", f=video_length, h=height, w=width)
        hidden_states = hidden_states.flatten(2).transpose(1, 2)
        batch_size = hidden_states.shape[0]
        encoder_hidden_states = self.caption_projection(encoder_hidden_states)
        encoder_hidden_states = encoder_hidden_states.view(batch_size, -1, hidden_states.shape[-1])
        if clip_encoder_hidden_states is not None:
            clip_tokens = self.clip_projection(clip_encoder_hidden_states).view(batch_size, -1, hidden_states.shape[-1])
            encoder_hidden_states = torch.cat([encoder_hidden_states, clip_tokens], dim=1)
        skips, skip_index = [], 0
        for index, block in enumerate(self.transformer_blocks):
            if index >= 15:
                hidden_states = hidden_states + self.long_connect_fc[skip_index](skips.pop())
                skip_index += 1
            hidden_states = block(hidden_states, encoder_hidden_states, encoder_attention_mask, timestep,
                                  video_length, height, width)
            if index < 13:
                skips.append(hidden_states)
        shift, scale = (self.scale_shift_table[None] + embedded_timestep[:, None]).chunk(2, dim=1)
        hidden_states = self.proj_out(self.norm_out(hidden_states) * (1 + scale) + shift)
        hidden_states = hidden_states.reshape(-1, video_length, height, width, self.patch_size, self.patch_size,
                                              self.out_channels)
        hidden_states = torch.einsum("nfhwpqc->ncfhpwq", hidden_states)
        return hidden_states.reshape(-1, self.out_channels, video_length, height * self.patch_size,
                                     width * self.patch_size)


def reference_state_dict_keys(config: dict = PUBLISHED_V3_CONFIG) -> dict[str, torch.Size]:
    """Key names and shapes of an official V3 transformer file with `config`, built on the meta device."""
    with torch.device("meta"):
        model = ReferenceV3Transformer(**config)
    return {k: v.shape for k, v in model.state_dict().items()}

