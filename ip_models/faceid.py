"""The FaceID projections: identity tokens from an insightface face embedding (512 values).

Parameter names follow the official checkpoints (`proj.0`, `proj.2`, `norm`,
`perceiver_resampler.*`) so files load without renaming.
"""
from __future__ import annotations

import torch
from torch import nn

from .resampler import PerceiverAttention, _feed_forward

FACE_WIDTH = 512  # insightface ArcFace embeddings


class FaceIDProjection(nn.Module):
    """FaceID and FaceID-Portrait: face embedding -> MLP -> `num_tokens` tokens (LayerNorm each)."""

    def __init__(self, cross_dim: int, num_tokens: int, hidden: int = 1024, face_width: int = FACE_WIDTH):
        super().__init__()
        self.cross_dim, self.num_tokens = cross_dim, num_tokens
        self.proj = nn.Sequential(nn.Linear(face_width, hidden), nn.GELU(), nn.Linear(hidden, cross_dim * num_tokens))
        self.norm = nn.LayerNorm(cross_dim)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(face).reshape(-1, self.num_tokens, self.cross_dim))


class FacePerceiverResampler(nn.Module):
    """The resampler of FaceID-Plus: the identity tokens attend to CLIP hidden states of the face crop."""

    def __init__(self, dim: int, depth: int, dim_head: int, heads: int, embedding_dim: int, output_dim: int,
                 ff_mult: int):
        super().__init__()
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), _feed_forward(dim, ff_mult)]) for _ in range(depth))

    def forward(self, latents: torch.Tensor, clip_hidden: torch.Tensor) -> torch.Tensor:
        features = self.proj_in(clip_hidden)
        for attention, feed_forward in self.layers:
            latents = attention(features, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))


class FaceIDPlusProjection(nn.Module):
    """FaceID-Plus (v1, v2) and Kolors FaceID-Plus: MLP identity tokens refined by the face crop's CLIP
    features; v2 keeps the MLP tokens as a shortcut: `x + shortcut_scale * resampler(x, clip)`."""

    def __init__(self, cross_dim: int, num_tokens: int, clip_width: int, depth: int, heads: int, ff_mult: int,
                 hidden: int = 1024, face_width: int = FACE_WIDTH):
        super().__init__()
        self.cross_dim, self.num_tokens = cross_dim, num_tokens
        self.proj = nn.Sequential(nn.Linear(face_width, hidden), nn.GELU(), nn.Linear(hidden, cross_dim * num_tokens))
        self.norm = nn.LayerNorm(cross_dim)
        self.perceiver_resampler = FacePerceiverResampler(cross_dim, depth, 64, heads, clip_width, cross_dim, ff_mult)

    def forward(self, face: torch.Tensor, clip_hidden: torch.Tensor, shortcut: bool = False,
                shortcut_scale: float = 1.0) -> torch.Tensor:
        x = self.norm(self.proj(face).reshape(-1, self.num_tokens, self.cross_dim))
        out = self.perceiver_resampler(x, clip_hidden)
        return x + shortcut_scale * out if shortcut else out
