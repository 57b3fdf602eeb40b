"""The EasyAnimate V5.1 example workflows, loaded into the real frontend and queued on a real ComfyUI server."""
import json

import numpy as np
import pytest

from scripts import harness

WORKFLOWS = {
    "easyanimate_v51_text_to_video.json": {"MotionKitLoadEasyAnimateV51", "MotionKitLoadEasyAnimateQwen2VL",
                                           "MotionKitEmptyEasyAnimateV51Latent", "KSampler", "MotionKitSliceVAEDecode"},
    "easyanimate_v51_image_to_video.json": {"MotionKitEasyAnimateV51ImageToVideo", "KSampler", "SaveVideo"},
    "easyanimate_v51_trajectory_control.json": {"MotionKitDrawTrajectories", "MotionKitTrajectoriesToControlVideo",
                                                "MotionKitVideoVAEEncode", "MotionKitEasyAnimateV51Control",
                                                "KSampler", "SaveVideo"},
}


@pytest.mark.host
@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_example_workflow_runs_from_the_frontend(comfy_server, tmp_path, name):
    workflow = harness.ROOT / "example_workflows" / name
    api = tmp_path / "api.json"
    outputs = comfy_server.run_ui_workflow(workflow, api_out=api)
    types = {node["class_type"] for node in json.loads(api.read_text()).values()}
    assert WORKFLOWS[name] <= types
    (video,) = comfy_server.output_files(outputs)
    frames = comfy_server.video_frames(video)
    assert len(frames) == 9 and frames[0].shape == (64, 96, 3)
    assert np.stack(frames).std() > 1.0  # a sampled video, not a constant frame
