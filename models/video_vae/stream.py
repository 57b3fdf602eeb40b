"""The state a video VAE stream carries from one temporal chunk to the next, for one call only."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class StreamState:
    """One spatial tile's stream: made for a decode or encode call and dropped after it.

    The version's network reads the padding and upsampling modes its class sets per chunk, and each
    causal convolution (named by its module path) keeps the last input frames the next chunk needs.
    """

    frames: dict[str, torch.Tensor] = field(default_factory=dict)
    """Each causal convolution's last input frames (the next chunk's causal padding)."""
    upsampled: set[str] = field(default_factory=set)
    """The temporal upsamplers that have passed the clip's first chunk (EasyAnimate V5: it stands alone)."""
    zero_padding: bool = False
    """Every temporal convolution pads one zero frame on each side and carries nothing (V3/V4 slices)."""
    double_frames: bool | None = None
    """The temporal upsamplers double every frame (True) or none (False); None: the stream rule above."""

    def reset(self, zero_padding: bool = False, double_frames: bool | None = None) -> None:
        """Start afresh (an independent slice), with the given modes."""
        self.frames.clear()
        self.upsampled.clear()
        self.zero_padding, self.double_frames = zero_padding, double_frames
