"""End to end: the shipped workflows run on a real ComfyUI host with core loader nodes.

Models are random (tests/support/host_models.py) but real-sized where ComfyUI fixes the size
(CLIP text encoders, VAE, ViT-H), so the core loaders detect them exactly as they detect
released files. Images are noise; the tests check that the graph runs, writes an image, and
that the adapter changes the result while weight 0 does not.

(a) in-process through `execution.PromptExecutor` (as main.py's prompt worker drives it),
(b) through a started server's `POST /prompt`,
(c) the `workflows/` files: editor and API twins agree; the SD1.5 and SDXL prompts run.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import host
from support import workflow_format as wf
from support.host_models import REFERENCE_IMAGE as REFERENCE
from support.host_models import prepare_models
from support.host_models import write_reference_image as write_reference

WORKFLOWS = host.REPO / "workflows"
SIZE, STEPS = 128, 3  # 128 px keeps the full-size VAE decode near 0.5 s on 2 cores


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def small_prompt(api: dict, names: dict, prefix: str, sdxl: bool = False, size: int = SIZE,
                 steps: int = STEPS, **apply_inputs) -> dict:
    """The shipped prompt with the generated models' names, a small size and few steps."""
    api = wf.set_inputs(api, "CheckpointLoaderSimple",
                        ckpt_name=names["sdxl_checkpoint" if sdxl else "checkpoint"])
    api = wf.set_inputs(api, "EmptyLatentImage", width=size, height=size)
    api = wf.set_inputs(api, "KSampler", steps=steps)
    api = wf.set_inputs(api, "SaveImage", filename_prefix=prefix)
    if any(n["class_type"] == "IPAKitApply" for n in api.values()):
        api = wf.set_inputs(api, "LoadImage", image=REFERENCE)
        api = wf.set_inputs(api, "CLIPVisionLoader", clip_name=names["clip_vision"])
        api = wf.set_inputs(api, "IPAKitAdapterLoader",
                            adapter_name=names["sdxl_ipadapter" if sdxl else "ipadapter"])
        if apply_inputs:
            api = wf.set_inputs(api, "IPAKitApply", **apply_inputs)
    return api


def read_images(paths) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in paths]


@pytest.fixture(scope="session")
def object_info(pack):
    import nodes
    classes = {n["type"] for f in ("sd15_image_prompt.json", "sdxl_image_prompt.json")
               for n in load_workflow(f)["nodes"] if n["type"] not in wf.UI_ONLY_TYPES}
    mappings = {**nodes.NODE_CLASS_MAPPINGS, **pack.NODE_CLASS_MAPPINGS}
    return wf.object_info_from_mappings(mappings, classes)


# --------------------------------------------------------------------------- (a) in-process
def test_sd15_workflow_in_process_adapter_changes_image(inproc, sd15_names):
    api = load_workflow("api/sd15_image_prompt.json")
    plain = inproc.run(small_prompt(wf.without_node(api, "IPAKitApply"), sd15_names, "e2e_plain"))
    zero = inproc.run(small_prompt(api, sd15_names, "e2e_w0", weight=0.0))
    full = inproc.run(small_prompt(api, sd15_names, "e2e_w1", weight=1.0))
    for paths in (plain, zero, full):
        assert len(paths) == 1 and paths[0].is_file()
    a_plain, a_zero, a_full = read_images(plain + zero + full)
    assert a_full.shape == (SIZE, SIZE, 3)
    assert a_plain.std() > 1.0, "the image is flat: the random models did not produce a signal"
    assert np.abs(a_zero - a_plain).mean() < 0.5, "weight 0 should leave the model unchanged"
    assert np.abs(a_full - a_plain).mean() > 2.0, "the adapter at weight 1 did not change the image"


def test_sd15_plus_adapter_from_bin_in_process(inproc, sd15_names):
    api = load_workflow("api/sd15_image_prompt.json")
    plain = inproc.run(small_prompt(wf.without_node(api, "IPAKitApply"), sd15_names, "e2e_plain"))
    plus = small_prompt(api, sd15_names, "e2e_plus", weight=1.0)
    plus = wf.set_inputs(plus, "IPAKitAdapterLoader", adapter_name=sd15_names["ipadapter_plus"])
    a_plain, a_plus = read_images(plain + inproc.run(plus))
    assert np.abs(a_plus - a_plain).mean() > 2.0


