"""Training clips for MotionLoRA and domain adapter training: reading, frame stride, resize and centre crop.

A clip is a short video of one motion: a video file (mp4, webm, mov, mkv, avi through PyAV; animated gif
and webp through Pillow) or a folder of frames (png, jpg, webp, bmp, in natural name order). A caption
file of the same name (`pan_01.mp4` -> `pan_01.txt`, `pan_01/` -> `pan_01.txt`) gives the clip's prompt.

Frames are kept as uint8 [frames, height, width, 3] (a quarter of an IMAGE's float32) until the trainer
encodes them. Resizing follows AnimateDiff's training data (`animatediff/data/dataset.py`: Resize of the
shorter side, then CenterCrop): scale so the frame covers the target size, then crop the centre.
Every bad clip is reported by name, with the reason, in one error; none is dropped.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MotionKitError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
ANIMATED_IMAGE_EXTENSIONS = (".gif", ".webp")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class TrainingClipError(MotionKitError):
    """Clips that cannot be used for training; the message names each clip and the fix."""


@dataclass(frozen=True)
class TrainingClip:
    """One training video: its frames (uint8 [frames, height, width, 3]), name and optional caption."""
    name: str
    frames: torch.Tensor
    caption: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def describe(self) -> str:
        width, height = self.size
        return f"'{self.name}' ({len(self.frames)} frames, {width}x{height})"


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """IMAGE (float 0..1, [frames, height, width, channels]) -> uint8 RGB frames."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise TrainingClipError(f"expected an IMAGE batch [frames, height, width, 3], got shape {tuple(images.shape)}")
    return (images[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def uint8_to_image(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames -> IMAGE (float32 0..1)."""
    return frames.float() / 255.0


def resize_center_crop(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Scale uint8 frames [n, h, w, 3] so they cover width x height (aspect kept, antialiased bilinear), crop the centre."""
    n, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames
    scale = max(width / w, height / h)
    scaled_w, scaled_h = max(width, round(w * scale)), max(height, round(h * scale))
    pixels = frames.permute(0, 3, 1, 2).float()
    pixels = F.interpolate(pixels, size=(scaled_h, scaled_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
    pixels = pixels[:, :, top:top + height, left:left + width]
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def take_frames(frames: list[np.ndarray], stride: int, max_frames: int) -> list[np.ndarray]:
    """Every `stride`-th frame, at most `max_frames` of them (0: all)."""
    kept = frames[::stride]
    return kept[:max_frames] if max_frames > 0 else kept


def _read_video(path: str, stride: int, max_frames: int) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % stride == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
                if 0 < max_frames <= len(frames):
                    break
    return frames


def _read_animated_image(path: str, stride: int, max_frames: int) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        frames = [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    return take_frames(frames, stride, max_frames)


def _read_frame_folder(path: str, stride: int, max_frames: int) -> list[np.ndarray]:
    from PIL import Image

    names = sorted((f for f in os.listdir(path) if f.lower().endswith(FRAME_EXTENSIONS)), key=_natural_key)
    frames = []
    for name in take_frames(names, stride, max_frames):
        with Image.open(os.path.join(path, name)) as image:
            frames.append(np.array(image.convert("RGB")))
    return frames


def clip_sources(folder: str) -> list[tuple[str, str]]:
    """(clip name, path) of every video, animated image and frame folder directly inside `folder`, in name order."""
    sources = []
    for entry in sorted(os.listdir(folder), key=_natural_key):
        path = os.path.join(folder, entry)
        if os.path.isdir(path):
            if any(f.lower().endswith(FRAME_EXTENSIONS) for f in os.listdir(path)):
                sources.append((entry, path))
        elif entry.lower().endswith(VIDEO_EXTENSIONS + ANIMATED_IMAGE_EXTENSIONS):
            sources.append((entry, path))
    return sources


def _caption(path: str) -> str | None:
    caption_path = (path.rstrip(os.sep) if os.path.isdir(path) else os.path.splitext(path)[0]) + ".txt"
    if not os.path.isfile(caption_path):
        return None
    with open(caption_path, encoding="utf-8") as file:
        return file.read().strip() or None


def read_clip(path: str, stride: int = 1, max_frames: int = 0) -> list[np.ndarray]:
    """The frames of one clip (video file, animated image or frame folder) as RGB uint8 arrays."""
    if os.path.isdir(path):
        return _read_frame_folder(path, stride, max_frames)
    if path.lower().endswith(ANIMATED_IMAGE_EXTENSIONS):
        return _read_animated_image(path, stride, max_frames)
    return _read_video(path, stride, max_frames)


def load_clip_folder(folder: str, stride: int = 1, width: int = 0, height: int = 0,
                     max_frames: int = 0) -> list[TrainingClip]:
    """Every clip in `folder`, every `stride`-th frame, resized and centre-cropped to width x height
    (0 x 0: kept as they are, then all clips must share one size). Raises one error naming every bad clip."""
    if stride < 1:
        raise TrainingClipError(f"stride must be 1 or more (every stride-th frame is kept), not {stride}")
    if (width > 0) != (height > 0):
        raise TrainingClipError(f"set both width and height (to resize and crop) or neither (to keep the clips' size), "
                                f"not {width}x{height}")
    if not os.path.isdir(folder):
        raise TrainingClipError(f"the clips folder '{folder}' does not exist: put a folder of clips into ComfyUI's input folder")
    sources = clip_sources(folder)
    if not sources:
        raise TrainingClipError(
            f"no clips in '{folder}': put videos ({', '.join(VIDEO_EXTENSIONS + ANIMATED_IMAGE_EXTENSIONS)}) or "
            f"folders of frames ({', '.join(FRAME_EXTENSIONS)}) into it")
    clips, problems = [], []
    for name, path in sources:
        try:
            frames = read_clip(path, stride, max_frames)
        except Exception as error:  # decoders raise many types for a damaged file
            problems.append(f"'{name}' could not be read ({type(error).__name__}: {error})")
            continue
        if not frames:
            problems.append(f"'{name}' has no frames")
            continue
        sizes = sorted({(f.shape[1], f.shape[0]) for f in frames})
        if len(sizes) > 1:
            problems.append(f"'{name}' has frames of mixed sizes ({', '.join(f'{w}x{h}' for w, h in sizes)})")
            continue
        tensor = torch.from_numpy(np.stack(frames))
        if width > 0:
            tensor = resize_center_crop(tensor, width, height)
        clips.append(TrainingClip(name=name, frames=tensor, caption=_caption(path)))
    if not problems and width == 0:
        sizes = {clip.size for clip in clips}
        if len(sizes) > 1:
            problems.append("the clips have different sizes (" + ", ".join(clip.describe() for clip in clips)
                            + "); set width and height to resize and crop every clip to one size")
    if problems:
        raise TrainingClipError(f"{len(problems)} bad clip(s) in '{folder}': " + "; ".join(problems)
                                + ". Fix or remove them; no clip is skipped silently")
    return clips


def clip_from_images(images: torch.Tensor, name: str, caption: str = "", stride: int = 1) -> TrainingClip:
    """A clip from an IMAGE batch (e.g. core Load Video's frames), every `stride`-th frame."""
    if stride < 1:
        raise TrainingClipError(f"stride must be 1 or more, not {stride}")
    frames = image_to_uint8(images)[::stride]
    if len(frames) == 0:
        raise TrainingClipError(f"the images for clip '{name}' hold no frames")
    return TrainingClip(name=name, frames=frames, caption=caption.strip() or None)


def check_length(lengths: dict[str, int], frames: int) -> None:
    """Raise naming every clip ({name: frames}) shorter than `frames` (one training sample is `frames` consecutive frames)."""
    if not lengths:
        raise TrainingClipError("no training clips were given: connect Load Training Clips or Training Clip From Images")
    short = [f"'{name}' ({length} frames)" for name, length in lengths.items() if length < frames]
    if short:
        raise TrainingClipError(
            f"{len(short)} clip(s) have fewer frames than the {frames} frames of one training sample: "
            + ", ".join(short) + f". Lower frames to at most {min(lengths.values())}, lower the "
            "loader's stride, or remove these clips")
