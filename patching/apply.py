"""Applying adapters to a MODEL: validate, encode, project, plan, and patch a clone.

Every apply node ends here. An adapter's settings arrive as `Controls`, with the leading pack's
option strings as the vocabulary; `make_plan` turns them and the CLIP features into an
`AdapterPlan`, and `apply_plans` puts any number of plans (stacked adapters, Style & Composition's
two images, regions) into one patch per layer of a clone. The incoming MODEL is never modified.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import comfy.model_management as mm
import torch

from ..ip_models.combine import COMBINE_METHODS, combine_embeds
from ..ip_models.scaling import SCALING_MODES
from ..ip_models.spec import FAMILIES, FAMILY_NAMES
from .adapter_handle import LoadedAdapter, require_image_adapter
from .cross_attention import IPAttentionPatch
from .encode import check_encoder, image_features, unconditional_features
from .layer_weights import parse_layer_weights
from .layers import CrossAttentionLayer, cross_attention_layers
from .plan import AdapterPlan, input_names
from .weight_types import LayerRule, layer_rules, precise_swaps
from . import sampling

log = logging.getLogger(__name__)
PROJECT_CHUNK = 32  # images projected at once: bounds memory for long animations


class ModelMismatchError(ValueError):
    pass


@dataclass(frozen=True)
class Controls:
    """How one adapter acts. Option strings and meanings are those of ComfyUI_IPAdapter_plus."""
    weight: float | Sequence[float] = 1.0  # a list: one weight per latent frame (the last repeated)
    weight_type: str = "linear"
    combine_embeds: str = "concat"
    embeds_scaling: str = "V only"
    start_at: float = 0.0
    end_at: float = 1.0
    attn_mask: torch.Tensor | None = None
    layer_weights: str = ""                # "index:value, ..." or an InstantStyle block dict; "" = weight_type
    weight_composition: float = 1.0        # the composition layers of the style-and-composition types
    style_boost: float | None = None       # precise types: the swapped layers' weight (None: the weight)
    composition_boost: float | None = None
    unfold_batch: bool = False             # one reference image per latent frame instead of all together

    def check(self) -> None:
        if self.combine_embeds not in COMBINE_METHODS:
            raise ValueError(f"combine_embeds '{self.combine_embeds}' is not one of: {', '.join(COMBINE_METHODS)}.")
        if self.embeds_scaling not in SCALING_MODES:
            raise ValueError(f"embeds_scaling '{self.embeds_scaling}' is not one of: {', '.join(SCALING_MODES)}.")
        if not 0.0 <= self.start_at < self.end_at <= 1.0:
            raise ValueError(f"start_at ({self.start_at}) must be below end_at ({self.end_at}), both within 0..1.")


def match_layers(model, adapter: LoadedAdapter) -> tuple[CrossAttentionLayer, ...]:
    """The host's cross-attention layers, checked against the adapter's, one to one."""
    spec = adapter.spec
    layers = cross_attention_layers(model.get_model_object("diffusion_model"))
    widths = tuple(layer.width for layer in layers)
    contexts = {layer.context_dim for layer in layers}
    if widths != spec.layer_widths or contexts != {spec.cross_dim} \
            or tuple(layer.key for layer in layers) != spec.layer_keys:
        model_family = FAMILY_NAMES.get(FAMILIES.get(next(iter(contexts), 0)), "an unknown model type")
        raise ModelMismatchError(
            f"{adapter.name} is an adapter for {FAMILY_NAMES[spec.family]} ({len(spec.layer_keys)} cross-attention "
            f"layers, token width {spec.cross_dim}) but the model is {model_family} ({len(layers)} layers, "
            f"context width {', '.join(map(str, sorted(contexts)))}): pick an IP-Adapter made for this "
            f"checkpoint's base model.")
    return layers


def _sigma_window(model, start_at: float, end_at: float) -> tuple[float, float]:
    sampling_obj = model.get_model_object("model_sampling")
    start = math.inf if start_at <= 0 else float(sampling_obj.percent_to_sigma(start_at))
    end = -math.inf if end_at >= 1 else float(sampling_obj.percent_to_sigma(end_at))
    return start, end


def check_mask(mask: torch.Tensor | None, name: str = "attn_mask") -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3 or mask.shape[-1] < 1 or mask.shape[-2] < 1:
        raise ValueError(f"{name} must be a MASK [batch, height, width]; got shape {tuple(mask.shape)}.")
    return mask.float().clamp(0, 1)


def _frame_weights(weight) -> tuple[float, torch.Tensor | None]:
    """(scalar weight for the layer rules, per-frame weights or None) from a number or a list."""
    if isinstance(weight, (list, tuple)):
        values = [float(w) for w in weight] or [0.0]
        return (values[0], None) if len(values) == 1 else (1.0, torch.tensor(values))
    return float(weight), None


def encode(adapter: LoadedAdapter, clip_vision, image: torch.Tensor, image_negative: torch.Tensor | None = None,
           combine: str = "concat", unfold: bool = False, batch_size: int = 0,
           features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) CLIP features of the references, combined by `combine` (negatives alike).

    `features` replaces the encode of `image` (precomputed or enhanced features); `batch_size` > 0
    encodes in chunks of that many images.
    """
    spec = adapter.spec
    check_encoder(clip_vision, spec, adapter.name)
    cond = image_features(clip_vision, image, spec.clip_input, batch_size=batch_size) if features is None else features
    if image_negative is not None:
        uncond = image_features(clip_vision, image_negative, spec.clip_input, batch_size=batch_size)
    else:
        uncond = unconditional_features(clip_vision, spec.clip_input, cond)
    return pair_features(cond, uncond, combine, unfold)