# --------------------------------------------------------------------------- (c) workflow files
@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_ui_and_api_twins_agree(kind, object_info):
    ui = load_workflow(f"{kind}_image_prompt.json")
    api = load_workflow(f"api/{kind}_image_prompt.json")
    assert ui["version"] == 0.4 and ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    assert wf.ui_to_api(ui, object_info) == wf.strip_meta(api)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_shipped_workflow_uses_realistic_defaults(kind):
    api = load_workflow(f"api/{kind}_image_prompt.json")
    by_type = {n["class_type"]: n["inputs"] for n in api.values()}
    assert by_type["CLIPVisionLoader"]["clip_name"] == "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    assert by_type["IPAKitAdapterLoader"]["adapter_name"] == (
        "ip-adapter_sdxl_vit-h.safetensors" if kind == "sdxl" else "ip-adapter_sd15.safetensors")
    assert by_type["EmptyLatentImage"]["width"] == (1024 if kind == "sdxl" else 512)
    assert by_type["KSampler"]["model"][0] == next(k for k, v in api.items() if v["class_type"] == "IPAKitApply")


def test_sdxl_workflow_in_process(inproc):
    import folder_paths
    names = prepare_models(folder_paths.models_dir, which=("sdxl",))
    api = small_prompt(load_workflow("api/sdxl_image_prompt.json"), names, "e2e_sdxl",
                       sdxl=True, size=64, steps=2)
    paths = inproc.run(api)
    (image,) = read_images(paths)
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


# --------------------------------------------------------------------------- (b) over HTTP
def served_frontend_is_the_hosts_own(srv) -> str:
    """The editor the server hands out is the frontend package version its host pins."""
    import importlib.metadata
    import importlib.util
    from pathlib import Path
    stats = srv.request("/system_stats")["system"]
    assert stats["comfyui_version"] == host.comfy_version()
    pinned = stats["required_frontend_version"]
    assert importlib.metadata.version("comfyui-frontend-package") == pinned
    static = Path(importlib.util.find_spec("comfyui_frontend_package").origin).parent / "static"
    assert srv.request_bytes("/") == (static / "index.html").read_bytes()
    return pinned


def test_sd15_workflow_over_http(object_info):
    from support.server import ComfyServer
    with ComfyServer() as srv:
        served_frontend_is_the_hosts_own(srv)
        served = srv.object_info()
        for cls in ("IPAKitAdapterLoader", "IPAKitApply"):
            assert cls in served, f"{cls} not registered by the server:\n{srv.log_tail()}"
        shipped = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
        # The editor's template browser lists the editor files only (the API twins live in api/).
        templates = srv.request("/workflow_templates")
        assert sorted(templates["comfyui-ipadapter-kit"]) == shipped
        assert srv.request("/api/workflow_templates/comfyui-ipadapter-kit/sd15_image_prompt.json") == \
            load_workflow("sd15_image_prompt.json")
        for name in shipped:  # every node is there for the editor, and the twins agree under /object_info
            ui = load_workflow(f"{name}.json")
            missing = {n["type"] for n in ui["nodes"]} - set(served) - wf.UI_ONLY_TYPES
            assert not missing, f"{name}: missing nodes {missing}"
            assert wf.ui_to_api(ui, served) == wf.strip_meta(load_workflow(f"api/{name}.json")), name
        compat = host.REPO / "tests" / "data" / "compat_workflows"  # the leading pack's ids, in its users' format
        for path in sorted(compat.glob("*.json")):
            ui = json.loads(path.read_text())
            missing = {n["type"] for n in ui["nodes"]} - set(served) - wf.UI_ONLY_TYPES
            assert not missing, f"{path.name}: missing nodes {missing}"
            assert wf.ui_to_api(ui, served) == wf.strip_meta(json.loads((compat / "api" / path.name).read_text()))
        interface = json.loads((host.REPO / "tests" / "data" / "ipadapter_plus_interface.json").read_text())["nodes"]
        for node_id, theirs in interface.items():  # the served interface, field by field
            ours = served[node_id]
            for field in ("display_name", "category", "input_order", "output", "output_name", "output_is_list",
                          "output_node"):
                assert ours[field] == theirs[field], (node_id, field)
            for section, specs in theirs["input"].items():
                for name, spec in specs.items():
                    got = ours["input"][section][name]
                    options = {k: v for k, v in (got[1] if len(got) > 1 else {}).items() if k != "tooltip"}
                    if spec[0] != []:  # file lists hold whatever the folder holds
                        assert [got[0], *([options] if options else [])] == spec, (node_id, name)
        names = prepare_models(srv.models_dir, which=("sd15",))
        write_reference(srv.input_dir)
        api = load_workflow("api/sd15_image_prompt.json")
        plain = srv.output_files(srv.wait_for(srv.post_prompt(
            small_prompt(wf.without_node(api, "IPAKitApply"), names, "http_plain"))))
        full = srv.output_files(srv.wait_for(srv.post_prompt(small_prompt(api, names, "http_w1"))))
        assert all(p.is_file() for p in plain + full)
        a_plain, a_full = read_images(plain + full)
        assert np.abs(a_full - a_plain).mean() > 2.0
