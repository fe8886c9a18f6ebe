"""Synthetic IP-Adapter checkpoints with the real `image_proj` layouts and shapes.

Why: the pack must load and detect every released variant from its weights alone; shipping or
downloading real checkpoints is not an option, so tests write random ones with the published
key names and shapes (see /work/shared/reference/ipadapter-checkpoints.md). Only the
`ip_adapter` K/V widths follow the tiny test UNet (`layer_widths`), since a real checkpoint's
widths match a real UNet.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

VARIANTS = ["sd15", "sd15_light", "sd15_vit-G", "sd15_plus", "sd15_plus-face", "sd15_full-face",
            "sdxl", "sdxl_vit-h", "sdxl_plus_vit-h", "sdxl_plus-face_vit-h"]


def _info(family, clip_input, encoder, width, projection, tokens, **resampler):
    return {"family": family, "cross_dim": 768 if family == "sd15" else 2048,
            "clip_input": clip_input,   # "image_embeds" (pooled, projected) or "penultimate"
            "encoder": encoder,         # tiny_clip kind: "vit-h" or "vit-bigg"
            "feature_width": width,     # last dim of the CLIP features the projection eats
            "projection": projection,   # "plain", "full", "resampler"
            "tokens": tokens, **resampler}


_SD15_PLUS = dict(dim=768, heads=12, depth=4, dim_head=64, ff_mult=4, queries=16)
_SDXL_PLUS = dict(dim=1280, heads=20, depth=4, dim_head=64, ff_mult=4, queries=16)

# "tokens" is the number of image tokens per image: 4 (plain), 16 (resampler queries) or, for
# full-face, one per CLIP token (257 with a real ViT-H at 224 px; 17 with tiny_clip at 56 px).
VARIANT_INFO: dict[str, dict] = {
    "sd15": _info("sd15", "image_embeds", "vit-h", 1024, "plain", 4),
    "sd15_light": _info("sd15", "image_embeds", "vit-h", 1024, "plain", 4),
    "sd15_vit-G": _info("sd15", "image_embeds", "vit-bigg", 1280, "plain", 4),
    "sd15_plus": _info("sd15", "penultimate", "vit-h", 1280, "resampler", 16, **_SD15_PLUS),
    "sd15_plus-face": _info("sd15", "penultimate", "vit-h", 1280, "resampler", 16, **_SD15_PLUS),
    "sd15_full-face": _info("sd15", "penultimate", "vit-h", 1280, "full", 257),
    "sdxl": _info("sdxl", "image_embeds", "vit-bigg", 1280, "plain", 4),
    "sdxl_vit-h": _info("sdxl", "image_embeds", "vit-h", 1024, "plain", 4),
    "sdxl_plus_vit-h": _info("sdxl", "penultimate", "vit-h", 1280, "resampler", 16, **_SDXL_PLUS),
    "sdxl_plus-face_vit-h": _info("sdxl", "penultimate", "vit-h", 1280, "resampler", 16, **_SDXL_PLUS),
}
# FaceID (faceid.md): an MLP over the 512-wide face embedding, FaceID-Plus's perceiver over the face
# crop's CLIP hidden states, Portrait unnorm's resampler over the raw embedding; LoRA inside where released.
def _face(family, projection, tokens, lora, **extra):
    cross = 768 if family == "sd15" else 2048
    return {"family": family, "cross_dim": cross, "projection": projection, "tokens": tokens, "lora": lora,
            "clip_input": "", "encoder": "", "feature_width": 512, **extra}


_PLUS = dict(clip_input="penultimate", encoder="vit-h", clip_width=1280, depth=4, ff_mult=4)
FACEID_INFO = {
    "faceid_sd15": _face("sd15", "face-mlp", 4, True),
    "faceid_sdxl": _face("sdxl", "face-mlp", 4, True),
    "faceid-plus_sd15": _face("sd15", "face-plus", 4, True, **_PLUS),
    "faceid-plusv2_sd15": _face("sd15", "face-plus", 4, True, **_PLUS),
    "faceid-plusv2_sdxl": _face("sdxl", "face-plus", 4, True, **_PLUS),
    "faceid-portrait_sd15": _face("sd15", "face-mlp", 16, False),
    "faceid-portrait-v11_sd15": _face("sd15", "face-mlp", 16, False),
    "faceid-portrait_sdxl": _face("sdxl", "face-mlp", 16, False),
    "faceid-portrait-unnorm_sdxl": _face("sdxl", "resampler", 16, False, dim=1280, heads=20, depth=4, dim_head=64,
                                         ff_mult=4, queries=16),
}
FACEID_VARIANTS = list(FACEID_INFO)

# Beyond the core's ten: Kolors-IP-Adapter-Plus (CLIP ViT-L/14-336, resampler at 2048, 12 heads).
VARIANT_INFO["kolors_plus"] = _info("sdxl", "penultimate", "vit-l", 1024, "resampler", 16,
                                    dim=2048, heads=12, depth=4, dim_head=64, ff_mult=4, queries=16)
VARIANT_INFO.update(FACEID_INFO)
# Kolors FaceID-Plus: 6 tokens 4096 wide (through the Kolors UNet's encoder_hid_proj), ViT-L/14-336 crops.
# The released perceiver has 4 layers with FF ratio 4 (800M parameters); the tests use 1 layer, ratio 1:
# what identifies it (4096-wide tokens over 2048-wide K/V) and everything it runs through stay the same.
VARIANT_INFO["kolors_faceid-plus"] = {**_face("sdxl", "face-plus", 6, False, clip_input="penultimate",
                                              encoder="vit-l", clip_width=1024, depth=1, ff_mult=1), "token_dim": 4096}


def save_released_kolors_faceid(state_dict: dict, path) -> Path:
    """The released Kolors `ipa-faceid-plus.bin` layout: a pickle of nested `image_proj` and `adapter_modules`
    dicts (its name for `ip_adapter`)."""
    torch.save({"image_proj": state_dict["image_proj"], "adapter_modules": state_dict["ip_adapter"]}, path)
    return Path(path)


def image_proj_shapes(variant: str) -> dict[str, tuple]:
    """Key -> shape of the released `image_proj` state dict of `variant`."""
    info = VARIANT_INFO[variant]
    cross, width = info["cross_dim"], info["feature_width"]
    if info["projection"] in ("face-mlp", "face-plus"):
        return _face_shapes(info)
    if info["projection"] == "plain":
        return {"proj.weight": (info["tokens"] * cross, width), "proj.bias": (info["tokens"] * cross,),
                "norm.weight": (cross,), "norm.bias": (cross,)}
    if info["projection"] == "full":
        return {"proj.0.weight": (width, width), "proj.0.bias": (width,),
                "proj.2.weight": (cross, width), "proj.2.bias": (cross,),
                "proj.3.weight": (cross,), "proj.3.bias": (cross,)}
    d, inner, ff = info["dim"], info["heads"] * info["dim_head"], info["ff_mult"] * info["dim"]
    shapes = {"latents": (1, info["queries"], d), "proj_in.weight": (d, width), "proj_in.bias": (d,),
              "proj_out.weight": (cross, d), "proj_out.bias": (cross,),
              "norm_out.weight": (cross,), "norm_out.bias": (cross,)}
    for n in range(info["depth"]):
        p = f"layers.{n}."
        shapes.update({
            p + "0.norm1.weight": (d,), p + "0.norm1.bias": (d,),
            p + "0.norm2.weight": (d,), p + "0.norm2.bias": (d,),
            p + "0.to_q.weight": (inner, d), p + "0.to_kv.weight": (2 * inner, d),
            p + "0.to_out.weight": (d, inner),
            p + "1.0.weight": (d,), p + "1.0.bias": (d,),
            p + "1.1.weight": (ff, d), p + "1.3.weight": (d, ff)})
    return shapes


def _face_shapes(info: dict) -> dict[str, tuple]:
    dim = info.get("token_dim", info["cross_dim"])
    shapes = {"proj.0.weight": (1024, 512), "proj.0.bias": (1024,), "proj.2.weight": (info["tokens"] * dim, 1024),
              "proj.2.bias": (info["tokens"] * dim,), "norm.weight": (dim,), "norm.bias": (dim,)}
    if info["projection"] == "face-mlp":
        return shapes
    p, inner, ff = "perceiver_resampler.", dim, info["ff_mult"] * dim  # heads = dim / 64, 64 wide
    shapes.update({p + "proj_in.weight": (dim, info["clip_width"]), p + "proj_in.bias": (dim,),
                   p + "proj_out.weight": (dim, dim), p + "proj_out.bias": (dim,),
                   p + "norm_out.weight": (dim,), p + "norm_out.bias": (dim,)})
    for n in range(info["depth"]):
        q = f"{p}layers.{n}."
        shapes.update({q + "0.norm1.weight": (dim,), q + "0.norm1.bias": (dim,), q + "0.norm2.weight": (dim,),
                       q + "0.norm2.bias": (dim,), q + "0.to_q.weight": (inner, dim), q + "0.to_kv.weight": (2 * inner, dim),
                       q + "0.to_out.weight": (dim, inner), q + "1.0.weight": (dim,), q + "1.0.bias": (dim,),
                       q + "1.1.weight": (ff, dim), q + "1.3.weight": (dim, ff)})
    return shapes


def lora_shapes(layer_widths: list[int], cross: int, rank: int = 128) -> dict[str, tuple]:
    """The LoRA pairs FaceID files carry on every attention processor (even: attn1, odd: attn2)."""
    shapes = {}
    for i, width in enumerate(layer_widths):
        for proc, context in ((2 * i, width), (2 * i + 1, cross)):
            for name, fan_in in (("to_q", width), ("to_k", context), ("to_v", context), ("to_out", width)):
                shapes[f"{proc}.{name}_lora.down.weight"] = (rank, fan_in)
                shapes[f"{proc}.{name}_lora.up.weight"] = (width, rank)
    return shapes


def _random(key: str, shape: tuple, gen: torch.Generator) -> torch.Tensor:
    """Matrices randn/sqrt(fan_in) (O(1) activations, non-trivial softmax); LayerNorm scales
    1 + 0.1 randn; biases 0.02 randn; latents randn/sqrt(D)."""
    r = torch.randn(shape, generator=gen)
    if len(shape) >= 2:  # matrices and latents [1, Q, D]: both scaled by 1/sqrt(last dim)
        return r.mul_(1.0 / math.sqrt(shape[-1]))
    is_norm = any(s in key for s in ("norm", "proj.3.", "1.0.weight"))
    if is_norm and key.endswith("weight"):
        return r.mul_(0.1).add_(1.0)
    return r.mul_(0.02)


def make_adapter_state_dict(variant: str, layer_widths: list[int], seed: int = 0) -> dict:
    """`{"image_proj": {...}, "ip_adapter": {...}}` for `variant`, deterministic in `seed`.

    `ip_adapter` holds `{2i+1}.to_k_ip.weight` / `to_v_ip.weight` [layer_widths[i], cross_dim]
    (layer_widths in diffusers' attn_processors order: down, up, mid; see tiny_unets).
    """
    info = VARIANT_INFO[variant]
    gen = torch.Generator().manual_seed(seed)
    image_proj = {k: _random(k, s, gen) for k, s in image_proj_shapes(variant).items()}
    ip_adapter = {}
    for i, w in enumerate(layer_widths):
        for kv in ("to_k_ip", "to_v_ip"):
            key = f"{2 * i + 1}.{kv}.weight"
            ip_adapter[key] = _random(key, (w, info["cross_dim"]), gen)
    if info.get("lora"):
        for key, shape in lora_shapes(layer_widths, info["cross_dim"]).items():
            ip_adapter[key] = _random(key, shape, gen)
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def save_adapter(state_dict: dict, path) -> Path:
    """`.bin`: torch.save of the nested dict; `.safetensors`: flattened `image_proj.<k>` /
    `ip_adapter.<k>` keys (the two released file layouts)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        flat = {f"{group}.{k}": v.contiguous() for group, sub in state_dict.items() for k, v in sub.items()}
        save_file(flat, str(path))
    else:
        torch.save(state_dict, path)
    return path
