"""One applied adapter: its image tokens, weight, window and mask, shared by all its layers.

Everything that does not change during a run is prepared once here and cached by device and
dtype: the image K/V of each layer, their batched layout per chunk pattern and the masks on each
layer's token grid. The attention patch then only looks things up.

Caches are only ever added to, never cleared: ComfyUI's MultiGPU path moves the same patch to
several devices from several threads at once (`.to(device)`), and each thread must keep finding
its own device's entries. They are small (a few tokens per layer) and live as long as the branch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..ip_models.masks import mask_to_tokens
from .adapter_handle import LoadedAdapter

FULL_WINDOW = (math.inf, -math.inf)


@dataclass(eq=False)
class AdapterBranch:
    adapter: LoadedAdapter
    cond_tokens: torch.Tensor         # [1, N, cross]: every reference image's tokens, joined
    uncond_tokens: torch.Tensor       # [1, N, cross]
    weight: float
    sigma_start: float = math.inf     # active while sigma_end <= sigma <= sigma_start
    sigma_end: float = -math.inf
    mask: torch.Tensor | None = None  # [M, H, W]
    layer_weights: dict[int, float] = field(default_factory=dict)  # per-layer factor, default 1
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def needs_sigma(self) -> bool:
        return (self.sigma_start, self.sigma_end) != FULL_WINDOW

    def in_window(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start

    def layer_weight(self, layer_key: int) -> float:
        return self.weight * self.layer_weights.get(layer_key, 1.0)

    def batched_kv(self, layer_key: int, positive: tuple[bool, ...], per_chunk: int,
                   device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of the image tokens for a whole batch: cond tokens for positive chunks."""
        key = ("kv", layer_key, positive, per_chunk, device, dtype)
        found = self._cache.get(key)
        if found is None:
            k_c, v_c, k_u, v_u = self._layer_kv(layer_key, device, dtype)
            ks = [(k_c if p else k_u).expand(per_chunk, -1, -1) for p in positive]
            vs = [(v_c if p else v_u).expand(per_chunk, -1, -1) for p in positive]
            found = self._cache[key] = (torch.cat(ks), torch.cat(vs))
        return found

    def _layer_kv(self, layer_key, device, dtype):
        key = ("layer", layer_key, device, dtype)
        found = self._cache.get(key)
        if found is None:
            tokens = torch.cat((self.cond_tokens, self.uncond_tokens))
            k, v = self.adapter.model.image_kv(layer_key, tokens, device)
            k, v = k.to(dtype), v.to(dtype)
            found = self._cache[key] = (k[:1], v[:1], k[1:], v[1:])
        return found

    def token_mask(self, tokens: int, latent_hw: tuple[int, int], n_chunks: int, per_chunk: int,
                   device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = ("mask", tokens, latent_hw, n_chunks, per_chunk, device, dtype)
        found = self._cache.get(key)
        if found is None:
            m = self.mask
            if m.shape[0] not in (1, per_chunk):
                raise ValueError(f"attn_mask has {m.shape[0]} masks but the latent batch has {per_chunk} "
                                 f"images: give one mask, or one per latent image.")
            grid = mask_to_tokens(m.to(device), *latent_hw, tokens).to(dtype)
            grid = grid.expand(per_chunk, -1, -1) if grid.shape[0] == 1 else grid
            found = self._cache[key] = grid.repeat(n_chunks, 1, 1)
        return found

    def __deepcopy__(self, memo):
        # Immutable apart from its caches, which are keyed and only grow: a copy (a host
        # deep-copying model options on clone) shares it instead of duplicating tokens and K/V.
        return self
