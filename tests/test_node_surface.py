"""One rule for the node surface: ids, display names, categories, socket types and error names."""
import importlib
import inspect
import json
import pkgutil
import re

import pytest

from scripts import harness

pack = harness.import_pack()
types = importlib.import_module("motionkit.nodes.types")
errors = importlib.import_module("motionkit.models.errors")

FAMILIES = {"Trajectory", "Tora", "CogVideoX", "AnimateDiff", "Video VAE", "EasyAnimate"}
# ComfyUI's own socket types the nodes use; every other type is one of ours.
CORE_TYPES = {"IMAGE", "LATENT", "MODEL", "CLIP", "CONDITIONING", "SIGMAS", "SAMPLER", "NOISE", "GUIDER", "VAE", "MASK",
              "CLIP_VISION", "CLIP_VISION_OUTPUT", "STRING", "INT", "FLOAT", "BOOLEAN", "VIDEO"}
OUR_TYPES = {value for name, value in vars(types).items() if name.isupper()}
WORKFLOWS = sorted((harness.ROOT / "example_workflows").glob("*.json"))


def _socket_types(cls):
    inputs = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            if isinstance(spec[0], str):
                yield name, spec[0]
    yield from zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES)


def test_our_types_are_prefixed_constants():
    assert OUR_TYPES == {"MOTIONKIT_TRAJECTORY", "MOTIONKIT_TORA", "MOTIONKIT_VIDEO_VAE", "MOTIONKIT_MOTION_MODULE",
                         "MOTIONKIT_MOTION_LORA"} | {t for t in OUR_TYPES if t.startswith("MOTIONKIT_")}
    assert all(t.startswith("MOTIONKIT_") for t in OUR_TYPES)


@pytest.mark.parametrize("node_id", sorted(pack.NODE_CLASS_MAPPINGS))
def test_node_follows_the_naming_rule(node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert re.fullmatch(r"MotionKit[A-Z][A-Za-z0-9]*", node_id) and cls.__name__ == node_id
    display = pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]
    assert re.fullmatch(r"[A-Z][^()]*[^ ] \(MotionKit\)", display) and "MotionKit " not in display, display
    root, family = cls.CATEGORY.split("/", 1)
    assert root == "MotionKit" and family in FAMILIES, cls.CATEGORY
    for socket, kind in _socket_types(cls):
        assert kind in CORE_TYPES or kind in OUR_TYPES, f"{node_id}.{socket}: type {kind!r} is neither core nor MOTIONKIT_"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.stem for w in WORKFLOWS])
def test_example_workflow_slots_match_the_nodes(workflow):
    graph = json.loads(workflow.read_text())
    by_id = {node["id"]: node for node in graph["nodes"]}
    ours = 0
    for node in graph["nodes"]:
        cls = pack.NODE_CLASS_MAPPINGS.get(node["type"])
        if cls is None:
            assert not node["type"].startswith("MotionKit"), f"{workflow.name}: unknown node {node['type']}"
            continue
        ours += 1
        assert [o["type"] for o in node.get("outputs", [])] == list(cls.RETURN_TYPES), (workflow.name, node["type"])
        declared = dict(_socket_types(cls))
        for slot in node.get("inputs", []):
            if slot["name"] in declared:
                assert slot["type"] == declared[slot["name"]], (workflow.name, node["type"], slot["name"])
    assert ours
    for link_id, origin, origin_slot, target, target_slot, kind in graph["links"]:
        assert by_id[origin]["outputs"][origin_slot]["type"] == kind, (workflow.name, link_id)
        if kind.startswith("MOTIONKIT_") or kind not in CORE_TYPES:
            assert kind in OUR_TYPES, (workflow.name, link_id, kind)


def _pack_error_classes():
    found = set()
    for info in pkgutil.walk_packages(pack.models.__path__, "motionkit.models."):
        if "comfy_glue" in info.name and not harness.find_host():
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ in (info.name, "MotionKit"):
                found.add(obj)
    return found


def test_errors_read_well_in_the_error_dialog():
    classes = _pack_error_classes()
    assert len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, errors.MotionKitError), f"{cls.__qualname__} does not derive from MotionKitError"
        assert cls.__module__ == "MotionKit" and "." not in cls.__qualname__, cls


@pytest.mark.host
def test_comfyui_names_errors_without_the_pack_path():
    import execution

    from motionkit.models.trajectory.data import TrajectoryError

    assert execution.full_type_name(TrajectoryError) == "MotionKit.TrajectoryError"
