"""EasyAnimate V5/V5.1 "cache mag VAE", streamed.

Key names are the published diffusers file's (`alibaba-pai/EasyAnimateV5.1-*/vae/
diffusion_pytorch_model.safetensors`, class `AutoencoderKLMagvit`). Numerics follow
diffusers' `AutoencoderKLMagvit`: the decoder takes the first latent frame alone and
then the others (one at a time there; any chunk size gives the same frames here, because
every norm is per frame and every convolution causal), the encoder takes the first image
frame alone and then 4 frames at a time. Each causal convolution pads the very first
chunk by repeating its first frame and later chunks with the previous chunk's last frames;
each temporal upsampler leaves the first chunk's single frame alone and doubles the frames
of later chunks. That state is a StreamState passed through the calls, never kept on modules
(diffusers keeps it on the modules as `prev_features` and must clear it after each call).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ..video_vae.stream import StreamState as State

SPATIAL_DOWN, SPATIOTEMPORAL_DOWN = "SpatialDownBlock3D", "SpatialTemporalDownBlock3D"
SPATIAL_UP, SPATIOTEMPORAL_UP = "SpatialUpBlock3D", "SpatialTemporalUpBlock3D"


@dataclass
class MagvitVAEConfig:
    """Architecture of the cache mag VAE; the defaults are EasyAnimate V5.1's."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 16
    """Channels of the latent video (V5/V5.1: 16)."""
    block_out_channels: tuple = (128, 256, 512, 512)
    """Width of each level (spatial ratio 2 ** (levels - 1))."""
    down_block_types: tuple = (SPATIAL_DOWN, SPATIOTEMPORAL_DOWN, SPATIOTEMPORAL_DOWN, SPATIOTEMPORAL_DOWN)
    """Which encoder levels also halve time (every level but the last downsamples space)."""
    up_block_types: tuple = (SPATIAL_UP, SPATIOTEMPORAL_UP, SPATIOTEMPORAL_UP, SPATIOTEMPORAL_UP)
    layers_per_block: int = 2
    """Residual blocks per encoder level and in each mid block (the decoder levels have one more)."""
    norm_num_groups: int = 32
    spatial_group_norm: bool = True
    """GroupNorm per frame (True, V5/V5.1) or over the whole chunk; False also makes time upsampling trilinear."""
    scaling_factor: float = 0.7125
    """Latents are multiplied by it after encoding."""
    mid_block_attention: bool = False
    """Self-attention over all positions of a slice between the mid blocks' residual blocks (V2/V3/V4 files)."""
    mid_block_attention_heads: int = 1
    decoder_mid_per_frame: bool = True
    """diffusers' V5 decoder normalises its mid block per frame whatever `spatial_group_norm` says; the
    official slice VAEs follow `spatial_group_norm`."""
    slice_frames: int = 9
    """V2: image frames per independently encoded slice (official `mini_batch_encoder`)."""
    slice_latents: int = 3
    """V2: latent frames per independently decoded slice (official `mini_batch_decoder`)."""
    extra: dict = field(default_factory=dict)

    @property
    def temporal_ratio(self) -> int:
        halvings = sum(t == SPATIOTEMPORAL_DOWN for t in self.down_block_types[:-1])
        return 2 ** halvings


