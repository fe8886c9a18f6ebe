"""CLIP vision features for an adapter, from ComfyUI's own CLIP_VISION object.

Features are cached by image content, so changing a weight or a window never re-encodes.
"""
from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict

import comfy.model_management as mm
import torch

from ..ip_models import AdapterSpec, identify_encoder
from ..ip_models.encoders import encoder_for_input

_CACHE_SIZE = 32
_caches: "weakref.WeakKeyDictionary[object, OrderedDict]" = weakref.WeakKeyDictionary()


class EncoderMismatchError(ValueError):
    pass


def encoder_widths(clip_vision) -> tuple[int | None, int | None]:
    """(hidden width, image_embeds width) of a ComfyUI CLIP vision model; None where it has none.

    The embeds width comes from a real projection weight: newer hosts load files without
    `visual_projection.weight` with an `nn.Identity` projection, whose pooled output is unprojected.
    """
    model = getattr(clip_vision, "model", None)
    norm = getattr(getattr(model, "vision_model", None), "post_layernorm", None)
    projection = getattr(getattr(model, "visual_projection", None), "weight", None)
    hidden = norm.weight.shape[0] if getattr(norm, "weight", None) is not None else None
    embed = projection.shape[0] if projection is not None else None
    if hidden is None and projection is not None:
        hidden = projection.shape[1]
    return hidden, embed


def check_encoder(clip_vision, spec: AdapterSpec, adapter_name: str) -> None:
    hidden, embed = encoder_widths(clip_vision)
    have = hidden if spec.clip_input == "penultimate" else embed
    if have == spec.clip_width:
        return
    needed = encoder_for_input(spec.clip_input, spec.clip_width)
    if hidden is None:
        connected_name = "not a CLIP image encoder"
    elif embed is None:
        connected_name = f"a CLIP encoder without its visual projection (hidden width {hidden})"
    else:
        connected = identify_encoder(hidden, embed)
        connected_name = connected.name if connected else f"hidden width {hidden}, embeds width {embed}"
    fix = (f"load {needed.file_hint} with the 'Load CLIP Vision' node" if needed
           else f"use an encoder whose {spec.clip_input} width is {spec.clip_width}")
    raise EncoderMismatchError(
        f"{adapter_name} ({spec.variant}) needs the CLIP {needed.name if needed else spec.clip_width} image "
        f"encoder, but the connected CLIP vision model is {connected_name}: {fix}.")


def _content_key(image: torch.Tensor, what: str) -> tuple:
    data = image.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.blake2b(data.numpy().tobytes(), digest_size=16).hexdigest()
    return what, tuple(data.shape), digest


def _cached(clip_vision, key, compute):
    cache = _caches.setdefault(clip_vision, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = compute()
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def image_features(clip_vision, image: torch.Tensor, clip_input: str) -> torch.Tensor:
    """Features of a batch of images [B, H, W, C] -> [B, width] or [B, tokens, width]."""
    def compute():
        out = clip_vision.encode_image(image)
        return (out["penultimate_hidden_states"] if clip_input == "penultimate" else out["image_embeds"]).float()
    return _cached(clip_vision, _content_key(image, clip_input), compute)


def unconditional_features(clip_vision, clip_input: str, like: torch.Tensor) -> torch.Tensor:
    """What the adapters were trained with for 'no image' (5% image dropout).

    Pooled variants saw zero embeddings; hidden-state variants saw the encoder run on pixel
    values that are zero after normalisation (not a black image before it).
    """
    if clip_input != "penultimate":
        return torch.zeros_like(like[:1])

    def compute():
        mm.load_model_gpu(clip_vision.patcher)
        size = getattr(clip_vision, "image_size", 224)
        pixels = torch.zeros(1, 3, size, size, device=clip_vision.load_device)
        out = clip_vision.model(pixel_values=pixels, intermediate_output=-2)
        return out[1].to(mm.intermediate_device()).float()
    return _cached(clip_vision, ("zero-pixels", clip_input), compute)
