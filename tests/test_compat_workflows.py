"""Workflows in ComfyUI_IPAdapter_plus users' format (its node ids, tests/data/compat_workflows),
covering all 37 of its nodes: generated from one definition, twins that agree, each queued with
POST /prompt on a real server on generated tiny models, every output node answering and the picture
differing from the same workflow with its IPAdapter nodes bypassed (test_end_to_end loads them in the
editor's server)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import host
from support import workflow_format as wf
from support.e2e_prompts import images, linked_outputs_only, localized, save_reference_embeds, without_adapters

sys.path.insert(0, str(host.REPO / "scripts"))
import make_compat_workflows  # noqa: E402

FOLDER = host.REPO / "tests" / "data" / "compat_workflows"
NAMES = [make.__name__ for make in make_compat_workflows.WORKFLOWS]
INTERFACE = json.loads((host.REPO / "tests" / "data" / "ipadapter_plus_interface.json").read_text())["nodes"]


def load(name: str, api: bool = False) -> dict:
    return json.loads((FOLDER / ("api" if api else "") / f"compat_{name}.json").read_text())


@pytest.fixture(scope="module")
def object_info(inproc, pack):
    import nodes
    return wf.object_info_from_mappings({**nodes.NODE_CLASS_MAPPINGS, **pack.NODE_CLASS_MAPPINGS},
                                        set(nodes.NODE_CLASS_MAPPINGS) | set(pack.NODE_CLASS_MAPPINGS))


def test_the_workflows_cover_every_node_of_the_leading_pack():
    used = {n["type"] for name in NAMES for n in load(name)["nodes"]}
    assert set(INTERFACE) <= used


@pytest.mark.parametrize("name", NAMES)
def test_the_files_are_what_the_definition_generates_and_the_twins_agree(name, object_info):
    graph = make_compat_workflows.build_all()[name]
    assert linked_outputs_only(load(name)) == linked_outputs_only(graph.ui(object_info))
    assert load(name, api=True) == graph.api(object_info)
    assert wf.ui_to_api(load(name), object_info) == wf.strip_meta(load(name, api=True))


# the nodes that patch the model (apply nodes, then the loaders they hang on): bypassed, each passes its model on
PATCHING = sorted((i for i, spec in INTERFACE.items() if "model" in spec["input"]["required"]),
                  key=lambda i: "Loader" in i)


@pytest.fixture(scope="module")
def server():
    from support.host_models import prepare_models, write_reference_image
    from support.server import ComfyServer
    with ComfyServer() as srv:
        names = prepare_models(srv.models_dir, which=("sd15", "faceid"))
        write_reference_image(srv.input_dir)
        served = srv.object_info()
        yield srv, names, {i for i, info in served.items() if info.get("output_node")}


def run(srv, api: dict) -> tuple[dict, np.ndarray]:
    """The history entry of a prompt queued over HTTP, and the images its SaveImage nodes wrote."""
    entry = srv.wait_for(srv.post_prompt(api))
    saved = [srv.output_dir / img["subfolder"] / img["filename"] for nid, node in api.items()
             if node["class_type"] == "SaveImage" for img in entry["outputs"][nid]["images"]]
    return entry, images(saved)


def files_written(srv, entry: dict, node_id: str) -> list:
    """What one output node reported (images, previews, saved embeds), as paths."""
    roots = {"output": srv.output_dir, "temp": srv.base / "temp"}
    return [roots[item.get("type", "output")] / item.get("subfolder", "") / item["filename"]
            for items in entry["outputs"].get(node_id, {}).values() for item in items]


@pytest.mark.parametrize("name", NAMES)
def test_each_compat_workflow_runs_through_the_api_and_its_adapters_change_the_picture(name, server):
    srv, names, output_nodes = server
    api = wf.set_inputs(localized(load(name, api=True), names, size=64), "SaveImage", filename_prefix=f"compat_{name}")
    if name == "embeds":
        save_reference_embeds(api, "IPAdapterLoadEmbeds", penultimate=True, input_dir=srv.input_dir)
    entry, out = run(srv, api)
    for node_id in (nid for nid, node in api.items() if node["class_type"] in output_nodes):
        written = files_written(srv, entry, node_id)
        assert written and all(p.is_file() for p in written), api[node_id]["class_type"]
    bypassed = wf.set_inputs(without_adapters(api, PATCHING), "SaveImage", filename_prefix=f"compat_{name}_bypassed")
    assert not {n["class_type"] for n in bypassed.values()} & set(PATCHING)
    _, plain = run(srv, bypassed)
    expected = 2 if name == "batch" else 1
    assert out.shape == plain.shape == (expected, 64, 64, 3) and np.isfinite(out).all() and out.std() > 1.0
    assert np.abs(out - plain).mean() > 10.0, "the IPAdapter nodes did not change the picture"
