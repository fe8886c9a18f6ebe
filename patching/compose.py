"""Applies that put several plans of one adapter on a model at once.

- Style & Composition: the style image on the style layers, the composition image on the
  composition layers (two plans, one patch per layer), for SDXL and SD1.5.
- Regions: one plan per region (its own image, mask, weight, weight type and window), plus the
  same masks on the text conditioning, as ComfyUI's conditioning mask with a strength.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from .adapter_handle import LoadedAdapter
from .apply import Controls, apply_plans, check_mask, encode, make_plan, match_layers

log = logging.getLogger(__name__)


def apply_style_composition(model, adapter: LoadedAdapter, clip_vision, image_style: torch.Tensor,
                            image_composition: torch.Tensor, weight_style: float = 1.0,
                            weight_composition: float = 1.0, expand_style: bool = False,
                            image_negative: torch.Tensor | None = None, **controls):
    """`expand_style` puts the style image on every non-composition layer ("strong style and composition")."""
    settings = Controls(weight=weight_style, weight_composition=weight_composition,
                        weight_type="strong style and composition" if expand_style else "style and composition",
                        **controls)
    layers = match_layers(model, adapter)

    def features(image):
        return lambda: encode(adapter, clip_vision, image, image_negative, settings.combine_embeds, settings.unfold_batch)
    plans = [make_plan(model, adapter, layers, features(image_style), settings, role="style",
                       inputs={"image": "image_style"}),
             make_plan(model, adapter, layers, features(image_composition), settings, role="composition",
                       inputs={"image": "image_composition"})]
    log.info("IPAdapter Kit: %s style & composition, style on %d layers, composition on %d", adapter.name,
             *(len(p.layers) if p else 0 for p in plans))
    return apply_plans(model, plans)


@dataclass(frozen=True, eq=False)
class Region:
    """One region of a regional image prompt (what the region node bundles)."""
    image: torch.Tensor
    mask: torch.Tensor | None = None
    image_weight: float = 1.0
    prompt_weight: float = 1.0
    weight_type: str = "linear"
    start_at: float = 0.0
    end_at: float = 1.0


def mask_conditioning(conditioning, mask: torch.Tensor | None, strength: float):
    """The conditioning restricted to `mask` (ComfyUI's conditioning mask, not cropped to its bounds)."""
    if conditioning is None or mask is None:
        return conditioning
    import node_helpers
    return node_helpers.conditioning_set_values(conditioning, {"mask": check_mask(mask, "mask"),
                                                               "set_area_to_bounds": False,
                                                               "mask_strength": strength})


def apply_regions(model, adapter: LoadedAdapter, clip_vision, regions, combine_embeds: str = "concat",
                  embeds_scaling: str = "V only", image_negative: torch.Tensor | None = None):
    regions = tuple(regions or ())
    if not regions:
        raise ValueError("The regions input is empty: connect at least one 'IP-Adapter Region (Kit)' node.")
    layers = match_layers(model, adapter)
    base = Controls(combine_embeds=combine_embeds, embeds_scaling=embeds_scaling)
    plans = []
    for number, region in enumerate(regions, 1):
        # the region node's inputs, and which region, so an error points at the right node
        which = f" (region {number} of {len(regions)})" if len(regions) > 1 else ""
        settings = replace(base, weight=region.image_weight, weight_type=region.weight_type,
                           start_at=region.start_at, end_at=region.end_at,
                           attn_mask=check_mask(region.mask, "mask" + which))
        plans.append(make_plan(model, adapter, layers,
                               lambda image=region.image: encode(adapter, clip_vision, image, image_negative,
                                                                 combine_embeds), settings,
                               inputs={"image": "image" + which, "mask": "mask" + which}))
    log.info("IPAdapter Kit: %s on %d region(s)", adapter.name, sum(p is not None for p in plans))
    return apply_plans(model, plans)
