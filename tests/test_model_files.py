"""Every loader reads its files through one safe reader: broken, placeholder and pickled files get an error
that names the file and the fix (asserted by the facts a message must hold, not its wording)."""
import argparse
import json
import os

import pytest
import safetensors.torch
import torch

from scripts import harness

harness.import_pack()
from motionkit.models import model_file, video_vae  # noqa: E402
from motionkit.models.animatediff import loader  # noqa: E402
from motionkit.models.tora import loading  # noqa: E402
from scripts.tiny_checkpoints import cogvideox as tiny_cog  # noqa: E402
from scripts.tiny_checkpoints import tora as tiny_tora  # noqa: E402
from scripts.tiny_checkpoints import video_vae as tiny_vae  # noqa: E402


def _load_cogvideox(path):
    from motionkit.models.comfy_glue import cogvideox

    return cogvideox.load_cogvideox(path)


def _load_t5(path):
    from motionkit.models.comfy_glue import cogvideox

    return cogvideox.load_t5(path)


LOADERS = {  # name: (load(path), needs ComfyUI)
    "Load CogVideoX": (_load_cogvideox, True),
    "Load T5": (_load_t5, True),
    "Load Tora": (lambda path: loading.load_tora([path]), False),
    "Load Video VAE": (video_vae.load_video_vae, False),
    "Load Motion Module": (loader.load_motion_module, False),
    "Load MotionLoRA": (lambda path: loader.load_motion_lora(path, 1.0), False),
}
HOST = [pytest.mark.host]


def _cases():
    return [pytest.param(name, marks=HOST if needs_host else [], id=name) for name, (_load, needs_host) in LOADERS.items()]


def _valid_bytes() -> bytes:
    """A real safetensors file's bytes (a Tora file; which model does not matter for a damaged file)."""
    return safetensors.torch.save(tiny_tora.tiny_state_dict())


BROKEN = {  # what the file holds: (bytes, facts the message must name besides the file)
    "truncated": (lambda: _valid_bytes()[: len(_valid_bytes()) // 2], ("truncated", "download it again")),
    "empty": (lambda: b"", ("empty", "download it again")),
    "random bytes": (lambda: torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                           dtype=torch.uint8).numpy().tobytes(), ("download it again",)),
    "html page": (lambda: b"\n<!DOCTYPE html><html><head><title>Model page</title></head></html>",
                  ("web page", "download")),
    "git lfs pointer": (lambda: b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 +
                        b"\nsize 4000000\n", ("Git LFS pointer", "git lfs pull")),
}


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("loader_name", _cases())
def test_broken_files_name_the_file_and_the_fix(loader_name, kind, tmp_path):
    make, facts = BROKEN[kind]
    path = tmp_path / "model_file.safetensors"
    path.write_bytes(make())
    with pytest.raises(model_file.ModelFileError) as error:
        LOADERS[loader_name][0](str(path))
    message = str(error.value)
    assert "'model_file.safetensors'" in message
    for fact in facts:
        assert fact in message, (fact, message)


@pytest.mark.parametrize("loader_name", _cases())
def test_refused_pickles_say_why_and_how_to_convert(loader_name, tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo executed",))

    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1e-4), "x": Payload()}, str(path))
    with pytest.raises(model_file.ModelFileError) as error:
        LOADERS[loader_name][0](str(path))
    message = str(error.value)
    assert "'weights.ckpt'" in message and "argparse.Namespace" in message and "weights_only=True" in message
    assert "--trust-pickle" in message and "convert" in message and "download it again" not in message


def test_general_pickle_converts_with_the_command_named(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "mm.ckpt"
    torch.save({"state_dict": {"a.weight": torch.arange(4.0)}, "args": argparse.Namespace(lr=1)}, str(path))
    out = tmp_path / "mm.safetensors"
    command = model_file.CONVERT_COMMAND.split()
    done = subprocess.run([sys.executable, command[1], str(path), str(out), "--trust-pickle"], capture_output=True,
                          text=True, cwd=harness.ROOT)
    assert done.returncode == 0, done.stderr
    assert safetensors.torch.load_file(str(out))["a.weight"].tolist() == [0.0, 1.0, 2.0, 3.0]


def _broken_json(path):
    path.write_text('{"_class_name": "AutoencoderKLMagvit", "latent_channels": 16,')


def test_broken_vae_config_json_names_the_file(tmp_path):
    folder = tmp_path / "models"
    files = tiny_vae.write(folder)
    config = next(f.parent / "config.json" for f in files if (f.parent / "config.json").is_file())
    _broken_json(config)
    with pytest.raises(model_file.ModelFileError) as error:
        video_vae.load_video_vae(str(config.parent / "diffusion_pytorch_model.safetensors"))
    assert str(config) in str(error.value) and "download it again" in str(error.value)


@pytest.mark.host
@pytest.mark.parametrize("which", ["config.json", "scheduler_config.json"])
def test_broken_cogvideox_configs_name_the_file(which, tmp_path):
    transformer = tmp_path / "CogVideoX-5b" / "transformer"
    transformer.mkdir(parents=True)
    weights = transformer / "diffusion_pytorch_model.safetensors"
    safetensors.torch.save_file(tiny_cog.tiny_state_dict(), str(weights))
    broken = transformer / "config.json" if which == "config.json" else tmp_path / "CogVideoX-5b" / "scheduler" / which
    broken.parent.mkdir(exist_ok=True)
    _broken_json(broken)
    with pytest.raises(model_file.ModelFileError) as error:
        _load_cogvideox(str(weights))
    assert str(broken) in str(error.value) and "download it again" in str(error.value)


def test_json_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(model_file.ModelFileError) as error:
        model_file.read_json(str(path), "VAE config")
    assert str(path) in str(error.value) and "list" in str(error.value)
