"""Noise images to use as negatives: what the image prompt should move away from.

s = strength; U, U' uniform, G normal, all from a generator seeded by `seed` (the global RNG is
never touched, and the same image, settings and seed always give the same noise):
- fade: x (1 - s) + U s
- dissolve: each value replaced by U where U' < s
- gaussian: x + s G
- shuffle: an elastic distortion (strength 75, smoothness 3.5 (1 - s)), flipped both ways, then
  x (1 - n) + n with n = 0.75 s G
then clamped to 0..1, optionally blurred, and, with a mask, applied only inside it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .image_prep import as_rgb, square

NOISE_TYPES = ("fade", "dissolve", "gaussian", "shuffle")


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def blur(image: torch.Tensor, size: int, sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur of [B, H, W, C] with an odd kernel of `size` (torchvision's default sigma)."""
    if size <= 0:
        return image
    size += 1 - size % 2
    sigma = sigma if sigma is not None else 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    k = _gaussian_kernel(size, sigma).to(image)
    x = image.permute(0, 3, 1, 2)
    c = x.shape[1]
    x = F.pad(x, (size // 2,) * 4, mode="reflect" if min(x.shape[-2:]) > size // 2 else "replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)
    return x.permute(0, 2, 3, 1)


def _elastic(x: torch.Tensor, gen: torch.Generator, alpha: float, sigma: float) -> torch.Tensor:
    b, h, w, _ = x.shape
    field = torch.rand(b, h, w, 2, generator=gen) * 2 - 1
    if sigma > 0:
        size = 2 * int(4 * sigma + 0.5) + 1
        field = blur(field, size, sigma)
    field = field * alpha * torch.tensor([2 / w, 2 / h])  # pixels -> grid units
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack((xs, ys), dim=-1)[None] + field
    return F.grid_sample(x.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=True).permute(0, 2, 3, 1)


def make_noise(kind: str, strength: float, blur_size: int = 0, image: torch.Tensor | None = None,
               mask: torch.Tensor | None = None, seed: int = 0, size: int = 224) -> torch.Tensor:
    if kind not in NOISE_TYPES:
        raise ValueError(f"noise type '{kind}' is not one of: {', '.join(NOISE_TYPES)}.")
    gen = torch.Generator().manual_seed(int(seed))
    if image is None:
        base = torch.zeros(1, size, size, 3)
    else:
        base = F.interpolate(square(as_rgb(image)).float().cpu().permute(0, 3, 1, 2), size=(size, size),
                             mode="bicubic", antialias=True, align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)
    s = float(strength)
    if kind == "fade":
        out = base * (1 - s) + torch.rand(base.shape, generator=gen) * s
    elif kind == "dissolve":
        replace = torch.rand(base.shape, generator=gen) < s
        out = torch.where(replace, torch.rand(base.shape, generator=gen), base)
    elif kind == "gaussian":
        out = base + s * torch.randn(base.shape, generator=gen)
    else:
        out = _elastic(base, gen, 75.0, 3.5 * (1 - s)).flip(1, 2)
        n = 0.75 * s * torch.randn(base.shape, generator=gen)
        out = out * (1 - n) + n
    out = blur(out.clamp(0, 1), blur_size).clamp(0, 1)
    if mask is not None:
        m = (mask[None] if mask.ndim == 2 else mask).float().cpu()
        m = F.interpolate(m[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0, ..., None]
        out = base * (1 - m) + out * m
    return out
