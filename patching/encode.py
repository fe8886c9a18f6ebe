"""CLIP vision features for an adapter, from ComfyUI's own CLIP_VISION object.

Features are cached by image content, so changing a weight or a window never re-encodes.
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager

import comfy.clip_vision
import comfy.model_management as mm
import comfy.utils
import torch
import torch.nn.functional as F

from ..ip_models import AdapterSpec, identify_encoder
from ..ip_models.encoders import encoder_for_input

_CACHE_SIZE = 32
_caches: "weakref.WeakKeyDictionary[object, OrderedDict]" = weakref.WeakKeyDictionary()
_progress = threading.local()  # .outer: an encode of one part of a larger job, reported by the job's own bar


@contextmanager
def part_of_outer_progress():
    """Encodes inside this block open no progress bar of their own: the caller's bar (e.g. one over
    the tiles of a tiled encode) is the node's only one, so the UI never jumps between nested bars."""
    previous = getattr(_progress, "outer", False)
    _progress.outer = True
    try:
        yield
    finally:
        _progress.outer = previous


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


def _digest(tensor: torch.Tensor) -> tuple:
    data = tensor.detach().to("cpu", torch.float32).contiguous()
    return tuple(data.shape), hashlib.blake2b(data.numpy().tobytes(), digest_size=16).hexdigest()


def _content_key(image: torch.Tensor, what: str, mask: torch.Tensor | None = None) -> tuple:
    return (what, *_digest(image)) + (() if mask is None else ("mask", *_digest(mask)))


def _cached(clip_vision, key, compute):
    cache = _caches.setdefault(clip_vision, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = compute()
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _mask_pixels(mask: torch.Tensor, image_hw: tuple[int, int], size: int, device) -> torch.Tensor:
    """The mask [M, H, W] brought to the encoder's pixels exactly as the image is (short side to
    `size`, centre crop), as [M, 1, size, size]."""
    m = mask.to(device=device, dtype=torch.float32)[:, None]
    if tuple(m.shape[-2:]) != tuple(image_hw):
        m = F.interpolate(m, size=image_hw, mode="bilinear", align_corners=False)
    scale = size / min(image_hw)
    m = F.interpolate(m, size=(round(image_hw[0] * scale), round(image_hw[1] * scale)), mode="bilinear",
                      align_corners=False)
    top, left = (m.shape[2] - size) // 2, (m.shape[3] - size) // 2
    return m[:, :, top:top + size, left:left + size].clamp(0, 1)


def _encode(clip_vision, image: torch.Tensor, mask: torch.Tensor | None):
    """(image_embeds, penultimate hidden states) of one chunk; a mask multiplies the normalised pixels."""
    if mask is None:
        out = clip_vision.encode_image(image)
        return out["image_embeds"], out["penultimate_hidden_states"]
    mm.load_model_gpu(clip_vision.patcher)
    size = getattr(clip_vision, "image_size", 224)
    pixels = comfy.clip_vision.clip_preprocess(image.to(clip_vision.load_device), size=size,
                                               mean=clip_vision.image_mean, std=clip_vision.image_std).float()
    pixels = pixels * _mask_pixels(mask, tuple(image.shape[1:3]), size, pixels.device)
    out = clip_vision.model(pixel_values=pixels, intermediate_output=-2)
    return out[2].to(mm.intermediate_device()), out[1].to(mm.intermediate_device())


def image_features(clip_vision, image: torch.Tensor, clip_input: str, mask: torch.Tensor | None = None,
                   batch_size: int = 0) -> torch.Tensor:
    """Features of a batch of images [B, H, W, C] -> [B, width] or [B, tokens, width], cached by content.

    `mask` (one, or one per image) multiplies the normalised pixels; `batch_size` > 0 encodes in
    chunks of that many images (long animations fit in memory), with a progress bar over the chunks
    (none inside `part_of_outer_progress()`).
    """
    image = image[..., :3] if image.shape[-1] > 3 else image
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:-1], 3)
    if mask is not None:
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"mask has {mask.shape[0]} masks for {image.shape[0]} images: give one mask or one "
                             f"per image.")

    def compute():
        step = batch_size if batch_size > 0 else image.shape[0]
        starts = range(0, image.shape[0], step)
        bar = None if getattr(_progress, "outer", False) else comfy.utils.ProgressBar(len(starts))
        parts = []
        for start in starts:
            chunk_mask = None if mask is None else (mask if mask.shape[0] == 1 else mask[start:start + step])
            embeds, hidden = _encode(clip_vision, image[start:start + step], chunk_mask)
            parts.append((hidden if clip_input == "penultimate" else embeds).float())
            if bar is not None:
                bar.update(1)
        return torch.cat(parts)
    return _cached(clip_vision, _content_key(image, clip_input, mask), compute)


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