def pair_features(cond: torch.Tensor, uncond: torch.Tensor, combine: str = "concat", unfold: bool = False):
    """Cond and uncond features fitted to each other (uncond: one, or one per image) and combined."""
    n = cond.shape[0]
    if uncond.shape[0] not in (1, n):
        raise ValueError(f"image_negative has {uncond.shape[0]} images for {n} reference images: "
                         f"give one negative image or one per reference image.")
    if unfold:
        return cond, uncond
    uncond = uncond.expand(n, *uncond.shape[1:]) if uncond.shape[0] == 1 else uncond
    return combine_embeds(cond, combine), combine_embeds(uncond, combine)


def project(adapter: LoadedAdapter, features: torch.Tensor, unfold: bool = False) -> torch.Tensor:
    """CLIP features of n images -> tokens: [1, n*T, C] (all join one attention) or [n, T, C] (unfold)."""
    mm.load_model_gpu(adapter.patcher)
    tokens = torch.cat([adapter.model.project(chunk).to(mm.intermediate_device())
                        for chunk in features.split(PROJECT_CHUNK)])
    return tokens if unfold else tokens.reshape(1, -1, tokens.shape[-1])


def plan_rules(controls: Controls, layers, family: str, weight: float, role: str | None = None) -> dict[int, LayerRule]:
    rules = layer_rules(controls.weight_type, layers, family, weight, controls.weight_composition,
                        controls.style_boost, controls.composition_boost)
    custom = parse_layer_weights(controls.layer_weights, layers)
    if custom is not None:  # replaces the type's map; a precise type keeps its swaps on the listed layers
        swaps = precise_swaps(controls.weight_type, layers, family)
        rules = {key: LayerRule(value * weight, swap=key in swaps) for key, value in custom.items()
                 if value * weight != 0}
    if role is not None:
        rules = {key: rule for key, rule in rules.items() if rule.role == role}
    return rules


