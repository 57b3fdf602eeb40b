"""The official Tora semantics (alibaba/Tora, diffusers-version), re-implemented as the reference.

Used by tests/test_tora.py and bench/tora.py: the trajectory extractor, the MGF fuser, and diffusers'
CogVideoXTransformer3DModel with the fuser applied after each block's norm1 (as Tora's CogVideoXBlock does).
"""
import torch
from einops import rearrange
from torch import nn

class RefResBlock(nn.Module):
    """alibaba/Tora ResnetBlock with sk=True, equal widths: bn1, relu, block1, bn2, relu, block2, + x."""

    def __init__(self, c):
        super().__init__()
        self.block1, self.block2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)
        self.bn1, self.bn2 = nn.BatchNorm2d(c), nn.BatchNorm2d(c)

    def forward(self, x):
        h = self.block2(torch.relu(self.bn2(self.block1(torch.relu(self.bn1(x))))))
        return h + x


class RefExtractor(nn.Module):
    """alibaba/Tora TrajExtractor(patch_size=2, patch_size_t=1, nums_rb=2, cin=16, channels=[c]*levels, sk=True)."""

    def __init__(self, c, levels, cin=16, pt=1):
        super().__init__()
        self.pt, self.levels = pt, levels
        self.conv_in = nn.Conv2d(cin * pt * 4, c, 3, 1, 1)
        self.body = nn.ModuleList([RefResBlock(c) for _ in range(2 * levels)])

    def forward(self, x):
        t, h, w = x.shape[-3:]
        if w % 2:
            x = nn.functional.pad(x, (0, 2 - w % 2))
        if h % 2:
            x = nn.functional.pad(x, (0, 0, 0, 2 - h % 2))
        if t % self.pt:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.pt - t % self.pt))
        x = rearrange(x, "B C (Nt Tp) (Nh Hp) (Nw Wp) -> B (C Tp Hp Wp) Nt Nh Nw", Tp=self.pt, Hp=2, Wp=2)
        x = self.conv_in(rearrange(x, "B C T H W -> (B T) C H W"))
        out = []
        for i in range(self.levels):
            for j in range(2):
                x = self.body[i * 2 + j](x)
            out.append(x)
        return out


class RefMGF(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.flow_gamma_spatial = nn.Conv2d(cin, dim // 4, 3, padding=1)
        self.flow_gamma_temporal = nn.Conv1d(dim // 4, dim, 3, padding=1, padding_mode="replicate")
        self.flow_beta_spatial = nn.Conv2d(cin, dim // 4, 3, padding=1)
        self.flow_beta_temporal = nn.Conv1d(dim // 4, dim, 3, padding=1, padding_mode="replicate")
        self.flow_cond_norm = nn.GroupNorm(32, dim)

    def forward(self, h, flow, T):
        g, b = self.flow_gamma_spatial(flow), self.flow_beta_spatial(flow)
        _, _, hh, wh = b.shape
        g = rearrange(self.flow_gamma_temporal(rearrange(g, "(b f) c h w -> (b h w) c f", f=T)), "(b h w) c f -> (b f) c h w", h=hh, w=wh)
        b = rearrange(self.flow_beta_temporal(rearrange(b, "(b f) c h w -> (b h w) c f", f=T)), "(b h w) c f -> (b f) c h w", h=hh, w=wh)
        return h + self.flow_cond_norm(h) * g + b


class RefTora(nn.Module):
    def __init__(self, c, dim, levels):
        super().__init__()
        self.traj_extractor = RefExtractor(c, levels)
        self.fuser = nn.ModuleList([RefMGF(c, dim) for _ in range(levels)])


def reference_tora(sd, config):
    ref = RefTora(config["flow_channels"], config["dim"], config["blocks"]).eval()
    ref.load_state_dict(sd)
    return ref


def reference_dit(config, state_dict):
    """diffusers' CogVideoXTransformer3DModel (3D RoPE) holding `state_dict`."""
    from diffusers import CogVideoXTransformer3DModel

    dit = CogVideoXTransformer3DModel(**config, use_rotary_positional_embeddings=True).eval()
    dit.load_state_dict(state_dict)
    return dit


def reference_denoise(ref_tora, dit, x_btchw, context, timestep, flow_btchw, rope):
    """diffusers' CogVideoXTransformer3DModel with the official fuser after each block's norm1 (video tokens)."""
    features = ref_tora.traj_extractor(rearrange(flow_btchw, "b t d h w -> b d t h w"))
    handles = []
    for i, block in enumerate(dit.transformer_blocks):
        def hook(_module, _inputs, output, i=i):
            norm_h, norm_e, gate, egate = output
            H, W = features[i].shape[-2:]
            T = norm_h.shape[1] // H // W
            h = rearrange(norm_h, "B (T H W) C -> (B T) C H W", H=H, W=W)
            h = ref_tora.fuser[i](h, features[i], T)
            return rearrange(h, "(B T) C H W -> B (T H W) C", T=T), norm_e, gate, egate
        handles.append(block.norm1.register_forward_hook(hook))
    try:
        return dit(x_btchw, context, timestep, image_rotary_emb=rope, return_dict=False)[0]
    finally:
        for handle in handles:
            handle.remove()


def reference_rope(frames, h, w, head_dim=16, base=(30, 45)):
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    crops = get_resize_crop_region_for_grid((h, w), base[1], base[0])
    return get_3d_rotary_pos_embed(head_dim, crops, (h, w), frames)
