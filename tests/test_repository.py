"""Rules about the repository itself: how tests and benches import, what the pack depends on."""
import ast
import os
import re
import subprocess
import sys
import tomllib

import pytest

from scripts import harness

ROOT = harness.ROOT


def test_tests_and_benches_import_without_path_surgery():
    files = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py"), *ROOT.glob("references/**/*.py")]
    offenders = [f"{path.relative_to(ROOT)}:{number}" for path in files
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"sys\.path\.(insert|append)|PYTHONPATH", line) and path.name != "test_repository.py"]
    assert len(files) > 10 and offenders == []


IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "cv2": "opencv-python-headless"}
HOST_MODULES = {"comfy", "comfy_extras", "comfy_host", "execution", "folder_paths", "nodes", "ui_workflow"}
"""ComfyUI's modules and the host folder's scripts: the host provides them, no requirement does."""
REPOSITORY_PACKAGES = {"motionkit", "scripts", "references", "bench"} | {path.stem for path in ROOT.glob("scripts/*.py")}
"""This repository's packages, and the scripts' imports of each other (run as `python scripts/<name>.py`)."""


def _distributions(files) -> set[str]:
    """The distributions a set of files imports (absolute imports outside the stdlib, the host and this repo)."""
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    found -= set(sys.stdlib_module_names) | HOST_MODULES | REPOSITORY_PACKAGES
    return {IMPORT_TO_DISTRIBUTION.get(name, name).lower() for name in found}


def _names(requirements) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower() for line in requirements
            if line.strip() and not line.strip().startswith("#")}


def test_runtime_requirements_are_what_the_pack_imports():
    runtime = _distributions([ROOT / "__init__.py", *ROOT.glob("nodes/**/*.py"), *ROOT.glob("models/**/*.py")])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"torch", "safetensors", "opencv-python-headless"} <= runtime
    assert _names((ROOT / "requirements.txt").read_text().splitlines()) == runtime
    assert _names(project["dependencies"]) == runtime


def test_the_test_extra_is_what_tests_references_and_benches_import_beyond_the_runtime():
    runtime = _names((ROOT / "requirements.txt").read_text().splitlines())
    used = _distributions(path for folder in ("tests", "references", "bench", "scripts") for path in ROOT.glob(f"{folder}/**/*.py"))
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert {"diffusers", "pytest"} <= used
    assert _names(extra) == used - runtime


@pytest.mark.parametrize("setting", ["host", "empty folder"])
def test_installer_and_harness_agree_on_comfyui_path(setting, tmp_path):
    host = harness.find_host()
    if setting == "host" and host is None:
        pytest.skip("no ComfyUI host here")
    path = host if setting == "host" else tmp_path
    done = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), "--dry-run"], capture_output=True, text=True,
                          env=dict(os.environ, COMFYUI_PATH=str(path)), timeout=300)
    if setting == "host":
        assert done.returncode == 0, done.stderr
        assert f"ComfyUI host at {path}" in done.stdout and "would run: pip install -r requirements.txt" in done.stdout
    else:
        assert done.returncode == 1
        assert f"COMFYUI_PATH={path}" in done.stderr and "comfyui-host" in done.stderr
