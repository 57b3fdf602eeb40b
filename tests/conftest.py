"""Test setup: ComfyUI in-process when a host is found, the pack imported as `motionkit`.

Tests marked `host` need the real ComfyUI (../shared/comfyui-host or $COMFYUI_PATH).
Without one they are skipped with a loud reason, except in CI, where that is an error.
"""
import os
import shutil
import tempfile
from pathlib import Path

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
