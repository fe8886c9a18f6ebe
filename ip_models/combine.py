"""Combining several reference images in CLIP embedding space, before projection.

`embeds` is a batch of N embeddings: pooled `[N, D]` or hidden states `[N, tokens, width]`.
"concat" keeps all N (their tokens then join one attention); the others reduce to one:

| method | result |
|---|---|
| add | e_0 + ... + e_{N-1} |
| subtract | e_0 - mean(e_1 .. e_{N-1}) (e_0 alone when N = 1) |
| average | mean(e_i) |
| norm average | mean(e_i / ||e_i||), each embedding normalised by its own L2 norm (all its values) |
| max / min | elementwise over the N embeddings |
"""
from __future__ import annotations

import torch

COMBINE_METHODS = ("concat", "add", "subtract", "average", "norm average", "max", "min")


def combine_embeds(embeds: torch.Tensor, method: str) -> torch.Tensor:
    if method not in COMBINE_METHODS:
        raise ValueError(f"combine method '{method}' is not one of: {', '.join(COMBINE_METHODS)}.")
    if method == "concat" or embeds.shape[0] == 1:
        return embeds
    if method == "add":
        return embeds.sum(0, keepdim=True)
    if method == "subtract":
        return embeds[:1] - embeds[1:].mean(0, keepdim=True)
    if method == "average":
        return embeds.mean(0, keepdim=True)
    if method == "norm average":
        norms = embeds.flatten(1).norm(dim=1).clamp_min(torch.finfo(embeds.dtype).tiny)
        return (embeds / norms.view(-1, *([1] * (embeds.ndim - 1)))).mean(0, keepdim=True)
    if method == "max":
        return embeds.max(0, keepdim=True).values
    return embeds.min(0, keepdim=True).values
