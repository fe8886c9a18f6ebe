"""Image projections that turn CLIP features into the adapter's image tokens.

Parameter names follow the official checkpoints so they load without renaming.
"""
from __future__ import annotations

import torch
from torch import nn


class ImageProjection(nn.Module):
    """Plain IP-Adapter: pooled image_embeds -> `num_tokens` tokens (Linear, then LayerNorm)."""

    def __init__(self, clip_dim: int, cross_dim: int, num_tokens: int):
        super().__init__()
        self.cross_dim, self.num_tokens = cross_dim, num_tokens
        self.proj = nn.Linear(clip_dim, cross_dim * num_tokens)
        self.norm = nn.LayerNorm(cross_dim)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(image_embeds).reshape(-1, self.num_tokens, self.cross_dim)
        return self.norm(tokens)


class MLPProjection(nn.Module):
    """Full-face IP-Adapter: every hidden-state token through Linear-GELU-Linear-LayerNorm."""

    def __init__(self, clip_dim: int, cross_dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Linear(clip_dim, clip_dim), nn.GELU(), nn.Linear(clip_dim, cross_dim), nn.LayerNorm(cross_dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden_states)
