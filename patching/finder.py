"""Finding models by what is inside them: the unified loader's scan of `models/ipadapter` and
`models/clip_vision` (with their extra_model_paths.yaml folders), headers only."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import folder_paths

from ..ip_models.identify import FileIdentity, identify_file
from ..ip_models.presets import adapter_fits, face_adapter_fits, face_need_for, need_for, rank, satisfying_files
from ..ip_models.spec import FAMILIES, FAMILY_NAMES
from .adapter_handle import load_adapter
from .clip_loader import load_clip_vision
from .layers import cross_attention_layers

log = logging.getLogger(__name__)
ADAPTER_FOLDER, CLIP_FOLDER = "ipadapter", "clip_vision"
_loaded: "OrderedDict[tuple, object]" = OrderedDict()


class ModelNotFoundError(ValueError):
    pass


def scan(folder: str) -> list[FileIdentity]:
    """Every file of a model folder, identified from its header (cached by path, size and mtime)."""
    found = []
    for name in folder_paths.get_filename_list(folder):
        path = folder_paths.get_full_path(folder, name)
        if path and os.path.isfile(path):
            found.append(identify_file(path))
    return found


def model_family(model) -> tuple[str, tuple]:
    """(family, layer table) of the connected MODEL."""
    layers = cross_attention_layers(model.get_model_object("diffusion_model"))
    contexts = {layer.context_dim for layer in layers}
    family = FAMILIES.get(next(iter(contexts), 0)) if len(contexts) == 1 else None
    if family is None:
        raise ModelNotFoundError("The model is neither SD1.5- nor SDXL-type (context width "
                                 f"{sorted(contexts)}); IP-Adapter presets need one of those.")
    return family, layers


def _listing(items: list[FileIdentity]) -> str:
    return "; ".join(i.describe() for i in items) or "nothing"


def find_preset_files(preset: str, family: str, layers=None) -> tuple[FileIdentity, FileIdentity]:
    """(adapter, encoder) files for `preset` on a `family` model, or an error saying what is missing.

    With the model's layer table, only adapters whose layers match it one to one are taken.
    """
    need = need_for(preset, family)
    adapters, encoders = scan(ADAPTER_FOLDER), scan(CLIP_FOLDER)
    shape = None if layers is None else (tuple(l.key for l in layers), tuple(l.width for l in layers))
    fitting = sorted((a for a in adapters if adapter_fits(need, family, a)
                      and (shape is None or (a.spec.layer_keys, a.spec.layer_widths) == shape)),
                     key=lambda a: rank(need, a.name))
    matching_encoders = sorted((e for e in encoders if e.kind == "clip_vision" and e.encoder.name == need.encoder),
                               key=lambda e: e.name.lower())
    problems = []
    if not fitting:
        problems.append(f"no IP-Adapter in models/ipadapter has the layout '{preset}' needs for "
                        f"{FAMILY_NAMES[family]} ({need.projection} projection, CLIP {need.encoder}"
                        f"{'' if shape is None else ', layers matching this model'}). Files with that layout, "
                        f"under any name: {', '.join(satisfying_files(need, family))}. Found there: "
                        f"{_listing(adapters)}")
    if not matching_encoders:
        hint = {"ViT-H-14": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
                "ViT-bigG-14": "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors",
                "ViT-L-14-336": "clip-vit-large-patch14-336.safetensors"}[need.encoder]
        problems.append(f"no CLIP {need.encoder} image encoder in models/clip_vision (e.g. {hint}, in ComfyUI, "
                        f"transformers or open_clip layout). Found there: {_listing(encoders)}")
    if problems:
        raise ModelNotFoundError(f"Preset '{preset}': " + " | ".join(problems) + ". File names do not matter; "
                                 "the files are recognised by their weights.")
    if len(fitting) > 1:
        log.info("IPAdapter Kit: preset %s: %d files fit (%s); using %s", preset, len(fitting),
                 ", ".join(a.name for a in fitting), fitting[0].name)
    return fitting[0], matching_encoders[0]


def cached_load(kind: str, path: str):
    """Load an adapter or encoder once per file version (the last few are kept)."""
    st = os.stat(path)
    key = (kind, os.path.realpath(path), st.st_mtime_ns)
    if key not in _loaded:
        _loaded[key] = load_adapter(path) if kind == "adapter" else load_clip_vision(path)
        while len(_loaded) > 8:
            _loaded.popitem(last=False)
    _loaded.move_to_end(key)
    return _loaded[key]


def find_faceid_files(preset: str, family: str, layers=None) -> tuple[FileIdentity, FileIdentity | None]:
    """(adapter, encoder or None) for a FaceID preset; FaceID-Plus also needs its CLIP encoder."""
    need = face_need_for(preset, family)
    adapters = scan(ADAPTER_FOLDER)
    shape = None if layers is None else (tuple(l.key for l in layers), tuple(l.width for l in layers))
    fitting = sorted((a for a in adapters if face_adapter_fits(need, family, a)
                      and (shape is None or (a.spec.layer_keys, a.spec.layer_widths) == shape)),
                     key=lambda a: rank(need, a.name))
    if not fitting:
        raise ModelNotFoundError(f"Preset '{preset}': no FaceID adapter in models/ipadapter has the layout it needs "
                                 f"for {FAMILY_NAMES[family]}, e.g. {need.example}. Found there: {_listing(adapters)}. "
                                 f"File names do not matter; the files are recognised by their weights.")
    encoder = None
    if need.encoder:
        encoders = [e for e in scan(CLIP_FOLDER) if e.kind == "clip_vision" and e.encoder.name == need.encoder]
        if not encoders:
            raise ModelNotFoundError(f"Preset '{preset}': {fitting[0].name} also encodes the face crop with CLIP "
                                     f"{need.encoder}, and models/clip_vision has none (e.g. "
                                     f"CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors).")
        encoder = sorted(encoders, key=lambda e: e.name.lower())[0]
    return fitting[0], encoder


def companion_lora(adapter, layers) -> str | None:
    """The file in models/loras holding the same LoRA weights as the adapter's own (compared by content);
    `layers`: the connected model's layer table (the LoRA's first layer names the key to compare)."""
    import torch
    from safetensors import safe_open

    from ..ip_models.headers import read_shapes
    probe = adapter.lora.get("0.to_q_lora.down.weight")
    if probe is None:
        return None
    key = f"lora_unet_{layers[0].diffusers_name}.transformer_blocks.{layers[0].index}".replace(".", "_") + \
        "_attn1_to_q.lora_down.weight"
    for name in folder_paths.get_filename_list("loras"):
        path = folder_paths.get_full_path("loras", name)
        if not path or not path.endswith(".safetensors"):
            continue
        try:
            if read_shapes(path).get(key) != tuple(probe.shape):
                continue
            with safe_open(path, framework="pt") as f:
                if torch.allclose(f.get_tensor(key).float(), probe.float(), atol=1e-3):
                    return path
        except Exception:  # an unreadable file is simply not the companion
            continue
    return None

