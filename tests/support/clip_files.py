"""One tiny CLIP image encoder written in the three layouts users have, and the two libraries that
define those layouts as the answer key.

Why: the pack's loader converts open_clip and transformers files itself; the oracle is the
libraries' own models on the same weights: open_clip's `VisionTransformer` (the weights'
origin here, seeded) and transformers' `CLIPVisionModelWithProjection` (built from the file the
test writes in its layout). The HF file is made with transformers' own key names (its
`state_dict()`), the open_clip one with open_clip's, so no conversion code is shared with the pack.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .tiny_unets import fill_deterministic

# real widths, tiny depth and image size (as tests/support/tiny_clip.py)
KINDS = {"vit-h": dict(width=1280, embed=1024, head_width=80, quick_gelu=False),
         "vit-bigg": dict(width=1664, embed=1280, head_width=104, quick_gelu=False),
         "vit-l": dict(width=1024, embed=768, head_width=64, quick_gelu=True)}
LAYERS, IMAGE, PATCH, MLP = 2, 56, 14, 256


def open_clip_tower(kind: str, seed: int = 0):
    from open_clip.model import CLIPVisionCfg, _build_vision_tower
    k = KINDS[kind]
    cfg = CLIPVisionCfg(layers=LAYERS, width=k["width"], head_width=k["head_width"], patch_size=PATCH,
                        image_size=IMAGE, mlp_ratio=MLP / k["width"])
    tower = _build_vision_tower(k["embed"], cfg, quick_gelu=k["quick_gelu"]).float().eval()
    return fill_deterministic(tower, seed)


def hf_model(kind: str, tower):
    """transformers' CLIPVisionModelWithProjection holding the open_clip tower's weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    k = KINDS[kind]
    config = CLIPVisionConfig(hidden_size=k["width"], intermediate_size=MLP, projection_dim=k["embed"],
                              num_hidden_layers=LAYERS, num_attention_heads=k["width"] // k["head_width"],
                              image_size=IMAGE, patch_size=PATCH, hidden_act="quick_gelu" if k["quick_gelu"] else "gelu",
                              layer_norm_eps=1e-5)
    model = CLIPVisionModelWithProjection(config).float().eval()
    sd, t = model.state_dict(), tower.state_dict()
    v = "vision_model."
    new = {f"{v}embeddings.class_embedding": t["class_embedding"],
           f"{v}embeddings.patch_embedding.weight": t["conv1.weight"],
           f"{v}embeddings.position_embedding.weight": t["positional_embedding"],
           f"{v}pre_layrnorm.weight": t["ln_pre.weight"], f"{v}pre_layrnorm.bias": t["ln_pre.bias"],
           f"{v}post_layernorm.weight": t["ln_post.weight"], f"{v}post_layernorm.bias": t["ln_post.bias"],
           "visual_projection.weight": t["proj"].t()}
    for n in range(LAYERS):
        src, dst = f"transformer.resblocks.{n}.", f"{v}encoder.layers.{n}."
        q, k_, val = t[src + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = t[src + "attn.in_proj_bias"].chunk(3)
        new.update({dst + "self_attn.q_proj.weight": q, dst + "self_attn.k_proj.weight": k_,
                    dst + "self_attn.v_proj.weight": val, dst + "self_attn.q_proj.bias": qb,
                    dst + "self_attn.k_proj.bias": kb, dst + "self_attn.v_proj.bias": vb,
                    dst + "self_attn.out_proj.weight": t[src + "attn.out_proj.weight"],
                    dst + "self_attn.out_proj.bias": t[src + "attn.out_proj.bias"],
                    dst + "layer_norm1.weight": t[src + "ln_1.weight"], dst + "layer_norm1.bias": t[src + "ln_1.bias"],
                    dst + "layer_norm2.weight": t[src + "ln_2.weight"], dst + "layer_norm2.bias": t[src + "ln_2.bias"],
                    dst + "mlp.fc1.weight": t[src + "mlp.c_fc.weight"], dst + "mlp.fc1.bias": t[src + "mlp.c_fc.bias"],
                    dst + "mlp.fc2.weight": t[src + "mlp.c_proj.weight"], dst + "mlp.fc2.bias": t[src + "mlp.c_proj.bias"]})
    for key in sd:
        if key not in new:
            new[key] = sd[key]  # buffers such as position_ids
    model.load_state_dict(new, strict=True)
    return model


TEXT_LAYERS = LAYERS + 1  # one more than the image tower: its blocks must not count as image layers


def text_tower_state(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """open_clip's own text tower key set (token_embedding, positional_embedding, transformer.resblocks.*,
    ln_final, text_projection), tiny, as it sits at the top level of a whole CLIP's state dict."""
    from open_clip.model import CLIPTextCfg, _build_text_tower
    cfg = CLIPTextCfg(context_length=8, vocab_size=64, width=64, heads=4, layers=TEXT_LAYERS)
    text = fill_deterministic(_build_text_tower(KINDS[kind]["embed"], cfg).float(), seed + 1)
    return {k: v.contiguous() for k, v in text.state_dict().items()}


def write_three_layouts(kind: str, folder: Path, seed: int = 0) -> dict[str, Path]:
    """{"open_clip.safetensors", "open_clip.bin", "transformers"} -> file, all with the same weights."""
    from safetensors.torch import save_file
    tower = open_clip_tower(kind, seed)
    folder.mkdir(parents=True, exist_ok=True)
    whole_clip = {f"visual.{k}": v.contiguous() for k, v in tower.state_dict().items()}
    whole_clip.update(text_tower_state(kind, seed))  # real open_clip files are whole CLIPs: the text tower rides along
    whole_clip["logit_scale"] = torch.tensor(4.6)
    paths = {"open_clip.safetensors": folder / "open_clip_pytorch_model.safetensors",
             "open_clip.bin": folder / "open_clip_pytorch_model.bin",
             "transformers": folder / "image_encoder" / "model.safetensors"}
    save_file(whole_clip, str(paths["open_clip.safetensors"]))
    torch.save(whole_clip, paths["open_clip.bin"])
    paths["transformers"].parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in hf_model(kind, tower).state_dict().items()}, str(paths["transformers"]))
    return paths


