"""Example prompts on the generated models: file names, sizes and steps for a quick run, and the
files some workflows read (shared embeddings, saved faces)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from . import workflow_format as wf
from .host_models import REFERENCE_IMAGE

APPLY_NODES = ("IPAKitApply", "IPAKitApplyAdvanced", "IPAKitStyleComposition", "IPAKitApplyRegions",
               "IPAKitApplyBatch", "IPAKitApplyEmbeds", "IPAKitApplyTiled", "IPAKitApplyFaceID")


def localized(api: dict, names: dict, size: int, steps: int = 2) -> dict:
    """The shipped prompt on the generated models: file names, a small size, few steps."""
    sdxl = any("xl" in n["inputs"].get("ckpt_name", "") for n in api.values())
    api = json.loads(json.dumps(api))
    for node in api.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = names["sdxl_checkpoint" if sdxl else "checkpoint"]
        elif kind in ("CLIPVisionLoader", "IPAKitClipVisionLoader"):
            inputs["clip_name"] = names["clip_vision"]
        elif kind == "LoadImage":
            inputs["image"] = REFERENCE_IMAGE
        elif kind == "IPAKitAdapterLoader":
            original = inputs["adapter_name"]
            inputs["adapter_name"] = names["sdxl_ipadapter" if sdxl else "faceid" if "faceid" in original else
                                           "ipadapter_plus" if "plus" in original else "ipadapter"]
        elif kind == "IPAdapterModelLoader":
            inputs["ipadapter_file"] = names["ipadapter_plus" if "plus" in inputs["ipadapter_file"] else "ipadapter"]
        elif kind == "ControlNetLoader":
            inputs["control_net_name"] = names["controlnet"]
        elif kind == "EmptyLatentImage":
            inputs.update(width=size, height=size)
        elif kind == "KSampler":
            inputs["steps"] = steps
    return api


def without_adapters(api: dict, kinds=APPLY_NODES) -> dict:
    """`api` with every node of `kinds` bypassed: each passes its model input through (give apply nodes
    before the loaders they hang on); what then feeds no SaveImage is pruned."""
    for kind in kinds:
        if any(n["class_type"] == kind for n in api.values()):
            api = wf.without_node(api, kind)
    return api


def save_reference_embeds(api: dict, node_type: str = "IPAKitLoadEmbeds", penultimate: bool = False,
                          input_dir=None) -> None:
    """The embeddings file a load node of `api` asks for, in `input_dir` (default: the in-process host's
    input/): pooled ViT-H, or hidden states."""
    import torch
    from comfyui_ipadapter_kit.patching import embeds
    if input_dir is None:
        import folder_paths
        input_dir = folder_paths.get_input_directory()
    name = next(n["inputs"]["embeds"] for n in api.values() if n["class_type"] == node_type)
    gen = torch.Generator().manual_seed(9)
    features = torch.randn(1, 257, 1280, generator=gen) if penultimate else torch.randn(1, 1024, generator=gen)
    embeds.save(embeds.Embeds(features, "penultimate" if penultimate else "image_embeds", "ViT-H-14", "sd15"),
                str(Path(input_dir) / name))


def save_reference_faces(api: dict) -> None:
    import folder_paths
    import torch
    from comfyui_ipadapter_kit.patching import faceid
    name = next(n["inputs"]["faces"] for n in api.values() if n["class_type"] == "IPAKitLoadFaces")
    gen = torch.Generator().manual_seed(10)
    faces = faceid.Faces(torch.randn(1, 512, generator=gen) * 20, torch.rand(1, 224, 224, 3, generator=gen), (0,))
    faceid.save_faces(faces, str(Path(folder_paths.get_input_directory()) / name))


def images(paths) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in paths])


def linked_outputs_only(ui: dict) -> dict:
    """An editor file without unconnected output slots: those follow the host's node definitions
    (0.33's SaveImage gained a pass-through output) and the editor fills them in on load."""
    ui = json.loads(json.dumps(ui))
    for node in ui["nodes"]:
        node["outputs"] = [o for o in node.get("outputs", []) if o["links"]]
    return ui
