"""What an IP-Adapter checkpoint is, read off its weights alone.

File names are used only to label variants whose weights are identical (sd15 vs light, plus vs
plus-face vs composition); renaming a file never changes the maths.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .checkpoint import AdapterWeights
from .encoders import EncoderInfo, encoder_for_input

FAMILIES = {768: "sd15", 2048: "sdxl"}
FAMILY_NAMES = {"sd15": "SD1.5", "sdxl": "SDXL"}
_LAYER_KEY = re.compile(r"^(\d+)\.to_k_ip\.weight$")


class UnsupportedAdapterError(ValueError):
    """A recognisable IP-Adapter that this version cannot run (e.g. FaceID)."""


@dataclass(frozen=True)
class ResamplerConfig:
    dim: int
    depth: int
    heads: int
    dim_head: int
    num_queries: int
    embedding_dim: int
    output_dim: int
    ff_mult: int


@dataclass(frozen=True)
class FaceConfig:
    """FaceID projections: the MLP's hidden width, and FaceID-Plus's perceiver (depth 0: MLP only)."""
    hidden: int          # proj.0 rows
    depth: int = 0
    heads: int = 0
    ff_mult: int = 0


@dataclass(frozen=True)
class AdapterSpec:
    variant: str                      # e.g. "sd15_plus", "sdxl_vit-h"
    family: str                       # base model family: "sd15" or "sdxl"
    projection: str                   # "linear", "mlp" (full-face) or "resampler"
    num_tokens: int                   # image tokens per reference image
    cross_dim: int                    # width of the image tokens = the UNet's context width
    clip_input: str                   # "image_embeds" (pooled) or "penultimate" (hidden states)
    clip_width: int                   # width of that CLIP output
    layer_keys: tuple[int, ...]       # checkpoint numbers of the cross-attention layers, in order
    layer_widths: tuple[int, ...]     # hidden width of each of those layers
    resampler: ResamplerConfig | None = None
    # FaceID: "" (a CLIP image prompt), "mlp" (FaceID, Portrait), "plus" (FaceID-Plus), "resampler"
    # (Portrait unnorm: a resampler over the raw face embedding)
    face: str = ""
    raw_face: bool = False           # the raw insightface embedding instead of the unit-norm one
    has_lora: bool = False           # rank-128 LoRA pairs for the UNet's attention inside the file
    token_dim: int = 0               # token width when it differs from the layers' (Kolors FaceID: 4096)
    plus_v2: bool = False            # FaceID-Plus v2 (the shortcut); the weights cannot tell, the name hints
    face_config: FaceConfig | None = None

    @property
    def encoder(self) -> EncoderInfo | None:
        return encoder_for_input(self.clip_input, self.clip_width) if self.clip_input else None

    @property
    def encoder_name(self) -> str:
        enc = self.encoder
        return enc.name if enc else f"an encoder with {self.clip_input} width {self.clip_width}"

    @property
    def projected_dim(self) -> int:
        return self.token_dim or self.cross_dim

    def describe(self) -> str:
        needs = f"CLIP {self.encoder_name}" if self.clip_input else ""
        if self.face:
            needs = "insightface" + (f" and {needs} for the face crop" if needs else "")
        lora = ", LoRA inside" if self.has_lora else ""
        return (f"{self.variant} ({FAMILY_NAMES[self.family]}, {self.projection} projection, "
                f"{self.num_tokens} tokens/image{lora}, needs {needs})")


def detect_spec(weights: AdapterWeights, file_hint: str = "") -> AdapterSpec:
    proj, hint = weights.image_proj, file_hint.lower()
    keys, widths, cross = _layers(weights)
    family = FAMILIES.get(cross)
    if family is None:
        raise UnsupportedAdapterError(
            f"{weights.source}: image tokens of width {cross} match no supported base model "
            f"(768 = SD1.5, 2048 = SDXL).")
    common = dict(family=family, cross_dim=cross, layer_keys=keys, layer_widths=widths,
                  has_lora="0.to_q_lora.down.weight" in weights.ip_adapter)
    face = _faceid_spec(proj, hint, family, common)
    if face is not None:
        return face
    if "latents" in proj:
        cfg = _resampler_config(proj)
        if cfg.embedding_dim == 512:  # no CLIP is 512 wide: the raw face embedding (Portrait unnorm)
            return AdapterSpec(f"faceid-portrait-unnorm_{family}", projection="resampler", num_tokens=cfg.num_queries,
                               clip_input="", clip_width=0, resampler=cfg, face="resampler", raw_face=True, **common)
        # plus, plus-face and composition adapters share one layout: the name is only a label
        suffix = "plus-face" if "face" in hint else "plus-composition" if "composition" in hint else "plus"
        if family == "sdxl" and cfg.embedding_dim == 1024 and cfg.dim == 2048:
            variant = "kolors_plus"  # Kolors: CLIP ViT-L/14-336 hidden states, resampler at 2048
        else:
            variant = f"sd15_{suffix}" if family == "sd15" else f"sdxl_{suffix}_vit-h"
        return AdapterSpec(variant, projection="resampler", num_tokens=cfg.num_queries,
                           clip_input="penultimate", clip_width=cfg.embedding_dim, resampler=cfg, **common)
    if "proj.3.weight" in proj:
        variant = f"{family}_full-face"
        # One token per CLIP token: 257 for ViT-H/14 at 224 px.
        return AdapterSpec(variant, projection="mlp", num_tokens=257, clip_input="penultimate",
                           clip_width=proj["proj.0.weight"].shape[1], **common)
    if "proj.weight" in proj and "norm.weight" in proj:
        rows, clip = proj["proj.weight"].shape
        tokens = rows // cross
        if family == "sd15":
            variant = "sd15_vit-G" if clip == 1280 else ("sd15_light" if "light" in hint else "sd15")
        else:
            variant = "sdxl_vit-h" if clip == 1024 else "sdxl"
        return AdapterSpec(variant, projection="linear", num_tokens=tokens, clip_input="image_embeds",
                           clip_width=clip, **common)
    raise UnsupportedAdapterError(
        f"{weights.source}: unknown image projection (keys: {', '.join(sorted(proj)[:6])}).")


def _faceid_spec(proj: dict, hint: str, family: str, common: dict) -> AdapterSpec | None:
    """FaceID-Plus (a perceiver over the face crop's CLIP features) or the FaceID MLP, else None."""
    if "perceiver_resampler.proj_in.weight" in proj:
        dim, clip_width = proj["perceiver_resampler.proj_in.weight"].shape
        depth = 1 + max(int(k.split(".")[2]) for k in proj if k.startswith("perceiver_resampler.layers."))
        config = FaceConfig(hidden=proj["proj.0.weight"].shape[0], depth=depth,
                                heads=proj["perceiver_resampler.layers.0.0.to_q.weight"].shape[0] // 64,
                                ff_mult=proj["perceiver_resampler.layers.0.1.1.weight"].shape[0] // dim)
        tokens = proj["proj.2.weight"].shape[0] // dim
        kolors = dim != common["cross_dim"]  # Kolors: 4096-wide tokens, through the UNet's encoder_hid_proj
        v2 = kolors or family == "sdxl" or "v2" in hint
        variant = "kolors_faceid-plus" if kolors else f"faceid-plus{'v2' if v2 else ''}_{family}"
        return AdapterSpec(variant, projection="face-plus", num_tokens=tokens, clip_input="penultimate",
                           clip_width=clip_width, face="plus", raw_face=kolors, token_dim=dim if kolors else 0,
                           plus_v2=v2, face_config=config, **common)
    if "proj.0.weight" in proj and "norm.weight" in proj and "proj.3.weight" not in proj:
        dim = proj["norm.weight"].shape[0]
        tokens = proj["proj.2.weight"].shape[0] // dim
        if tokens == 4:
            variant = f"faceid_{family}"
        else:
            variant = f"faceid-portrait{'-v11' if 'v11' in hint and family == 'sd15' else ''}_{family}"
        return AdapterSpec(variant, projection="face-mlp", num_tokens=tokens, clip_input="", clip_width=0,
                           face="mlp", face_config=FaceConfig(proj["proj.0.weight"].shape[0]), **common)
    return None


def _layers(weights: AdapterWeights) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    found = {}
    for key, tensor in weights.ip_adapter.items():
        m = _LAYER_KEY.match(key)
        if m:
            found[int(m.group(1))] = tensor
    if not found:
        raise UnsupportedAdapterError(f"{weights.source} has no '<n>.to_k_ip.weight' layers.")
    keys = tuple(sorted(found))
    crosses = {found[k].shape[1] for k in keys}
    if len(crosses) != 1:
        raise UnsupportedAdapterError(f"{weights.source}: layers disagree on the token width {crosses}.")
    return keys, tuple(found[k].shape[0] for k in keys), crosses.pop()


def _resampler_config(proj: dict) -> ResamplerConfig:
    dim = proj["latents"].shape[2]
    depth = 1 + max(int(k.split(".")[1]) for k in proj if k.startswith("layers."))
    inner = proj["layers.0.0.to_q.weight"].shape[0]
    dim_head = 64
    return ResamplerConfig(
        dim=dim, depth=depth, heads=inner // dim_head, dim_head=dim_head,
        num_queries=proj["latents"].shape[1], embedding_dim=proj["proj_in.weight"].shape[1],
        output_dim=proj["proj_out.weight"].shape[0],
        ff_mult=proj["layers.0.1.1.weight"].shape[0] // dim)