_OPEN_CLIP_TO_HF_BLOCK = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                          "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


def open_clip_layout(comfy: dict) -> dict[str, torch.Tensor]:
    """ComfyUI-layout image-encoder weights (as core's 'Load CLIP Vision' reads them) under open_clip's key
    names, as open_clip_pytorch_model.safetensors holds them (`visual.*`, q/k/v packed into in_proj)."""
    v = "vision_model."
    out = {"visual.class_embedding": comfy[f"{v}embeddings.class_embedding"],
           "visual.conv1.weight": comfy[f"{v}embeddings.patch_embedding.weight"],
           "visual.positional_embedding": comfy[f"{v}embeddings.position_embedding.weight"],
           "visual.ln_pre.weight": comfy[f"{v}pre_layrnorm.weight"], "visual.ln_pre.bias": comfy[f"{v}pre_layrnorm.bias"],
           "visual.ln_post.weight": comfy[f"{v}post_layernorm.weight"],
           "visual.ln_post.bias": comfy[f"{v}post_layernorm.bias"],
           "visual.proj": comfy["visual_projection.weight"].t()}
    layers = {int(k.split(".")[3]) for k in comfy if k.startswith(f"{v}encoder.layers.")}
    for n in sorted(layers):
        src, dst = f"{v}encoder.layers.{n}.", f"visual.transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat([comfy[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"])
            for ours, theirs in _OPEN_CLIP_TO_HF_BLOCK.items():
                out[f"{dst}{ours}.{kind}"] = comfy[f"{src}{theirs}.{kind}"]
    return {k: t.contiguous() for k, t in out.items()}


@torch.no_grad()
def open_clip_outputs(tower, pixels: torch.Tensor):
    """(projected pooled embedding, penultimate hidden states) from open_clip's own forward."""
    captured = {}
    handle = tower.transformer.resblocks[-2].register_forward_hook(lambda m, i, o: captured.setdefault("h", o))
    try:
        pooled = tower(pixels)
    finally:
        handle.remove()
    return pooled, captured["h"]


@torch.no_grad()
def transformers_outputs(model, pixels: torch.Tensor):
    out = model(pixel_values=pixels, output_hidden_states=True)
    return out.image_embeds, out.hidden_states[-2]
