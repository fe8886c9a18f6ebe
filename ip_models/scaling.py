"""Embeds scaling: where the weight w enters an adapter's image attention (the leading pack's modes).

With K, V the image keys and values of one layer ([B, tokens, C], C the layer width) and
w' = w * C / 1280 (its width constant: the deepest SD layers are 1280 wide):

| mode | image branch |
|---|---|
| V only | w * Attn(q, K, V) |
| K+V | Attn(q, w K, w V) |
| K+V w/ C penalty | Attn(q, w' K, w' V) |
| K+mean(V) w/ C penalty | Attn(q, w' K, (V - m) + w' m), m = the mean of V over its tokens |

A negative w also flips K in the K modes. `w` is a number or a [B, 1, 1] tensor (one per frame).
"""
from __future__ import annotations

import torch

SCALING_MODES = ("V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty")
C_PENALTY_WIDTH = 1280


def scale_kv(k: torch.Tensor, v: torch.Tensor, weight, mode: str):
    """(K, V, output scale): the scaled image K/V and what the attention output is multiplied by."""
    if mode == "V only":
        return k, v, weight
    if mode == "K+V":
        return k * weight, v * weight, None
    w = weight * (k.shape[-1] / C_PENALTY_WIDTH)
    if mode == "K+V w/ C penalty":
        return k * w, v * w, None
    if mode == "K+mean(V) w/ C penalty":
        m = v.mean(dim=1, keepdim=True)
        return k * w, (v - m) + w * m, None
    raise ValueError(f"embeds_scaling '{mode}' is not one of: {', '.join(SCALING_MODES)}.")