@functools.cache
def causal_conv3d(operations):
    """The causal convolution as a subclass of `operations.Conv3d`, so its weight keys stay flat
    (`conv_in.weight`) and ComfyUI's casting ops apply."""

    class MagvitCausalConv3d(operations.Conv3d):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, device=None, dtype=None,
                     upsample: bool = False):
            """`upsample`: convolve the input upsampled 2x in space (nearest), as the upsamplers do; the
            input and the causal state stay at the input's size, only each window is upsampled."""
            stride = stride if isinstance(stride, tuple) else (stride,) * 3
            super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=(0, padding, padding),
                             device=device, dtype=dtype)
            self.time_pad, self.time_stride, self.state_key = kernel_size - 1, stride[0], ""
            self.upsample = upsample

        def forward_plain(self, x: torch.Tensor, state: State) -> torch.Tensor:
            """The causal convolution as the papers state it (MAGVIT-v2, Yu et al. 2023, sec. 3.1; EasyAnimate's
            slice VAE): pad the chunk in time, before it, with the previous chunk's last frames (the clip's first
            frame repeated at its very start), or with one zero frame on each side in the zero-padding mode;
            convolve; keep the padded input's last frames for the next chunk. `forward` is the same operation
            computed one output frame at a time and in place (a test checks that the two are equal)."""
            if state.zero_padding:
                zero = x.new_zeros((*x.shape[:2], 1, *x.shape[3:]))
                padded = torch.cat([zero, x, zero], dim=2)
            else:
                previous = state.frames.pop(self.state_key, None)
                if previous is None:
                    head = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
                else:  # a stride-2 convolution reads one frame fewer of the previous chunk
                    head = previous[:, :, previous.shape[2] - (self.time_pad - (self.time_stride == 2)):]
                padded = torch.cat([head, x], dim=2)
                state.frames[self.state_key] = padded[:, :, padded.shape[2] - self.time_pad:].clone()
            if self.upsample:
                padded = F.interpolate(padded, scale_factor=(1, 2, 2), mode="nearest")
            return super().forward(padded)

        def forward(self, x: torch.Tensor, state: State, consume: bool = False) -> torch.Tensor:
            """`forward_plain`, one output frame at a time: the padded (and upsampled) chunk is never made
            whole. `consume`: the caller no longer needs `x`, so a same-shape output may be written over
            it (each frame once no later output frame reads it)."""
            tail = None
            if state.zero_padding:  # one zero frame on each side, nothing carried (official padding modes 1, 2)
                head = tail = x.new_zeros((*x.shape[:2], 1, *x.shape[3:]))
            else:
                previous = state.frames.pop(self.state_key, None)
                if previous is None:  # the very first chunk: repeat its first frame
                    head = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
                else:  # later chunks: the previous chunk's last frames (one fewer for a stride-2 conv)
                    keep = self.time_pad - 1 if self.time_stride == 2 else self.time_pad
                    head = previous[:, :, previous.shape[2] - keep:]
                del previous
                # the next chunk's head: this chunk's last frames, after the head's when the chunk is shorter
                from_x = min(x.shape[2], self.time_pad)
                carried = head[:, :, head.shape[2] - (self.time_pad - from_x):] if from_x < self.time_pad else None
            # one output frame at a time, as the official code convolves: the padded chunk is never
            # copied whole, and on the CPU the unfold buffers stay small
            before, after, k = head.shape[2], 0 if tail is None else tail.shape[2], self.time_pad + 1
            starts = range(0, before + x.shape[2] + after - self.time_pad, self.time_stride)
            out, pending = None, []
            in_place = consume and self.time_stride == 1 and before + after == self.time_pad and not x.requires_grad
            for n, i in enumerate(starts):
                if i >= before:  # the head is read no more: let it go
                    head = None
                y = super().forward(self._window(head, before, x, tail, i, k))
                if out is None:
                    in_place = in_place and y.dtype == x.dtype and y.shape[1] == x.shape[1] and \
                        y.shape[3:] == x.shape[3:] and len(starts) == x.shape[2]
                    out = x if in_place else y.new_empty((y.shape[0], y.shape[1], len(starts), *y.shape[3:]))
                if not in_place:
                    out[:, :, n] = y[:, :, 0]
                    continue
                # output frame n reads input frames n - before .. n + after: it may replace input
                # frame n - before only now, so the last `before` output frames wait
                pending.append(y)
                if len(pending) > before:
                    out[:, :, n - before] = pending.pop(0)[:, :, 0]
            if tail is None:  # made only now, once the head is gone, and before the pending output
                self._carry(state, carried, x, from_x)  # frames replace this chunk's last frames
            for j, y in enumerate(pending):
                out[:, :, len(starts) - len(pending) + j] = y[:, :, 0]
            return out

        def _window(self, head: torch.Tensor | None, before: int, x: torch.Tensor, tail: torch.Tensor | None,
                    start: int, size: int) -> torch.Tensor:
            """Frames start .. start + size of head (`before` frames) + x + tail: a view where it lies in x
            and nothing is upsampled."""
            parts = [head[:, :, start:start + size]] if start < before else []
            low, high = max(start - before, 0), min(start + size - before, x.shape[2])
            if high > low:
                parts.append(x[:, :, low:high])
            if start + size > before + x.shape[2]:
                parts.append(tail[:, :, :start + size - before - x.shape[2]])
            if not self.upsample:
                return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
            # nearest 2x upsampling repeats each pixel in a 2x2 block: a broadcast copy per frame
            window = x.new_empty((*x.shape[:2], size, 2 * x.shape[3], 2 * x.shape[4]))
            frames = [frame for part in parts for frame in part.unbind(2)]
            for n, frame in enumerate(frames):
                window[:, :, n].unflatten(2, (-1, 2)).unflatten(4, (-1, 2)).copy_(frame[:, :, :, None, :, None])
            return window

        def _carry(self, state: State, carried: torch.Tensor | None, x: torch.Tensor, from_x: int) -> None:
            tail = x[:, :, x.shape[2] - from_x:]
            state.frames[self.state_key] = torch.cat([tail] if carried is None else [carried, tail], dim=2)  # a copy

    return MagvitCausalConv3d


