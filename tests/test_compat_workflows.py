"""Workflows in ComfyUI_IPAdapter_plus users' format (its node ids, tests/data/compat_workflows),
covering all 37 of its nodes: generated from one definition, twins that agree, each run end to end
through the host's executor on generated tiny models (the HTTP test loads them in the editor's server)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import host
from support import workflow_format as wf
from support.e2e_prompts import images, linked_outputs_only, localized, save_reference_embeds

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


@pytest.mark.parametrize("name", NAMES)
def test_each_compat_workflow_runs_end_to_end(name, inproc, sd15_names):
    api = localized(load(name, api=True), sd15_names, size=64)
    if name == "embeds":
        save_reference_embeds(api, "IPAdapterLoadEmbeds", penultimate=True)
    out = images(inproc.run(wf.set_inputs(api, "SaveImage", filename_prefix=f"compat_{name}")))
    expected = 2 if name == "batch" else 1
    assert out.shape == (expected, 64, 64, 3) and np.isfinite(out).all() and out.std() > 1.0
