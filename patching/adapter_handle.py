"""Adapter weights under ComfyUI's model management.

The adapter module is owned by its own ModelPatcher, which every attention patch reports through
`models()`: `load_models_gpu` then loads, offloads and counts it together with the UNet.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..ip_models import AdapterSpec, IPAdapterModel, build_adapter, detect_spec, read_adapter_file

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedAdapter:
    """What the loader node hands to the apply node (type IPADAPTER_KIT)."""
    name: str
    spec: AdapterSpec
    patcher: comfy.model_patcher.ModelPatcher

    @property
    def model(self) -> IPAdapterModel:
        return self.patcher.model


def load_adapter(path: str) -> LoadedAdapter:
    name = os.path.basename(path)
    weights = read_adapter_file(path)
    spec = detect_spec(weights, file_hint=name)
    load_device = mm.get_torch_device()
    dtype = mm.unet_dtype(device=load_device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
    model = build_adapter(spec, weights, dtype=dtype)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device,
                                               offload_device=mm.unet_offload_device())
    log.info("IPAdapter Kit: loaded %s as %s, %.1fM parameters, %s", name, spec.describe(),
             weights.num_parameters() / 1e6, dtype)
    return LoadedAdapter(name, spec, patcher)
