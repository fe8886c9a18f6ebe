"""One applied adapter as a plan the attention patch only looks up.

A plan holds what an apply node decided, once: the image tokens (one set for every latent frame,
or one per frame), a rule per layer (weight, precise swap; a layer without a rule is skipped),
per-frame weights, a mask, a sampling window and the embeds scaling mode. From these it prepares,
per layer and per batch layout, the image K/V and the factor the attention output is multiplied
by, and caches them by device and dtype: computed once per run, never per step.

Caches are only ever added to, never cleared: ComfyUI's MultiGPU path moves the same patch to
several devices from several threads at once (`.to(device)`), and each thread must keep finding
its own device's entries. With AnimateDiff-style context windows only the current window's frames
are kept (one entry per layer, replaced when the window moves), so memory does not grow with the
number of frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import torch

from ..ip_models.masks import mask_to_tokens
from ..ip_models.scaling import scale_kv
from .adapter_handle import LoadedAdapter
from .weight_types import LayerRule

FULL_WINDOW = (math.inf, -math.inf)


class BatchMismatchError(ValueError):
    pass


def frame_rows(count: int, frames, total: int, exact: bool, message: str, name: str) -> list[int] | None:
    """Which of `count` per-frame rows each frame of the batch uses (None: one row for all).

    `frames` are the latent frames in this call (all of them, or a context window's), `total`
    the number of latent frames. Fewer rows than frames repeat the last one unless `exact`;
    `message` (formatted with the input's `name`, count and total) says what to give instead.
    """
    if count == 1:
        return None
    if count > total or (exact and count != total):
        raise BatchMismatchError(message.format(name=name, count=count, total=total))
    return [min(f, count - 1) for f in frames]


# The frame count is only known while sampling, so these are raised then; they name the node input
# the rows came from (the plan's `inputs`), as the user sees it on the node.
IMAGES_PER_FRAME = ("{name} has {count} images for {total} latent frames: give one image, or up to one per "
                    "latent frame (the last is repeated).")
NEGATIVES_PER_FRAME = ("{name} has {count} images for {total} latent frames: give one, or up to one per "
                       "latent frame (the last is repeated).")
MASKS_PER_FRAME = ("{name} has {count} masks but the latent batch has {total} images: give one mask, or one "
                   "per latent image.")
# What the inputs are called on the apply nodes; Style & Composition and regions rename theirs.
INPUT_NAMES = {"image": "image", "image_negative": "image_negative", "mask": "attn_mask"}


def input_names(renamed: Mapping[str, str] | None = None) -> dict[str, str]:
    """INPUT_NAMES with some renamed (keys of INPUT_NAMES), e.g. {"mask": "mask"} for the region node."""
    unknown = set(renamed or ()) - set(INPUT_NAMES)
    if unknown:
        raise KeyError(f"unknown plan inputs: {', '.join(sorted(unknown))}")
    return {**INPUT_NAMES, **(renamed or {})}


@dataclass(eq=False)
class AdapterPlan:
    adapter: LoadedAdapter
    cond_tokens: torch.Tensor              # [F, N*T, C]: F = 1 (every latent frame) or one row per frame
    uncond_tokens: torch.Tensor            # [1 or F, N*T, C]
    layers: Mapping[int, LayerRule]        # layer key -> rule; a layer not listed makes no attention call
    frame_weights: torch.Tensor | None = None  # [n] factor per latent frame (last repeated), None = 1
    mask: torch.Tensor | None = None       # [M, H, W]: one for every frame, or one per latent frame
    sigma_start: float = math.inf          # active while sigma_end <= sigma <= sigma_start
    sigma_end: float = -math.inf
    scaling: str = "V only"
    inputs: Mapping[str, str] = field(default_factory=lambda: dict(INPUT_NAMES))  # for error messages
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def needs_sigma(self) -> bool:
        return (self.sigma_start, self.sigma_end) != FULL_WINDOW

    @property
    def is_void(self) -> bool:
        """Nothing to do: no layer with a weight, or every frame weighted 0."""
        return not self.layers or (self.frame_weights is not None and not bool(self.frame_weights.any()))

    def in_window(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start

    # --- what the patch looks up -----------------------------------------------------------
    def layer_inputs(self, layer_key: int, rule: LayerRule, positive: tuple[bool, ...], per_chunk: int,
                     window, device: torch.device, dtype: torch.dtype):
        """(K, V, output factor) of the image tokens for a whole batch: [B, N*T, width] each.

        Positive chunks get the cond tokens, the others the uncond ones; a precise swap gives the
        positive chunks nothing (zero K/V, so exactly zero output) and the others the image tokens.
        """
        key = ("inputs", layer_key, positive, per_chunk, device, dtype)
        return self._lookup(key, window, lambda: self._layer_inputs(layer_key, rule, positive, per_chunk, window,
                                                                    device, dtype))

    def token_mask(self, tokens: int, latent_hw: tuple[int, int], n_chunks: int, per_chunk: int, window,
                   device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = ("mask", tokens, latent_hw, n_chunks, per_chunk, device, dtype)
        return self._lookup(key, window, lambda: self._token_mask(tokens, latent_hw, n_chunks, per_chunk, window,
                                                                  device, dtype))

    def __deepcopy__(self, memo):
        # Immutable apart from its caches, which are keyed and only grow: a copy (a host
        # deep-copying model options on clone) shares it instead of duplicating tokens and K/V.
        return self

    # --- computed once per key ---------------------------------------------------------------
    def _lookup(self, key, window, compute):
        found = self._cache.get(key)
        if found is not None and found[0] == window:
            return found[1]
        value = compute()
        self._cache[key] = (window, value)  # a context window replaces the previous window's entry
        return value

    @staticmethod
    def _frames(per_chunk: int, window):
        if window is not None and len(window[0]) == per_chunk:
            return window[0], window[1]
        return range(per_chunk), per_chunk

    def _kv(self, layer_key, rows, uncond_rows, device, dtype):
        """(K_cond, V_cond, K_uncond, V_uncond) of one layer for the given frame rows, in one product."""
        cond = self.cond_tokens if rows is None else self.cond_tokens[rows]
        uncond = self.uncond_tokens if uncond_rows is None else self.uncond_tokens[uncond_rows]
        k, v = self.adapter.model.image_kv(layer_key, torch.cat((cond, uncond)), device)
        k, v = k.to(dtype), v.to(dtype)
        n = cond.shape[0]
        return (k[:n], v[:n]), (k[n:], v[n:])

    def _layer_inputs(self, layer_key, rule, positive, per_chunk, window, device, dtype):
        frames, total = self._frames(per_chunk, window)
        rows = frame_rows(self.cond_tokens.shape[0], frames, total, False, IMAGES_PER_FRAME, self.inputs["image"])
        uncond_rows = frame_rows(self.uncond_tokens.shape[0], frames, total, False, NEGATIVES_PER_FRAME,
                                 self.inputs["image_negative"])
        rows_key = (None if rows is None else tuple(rows), None if uncond_rows is None else tuple(uncond_rows))
        cond, uncond = self._lookup(("kv", layer_key, device, dtype), rows_key,
                                    lambda: self._kv(layer_key, rows, uncond_rows, device, dtype))
        if rule.swap:  # precise: the image on the other chunks, nothing (exactly zero output) on positive ones
            nothing = (torch.zeros_like(cond[0][:1]), torch.zeros_like(cond[1][:1]))
            uncond, cond = cond, nothing
        parts = []
        for is_positive in positive:
            source = cond if is_positive else uncond
            parts.append([t.expand(per_chunk, -1, -1) if t.shape[0] == 1 else t for t in source])
        k = torch.cat([p[0] for p in parts])
        v = torch.cat([p[1] for p in parts])
        return scale_kv(k, v, self._batch_weight(rule.weight, frames, len(positive), device, dtype), self.scaling)

    def _batch_weight(self, weight: float, frames, n_chunks: int, device, dtype):
        if self.frame_weights is None:
            return weight
        fw = self.frame_weights
        per_frame = fw[[min(f, fw.shape[0] - 1) for f in frames]]
        return (weight * per_frame).repeat(n_chunks).to(device=device, dtype=dtype).view(-1, 1, 1)

    def _token_mask(self, tokens, latent_hw, n_chunks, per_chunk, window, device, dtype):
        frames, total = self._frames(per_chunk, window)
        rows = frame_rows(self.mask.shape[0], frames, total, True, MASKS_PER_FRAME, self.inputs["mask"])
        mask = self.mask if rows is None else self.mask[rows]
        grid = mask_to_tokens(mask.to(device), *latent_hw, tokens).to(dtype)
        grid = grid.expand(per_chunk, -1, -1) if grid.shape[0] == 1 else grid
        return grid.repeat(n_chunks, 1, 1)
