"""CogVideoX's text conditioning: T5 tokens truncated/padded to a fixed length (226)."""
from __future__ import annotations

T5_END, T5_PAD = 1, 0
TEXT_KEY = "t5xxl"


def fixed_length_t5_tokens(tokens: dict, length: int = 226) -> dict:
    """Rewrite ComfyUI's T5 token batches into one batch of exactly `length` tokens.

    As CogVideoX's pipeline tokenizes (`padding="max_length", truncation=True`): the prompt's tokens,
    cut so that the end token still fits, then the end token, then pad tokens. Other keys are kept.
    """
    if TEXT_KEY not in tokens:
        raise ValueError(f"the CLIP input is not a T5 text encoder (its tokens have {sorted(tokens)}, no '{TEXT_KEY}'): "
                         f"load T5-XXL with core Load CLIP, type sd3")
    flat = [item for batch in tokens[TEXT_KEY] for item in batch]
    content = []
    for item in flat:
        if _token_id(item) == T5_END:
            break
        if _token_id(item) != T5_PAD:
            content.append(item)
    template = flat[0] if flat else (T5_PAD, 1.0)
    content = content[:length - 1] + [_like(template, T5_END)]
    content += [_like(template, T5_PAD)] * (length - len(content))
    return {**tokens, TEXT_KEY: [content]}


def _token_id(item):
    """The token id, or None for an embedding vector (textual inversion) in the token stream."""
    return item[0] if isinstance(item[0], int) else None


def _like(template, token_id):
    return (token_id, 1.0) + tuple(0 for _ in template[2:])
