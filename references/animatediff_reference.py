"""Reference helpers of the AnimateDiff tests (no tests here): tiny SD-style UNets in ComfyUI and diffusers with the same weights,
and the original AnimateDiff formulation where diffusers differs (written for the tests, not copied)."""
from __future__ import annotations

import copy
import re

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = {  # tiny SD1.5-like (4 levels) and SDXL-like (3 levels) UNets
    4: dict(channels=(32, 32, 64, 64), down=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, depth=[1, 1, 1, 1, 1, 1, 0, 0],
            depth_out=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]),  # ComfyUI pops from the end
    3: dict(channels=(32, 64, 64), down=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), depth=[0, 0, 1, 1, 1, 1],
            depth_out=[0, 0, 0, 1, 1, 1, 1, 1, 1]),
}
CONTEXT = 32


def comfy_unet_config(levels: int) -> dict:
    spec = LEVELS[levels]
    mult = [c // spec["channels"][0] for c in spec["channels"]]
    return dict(image_size=8, in_channels=4, out_channels=4, model_channels=spec["channels"][0],
                num_res_blocks=[2] * levels, channel_mult=mult, transformer_depth=spec["depth"],
                transformer_depth_output=spec["depth_out"], transformer_depth_middle=1, context_dim=CONTEXT,
                num_heads=8, num_head_channels=-1, use_spatial_transformer=True, legacy=False,
                use_linear_in_transformer=False, adm_in_channels=None, use_checkpoint=False)


def diffusers_motion_unet(levels: int, mid: bool, max_frames: int, seed: int = 0, std: float | None = 0.1):
    """diffusers' UNetMotionModel (tiny) with every weight random (normal, `std`), incl. the zero-initialised proj_out.
    std=None keeps diffusers' own (fan-in scaled) initialisation, a well-conditioned network for gradient checks, and
    gives the motion modules' zero-initialised proj_out random values of proj_in's scale."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    spec = LEVELS[levels]
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=spec["channels"], down_block_types=spec["down"],
                                up_block_types=spec["up"], cross_attention_dim=CONTEXT, attention_head_dim=8,
                                norm_num_groups=32)
    adapter = MotionAdapter(block_out_channels=spec["channels"], motion_layers_per_block=2,
                            motion_num_attention_heads=8, motion_norm_num_groups=32,
                            motion_max_seq_length=max_frames, use_motion_mid_block=mid)
    model = UNetMotionModel.from_unet2d(unet, adapter)
    generator = torch.Generator().manual_seed(seed)
    if std is None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".motion_modules." in name and ".proj_out." in name:
                    p.copy_(torch.randn(p.shape, generator=generator) * p.shape[-1] ** -0.5)
        return model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * (std if "norm" not in name else 0.05)
                    + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return model.eval()


def split_state(model) -> tuple[dict, dict]:
    """(image UNet state in diffusers names, motion adapter state in diffusers MotionAdapter names)."""
    state = model.state_dict()
    motion = {k: v for k, v in state.items() if ".motion_modules." in k}
    image = {k: v for k, v in state.items() if ".motion_modules." not in k}
    return image, motion


def comfy_unet(levels: int, image_state: dict):
    """ComfyUI's own UNetModel (tiny), loaded with the diffusers weights through ComfyUI's key map."""
    import comfy.ops
    import comfy.utils
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = comfy_unet_config(levels)
    mapping = comfy.utils.unet_to_diffusers(config)
    unet = UNetModel(**config, operations=comfy.ops.disable_weight_init)
    state = {mapping[k]: image_state[k] for k in mapping if k in image_state}
    missing, unexpected = unet.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    return unet.eval()


class PerFrameGroupNorm(nn.Module):
    """The original AnimateDiff motion-module norm: GroupNorm of each frame ((b f) c h w) on diffusers' [b, c, f, h, w]."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        b, c, f, h, w = x.shape
        out = self.norm(x.transpose(1, 2).reshape(b * f, c, h, w))
        return out.view(b, f, c, h, w).transpose(1, 2)


class JointGroupNorm(nn.Module):
    """AnimateDiff v1's UNet norm: torch GroupNorm on the 5-D video, statistics over all frames."""

    def __init__(self, norm: nn.GroupNorm, frames: int):
        super().__init__()
        self.norm, self.frames = norm, frames

    def forward(self, x):
        bf, c, h, w = x.shape
        video = x.view(bf // self.frames, self.frames, c, h, w).transpose(1, 2)
        return self.norm(video).transpose(1, 2).reshape(bf, c, h, w)


def original_formulation(model, frames: int, joint_unet_groupnorm: bool):
    """Turn diffusers' UNetMotionModel into the original AnimateDiff computation (in place, this instance only)."""
    for name, module in list(model.named_modules()):
        if type(module).__name__ == "AnimateDiffTransformer3D":
            module.norm = PerFrameGroupNorm(module.norm)
        if joint_unet_groupnorm and type(module).__name__ == "ResnetBlock2D":
            module.norm1 = JointGroupNorm(module.norm1, frames)
            module.norm2 = JointGroupNorm(module.norm2, frames)
    if joint_unet_groupnorm:
        model.conv_norm_out = JointGroupNorm(model.conv_norm_out, frames)
    return model


def diffusers_to_original_motion_keys(motion: dict) -> dict:
    """diffusers MotionAdapter names -> original AnimateDiff names (the inverse of diffusers' own converter)."""
    out = {}
    for key, value in motion.items():
        if key.endswith(".pos_embed.pe"):
            base = key[: -len("pos_embed.pe")]
            base = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", base)
            for a in (0, 1):
                out[f"{base}attention_blocks.{a}.pos_encoder.pe"] = value
            continue
        key = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", key)
        for old, new in ((".attn1.", ".attention_blocks.0."), (".attn2.", ".attention_blocks.1."),
                         (".norm1.", ".norms.0."), (".norm2.", ".norms.1."), (".norm3.", ".ff_norm.")):
            key = key.replace(old, new)
        out[key] = value
    return out


def comfy_model_patcher(levels: int, image_state: dict, dtype: torch.dtype = torch.float32):
    """A real ComfyUI BaseModel (SD1.5 latent format and sampling) around the tiny UNet, in a ModelPatcher;
    `dtype`: the UNet's weights and compute dtype (float64 for parity checks)."""
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(comfy_unet_config(levels), dtype=dtype))
    config.set_inference_dtype(dtype, None)
    model = comfy.model_base.BaseModel(config, device=torch.device("cpu"))
    tiny = comfy_unet(levels, image_state)
    model.diffusion_model.load_state_dict(tiny.state_dict())
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def original_motion_lora_merge(model: nn.Module, files: list[tuple[dict[str, torch.Tensor], float]]) -> nn.Module:
    """A dense copy of `model` with MotionLoRA files (raw state dicts, strength) merged into it as the original
    AnimateDiff merges them (animatediff/utils/convert_lora_safetensor_to_diffusers.py, load_diffusers_lora): every
    `.down.` key names its layer once `processor.`, `_lora` and `down.` are removed (`to_out` is `to_out.0`), and
    that layer's weight grows by strength * up @ down."""
    merged = copy.deepcopy(model)
    for state, strength in files:
        for key, down in state.items():
            if ".down." not in key:
                continue
            up = state[key.replace(".down.", ".up.")]
            layer_key = key.replace("processor.", "").replace("_lora", "").replace("down.", "")
            layer = merged.get_submodule(layer_key.replace("to_out.", "to_out.0.").rsplit(".", 1)[0])
            with torch.no_grad():
                layer.weight += strength * torch.mm(up, down).to(layer.weight)
    return merged