def _group_norm(norm, x: torch.Tensor, per_frame: bool, inplace: bool = False) -> torch.Tensor:
    """GroupNorm over the chunk, or per frame (then frame by frame). `inplace`: the result is written
    into `x` itself (per frame as it goes; over the chunk, copied back), so the caller's old chunk
    does not stay alive beside the normalised one."""
    if not per_frame:
        return x.copy_(norm(x)) if inplace else norm(x)
    out = x if inplace else torch.empty_like(x)
    for t in range(x.shape[2]):
        out[:, :, t] = norm(x[:, :, t])
    return out


class MagvitResidualBlock3D(torch.nn.Module):
    def __init__(self, in_channels, out_channels, groups, per_frame, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        conv = causal_conv3d(operations)
        self.per_frame = per_frame
        self.norm1 = operations.GroupNorm(groups, in_channels, eps=1e-6, device=device, dtype=dtype)
        self.conv1 = conv(in_channels, out_channels, device=device, dtype=dtype)
        self.norm2 = operations.GroupNorm(groups, out_channels, eps=1e-6, device=device, dtype=dtype)
        self.conv2 = conv(out_channels, out_channels, device=device, dtype=dtype)
        self.shortcut = (operations.Conv3d(in_channels, out_channels, 1, device=device, dtype=dtype)
                         if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        # with a convolution shortcut: take the shortcut first, then normalise x in place
        early = self.shortcut is not None
        shortcut = self.shortcut(x) if early else None
        h = _group_norm(self.norm1, x, self.per_frame, inplace=early)
        h = self.conv1(F.silu(h, inplace=True), state, consume=h is not x)
        h = self.conv2(F.silu(_group_norm(self.norm2, h, self.per_frame, inplace=True), inplace=True), state,
                       consume=True)
        if shortcut is None:
            shortcut = x if self.shortcut is None else self.shortcut(x)
        return h.add_(shortcut)


class MagvitDownsampler3D(torch.nn.Module):
    def __init__(self, channels, temporal, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.conv = causal_conv3d(operations)(channels, channels, 3, stride=(2 if temporal else 1, 2, 2), padding=0,
                                              device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)), state)


class MagvitUpsampler3D(torch.nn.Module):
    def __init__(self, channels, temporal, per_frame, device=None, dtype=None, operations=torch.nn,
                 first_frame_apart: bool = False):
        super().__init__()
        self.temporal, self.per_frame, self.state_key = temporal, per_frame, ""
        self.first_frame_apart = first_frame_apart
        self.conv = causal_conv3d(operations)(channels, channels, device=device, dtype=dtype, upsample=True)

    def _double(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=(2, 1, 1), mode="nearest" if self.per_frame else "trilinear")

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        x = self.conv(x, state)
        if not self.temporal:
            return x
        if state.double_frames is not None:  # V3/V4: the chunk's mode says
            return self._double(x) if state.double_frames else x
        if self.first_frame_apart:  # V2 slices: the slice's first frame stands alone, the others double
            return torch.cat([x[:, :, :1], self._double(x[:, :, 1:])], dim=2) if x.shape[2] > 1 else x
        if self.state_key in state.upsampled:  # V5 stream: the clip's first chunk stands alone, later chunks double
            return self._double(x)
        state.upsampled.add(self.state_key)
        return x


class MagvitAttention3D(torch.nn.Module):
    """Self-attention over every (frame, row, column) position of a slice, after a GroupNorm over
    channels, with a residual connection (the official mid-block `Attention3D`)."""

    def __init__(self, channels, heads, groups, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        self.heads = heads
        self.group_norm = operations.GroupNorm(groups, channels, eps=1e-6, device=device, dtype=dtype)
        self.to_q = operations.Linear(channels, channels, device=device, dtype=dtype)
        self.to_k = operations.Linear(channels, channels, device=device, dtype=dtype)
        self.to_v = operations.Linear(channels, channels, device=device, dtype=dtype)
        self.to_out = operations.Linear(channels, channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        b, c, t, h, w = x.shape
        tokens = self.group_norm(x.flatten(2)).transpose(1, 2)
        q, k, v = (proj(tokens).unflatten(2, (self.heads, -1)).transpose(1, 2)
                   for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        out = self.to_out(out).transpose(1, 2).unflatten(2, (t, h, w))
        return out.add_(x)


class _MidBlock(torch.nn.Module):
    """Residual blocks (`convs.N`) with an optional attention (`attentions.N`) before each but the first."""

    def __init__(self, convs, attentions=()):
        super().__init__()
        self.convs = torch.nn.ModuleList(convs)
        self.attentions = torch.nn.ModuleList(attentions)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        x = self.convs[0](x, state)
        for i, block in enumerate(self.convs[1:]):
            if i < len(self.attentions):
                x = self.attentions[i](x, state)
            x = block(x, state)
        return x


def _mid_block(cfg: MagvitVAEConfig, channels: int, per_frame: bool, ops: dict) -> _MidBlock:
    convs = [MagvitResidualBlock3D(channels, channels, cfg.norm_num_groups, per_frame, **ops)
             for _ in range(cfg.layers_per_block)]
    attentions = ([MagvitAttention3D(channels, cfg.mid_block_attention_heads, cfg.norm_num_groups, **ops)
                   for _ in range(cfg.layers_per_block - 1)] if cfg.mid_block_attention else [])
    return _MidBlock(convs, attentions)


class _Level(torch.nn.Module):
    """Residual blocks (`convs.N`), then an optional `downsampler` / `upsampler`."""

    def __init__(self, convs, sampler_name=None, sampler=None):
        super().__init__()
        self.convs = torch.nn.ModuleList(convs)
        self.sampler_name = sampler_name if sampler is not None else None
        if sampler is not None:
            setattr(self, sampler_name, sampler)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        for block in self.convs:
            x = block(x, state)
        return getattr(self, self.sampler_name)(x, state) if self.sampler_name else x


class MagvitEncoder(torch.nn.Module):
    def __init__(self, cfg: MagvitVAEConfig, device=None, dtype=None, operations=torch.nn):
        super().__init__()
        ops = dict(device=device, dtype=dtype, operations=operations)
        ch, g, per_frame = cfg.block_out_channels, cfg.norm_num_groups, cfg.spatial_group_norm
        self.per_frame = per_frame
        self.conv_in = causal_conv3d(operations)(cfg.in_channels, ch[0], device=device, dtype=dtype)
        self.down_blocks = torch.nn.ModuleList()
        for i, (width, kind) in enumerate(zip(ch, cfg.down_block_types)):
            previous = ch[max(i - 1, 0)]
            convs = [MagvitResidualBlock3D(previous if j == 0 else width, width, g, per_frame, **ops)
                     for j in range(cfg.layers_per_block)]
            sampler = None if i == len(ch) - 1 else MagvitDownsampler3D(width, kind == SPATIOTEMPORAL_DOWN, **ops)
            self.down_blocks.append(_Level(convs, "downsampler", sampler))
        self.mid_block = _mid_block(cfg, ch[-1], per_frame, ops)
        self.conv_norm_out = operations.GroupNorm(g, ch[-1], eps=1e-6, device=device, dtype=dtype)
        self.conv_out = causal_conv3d(operations)(ch[-1], 2 * cfg.latent_channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: State) -> torch.Tensor:
        h = self.conv_in(x, state)
        for level in self.down_blocks:
            h = level(h, state)
        h = self.mid_block(h, state)
        return self.conv_out(F.silu(_group_norm(self.conv_norm_out, h, self.per_frame, inplace=True), inplace=True),
                             state)


class MagvitDecoder(torch.nn.Module):
    def __init__(self, cfg: MagvitVAEConfig, device=None, dtype=None, operations=torch.nn,
                 first_frame_apart: bool = False):
        super().__init__()
        ops = dict(device=device, dtype=dtype, operations=operations)
        ch, g, per_frame = list(reversed(cfg.block_out_channels)), cfg.norm_num_groups, cfg.spatial_group_norm
        self.per_frame, self.first_frame_apart = per_frame, first_frame_apart
        self.conv_in = causal_conv3d(operations)(cfg.latent_channels, ch[0], device=device, dtype=dtype)
        self.mid_block = _mid_block(cfg, ch[0], cfg.decoder_mid_per_frame or per_frame, ops)
        self.up_blocks = torch.nn.ModuleList()
        for i, (width, kind) in enumerate(zip(ch, cfg.up_block_types)):
            previous = ch[max(i - 1, 0)]
            convs = [MagvitResidualBlock3D(previous if j == 0 else width, width, g, per_frame, **ops)
                     for j in range(cfg.layers_per_block + 1)]
            sampler = (None if i == len(ch) - 1
                       else MagvitUpsampler3D(width, kind == SPATIOTEMPORAL_UP, per_frame, **ops,
                                              first_frame_apart=first_frame_apart))
            self.up_blocks.append(_Level(convs, "upsampler", sampler))
        self.conv_norm_out = operations.GroupNorm(g, ch[-1], eps=1e-6, device=device, dtype=dtype)
        self.conv_out = causal_conv3d(operations)(ch[-1], cfg.out_channels, device=device, dtype=dtype)

    def forward(self, z: torch.Tensor, state: State, keep: tuple[int, int] | None = None) -> torch.Tensor:
        """`keep` = (first, count): the latent frames of `z` to decode when `z` also holds neighbours
        that only the input convolution and the mid block see (the V3 slice VAE)."""
        h = self.mid_block(self.conv_in(z, state), state)
        if keep is not None:
            h = h[:, :, keep[0]:keep[0] + keep[1]]
        return self._up(h, state, 0)

    def _up(self, h: torch.Tensor, state: State, first_level: int) -> torch.Tensor:
        """The up levels from `first_level` on and the output convolution. In the V5 stream every
        operation is causal and per frame (per-frame norms, nearest upsampling in time), so a chunk of
        several frames goes on one frame at a time: the same frames, with the full-resolution
        activations of one frame alive instead of the chunk's."""
        split = (self.per_frame and not self.first_frame_apart
                 and not state.zero_padding and state.double_frames is None)
        for n in range(first_level, len(self.up_blocks)):
            if split and h.shape[2] > 1:
                return torch.cat([self._up(h[:, :, t:t + 1], state, n) for t in range(h.shape[2])], dim=2)
            h = self.up_blocks[n](h, state)
        return self.conv_out(F.silu(_group_norm(self.conv_norm_out, h, self.per_frame, inplace=True), inplace=True),
                             state)


class MagvitVAE(torch.nn.Module):
    """EasyAnimate V5/V5.1 VAE with the streaming interface of `models.video_vae.VideoVAE`."""

    version = "easyanimate-v5"
    encode_chunk = 4
    first_frame_apart = False

    def __init__(self, cfg: MagvitVAEConfig, device=None, dtype=None, operations=torch.nn, decode_chunk: int = 1):
        super().__init__()
        self.cfg = cfg
        self.decode_chunk = decode_chunk
        self.spatial_ratio = 2 ** (len(cfg.block_out_channels) - 1)
        self.encoder = MagvitEncoder(cfg, device, dtype, operations)
        self.decoder = MagvitDecoder(cfg, device, dtype, operations, first_frame_apart=self.first_frame_apart)
        self.quant_conv = operations.Conv3d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1,
                                            device=device, dtype=dtype)
        self.post_quant_conv = operations.Conv3d(cfg.latent_channels, cfg.latent_channels, 1,
                                                 device=device, dtype=dtype)
        for name, module in self.named_modules():
            if hasattr(module, "state_key"):
                module.state_key = name

    @staticmethod
    def _plan(frames: int, size: int) -> list[tuple[int, int]]:
        return [(0, 1)] + [(i, min(i + size, frames)) for i in range(1, frames, size)]

    def decode_plan(self, latent_frames: int) -> list[tuple[int, int]]:
        return self._plan(latent_frames, self.decode_chunk)

    def encode_plan(self, frames: int) -> list[tuple[int, int]]:
        return self._plan(frames, self.encode_chunk)

    def decoded_frames(self, index: int, n: int) -> int:
        return 1 if index == 0 else n * self.cfg.temporal_ratio

    def encoded_frames(self, index: int, n: int) -> int:
        return 1 if index == 0 else n // self.cfg.temporal_ratio

    def check_frames(self, frames: int) -> int:
        """The causal encoder takes 1 + k * temporal_ratio frames; later frames are dropped."""
        return 1 + (frames - 1) // self.cfg.temporal_ratio * self.cfg.temporal_ratio

    def decode_window(self, start: int, end: int, total: int) -> tuple[int, int]:
        return start, end

    def decode_step(self, z: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z), state)

    def encode_step(self, x: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        return self.quant_conv(self.encoder(x, state))[:, : self.cfg.latent_channels]


class MagvitSliceVAE(MagvitVAE):
    """EasyAnimate V2 "mag VAE" (official `slice_mag_vae`): the same network with mid-block attention,
    run on independent slices: `slice_latents` latent frames (decode) or `slice_frames` image frames
    (encode) at a time, each padded causally by repeating its own first frame, with no state
    carried between slices; in each slice the first frame stands alone in the temporal upsamplers.
    Streaming is exact by construction: one slice is the official unit of work."""

    version = "easyanimate-v2"
    first_frame_apart = True

    def decode_plan(self, latent_frames: int) -> list[tuple[int, int]]:
        n = self.cfg.slice_latents
        return [(i, min(i + n, latent_frames)) for i in range(0, latent_frames, n)]

    def encode_plan(self, frames: int) -> list[tuple[int, int]]:
        n = self.cfg.slice_frames
        return [(i, min(i + n, frames)) for i in range(0, frames, n)]

    def decoded_frames(self, index: int, n: int) -> int:
        return 1 + (n - 1) * self.cfg.temporal_ratio

    def encoded_frames(self, index: int, n: int) -> int:
        for _ in range(self.cfg.temporal_ratio.bit_length() - 1):
            n = (n - 1) // 2 + 1
        return n

    def check_frames(self, frames: int) -> int:
        return frames

    def decode_step(self, z: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        state.reset()  # every slice starts afresh, and keeps nothing afterwards
        try:
            return super().decode_step(z, state, chunk)
        finally:
            state.reset()

    def encode_step(self, x: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        state.reset()
        try:
            return super().encode_step(x, state, chunk)
        finally:
            state.reset()


class MagvitSliceCompressionVAE(MagvitSliceVAE):
    """EasyAnimate V3 "slice VAE" (official `slice_compression_vae`). Encoder: an odd clip's first frame
    alone, then slices of `slice_frames` (8); decoder: an odd latent's first frame alone, then slices of
    `slice_latents` (2). Slices are independent, temporal convolutions zero-pad one frame on each side,
    and the decoder's input convolution and mid block (with its attention) also see the previous and
    the next slice, whose frames are then dropped: the official smoothing of slice borders. The
    temporal upsamplers double every frame except in the lone first frame's slice."""

    version = "easyanimate-v3"
    first_frame_apart = False

    def _plan(self, frames: int, size: int) -> list[tuple[int, int]]:
        first = [(0, 1)] if frames % 2 else []
        return first + [(i, min(i + size, frames)) for i in range(len(first), frames, size)]

    def decode_plan(self, latent_frames: int) -> list[tuple[int, int]]:
        return self._plan(latent_frames, self.cfg.slice_latents)

    def encode_plan(self, frames: int) -> list[tuple[int, int]]:
        return self._plan(frames, self.cfg.slice_frames)

    def decode_window(self, start: int, end: int, total: int) -> tuple[int, int]:
        if total % 2 and start == 0:  # the lone first frame
            return start, end
        first_slice = start == total % 2
        n = self.cfg.slice_latents
        return (start if first_slice else start - n), (min(end + n, total) if end < total else end)

    def decoded_frames(self, index: int, n: int) -> int:
        return 1 if index == 0 and n == 1 else n * self.cfg.temporal_ratio

    def _slice_state(self, state: State, double: bool) -> None:
        state.reset(zero_padding=True, double_frames=double)

    def decode_step(self, z: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        start, end, total = chunk
        lone = total % 2 == 1 and start == 0
        self._slice_state(state, double=not lone)
        low = self.decode_window(start, end, total)[0]
        try:
            return self.decoder(self.post_quant_conv(z), state, keep=(start - low, end - start))
        finally:
            state.reset()

    def encode_step(self, x: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        self._slice_state(state, double=False)
        try:
            return self.quant_conv(self.encoder(x, state))[:, : self.cfg.latent_channels]
        finally:
            state.reset()


class MagvitCacheCompressionVAE(MagvitSliceCompressionVAE):
    """EasyAnimate V4 (official `cache_compression_vae`): the V3 encoder; the decoder walks the latent
    in slices of `slice_latents` (2) carrying each causal convolution's last frames from slice to slice
    (the first slice padded by repeating its first frame), and doubles every frame in time. A one-frame
    latent is decoded alone with zero padding and no temporal upsampling."""

    version = "easyanimate-v4"

    def decode_plan(self, latent_frames: int) -> list[tuple[int, int]]:
        n = self.cfg.slice_latents
        return [(i, min(i + n, latent_frames)) for i in range(0, latent_frames, n)]

    def decode_window(self, start: int, end: int, total: int) -> tuple[int, int]:
        return start, end

    def decode_step(self, z: torch.Tensor, state: State, chunk=None) -> torch.Tensor:
        if chunk[2] == 1:
            self._slice_state(state, double=False)
        else:
            state.double_frames = True
        return self.decoder(self.post_quant_conv(z), state)
