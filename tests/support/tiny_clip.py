"""Tiny CLIP vision encoders with the real output widths, built by ComfyUI itself.

Why: IP-Adapter projections eat CLIP outputs of fixed widths (ViT-H: embeds 1024 / hidden 1280;
ViT-bigG: embeds 1280 / hidden 1664; ViT-L: 768 / 1024). Keeping those widths but only a couple of
layers, 56 px images and a small MLP makes `ClipVisionModel.encode_image` run in milliseconds on
CPU while exercising the host's real preprocessing and output layout
(image_embeds [B, proj], penultimate_hidden_states [B, (56/14)^2 + 1 = 17, hidden]).
"""
from __future__ import annotations

import json
import os
import tempfile

import torch

try:
    from .tiny_unets import fill_deterministic, host
except ImportError:
    from tiny_unets import fill_deterministic, host  # noqa: F401

# Real widths (comfy/clip_vision_config_{h,g,vitl}.json); depth, MLP and image size shrunk.
_KINDS = {
    "vit-h": {"hidden_size": 1280, "projection_dim": 1024, "num_attention_heads": 16, "hidden_act": "gelu"},
    "vit-bigg": {"hidden_size": 1664, "projection_dim": 1280, "num_attention_heads": 16, "hidden_act": "gelu"},
    "vit-l": {"hidden_size": 1024, "projection_dim": 768, "num_attention_heads": 16, "hidden_act": "quick_gelu"},
}


def clip_vision_config(kind: str, layers: int = 2) -> dict:
    """The JSON config (same keys as ComfyUI's shipped ones) of a tiny encoder of `kind`."""
    return {"attention_dropout": 0.0, "dropout": 0.0, "image_size": 56, "initializer_factor": 1.0,
            "initializer_range": 0.02, "intermediate_size": 256, "layer_norm_eps": 1e-05,
            "model_type": "clip_vision_model", "num_channels": 3, "num_hidden_layers": layers,
            "patch_size": 14, "torch_dtype": "float32", **_KINDS[kind]}


def make_clip_vision(kind: str, seed: int = 0, layers: int = 2):
    """A ComfyUI `ClipVisionModel` of `kind` ("vit-h", "vit-bigg", "vit-l"), fp32, seeded weights.

    ComfyUI builds it without init and in `text_encoder_dtype` (fp16 on CPU), so the weights are
    cast to fp32 and filled here; `layers` >= 2 keeps penultimate != last hidden state.
    """
    host.import_comfy()
    import comfy.clip_vision
    fd, path = tempfile.mkstemp(suffix=".json", prefix=f"tiny_clip_{kind}_")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(clip_vision_config(kind, layers), f)
        clip = comfy.clip_vision.ClipVisionModel(path)
    finally:
        os.unlink(path)
    clip.model.to(torch.float32)
    clip.dtype = torch.float32
    fill_deterministic(clip.model, seed)
    return clip
