"""The whole adapter as one module: an image projection plus per-layer image K/V projections."""
from __future__ import annotations

import torch
from torch import nn

from .checkpoint import AdapterWeights
from .faceid import FaceIDPlusProjection, FaceIDProjection
from .projections import ImageProjection, MLPProjection
from .resampler import Resampler
from .spec import AdapterSpec


class ImageKV(nn.Module):
    """The decoupled key/value projections that one cross-attention layer adds for image tokens."""

    def __init__(self, cross_dim: int, width: int):
        super().__init__()
        self.to_k_ip = nn.Linear(cross_dim, width, bias=False)
        self.to_v_ip = nn.Linear(cross_dim, width, bias=False)


class IPAdapterModel(nn.Module):
    def __init__(self, spec: AdapterSpec):
        super().__init__()
        self.spec = spec
        self.image_proj = build_projection(spec)
        self.ip_adapter = nn.ModuleDict(
            {str(k): ImageKV(spec.cross_dim, w) for k, w in zip(spec.layer_keys, spec.layer_widths)})

    @torch.no_grad()
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP features [B, ...] -> image tokens [B, T, cross_dim] in the weights' dtype."""
        weight = next(self.image_proj.parameters())
        return self.image_proj(features.to(device=weight.device, dtype=weight.dtype))

    @torch.no_grad()
    def project_faces(self, faces: torch.Tensor, clip_hidden: torch.Tensor | None = None,
                      shortcut: bool | None = None, shortcut_scale: float = 1.0) -> torch.Tensor:
        """FaceID: face embeddings [B, 512] (and, for FaceID-Plus, the face crops' CLIP hidden states)
        -> tokens [B, T, width]. `shortcut`: FaceID-Plus v2's (None: what the spec says)."""
        weight = next(self.image_proj.parameters())
        faces = faces.to(device=weight.device, dtype=weight.dtype)
        if self.spec.face == "plus":
            clip_hidden = clip_hidden.to(device=weight.device, dtype=weight.dtype)
            shortcut = self.spec.plus_v2 if shortcut is None else shortcut
            return self.image_proj(faces, clip_hidden, shortcut=shortcut, shortcut_scale=shortcut_scale)
        if self.spec.face == "resampler":
            faces = faces[:, None]  # one embedding "token" per face
        return self.image_proj(faces)

    @torch.no_grad()
    def image_kv(self, layer_key: int, tokens: torch.Tensor,
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of `tokens` for one layer, computed on `device` (default: where the weights are).

        The layer's weights are brought to `device` for the product (a temporary copy when they
        live elsewhere), so each device's K/V come from weights on that device.
        """
        kv = self.ip_adapter[str(layer_key)]
        w_k, w_v = kv.to_k_ip.weight, kv.to_v_ip.weight  # read each call: a patcher may swap them
        device = w_k.device if device is None else device
        w_k, w_v = w_k.to(device), w_v.to(device)
        tokens = tokens.to(device=device, dtype=w_k.dtype)
        return tokens @ w_k.t(), tokens @ w_v.t()


def build_projection(spec: AdapterSpec) -> nn.Module:
    if spec.projection == "face-mlp":
        return FaceIDProjection(spec.cross_dim, spec.num_tokens, hidden=spec.face_config.hidden)
    if spec.projection == "face-plus":
        f = spec.face_config
        return FaceIDPlusProjection(spec.projected_dim, spec.num_tokens, spec.clip_width, f.depth, f.heads, f.ff_mult,
                                    hidden=f.hidden)
    if spec.projection == "linear":
        return ImageProjection(spec.clip_width, spec.cross_dim, spec.num_tokens)
    if spec.projection == "mlp":
        return MLPProjection(spec.clip_width, spec.cross_dim)
    r = spec.resampler
    return Resampler(r.dim, r.depth, r.dim_head, r.heads, r.num_queries, r.embedding_dim, r.output_dim, r.ff_mult)


def build_adapter(spec: AdapterSpec, weights: AdapterWeights, dtype: torch.dtype | None = None) -> IPAdapterModel:
    """Instantiate without allocating twice: the checkpoint's tensors become the parameters."""
    with torch.device("meta"):
        model = IPAdapterModel(spec)
    state = {f"image_proj.{k}": v for k, v in weights.image_proj.items()}
    state.update({f"ip_adapter.{k}": v for k, v in weights.ip_adapter.items() if "_lora." not in k})
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"{weights.source}: weights do not fit the detected {spec.variant} layout "
                         f"(missing {missing[:4]}, unexpected {unexpected[:4]}).")
    return model.eval().requires_grad_(False)
