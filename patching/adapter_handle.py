"""Adapter weights under ComfyUI's model management.

The adapter module is owned by a patcher of the class the host uses for its own auxiliary models
(`CoreModelPatcher`, which DynamicVRAM hosts swap for their dynamic patcher at start-up; plain
`ModelPatcher` on hosts that predate it). Every attention patch reports it through `models()`, so
`load_models_gpu` loads, offloads and counts it together with the UNet.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..ip_models import AdapterSpec, IPAdapterModel, build_adapter, detect_spec, read_adapter_file

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedAdapter:
    """What the loader node hands to the apply node (type IPADAPTER_KIT).

    A handle to weights owned by model management: a copy of it (a host deep-copying model
    options, as ComfyUI up to 0.13 does on every clone) is the handle itself, never new weights.
    """
    name: str
    spec: AdapterSpec
    patcher: comfy.model_patcher.ModelPatcher
    # FaceID: the file's own LoRA pairs ("{i}.to_q_lora.down.weight", ...), kept on the CPU
    lora: dict = field(default_factory=dict, repr=False)
    path: str = ""

    @property
    def model(self) -> IPAdapterModel:
        return self.patcher.model

    def __deepcopy__(self, memo):
        return self


def require_image_adapter(adapter: LoadedAdapter) -> None:
    """Image and embeddings nodes take CLIP features; a FaceID adapter needs faces instead."""
    if adapter.spec.face:
        raise ValueError(f"{adapter.name} ({adapter.spec.variant}) is a FaceID adapter: use 'Apply FaceID (Kit)' with "
                         f"faces from 'Analyze Faces (Kit)' or 'Load Faces (Kit)'.")


def patcher_class():
    """Looked up at call time: the host replaces CoreModelPatcher after its modules are imported."""
    return getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)


def load_adapter(path: str) -> LoadedAdapter:
    name = os.path.basename(path)
    weights = read_adapter_file(path)
    spec = detect_spec(weights, file_hint=name)
    load_device = mm.get_torch_device()
    dtype = mm.unet_dtype(device=load_device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
    model = build_adapter(spec, weights, dtype=dtype)
    patcher = patcher_class()(model, load_device=load_device, offload_device=mm.unet_offload_device())
    log.info("IPAdapter Kit: loaded %s as %s, %.1fM parameters, %s", name, spec.describe(),
             weights.num_parameters() / 1e6, dtype)
    lora = {k: v for k, v in weights.ip_adapter.items() if "_lora." in k}
    return LoadedAdapter(name, spec, patcher, lora, os.path.realpath(path))
