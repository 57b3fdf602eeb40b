"""The AnimateDiff example workflows in the real ComfyUI (frontend + server) on random SD1.5-shaped weights."""
import json

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from scripts import harness

WORKFLOWS = harness.ROOT / "example_workflows"
pytestmark = pytest.mark.host


def _frames_differ(frames: list[np.ndarray]) -> bool:
    return any(np.abs(a.astype(int) - b.astype(int)).max() > 0 for a, b in zip(frames, frames[1:]))


def test_motionlora_workflow_saves_an_8_frame_animation(comfy_server, artifacts_dir):
    workflow = WORKFLOWS / "animatediff_motionlora.json"
    graph = json.loads(workflow.read_text())
    types = {n["type"] for n in graph["nodes"]}
    assert {"CheckpointLoaderSimple", "LoraLoader", "MotionKitApplyMotionModule", "MotionKitLoadMotionLoRA",
            "KSampler", "VAEDecode", "SaveAnimatedWEBP"} <= types
    outputs = comfy_server.run_ui_workflow(workflow)
    files = comfy_server.output_files(outputs)
    assert [f.suffix for f in files] == [".webp"]
    with Image.open(files[0]) as image:
        frames = [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    assert len(frames) == 8 and frames[0].shape == (64, 64, 3)
    assert _frames_differ(frames)
    (artifacts_dir / "animatediff_motionlora.webp").write_bytes(files[0].read_bytes())
    log = comfy_server.log()
    assert "lora key not loaded" not in log  # every key of the domain adapter LoRA reached the UNet
    assert "Requested to load MotionModel" in log  # the motion module went through ComfyUI's model management


def test_long_video_workflow_samples_through_context_windows(comfy_server, artifacts_dir):
    workflow = WORKFLOWS / "animatediff_long_video.json"
    graph = json.loads(workflow.read_text())
    windows = next(n for n in graph["nodes"] if n["type"] == "ContextWindowsManual")
    frames_node = next(n for n in graph["nodes"] if n["type"] == "EmptyLatentImage")
    assert windows["widgets_values"][-1] == 0 and frames_node["widgets_values"][2] > windows["widgets_values"][0]
    outputs = comfy_server.run_ui_workflow(workflow)
    files = comfy_server.output_files(outputs)
    assert len(files) == 1
    with av.open(str(files[0])) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = float(stream.average_rate)
    assert len(frames) == frames_node["widgets_values"][2] and frames[0].shape == (64, 64, 3)
    assert rate == 8.0
    assert _frames_differ(frames)
    (artifacts_dir / f"animatediff_long_video{files[0].suffix}").write_bytes(files[0].read_bytes())
    assert f"Using context windows {windows['widgets_values'][0]} for {len(frames)} frames." in comfy_server.log()


def test_train_motionlora_workflow_trains_saves_and_samples_with_it(comfy_server, artifacts_dir):
    """Clips folder -> Train MotionLoRA (2 steps) -> Apply Motion Module with it -> KSampler -> SaveAnimatedWEBP."""
    workflow = WORKFLOWS / "animatediff_train_motionlora.json"
    graph = json.loads(workflow.read_text())
    loader_node = next(n for n in graph["nodes"] if n["type"] == "MotionKitLoadTrainingClips")
    trainer = next(n for n in graph["nodes"] if n["type"] == "MotionKitTrainMotionLoRA")
    harness.write_training_clips(comfy_server.input_dir / loader_node["widgets_values"][0])
    outputs = comfy_server.run_ui_workflow(workflow)
    files = comfy_server.output_files(outputs)
    animations = [f for f in files if f.suffix == ".webp"]
    plots = [f for f in files if f.suffix == ".png"]
    assert len(animations) == 1 and len(plots) == 1
    with Image.open(animations[0]) as image:
        frames = [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    assert len(frames) == 8 and frames[0].shape == (64, 64, 3) and _frames_differ(frames)
    with Image.open(plots[0]) as plot:
        assert plot.size == (640, 320)
    (artifacts_dir / "animatediff_train_motionlora.webp").write_bytes(animations[0].read_bytes())
    saved = comfy_server.work / "base" / "models" / "animatediff_motion_lora" / f"{trainer['widgets_values'][10]}.safetensors"
    assert saved.is_file() and saved.stat().st_size > 1_000_000
    log = comfy_server.log()
    assert "MotionKit: MotionLoRA step 2/2, loss" in log and "saved the MotionLoRA after 2 steps" in log
