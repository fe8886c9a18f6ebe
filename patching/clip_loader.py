"""CLIP image encoders from any of the three layouts (ip_models/clip_formats.py), as ComfyUI's own
CLIP_VISION object, so every node (this pack's and core's) accepts the result."""
from __future__ import annotations

import json
import logging
import os
import tempfile

import comfy.clip_vision
import torch

from ..ip_models.checkpoint import PICKLE_EXTENSIONS
from ..ip_models.clip_formats import ClipFormatError, shapes_of, to_comfy_layout, vision_config

log = logging.getLogger(__name__)


def _read(path: str) -> dict:
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1].lower()
    if ext == ".safetensors":
        import safetensors.torch
        return safetensors.torch.load_file(path, device="cpu")
    if ext in PICKLE_EXTENSIONS:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state) if isinstance(state, dict) else {}
    raise ClipFormatError(f"{name}: unsupported file type '{ext}'; use .safetensors or .bin.")


def clip_vision_from_state(state: dict, name: str = "state dict"):
    """A ComfyUI ClipVisionModel for CLIP image-encoder weights in any supported layout."""
    comfy_state = to_comfy_layout(state, name)
    config = vision_config(shapes_of(comfy_state))
    # Older hosts take a config file path only; newer ones also take the dict.
    fd, config_path = tempfile.mkstemp(suffix=".json", prefix="ipakit_clip_vision_")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        clip = comfy.clip_vision.ClipVisionModel(config_path)
    finally:
        os.unlink(config_path)
    missing, _ = clip.load_sd(comfy_state)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ClipFormatError(f"{name}: the CLIP image encoder lacks {len(missing)} weights ({missing[:3]}).")
    return clip


def load_clip_vision(path: str):
    name = os.path.basename(path)
    clip = clip_vision_from_state(_read(path), name)
    log.info("IPAdapter Kit: loaded CLIP vision %s (%d px, hidden %d)", name, clip.image_size,
             clip.model.vision_model.post_layernorm.weight.shape[0])
    return clip
