"""Test setup: ComfyUI in-process when a host is found, the pack imported as `motionkit`.

Tests marked `host` need the real ComfyUI (../shared/comfyui-host or $COMFYUI_PATH).
Without one they are skipped with a loud reason, except in CI, where that is an error.
"""
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts import harness

_WORK = Path(tempfile.mkdtemp(prefix="motionkit-tests-"))
HOST_FOUND = harness.setup_comfy_in_process(work_dir=_WORK)
NO_HOST_REASON = "NO COMFYUI HOST FOUND: set COMFYUI_PATH or provide ../shared/comfyui-host; the real-ComfyUI tests did not run"
if not HOST_FOUND and os.environ.get("CI"):
    raise RuntimeError(NO_HOST_REASON + " (in CI they must run)")
harness.import_pack()


def pytest_configure(config):
    config.addinivalue_line("markers", "host: needs the real ComfyUI from ../shared/comfyui-host")


def pytest_collection_modifyitems(config, items):
    # The catch-all example-workflow test goes last, so it reuses the runs of the tests that check a workflow's values.
    items.sort(key=lambda item: item.originalname == "test_example_workflow_runs_in_the_frontend")
    if HOST_FOUND:
        return
    skip = pytest.mark.skip(reason=NO_HOST_REASON)
    for item in items:
        if "host" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session):
    """The in-process ComfyUI's working folder goes with the session."""
    shutil.rmtree(_WORK, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if not HOST_FOUND:
        terminalreporter.write_line("!" * 20 + " " + NO_HOST_REASON + " " + "!" * 20, red=True)


@pytest.fixture
def tiny_t5():
    """A tiny random T5 v1.1 encoder (transformers), the same weights as a ComfyUI CLIP (sd3_clip's T5-XXL slot)
    and T5's tokenizer that ComfyUI ships: what the T5 text-encode parity tests compare."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.sd3_clip as sd3_clip
    import torch
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    small = dict(d_model=64, d_ff=32, d_kv=8, num_heads=2, num_layers=2, vocab_size=32128)
    torch.manual_seed(0)
    encoder = T5EncoderModel(T5Config(**small, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                                      layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False)).eval()
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0, 0.5)
    target = comfy.supported_models_base.ClipTarget(sd3_clip.SD3Tokenizer,
                                                    sd3_clip.sd3_clip(clip_l=False, clip_g=False, t5=True))
    clip = comfy.sd.CLIP(target, model_options={"t5xxl_model_config": small, "dtype": torch.float32})
    clip.load_sd(encoder.state_dict())
    tokenizer = T5TokenizerFast.from_pretrained(str(Path(sd3_clip.__file__).parent / "t5_tokenizer"))
    return SimpleNamespace(encoder=encoder, clip=clip, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A ComfyUI models folder holding every family's tiny checkpoints."""
    folder = tmp_path_factory.mktemp("models")
    harness.write_tiny_checkpoints(folder)
    return folder


@pytest.fixture(scope="session")
def comfy_server(models_dir):
    """One real ComfyUI server with the pack loaded, shared by the session's tests."""
    if not HOST_FOUND:
        pytest.skip(NO_HOST_REASON)
    server = harness.ComfyServer(models_dir)
    yield server
    server.stop()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave screenshots and videos for a person to look at."""
    folder = Path(__file__).resolve().parents[1] / "test_artifacts"
    folder.mkdir(exist_ok=True)
    return folder
