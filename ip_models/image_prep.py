"""Preparing reference images for a CLIP image encoder: crop, resize, sharpen, and tile.

Images are ComfyUI IMAGE tensors [B, H, W, C] in 0..1. Resizing goes through PIL's filters in
32-bit float (no 8-bit rounding); RGBA loses its alpha, greyscale becomes RGB.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

INTERPOLATIONS = ("LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX", "NEAREST")
CROP_POSITIONS = ("top", "bottom", "left", "right", "center", "pad")
TILE = 256


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    if image.ndim == 3:
        image = image[None]
    if image.shape[-1] == 1:
        return image.expand(*image.shape[:-1], 3)
    return image[..., :3]


def square(image: torch.Tensor, position: str = "center") -> torch.Tensor:
    """A square of the short side (or, with "pad", the image padded to a square with black)."""
    if position not in CROP_POSITIONS:
        raise ValueError(f"crop_position '{position}' is not one of: {', '.join(CROP_POSITIONS)}.")
    _, h, w, _ = image.shape
    if position == "pad":
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        return F.pad(image, (0, 0, left, side - w - left, top, side - h - top))
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    if h > w:  # portrait: only top/bottom move the crop
        top = {"top": 0, "bottom": h - side}.get(position, top)
    elif w > h:
        left = {"left": 0, "right": w - side}.get(position, left)
    return image[:, top:top + side, left:left + side]


def resize(image: torch.Tensor, height: int, width: int, interpolation: str = "LANCZOS") -> torch.Tensor:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation '{interpolation}' is not one of: {', '.join(INTERPOLATIONS)}.")
    method = getattr(Image.Resampling, interpolation)
    out = np.empty((image.shape[0], height, width, image.shape[-1]), dtype=np.float32)
    for b, frame in enumerate(image.detach().cpu().float().numpy()):
        for c in range(frame.shape[-1]):
            out[b, :, :, c] = np.asarray(Image.fromarray(frame[:, :, c], mode="F").resize((width, height), method))
    return torch.from_numpy(out).clamp(0, 1).to(image.device)


def contrast_adaptive_sharpen(image: torch.Tensor, amount: float) -> torch.Tensor:
    """AMD's CAS on [B, H, W, C]: sharpen less where local contrast is already high."""
    if amount <= 0:
        return image
    x = F.pad(image.permute(0, 3, 1, 2), (1, 1, 1, 1))
    a, b, c = x[..., :-2, :-2], x[..., :-2, 1:-1], x[..., :-2, 2:]
    d, e, f = x[..., 1:-1, :-2], x[..., 1:-1, 1:-1], x[..., 1:-1, 2:]
    g, h, i = x[..., 2:, :-2], x[..., 2:, 1:-1], x[..., 2:, 2:]
    cross = torch.stack((b, d, e, f, h))
    ring = torch.stack((a, c, g, i))
    mn = cross.min(0).values.clamp_min(0)
    mx = cross.max(0).values.clamp_max(1)
    mn = mn + torch.minimum(mn, ring.min(0).values)
    mx = mx + torch.maximum(mx, ring.max(0).values)
    amp = torch.sqrt(torch.clamp(torch.minimum(mn, 2 - mx) / mx, 0, 1))
    k = -amp * (1 / 8 + float(amount) * (1 / 5 - 1 / 8))
    out = (k * (b + d + f + h) + e) / (1 + 4 * k)
    return torch.nan_to_num(out, nan=0.0).clamp(0, 1).permute(0, 2, 3, 1)


def prep_for_clip(image: torch.Tensor, size: int = 224, interpolation: str = "LANCZOS", crop_position: str = "center",
                  sharpening: float = 0.0) -> torch.Tensor:
    out = resize(square(as_rgb(image), crop_position), size, size, interpolation)
    return contrast_adaptive_sharpen(out, sharpening)


def _starts(length: int) -> list[int]:
    count = math.ceil(length / TILE)
    if count <= 1:
        return [0]
    overlap = (count * TILE - length) / (count - 1)
    return [math.floor(i * (TILE - overlap)) for i in range(count)]


def tile_reference(image: torch.Tensor, mask: torch.Tensor | None = None, sharpening: float = 0.0):
    """Cut a reference into 256 px tiles that cover all of it (the leading pack's tiled layout).

    Near-square images become 512 x 512 (2 x 2 tiles); others get a 256 px short side (very long
    ones are centre-cropped to 1:4). Returns (tiles [T, B, 256, 256, 3], masks [T, H', W']): each
    tile's mask is the given mask (default: all ones) on the tile's rectangle and zero elsewhere,
    in the prepared image's frame, so the whole picture is covered.
    """
    image = as_rgb(image).float()
    _, h, w, _ = image.shape
    mask = torch.ones(1, h, w) if mask is None else (mask[None] if mask.ndim == 2 else mask)[:1].float()
    if tuple(mask.shape[-2:]) != (h, w):
        mask = F.interpolate(mask[:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0].clamp(0, 1)
    both = torch.cat((image, mask[:1, :, :, None].expand(image.shape[0], h, w, 1)), dim=-1)  # crop them alike
    ratio = h / w
    if 0.75 < ratio < 1.33:
        both = _resize_tensor(square(both), 2 * TILE, 2 * TILE)
    else:
        scale = TILE / min(h, w)
        both = _resize_tensor(both, max(TILE, round(h * scale)), max(TILE, round(w * scale)))
        if ratio > 4 or ratio < 0.25:
            th, tw = (4 * TILE, TILE) if ratio > 4 else (TILE, 4 * TILE)
            top, left = (both.shape[1] - th) // 2, (both.shape[2] - tw) // 2
            both = both[:, top:top + th, left:left + tw]
    image, mask = contrast_adaptive_sharpen(both[..., :3], sharpening), both[:1, ..., 3]
    tiles, masks = [], []
    for y in _starts(image.shape[1]):
        for x in _starts(image.shape[2]):
            tiles.append(image[:, y:y + TILE, x:x + TILE])
            tile_mask = torch.zeros_like(mask[0])
            tile_mask[y:y + TILE, x:x + TILE] = mask[0, y:y + TILE, x:x + TILE]
            masks.append(tile_mask)
    return torch.stack(tiles), torch.stack(masks)


def _resize_tensor(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    x = F.interpolate(image.permute(0, 3, 1, 2), size=(height, width), mode="bicubic", align_corners=False,
                      antialias=True)
    return x.clamp(0, 1).permute(0, 2, 3, 1)