def make_plan(model, adapter: LoadedAdapter, layers, features: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None,
              controls: Controls, role: str | None = None,
              tokens: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None,
              inputs: dict[str, str] | None = None) -> AdapterPlan | None:
    """The plan for one adapter, or None when it would do nothing (then nothing is encoded).

    `features()` gives the (cond, uncond) CLIP features, e.g. from `encode`; or `tokens()` gives
    already projected (cond, uncond) tokens (FaceID). `inputs` renames the node inputs that
    sampling-time count errors name (see plan.input_names).
    """
    controls.check()
    names = input_names(inputs)
    if tokens is None:
        require_image_adapter(adapter)
    weight, frame_weights = _frame_weights(controls.weight)
    rules = plan_rules(controls, layers, adapter.spec.family, weight, role)
    if not rules or (frame_weights is not None and not frame_weights.any()):
        return None
    if tokens is not None:
        cond_tokens, uncond_tokens = tokens()
    else:
        cond, uncond = features()
        cond_tokens = project(adapter, cond, controls.unfold_batch)
        uncond_tokens = project(adapter, uncond, controls.unfold_batch)
    sigma_start, sigma_end = _sigma_window(model, controls.start_at, controls.end_at)
    return AdapterPlan(adapter, cond_tokens, uncond_tokens, rules, frame_weights=frame_weights,
                       mask=check_mask(controls.attn_mask), sigma_start=sigma_start, sigma_end=sigma_end,
                       scaling=controls.embeds_scaling, inputs=names)


def apply_plans(model, plans: Sequence[AdapterPlan | None]):
    """A clone of `model` with every plan in one patch per layer (None and void plans are left out)."""
    patched = model.clone()
    plans = tuple(p for p in plans if p is not None and not p.is_void)
    if not plans:
        return patched
    layers = {layer.key: layer for plan in plans for layer in match_layers(model, plan.adapter)}
    existing = patched.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})
    for layer in layers.values():
        mine = tuple(p for p in plans if layer.key in p.layers)
        if not mine:
            continue
        previous = existing.get(layer.patch_key, existing.get(layer.block))
        if isinstance(previous, IPAttentionPatch):
            patch = previous.with_plans(mine)
        else:
            patch = IPAttentionPatch(layer, mine, inner=previous)
        patched.set_model_attn2_replace(patch, layer.block[0], layer.block[1], layer.index)
    sampling.install(patched, any(p.needs_sigma for p in plans))
    return patched


def apply_adapter(model, adapter: LoadedAdapter, clip_vision, image: torch.Tensor, weight=1.0,
                  start_at: float = 0.0, end_at: float = 1.0, attn_mask: torch.Tensor | None = None,
                  image_negative: torch.Tensor | None = None, encode_batch_size: int = 0,
                  features: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None,
                  inputs: dict[str, str] | None = None, **controls):
    """Return a patched clone of `model`; the input is never modified. `controls`: see Controls.

    `features` replaces encoding `image` with `clip_vision` (embeddings, tiles, enhanced features);
    `inputs`: see make_plan.
    """
    settings = Controls(weight=weight, start_at=start_at, end_at=end_at, attn_mask=attn_mask, **controls)
    layers = match_layers(model, adapter)
    features = features or (lambda: encode(adapter, clip_vision, image, image_negative, settings.combine_embeds,
                                           settings.unfold_batch, encode_batch_size))
    plan = make_plan(model, adapter, layers, features, settings, inputs=inputs)
    if plan is None:
        log.info("IPAdapter Kit: weight 0 on every layer, %s left out (no cost)", adapter.name)
    else:
        log.info("IPAdapter Kit: %s on %d of %d layers, %d image(s), %s, weight %s, steps %.2f-%.2f",
                 adapter.name, len(plan.layers), len(layers), plan.cond_tokens.shape[0] if settings.unfold_batch
                 else plan.cond_tokens.shape[1] // adapter.spec.num_tokens, settings.weight_type,
                 settings.weight, start_at, end_at)
    return apply_plans(model, [plan])
