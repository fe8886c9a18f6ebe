"""Encoding more of a reference than one 224 px square: tiles with their own masks, and the enhancer
(crop features merged into the whole image's tokens)."""
from __future__ import annotations

import logging
from dataclasses import replace

import comfy.utils
import torch

from ..ip_models.enhance import crops, merge
from ..ip_models.image_prep import tile_reference
from .adapter_handle import LoadedAdapter
from .apply import Controls, apply_adapter, apply_plans, encode, make_plan, match_layers
from .encode import image_features, part_of_outer_progress

log = logging.getLogger(__name__)


def apply_tiled(model, adapter: LoadedAdapter, clip_vision, image: torch.Tensor, sharpening: float = 0.0,
                image_negative: torch.Tensor | None = None, encode_batch_size: int = 0, **controls):
    """Every 256 px tile of the reference is its own plan, acting under its part of `attn_mask`.

    One progress bar counts the tiles (the tiles' own encodes open none). Returns (patched model,
    tiles [T * B, 256, 256, 3], masks [T, H, W])."""
    settings = Controls(**controls)
    tiles, masks = tile_reference(image, settings.attn_mask, sharpening)
    layers = match_layers(model, adapter)
    bar = comfy.utils.ProgressBar(len(tiles))
    plans = []
    for tile, mask in zip(tiles, masks):
        def features(tile=tile):
            with part_of_outer_progress():
                out = encode(adapter, clip_vision, tile, image_negative, settings.combine_embeds,
                             settings.unfold_batch, encode_batch_size)
            bar.update(1)
            return out
        plans.append(make_plan(model, adapter, layers, features, replace(settings, attn_mask=mask[None])))
    log.info("IPAdapter Kit: %s tiled into %d tiles of 256 px", adapter.name, len(tiles))
    return apply_plans(model, plans), tiles.flatten(0, 1), masks


def enhanced_features(adapter: LoadedAdapter, clip_vision, image: torch.Tensor, tiles: int, ratio: float,
                      batch_size: int = 0) -> torch.Tensor:
    clip_input = adapter.spec.clip_input
    whole = image_features(clip_vision, image, clip_input, batch_size=batch_size)
    if tiles <= 1 or ratio >= 1:
        return whole
    parts = image_features(clip_vision, crops(image, min(int(tiles), 16)), clip_input, batch_size=batch_size)
    return merge(whole, parts, min(int(tiles), 16), float(ratio))


def apply_enhanced(model, adapter: LoadedAdapter, clip_vision, image: torch.Tensor, enhance_tiles: int = 2,
                   enhance_ratio: float = 1.0, image_negative: torch.Tensor | None = None, encode_batch_size: int = 0,
                   **controls):
    combine = controls.get("combine_embeds", "concat")
    unfold = controls.get("unfold_batch", False)

    def features():
        cond = enhanced_features(adapter, clip_vision, image, enhance_tiles, enhance_ratio, encode_batch_size)
        return encode(adapter, clip_vision, image, image_negative, combine, unfold, encode_batch_size, features=cond)
    return apply_adapter(model, adapter, clip_vision, image, features=features, **controls)
