"""Applying an adapter to a MODEL: validate, encode, project, and patch a clone."""
from __future__ import annotations

import logging
import math

import comfy.model_management as mm
import torch

from ..ip_models.spec import FAMILIES, FAMILY_NAMES
from .adapter_handle import LoadedAdapter
from .branch import AdapterBranch
from .cross_attention import IPAttentionPatch
from .encode import check_encoder, image_features, unconditional_features
from .layers import CrossAttentionLayer, cross_attention_layers
from . import sampling

log = logging.getLogger(__name__)


class ModelMismatchError(ValueError):
    pass


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


def _window(model, start_at: float, end_at: float) -> tuple[float, float]:
    if not 0.0 <= start_at < end_at <= 1.0:
        raise ValueError(f"start_at ({start_at}) must be below end_at ({end_at}), both within 0..1.")
    sampling_obj = model.get_model_object("model_sampling")
    start = math.inf if start_at <= 0 else float(sampling_obj.percent_to_sigma(start_at))
    end = -math.inf if end_at >= 1 else float(sampling_obj.percent_to_sigma(end_at))
    return start, end


def _tokens(adapter: LoadedAdapter, features: torch.Tensor) -> torch.Tensor:
    """CLIP features of n images -> [1, n*T, cross]: all images join one attention."""
    mm.load_model_gpu(adapter.patcher)
    tokens = adapter.model.project(features)
    return tokens.reshape(1, -1, tokens.shape[-1]).to(mm.intermediate_device())


def _check_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3 or mask.shape[-1] < 1 or mask.shape[-2] < 1:
        raise ValueError(f"attn_mask must be a MASK [batch, height, width]; got shape {tuple(mask.shape)}.")
    return mask.float().clamp(0, 1)


def apply_adapter(model, adapter: LoadedAdapter, clip_vision, image: torch.Tensor, weight: float = 1.0,
                  start_at: float = 0.0, end_at: float = 1.0, attn_mask: torch.Tensor | None = None,
                  image_negative: torch.Tensor | None = None):
    """Return a patched clone of `model`; the input is never modified."""
    layers = match_layers(model, adapter)
    sigma_start, sigma_end = _window(model, start_at, end_at)
    mask = _check_mask(attn_mask)
    patched = model.clone()
    if weight == 0:
        log.info("IPAdapter Kit: weight 0, %s left out (no cost)", adapter.name)
        return patched

    spec = adapter.spec
    check_encoder(clip_vision, spec, adapter.name)
    cond = image_features(clip_vision, image, spec.clip_input)
    n = cond.shape[0]
    if image_negative is not None:
        uncond = image_features(clip_vision, image_negative, spec.clip_input)
        if uncond.shape[0] not in (1, n):
            raise ValueError(f"image_negative has {uncond.shape[0]} images for {n} reference images: "
                             f"give one negative image or one per reference image.")
    else:
        uncond = unconditional_features(clip_vision, spec.clip_input, cond)
    uncond = uncond.expand(n, *uncond.shape[1:]) if uncond.shape[0] == 1 else uncond

    branch = AdapterBranch(adapter, _tokens(adapter, cond), _tokens(adapter, uncond), float(weight),
                           sigma_start, sigma_end, mask)
    existing = patched.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})
    for layer in layers:
        previous = existing.get(layer.patch_key, existing.get(layer.block))
        if isinstance(previous, IPAttentionPatch):
            patch = previous.with_branch(branch)
        else:
            patch = IPAttentionPatch(layer, (branch,), inner=previous)
        patched.set_model_attn2_replace(patch, layer.block[0], layer.block[1], layer.index)
    sampling.install(patched, branch.needs_sigma)
    log.info("IPAdapter Kit: %s on %d layers, %d image(s), weight %.3g, steps %.2f-%.2f",
             adapter.name, len(layers), n, weight, start_at, end_at)
    return patched
