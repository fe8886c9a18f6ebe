"""Attention masks on the token grid of a UNet layer."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def token_grid(latent_h: int, latent_w: int, tokens: int) -> tuple[int, int]:
    """The (h, w) grid of a layer with `tokens` tokens for a latent of latent_h x latent_w.

    UNet downsamplers (stride 2, padding 1) map n to ceil(n / 2), so the grid is found exactly
    for any aspect ratio and odd sizes; other layouts fall back to the aspect-ratio estimate.
    """
    h, w = latent_h, latent_w
    for _ in range(8):
        if h * w == tokens:
            return h, w
        h, w = -(-h // 2), -(-w // 2)
    h = max(1, round(math.sqrt(tokens * latent_h / latent_w)))
    return h, max(1, tokens // h)


def mask_to_tokens(mask: torch.Tensor, latent_h: int, latent_w: int, tokens: int) -> torch.Tensor:
    """mask [M, H, W] in 0..1 -> [M, tokens, 1], bilinearly resized to the layer's grid."""
    h, w = token_grid(latent_h, latent_w, tokens)
    resized = F.interpolate(mask[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)
    flat = resized.flatten(1)
    if flat.shape[1] != tokens:  # only for unknown layouts: pad or trim the last row
        flat = F.pad(flat, (0, max(0, tokens - flat.shape[1])))[:, :tokens]
    return flat[..., None]
