"""One safe reader for every loader's model files and the JSON configs beside them.

A model file is read through the host (ComfyUI's `load_torch_file(safe_load=True)`, or safetensors /
`torch.load(weights_only=True)` without ComfyUI): nothing in it is ever executed. When a file cannot
be read, the error names the file and says what it is and what to do:
- empty, a Git LFS pointer or a saved web page: what the file really is, and to download the weights;
- a pickle holding Python objects besides tensors: why it is refused (the objects it needs, found
  without unpickling: torch.serialization.get_unsafe_globals_in_checkpoint) and the convert command;
- anything else (truncated, random bytes): to download it again.
"""
from __future__ import annotations

import json
import os
import zipfile

import torch

from . import host
from .errors import MotionKitError

CONVERT_COMMAND = "python scripts/convert_to_safetensors.py <file> <out.safetensors> --trust-pickle"
GIT_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
SNIFF_BYTES = 512


class ModelFileError(MotionKitError):
    """A model or config file that cannot be used; the message names it and the fix."""


def _what_the_bytes_are(head: bytes, size: int) -> str | None:
    """What a file that cannot hold weights is, from its first bytes (None: it may hold weights)."""
    if size == 0:
        return "is empty (0 bytes): the download did not finish; download it again"
    if head.startswith(GIT_LFS_POINTER):
        return (f"is a Git LFS pointer ({size} bytes), not the weights: the repository was cloned without Git LFS. "
                f"Run `git lfs pull` in it, or download the file itself from the model page")
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        return ("is a web page (HTML) saved under a model file's name: download the file itself (the model page's "
                "download link), not the page")
    return None


def _refused_objects(path: str) -> list[str]:
    """The Python objects (module.name) a zip-format torch pickle needs beyond tensors, read without unpickling."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a damaged archive: not a refused pickle
        return []


def read_state_dict(path: str, what: str, convert_command: str = CONVERT_COMMAND) -> dict[str, torch.Tensor]:
    """The tensors of the model file `path` (a `what`, e.g. "Tora", for messages), or ModelFileError;
    `convert_command` is offered for a refused pickle."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    name, size = os.path.basename(path), os.path.getsize(path)
    with open(path, "rb") as f:
        problem = _what_the_bytes_are(f.read(SNIFF_BYTES), size)
    if problem:
        raise ModelFileError(f"'{name}' {problem} (it should be a {what} file)")
    try:
        state = host.load_state_dict(path)
    except Exception as error:  # safetensors, zipfile and pickle readers raise many types for damaged files
        refused = _refused_objects(path)
        if refused:
            shown = ", ".join(refused[:4]) + (" ..." if len(refused) > 4 else "")
            raise ModelFileError(
                f"'{name}' is a pickle that holds Python objects besides tensors ({shown}). MotionKit loads "
                f"pickles with torch.load(weights_only=True), which refuses them, because unpickling them could "
                f"run code stored in the file. If you trust the file, convert it once with: {convert_command}"
            ) from None
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"'{name}' could not be read as a {what} file ({reason}): it is truncated or not a "
                             f"model file; download it again") from error
    if not isinstance(state, dict) or not state:
        raise ModelFileError(f"'{name}' holds no tensors: it is not a {what} file")
    return state


def read_json(path: str, what: str) -> dict:
    """A JSON config file (config.json, scheduler_config.json) as a dict, or an error that names the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path} is not valid JSON ({error}): it is the {what} of the model beside it; "
                             f"download it again, or remove it") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} holds a JSON {type(data).__name__}, not the {what} (an object): download "
                             f"it again, or remove it")
    return data


def state_dict_mismatch(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> str | None:
    """None when `sd` fills `model` exactly, else its missing and unexpected keys (the first 8 of each) for an error."""
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if not missing and not unexpected:
        return None
    return (f"missing {missing[:8]} ({len(missing)} in all), unexpected {unexpected[:8]} "
            f"({len(unexpected)} in all)")


def read_config_beside(path: str, what: str) -> dict | None:
    """The config.json in the folder of the weights file `path`, when there is one."""
    config = os.path.join(os.path.dirname(path), "config.json")
    return read_json(config, what) if os.path.isfile(config) else None
