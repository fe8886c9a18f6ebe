"""CLIP image encoders in the three layouts users have, and the architecture read off their shapes.

- ComfyUI / Hugging Face transformers (`CLIPVisionModelWithProjection`, e.g. the `model.safetensors`
  shipped next to the official adapters): `vision_model.*` and `visual_projection.weight`. This is
  ComfyUI's own layout.
- open_clip (`open_clip_pytorch_model.safetensors` / `.bin`): `visual.conv1.weight`,
  `visual.transformer.resblocks.N.attn.in_proj_weight`, `visual.proj`, ... (a whole CLIP with its
  text tower, or the visual tower alone without the `visual.` prefix).

`to_comfy_layout` converts any of them to the first; `vision_config` gives the ComfyUI config
dict for the weights, with the head count and activation of the known encoders taken from
open_clip's own model configs (widths ViT-H 1280, ViT-bigG 1664, ViT-L 1024).
"""
from __future__ import annotations

import re

import torch

HF_PATCH = "vision_model.embeddings.patch_embedding.weight"
_OPEN_CLIP_LAYER = re.compile(r"^(?P<prefix>(?:.*\.)?)transformer\.resblocks\.(?P<n>\d+)\.(?P<rest>.+)$")
# width -> open_clip model config holding its head width; ViT-L/14 is OpenAI's (QuickGELU)
_OPEN_CLIP_MODELS = {1280: ("ViT-H-14", "gelu"), 1664: ("ViT-bigG-14", "gelu"), 1024: ("ViT-L-14-336", "quick_gelu")}


class ClipFormatError(ValueError):
    pass


def layout_of(keys) -> tuple[str, str] | None:
    """("comfy", prefix) or ("open_clip", prefix) for a key set, or None if it is no CLIP image encoder."""
    for key in keys:
        if key.endswith(HF_PATCH):
            return "comfy", key[: -len(HF_PATCH)]
    for key in keys:
        if key.endswith("conv1.weight") and not key.endswith("_conv1.weight"):
            prefix = key[: -len("conv1.weight")]
            if f"{prefix}transformer.resblocks.0.attn.in_proj_weight" in keys:
                return "open_clip", prefix
    return None


_RESBLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_TOP = {"class_embedding": "vision_model.embeddings.class_embedding",
        "conv1.weight": HF_PATCH,
        "positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "ln_pre.weight": "vision_model.pre_layrnorm.weight", "ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "ln_post.weight": "vision_model.post_layernorm.weight", "ln_post.bias": "vision_model.post_layernorm.bias"}


def to_comfy_layout(state: dict, name: str = "file") -> dict:
    """The image-encoder tensors of `state` in ComfyUI's layout (text towers and the rest dropped)."""
    found = layout_of(state.keys())
    if found is None:
        raise ClipFormatError(f"{name} is not a CLIP image encoder: it has neither ComfyUI/transformers keys "
                              f"('{HF_PATCH}') nor open_clip keys ('visual.conv1.weight').")
    layout, prefix = found
    if layout == "comfy":
        return {k[len(prefix):]: v for k, v in state.items()
                if k.startswith(prefix) and k[len(prefix):].split(".")[0] in ("vision_model", "visual_projection")}
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest in _TOP:
            out[_TOP[rest]] = value
        elif rest == "proj":
            out["visual_projection.weight"] = value.t().contiguous()
        match = _OPEN_CLIP_LAYER.match(key)
        if match and match.group("prefix") == prefix:
            layer, part = f"vision_model.encoder.layers.{match.group('n')}.", match.group("rest")
            if part.startswith("attn.in_proj_"):
                kind = part.rsplit("_", 1)[1]  # weight / bias
                for piece, chunk in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                    out[f"{layer}self_attn.{piece}_proj.{kind}"] = chunk.contiguous()
            else:
                module, kind = part.rsplit(".", 1)
                if module in _RESBLOCK:
                    out[f"{layer}{_RESBLOCK[module]}.{kind}"] = value
    return out


def vision_config(shapes: dict) -> dict:
    """ComfyUI's CLIP vision config for weights in ComfyUI's layout (`shapes`: key -> shape)."""
    hidden, _, patch, _ = shapes[HF_PATCH]
    positions = shapes["vision_model.embeddings.position_embedding.weight"][0]
    grid = int(round((positions - 1) ** 0.5))
    layers = 1 + max(int(k.split(".")[3]) for k in shapes if k.startswith("vision_model.encoder.layers."))
    if hidden not in _OPEN_CLIP_MODELS:
        raise ClipFormatError(f"a CLIP image encoder of width {hidden} is none of ViT-H-14, ViT-bigG-14 or "
                              f"ViT-L-14-336 (widths 1280, 1664, 1024), the encoders IP-Adapters use.")
    model_name, activation = _OPEN_CLIP_MODELS[hidden]
    import open_clip
    vision = open_clip.get_model_config(model_name)["vision_cfg"]
    config = {"attention_dropout": 0.0, "dropout": 0.0, "hidden_act": activation, "hidden_size": hidden,
              "image_size": grid * patch, "initializer_factor": 1.0, "initializer_range": 0.02,
              "intermediate_size": shapes["vision_model.encoder.layers.0.mlp.fc1.weight"][0],
              "layer_norm_eps": 1e-5, "model_type": "clip_vision_model", "num_attention_heads":
              hidden // vision.get("head_width", 64), "num_channels": 3, "num_hidden_layers": layers,
              "patch_size": patch, "torch_dtype": "float32"}
    if "visual_projection.weight" in shapes:
        config["projection_dim"] = shapes["visual_projection.weight"][0]
    return config


def shapes_of(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}
