"""A ComfyUI ModelPatcher for a diffusion model the pack defines (CogVideoX, EasyAnimate V5.1), the way core
loaders build one: weight dtype from the node's choice or ComfyUI's, manual casting where needed, weights loaded
on the offload device, load/offload left to ComfyUI's model management."""
from __future__ import annotations

from typing import Callable

import comfy.model_management
import comfy.model_patcher
import comfy.utils
import torch

from .. import host
from ..errors import MotionKitError

WEIGHT_DTYPES = {"default": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                 "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
"""The loaders' `weight_dtype` choices; default lets ComfyUI pick for the device."""
HALF_DTYPES = (torch.float16, torch.float8_e4m3fn, torch.float8_e5m2)
"""What a CPU cannot compute in."""


class WeightDtypeError(MotionKitError):
    pass


def build_model_patcher(config_obj, sd: dict, source: str, weight_dtype: str,
                        check_keys: Callable[[torch.nn.Module, dict, str], None]):
    """Build `config_obj.get_model()` in the chosen dtype, check `sd` fills it (check_keys(diffusion_model, sd,
    source) raises otherwise), load the weights and wrap it in a ModelPatcher."""
    load_device, offload = host.torch_device(), host.offload_device()
    file_dtype = comfy.utils.weight_dtype(sd)
    wanted = WEIGHT_DTYPES[weight_dtype]
    if load_device.type == "cpu":
        half = wanted if wanted in HALF_DTYPES else (file_dtype if wanted is None and file_dtype in HALF_DTYPES else None)
        if half is not None:
            side = f"weight_dtype '{weight_dtype}'" if wanted is not None else f"{source} stores {half}"
            raise WeightDtypeError(f"{side}, but ComfyUI runs on the CPU, which cannot compute in {half}: "
                                   f"set weight_dtype to 'fp32' (or load a bf16/fp32 file)")
    if wanted is None:
        wanted = comfy.model_management.unet_dtype(model_params=comfy.utils.calculate_parameters(sd),
                                                   weight_dtype=file_dtype,
                                                   supported_dtypes=config_obj.supported_inference_dtypes)
    manual_cast = comfy.model_management.unet_manual_cast(wanted, load_device, config_obj.supported_inference_dtypes)
    config_obj.set_inference_dtype(wanted, manual_cast)
    model = config_obj.get_model(sd, "", device=offload)
    check_keys(model.diffusion_model, sd, source)
    model.load_model_weights(sd, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)
