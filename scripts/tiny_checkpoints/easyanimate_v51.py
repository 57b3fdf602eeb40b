"""Tiny random EasyAnimate V5.1 transformers and a tiny Qwen2-VL text encoder, with the published key names.

- diffusion_models/motionkit_tiny_easyanimate_v51/transformer/: the T2V model as a sharded diffusers folder
  (two shards, their index, config.json) with scheduler/scheduler_config.json beside it;
- diffusion_models/motionkit_tiny_easyanimate_v51_inp.safetensors: the InP model (33 input channels) in the
  official layout (text-stream attention named attn2);
- diffusion_models/motionkit_tiny_easyanimate_v51_control.safetensors: the Control model (48 input channels);
- text_encoders/motionkit_tiny_qwen2vl.safetensors: a Qwen2-VL language model (Qwen2's vocabulary, width 128,
  one 128-channel head, 3 layers) in the published text_encoder/ names, with a vision key and lm_head the
  loader leaves out; real Qwen2-VL-7B is 8B parameters.
All transformers: 2 MMDiT blocks, 2 heads of 16 channels, time width 32, text width 128 behind an RMSNorm (as the
published 12B), fixed seeds.
"""
from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import torch

from .cogvideox import random_weights

TINY_CONFIG = dict(num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16, patch_size=2,
                   time_embed_dim=32, text_embed_dim=128, num_layers=2, mmdit_layers=2, add_norm_text_encoder=True)
VARIANT_CHANNELS = {"t2v": 16, "inp": 33, "control": 48}
FOLDER = "motionkit_tiny_easyanimate_v51"
INP_FILE = "motionkit_tiny_easyanimate_v51_inp.safetensors"
CONTROL_FILE = "motionkit_tiny_easyanimate_v51_control.safetensors"
QWEN_FILE = "motionkit_tiny_qwen2vl.safetensors"
TINY_QWEN = dict(vocab_size=151680, hidden_size=128, intermediate_size=64, num_hidden_layers=3, num_attention_heads=1,
                 num_key_value_heads=1)
SCHEDULER_CONFIG = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
                    "use_dynamic_shifting": True}
"""The published scheduler/scheduler_config.json's settings."""
OFFICIAL_NAMES = {".attn1.add_q_proj.": ".attn2.to_q.", ".attn1.add_k_proj.": ".attn2.to_k.",
                  ".attn1.add_v_proj.": ".attn2.to_v.", ".attn1.norm_added_q.": ".attn2.norm_q.",
                  ".attn1.norm_added_k.": ".attn2.norm_k.", ".attn1.to_add_out.": ".attn2.to_out.0."}
"""diffusers -> official names (official easyanimate/models/attention.py: the text stream's own Attention, attn2)."""


def tiny_state_dict(variant: str = "t2v", seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random diffusers-named weights; LayerNorm weights near 1."""
    from motionkit.models.easyanimate.transformer_v51 import EasyAnimateV51Transformer

    return random_weights(EasyAnimateV51Transformer(**dict(TINY_CONFIG, in_channels=VARIANT_CHANNELS[variant]),
                                                    device="meta"), seed)


def official_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for new, old in OFFICIAL_NAMES.items():
            key = key.replace(new, old)
        out[key] = value
    return out


def tiny_qwen_state_dict(seed: int = 3) -> dict[str, torch.Tensor]:
    """Qwen2-VL language-model weights in the published names (`model.`, `visual.`, `lm_head.`), bf16-exact."""
    c = TINY_QWEN
    d, head, ff = c["hidden_size"], 128, c["intermediate_size"]
    q, kv = c["num_attention_heads"] * head, c["num_key_value_heads"] * head
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], d), "model.norm.weight": (d,),
              "lm_head.weight": (c["vocab_size"], d), "visual.patch_embed.proj.weight": (8, 3, 2, 14, 14)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (q, d), p + "self_attn.q_proj.bias": (q,),
                       p + "self_attn.k_proj.weight": (kv, d), p + "self_attn.k_proj.bias": (kv,),
                       p + "self_attn.v_proj.weight": (kv, d), p + "self_attn.v_proj.bias": (kv,),
                       p + "self_attn.o_proj.weight": (d, q), p + "mlp.gate_proj.weight": (ff, d),
                       p + "mlp.up_proj.weight": (ff, d), p + "mlp.down_proj.weight": (d, ff),
                       p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,)})
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            values = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            values = 0.1 * torch.randn(shape, generator=generator)
        state[name] = values.to(torch.bfloat16)
    return state


def write(models_dir: Path) -> list[Path]:
    models_dir = Path(models_dir)
    root = models_dir / "diffusion_models" / FOLDER
    folder = root / "transformer"
    folder.mkdir(parents=True, exist_ok=True)
    state = tiny_state_dict("t2v")
    names = sorted(state)
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    written, weight_map = [], {}
    for i, part in enumerate(halves, start=1):
        path = folder / f"diffusion_pytorch_model-{i:05d}-of-00002.safetensors"
        safetensors.torch.save_file({k: state[k] for k in part}, str(path))
        weight_map.update({k: path.name for k in part})
        written.append(path)
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"_class_name": "EasyAnimateTransformer3DModel", **TINY_CONFIG}))
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    for name, variant, layout in ((INP_FILE, "inp", official_names), (CONTROL_FILE, "control", dict)):
        path = models_dir / "diffusion_models" / name
        safetensors.torch.save_file(layout(tiny_state_dict(variant, seed=1)), str(path))
        written.append(path)
    qwen = models_dir / "text_encoders" / QWEN_FILE
    qwen.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_qwen_state_dict(), str(qwen))
    return written + [qwen]
