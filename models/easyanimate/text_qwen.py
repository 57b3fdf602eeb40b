"""EasyAnimate V5.1's text conditioning: Qwen2-VL-7B on the chat template, 256 tokens, second-to-last layer.

As the V5.1 pipelines encode a prompt (diffusers EasyAnimatePipeline.encode_prompt): the prompt as one
user message in Qwen2-VL's chat template with the generation prompt, tokenized, truncated and
right-padded to 256 tokens, run with the padding masked out; the hidden state before the last layer
(`hidden_states[-2]`, no final norm) of all 256 positions is the conditioning.
"""
from __future__ import annotations

CHAT_TEMPLATE = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                 "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")
"""Qwen2-VL-7B-Instruct's chat template for one user text message with add_generation_prompt=True
(its default system message included)."""

PAD_TOKEN = 151643
"""Qwen2's <|endoftext|>, the tokenizer's pad token."""

MAX_TOKENS = 256
HIDDEN_LAYER = -2
TOKENS_KEY = "qwen25_7b"
"""ComfyUI's key for Qwen2/2.5-VL token batches (the Qwen2-VL tokenizer is the same BPE vocabulary)."""


def fixed_length_tokens(tokens: dict, length: int = MAX_TOKENS) -> dict:
    """One batch of exactly `length` tokens: the template's tokens, cut to `length`, then pad tokens.

    The pad tokens are what ComfyUI masks out: attention stops at the first pad token.
    """
    if TOKENS_KEY not in tokens:
        raise ValueError(f"the CLIP input is not a Qwen2-VL text encoder (its tokens have {sorted(tokens)}, no "
                         f"'{TOKENS_KEY}'): load Qwen2-VL-7B with Load EasyAnimate Qwen2-VL (MotionKit)")
    flat = [item for batch in tokens[TOKENS_KEY] for item in batch if item[0] != PAD_TOKEN]
    flat = flat[:length]
    template = flat[0] if flat else (PAD_TOKEN, 1.0)
    flat += [(PAD_TOKEN, 1.0) + tuple(0 for _ in template[2:])] * (length - len(flat))
    return {**tokens, TOKENS_KEY: [flat]}
