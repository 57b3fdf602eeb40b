"""The pack loads in ComfyUI (in-process and as a real server) and runs without it."""
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import safetensors.torch
import torch

from scripts import harness

ROOT = harness.ROOT
pack = harness.import_pack()
host = sys.modules["motionkit.models.host"]
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))


def _run_python(code: str, extra_path: str | None = None) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter where ComfyUI is not importable."""
    return subprocess.run([sys.executable, "-c", "import sys\n" + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_nodes_are_registered_with_prefix_category_and_tooltips():
    assert pack.NODE_CLASS_MAPPINGS, "the pack registers no node"
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert name.startswith("MotionKit"), name
        assert pack.NODE_DISPLAY_NAME_MAPPINGS[name].strip(), name
        assert cls.CATEGORY.startswith("MotionKit/"), (name, cls.CATEGORY)
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert len(cls.RETURN_TYPES) == len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)), name
        inputs = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, spec in inputs.get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
        assert getattr(cls, "DESCRIPTION", ""), f"{name} has no DESCRIPTION"


def test_library_imports_and_runs_without_comfyui():
    done = _run_python("""
        from scripts import harness
        pack = harness.import_pack()
        host = sys.modules["motionkit.models.host"]
        assert not host.IN_COMFYUI
        assert "comfy" not in sys.modules, "something imported comfy"
        for cls in pack.NODE_CLASS_MAPPINGS.values():
            cls.INPUT_TYPES()  # file lists are empty, not an error, without MOTIONKIT_MODELS_DIR
        print(len(pack.NODE_CLASS_MAPPINGS))
    """)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == len(pack.NODE_CLASS_MAPPINGS)


def test_only_the_host_adapter_and_the_glue_import_comfyui():
    glue = ROOT / "models" / "comfy_glue"
    pack_files = [ROOT / "__init__.py", *ROOT.glob("nodes/**/*.py"), *ROOT.glob("models/**/*.py")]
    offenders = []
    for path in pack_files:
        if path == ROOT / "models" / "host.py" or glue in path.parents:
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import comfy", "from comfy", "import folder_paths", "from folder_paths")):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert len(pack_files) > 10 and offenders == []
    public = {name: value for name, value in vars(host).items() if not name.startswith("_")}
    assert not [name for name, value in public.items() if isinstance(value, types.ModuleType)
                and value.__name__.split(".")[0] in ("comfy", "folder_paths")], "host.py hands out ComfyUI modules"


def test_pure_model_code_imports_and_runs_with_comfyui_blocked():
    done = _run_python("""
        import importlib, importlib.abc, pkgutil
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("comfy", "folder_paths", "comfy_extras"):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        sys.meta_path.insert(0, Block())
        import torch
        from scripts import harness
        pack = harness.import_pack()
        models = sys.modules["motionkit.models"]
        imported = []
        for info in pkgutil.walk_packages(models.__path__, "motionkit.models."):
            if not info.name.startswith("motionkit.models.comfy_glue"):
                importlib.import_module(info.name)
                imported.append(info.name)
        # a tiny forward through each family, on plain torch
        from motionkit.models.animatediff.motion_module import MotionModel, MotionModuleConfig
        from motionkit.models.cogvideox.transformer import CogVideoXTransformer
        from motionkit.models.tora import loading
        from scripts.tiny_checkpoints import cogvideox as tiny_cog, tora as tiny_tora
        dit = CogVideoXTransformer(**tiny_cog.TINY_CONFIG).eval()
        dit.load_state_dict(tiny_cog.tiny_state_dict())
        tora = loading.build_tora(tiny_tora.tiny_state_dict(), "tiny")
        motion = MotionModel(MotionModuleConfig(block_channels=(32, 64), max_frames=16), operations=torch.nn)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            x = torch.randn(1, 16, 2, 4, 4, generator=g)
            text = torch.randn(1, dit.max_text_seq_length, tiny_cog.TINY_CONFIG["text_embed_dim"], generator=g)
            out = dit(x, torch.tensor([500]), text)
            moved = motion.down_blocks[0].motion_modules[0](torch.randn(8, 32, 4, 4, generator=g), 8)
        assert out.shape == x.shape and torch.isfinite(out).all() and moved.shape == (8, 32, 4, 4)
        assert type(tora).__name__ == "_LibraryPatcher" and "comfy" not in sys.modules
        print(len(imported))
    """)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 30


@pytest.mark.parametrize("failure", ["ModuleNotFoundError(\"No module named 'cv2'\", name='cv2')",
                                     "ImportError('libGL.so.1: cannot open shared object file')"])
def test_missing_optional_dependency_is_logged_not_fatal(failure):
    done = _run_python(f"""
        import importlib.abc, logging
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "cv2" or name.startswith("cv2."):
                    raise {failure}
        sys.meta_path.insert(0, Block())
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        from scripts import harness
        pack = harness.import_pack()
        print("NODES", len(pack.NODE_CLASS_MAPPINGS))
    """)
    assert done.returncode == 0, done.stderr
    assert "nodes/trajectory_tracking.py are unavailable" in done.stderr
    assert ("'cv2' is missing" if "ModuleNotFound" in failure else "libGL.so.1") in done.stderr
    assert int(done.stdout.split("NODES")[1]) > 0


def test_library_mode_reads_models_from_env_folder(tmp_path):
    (tmp_path / "tora").mkdir()
    safetensors.torch.save_file({"w": torch.ones(2)}, str(tmp_path / "tora" / "a.safetensors"))
    done = _run_python(f"""
        import os
        os.environ["MOTIONKIT_MODELS_DIR"] = {str(tmp_path)!r}
        from scripts import harness
        harness.import_pack()
        host = sys.modules["motionkit.models.host"]
        print(host.model_filenames("tora"))
        print(host.load_state_dict(host.model_path("tora", "a.safetensors"))["w"].tolist())
        try:
            host.model_path("tora", "b.safetensors")
        except FileNotFoundError as e:
            print(e)
    """)
    assert done.returncode == 0, done.stderr
    listed, loaded, missing = done.stdout.splitlines()
    assert (listed, loaded) == ("['a.safetensors']", "[1.0, 1.0]")
    assert all(fact in missing for fact in ("'b.safetensors'", "'tora'", "a.safetensors", "ComfyUI/models/tora/"))


# ---------------------------------------------------------------- in-process ComfyUI
@pytest.mark.host
def test_host_adapter_uses_comfyui_facilities(tmp_path):
    import comfy.utils
    import folder_paths

    assert host.IN_COMFYUI
    assert isinstance(host.progress_bar(3), comfy.utils.ProgressBar)
    for folder in ("animatediff_models", "animatediff_motion_lora", "tora"):
        paths, extensions = folder_paths.folder_names_and_paths[folder]
        assert any(p.endswith(folder) for p in paths)
        assert ".safetensors" in extensions


@pytest.mark.host
def test_pickles_are_loaded_weights_only(tmp_path, capfd):
    class Payload:
        def __reduce__(self):
            return (print, ("PAYLOAD EXECUTED",))

    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": Payload()}, str(evil))
    with pytest.raises(Exception):
        host.load_state_dict(str(evil))
    assert "PAYLOAD EXECUTED" not in capfd.readouterr().out
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, str(plain))
    assert host.load_state_dict(str(plain))["w"].tolist() == [0.0, 1.0, 2.0]


# ---------------------------------------------------------------- a real server
@pytest.mark.host
def test_server_loads_every_node_without_import_errors(comfy_server):
    log = comfy_server.log()
    assert "Cannot import" not in log and "IMPORT FAILED" not in log, log[-4000:]
    info = comfy_server.get_json("/object_info")
    module = f"custom_nodes.{ROOT.name}"
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert name in info, f"{name} missing from /object_info"
        entry = info[name]
        assert entry["python_module"] == module
        assert entry["output"] == list(cls.RETURN_TYPES)
        assert set(entry["input"]["required"]) == set(cls.INPUT_TYPES()["required"])
        assert entry["category"] == cls.CATEGORY


@pytest.mark.host
def test_server_serves_the_web_directory(comfy_server):
    extensions = comfy_server.get_json("/extensions")
    ours = sorted(e for e in extensions if e.startswith(f"/extensions/{ROOT.name}/"))
    expected = sorted(f"/extensions/{ROOT.name}/{p.relative_to(ROOT / 'web').as_posix()}"
                      for p in (ROOT / "web").glob("**/*.js"))
    assert expected and ours == expected


@pytest.mark.host
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.stem for w in WORKFLOWS])
def test_example_workflow_runs_in_the_frontend(comfy_server, workflow):
    """Every example workflow runs through the frontend and saves files. Collected last (conftest): a workflow that a
    family's test already ran on this server, with its inputs and its checks of the values, is not run twice."""
    graph = json.loads(workflow.read_text())
    assert "nodes" in graph and "links" in graph, "example workflows are UI format"
    outputs = comfy_server.completed.get(workflow.resolve()) or comfy_server.run_ui_workflow(workflow)
    files = comfy_server.output_files(outputs)
    assert files, f"{workflow.name} produced no output file"
    for path in files:
        assert path.is_file() and path.stat().st_size > 0, path
