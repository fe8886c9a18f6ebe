"""The controls' example workflows (scripts/make_workflows.py): generated from one definition, twins
that agree, and each one run end to end in the real host on generated tiny models, where the
adapter nodes visibly change the picture."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import host
from support import workflow_format as wf
from support.e2e_prompts import (images, linked_outputs_only, localized, save_reference_embeds, save_reference_faces,
                                 without_adapters)
from support.host_models import prepare_models

sys.path.insert(0, str(host.REPO / "scripts"))
import make_workflows  # noqa: E402

WORKFLOWS = host.REPO / "workflows"
FILES = {"style_transfer": "sd15_style_transfer", "style_composition": "sdxl_style_composition",
         "regions": "sd15_regions", "stack_controlnet": "sd15_stack_controlnet",
         "animation": "sd15_animation_batch", "unified_loader": "sd15_unified_loader",
         "embeds_combine": "sd15_embeds_combine", "saved_embeds": "sd15_saved_embeds", "tiled": "sd15_tiled",
         "faceid": "sd15_faceid", "faceid_plusv2": "sd15_faceid_plusv2", "faceid_saved": "sd15_faceid_saved_faces"}

def load(name: str, api: bool = False) -> dict:
    return json.loads((WORKFLOWS / ("api" if api else "") / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def object_info(inproc, pack):
    import nodes
    return wf.object_info_from_mappings({**nodes.NODE_CLASS_MAPPINGS, **pack.NODE_CLASS_MAPPINGS},
                                        set(nodes.NODE_CLASS_MAPPINGS) | set(pack.NODE_CLASS_MAPPINGS))


@pytest.fixture(scope="module")
def sdxl_names(inproc):
    import folder_paths
    return prepare_models(folder_paths.models_dir, which=("sdxl",))


@pytest.mark.parametrize("name", FILES.values())
def test_the_shipped_files_are_what_the_definition_generates(name, object_info):
    graphs = {g.name: g for g in make_workflows.build_all().values()}
    assert linked_outputs_only(load(name)) == linked_outputs_only(graphs[name].ui(object_info))
    assert load(name, api=True) == graphs[name].api(object_info)


@pytest.mark.parametrize("name", FILES.values())
def test_editor_file_and_api_twin_agree(name, object_info):
    ui = load(name)
    assert ui["version"] == 0.4 and ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    assert wf.ui_to_api(ui, object_info) == wf.strip_meta(load(name, api=True))


@pytest.mark.parametrize("feature", FILES)
def test_each_feature_workflow_runs_and_its_adapters_change_the_picture(feature, inproc, sd15_names, request):
    name = FILES[feature]
    names = dict(sd15_names)
    size = 64
    if feature == "style_composition":
        names.update(request.getfixturevalue("sdxl_names"))
    api = localized(load(name, api=True), names, size)
    if feature == "saved_embeds":  # a shared embeddings file in input/, as a user would have it
        save_reference_embeds(api)
    if feature == "faceid_saved":
        save_reference_faces(api)
    if feature == "animation":  # 4 frames: the weights node lays out 4 frames for the 4 latents
        api = wf.set_inputs(api, "EmptyLatentImage", batch_size=4)
        api = wf.set_inputs(api, "IPAKitFrameWeights", frames=4)
    with_adapters = images(inproc.run(wf.set_inputs(api, "SaveImage", filename_prefix=f"wf_{feature}")))
    plain = images(inproc.run(wf.set_inputs(without_adapters(api), "SaveImage", filename_prefix=f"wf_{feature}_0")))
    expected = 4 if feature == "animation" else 1
    assert with_adapters.shape == (expected, size, size, 3) and np.isfinite(with_adapters).all()
    assert np.abs(with_adapters - plain).mean() > 1.0, "the adapter nodes did not change the picture"
