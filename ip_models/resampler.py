"""The perceiver resampler of the "plus" adapters: learned queries attend to CLIP hidden states."""
from __future__ import annotations

import math

import torch
from torch import nn


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    # Indices 0..3 match the checkpoints: layers.N.1.{0,1,3}.
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        features, latents = self.norm1(features), self.norm2(latents)
        q = self._split(self.to_q(latents))
        k, v = self.to_kv(torch.cat((features, latents), dim=-2)).chunk(2, dim=-1)
        k, v = self._split(k), self._split(v)
        # Scaling q and k separately keeps fp16 products in range, as in training.
        scale = 1 / math.sqrt(math.sqrt(self.dim_head))
        weights = (q * scale) @ (k * scale).transpose(-2, -1)
        weights = torch.softmax(weights.float(), dim=-1).to(weights.dtype)
        out = (weights @ v).transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        return self.to_out(out)


class Resampler(nn.Module):
    def __init__(self, dim: int, depth: int, dim_head: int, heads: int, num_queries: int,
                 embedding_dim: int, output_dim: int, ff_mult: int):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), _feed_forward(dim, ff_mult)])
            for _ in range(depth))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(hidden_states.shape[0], -1, -1)
        features = self.proj_in(hidden_states)
        for attention, feed_forward in self.layers:
            latents = attention(features, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))
