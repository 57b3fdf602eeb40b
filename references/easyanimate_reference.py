"""EasyAnimate V5.1's single-stream blocks as the official code computes them, on diffusers' model.

diffusers' `EasyAnimateTransformer3DModel` ports the official transformer, but for blocks without a text stream
of their own (`is_mmdit_block=False`: the 7B model's last 18) its processor leaves the text tokens' attention
output unprojected, while the official `EasyAnimateAttnProcessor2_0` (easyanimate/models/processor.py, with
`attn2=None`) applies `to_out` to the whole [text; video] sequence before splitting it. The official code is what
the published weights were trained with. `OfficialSingleStreamProcessor` re-states that branch as a diffusers
attention processor; `official_single_stream(model)` installs it on the model's single-stream blocks, so the
diffusers model computes what the official one does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class OfficialSingleStreamProcessor:
    """The official processor's `attn2 is None` branch: shared q/k/v and output over [text; video]."""

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.embeddings import apply_rotary_emb

        text_length = encoder_hidden_states.shape[1]
        tokens = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch = tokens.shape[0]
        query, key, value = (proj(tokens).view(batch, -1, attn.heads, proj.out_features // attn.heads).transpose(1, 2)
                             for proj in (attn.to_q, attn.to_k, attn.to_v))
        query, key = attn.norm_q(query), attn.norm_k(key)
        query[:, :, text_length:] = apply_rotary_emb(query[:, :, text_length:], image_rotary_emb)
        key[:, :, text_length:] = apply_rotary_emb(key[:, :, text_length:], image_rotary_emb)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(batch, -1, query.shape[1] * query.shape[3])))
        return out[:, text_length:], out[:, :text_length]


def official_single_stream(model):
    """`model` (diffusers EasyAnimateTransformer3DModel) with the official processor on its single-stream blocks."""
    for block in model.transformer_blocks:
        if block.attn1.add_q_proj is None:
            block.attn1.set_processor(OfficialSingleStreamProcessor())
    return model
