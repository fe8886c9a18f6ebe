"""The "enhancer": a reference encoded whole and in t x t crops, the crops' features merged back
into the whole image's token grid, so small details reach the adapter at the encoder's resolution.

Hidden states [B, 1 + g*g, W]: the crops' g x g patch grids are stitched into one (t g) x (t g)
grid, average-pooled back to g x g, and given the crops' mean class token. Pooled embeddings
[B, D] (no grid): the crops' mean. Either way the result is `ratio * whole + (1 - ratio) * merged`
for every image of the batch (the leading pack drops the (1 - ratio) for single images, and
treats a pooled vector as a square grid, which only fits ViT-H's 1024 and mixes unrelated values).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def crops(image: torch.Tensor, tiles: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * t * t, H // t, W // t, C], row-major per image (the remainder is dropped)."""
    b, h, w, c = image.shape
    th, tw = h // tiles, w // tiles
    x = image[:, : th * tiles, : tw * tiles].reshape(b, tiles, th, tiles, tw, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b * tiles * tiles, th, tw, c)


def merge(whole: torch.Tensor, crop_features: torch.Tensor, tiles: int, ratio: float) -> torch.Tensor:
    """Blend the whole image's features [B, ...] with its crops' [B * t * t, ...] (see module doc)."""
    b = whole.shape[0]
    parts = crop_features.reshape(b, tiles * tiles, *crop_features.shape[1:])
    if whole.ndim == 2:
        merged = parts.mean(1)
    else:
        tokens, width = whole.shape[1], whole.shape[2]
        g = int(math.isqrt(tokens - 1))
        grids = parts[:, :, 1:].reshape(b, tiles, tiles, g, g, width)
        stitched = grids.permute(0, 5, 1, 3, 2, 4).reshape(b, width, tiles * g, tiles * g)
        pooled = F.avg_pool2d(stitched, kernel_size=tiles).flatten(2).transpose(1, 2)
        merged = torch.cat((parts[:, :, :1].mean(1), pooled), dim=1)
    return ratio * whole + (1 - ratio) * merged
