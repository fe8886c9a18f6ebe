"""Reusable image embeddings: CLIP features of references, before an adapter's projection.

They travel between nodes as `Embeds` (type IPAKIT_EMBEDS), combine like images do, and are saved
as safetensors with metadata (which output of which encoder, for which adapter), so a shared file
says what it fits. Pickles (the leading pack's `.ipadpt`) are never loaded.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch

from ..ip_models.combine import combine_embeds
from ..ip_models.spec import AdapterSpec
from .adapter_handle import LoadedAdapter, require_image_adapter
from .encode import check_encoder, image_features, unconditional_features

FORMAT = "ipakit-embeds/1"
SUFFIX = ".embeds.safetensors"
CONVERTER = "python scripts/convert_embeds.py"


class EmbedsError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Embeds:
    features: torch.Tensor   # [N, D] pooled image_embeds, or [N, tokens, width] penultimate hidden states
    clip_input: str          # "image_embeds" or "penultimate"
    encoder: str = ""        # e.g. "ViT-H-14"
    variant: str = ""        # the adapter they were encoded for, e.g. "sd15_plus"

    @property
    def width(self) -> int:
        return self.features.shape[-1]

    def describe(self) -> str:
        what = "pooled image_embeds" if self.clip_input == "image_embeds" else "penultimate hidden states"
        return f"{self.features.shape[0]} x {what} of width {self.width}" + (f" (CLIP {self.encoder})" if self.encoder else "")


def check_fits(embeds: Embeds, spec: AdapterSpec, adapter_name: str, input_name: str = "pos_embed") -> None:
    if embeds.clip_input != spec.clip_input or embeds.width != spec.clip_width:
        needs = "pooled image_embeds" if spec.clip_input == "image_embeds" else "penultimate hidden states"
        raise EmbedsError(f"{input_name} holds {embeds.describe()}, but {adapter_name} ({spec.variant}) needs {needs} "
                          f"of width {spec.clip_width} (CLIP {spec.encoder_name}): encode them with this adapter "
                          f"and its encoder.")


def encode_embeds(adapter: LoadedAdapter, clip_vision, image: torch.Tensor, weight: float = 1.0,
                  mask: torch.Tensor | None = None, batch_size: int = 0) -> tuple[Embeds, Embeds]:
    """(positive, negative) embeddings; `weight` scales the positive ones in CLIP space."""
    spec = adapter.spec
    require_image_adapter(adapter)
    check_encoder(clip_vision, spec, adapter.name)
    cond = image_features(clip_vision, image, spec.clip_input, mask=mask, batch_size=batch_size)
    uncond = unconditional_features(clip_vision, spec.clip_input, cond)
    meta = dict(clip_input=spec.clip_input, encoder=spec.encoder_name, variant=spec.variant)
    return Embeds(cond * float(weight), **meta), Embeds(uncond, **meta)


def combine(embeds: list[Embeds], method: str) -> Embeds:
    first = embeds[0]
    for other in embeds[1:]:
        if (other.clip_input, other.width) != (first.clip_input, first.width) or \
                other.features.shape[1:] != first.features.shape[1:]:
            raise EmbedsError(f"Cannot combine {first.describe()} with {other.describe()}: encode all of them with "
                              f"the same adapter and encoder.")
    joined = torch.cat([e.features for e in embeds])
    return Embeds(combine_embeds(joined, method), first.clip_input, first.encoder, first.variant)


def save(embeds: Embeds, path: str) -> None:
    from safetensors.torch import save_file
    meta = {"format": FORMAT, "clip_input": embeds.clip_input, "encoder": embeds.encoder, "variant": embeds.variant,
            "shape": json.dumps(list(embeds.features.shape))}
    save_file({"embeds": embeds.features.detach().to("cpu").contiguous()}, path, metadata=meta)


def _pickle_refused(path: str) -> EmbedsError:
    name = os.path.basename(path)
    return EmbedsError(f"{name} is a pickle (the .ipadpt format of ComfyUI_IPAdapter_plus) and is never unpickled "
                       f"here. Convert it once, reading tensors only: {CONVERTER} \"{path}\" (writes "
                       f"{os.path.splitext(name)[0]}{SUFFIX} beside it).")


def _is_pickle(path: str) -> bool:
    """torch.save's zip container, or a bare pickle (protocols 2 to 5 start with 0x80 and the protocol),
    and not a .safetensors file (an 8-byte header length, then the JSON header)."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = os.path.getsize(path)
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return False
    if head[:4] == b"PK\x03\x04":
        return True
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load(path: str) -> Embeds:
    name = os.path.basename(path)
    if not name.endswith(".safetensors") or _is_pickle(path):  # a renamed pickle is still a pickle
        raise _pickle_refused(path)
    from safetensors import safe_open
    try:
        f = safe_open(path, framework="pt")
    except Exception as exc:  # safetensors' own error types differ between versions
        raise EmbedsError(f"{name} is not a readable .safetensors file ({exc}).") from exc
    with f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT or "embeds" not in f.keys():
            raise EmbedsError(f"{name} is not an embeddings file saved by 'Save Embeds (Kit)' (no '{FORMAT}' metadata).")
        features = f.get_tensor("embeds")
    return Embeds(features, meta["clip_input"], meta.get("encoder", ""), meta.get("variant", ""))


def apply_embeds(model, adapter: LoadedAdapter, pos: Embeds, neg: Embeds | None = None, clip_vision=None,
                 **controls):
    """An image prompt from embeddings: no image is encoded (a negative for hidden-state adapters
    needs `clip_vision` only when no `neg` is given)."""
    from .apply import apply_adapter, pair_features
    spec = adapter.spec
    require_image_adapter(adapter)
    check_fits(pos, spec, adapter.name)
    if neg is not None:
        check_fits(neg, spec, adapter.name, "neg_embed")
    elif spec.clip_input == "penultimate" and clip_vision is None:
        raise EmbedsError(f"{adapter.name} ({spec.variant}) needs a negative: connect neg_embed (from the encoder "
                          f"node) or clip_vision, whose trained 'no image' features are then used.")

    def features():
        if neg is None and spec.clip_input == "penultimate":
            check_encoder(clip_vision, spec, adapter.name)
        uncond = neg.features if neg is not None else unconditional_features(clip_vision, spec.clip_input, pos.features)
        return pair_features(pos.features, uncond, controls.get("combine_embeds", "concat"),
                             controls.get("unfold_batch", False))
    return apply_adapter(model, adapter, clip_vision, None, features=features,
                         inputs={"image": "pos_embed", "image_negative": "neg_embed"}, **controls)
