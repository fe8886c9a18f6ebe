"""Tiny SD1.5-type and SDXL-type UNets, built twice: once by ComfyUI, once by diffusers.

Why: the numerical oracle runs the pack's ComfyUI patch against diffusers' IP-Adapter code on the
*same* network. ComfyUI's detection only accepts real widths, so the ComfyUI model is built from an
explicit `unet_config` (skipping detection) and the diffusers twin gets the same weights through
ComfyUI's own key map (`comfy.utils.unet_to_diffusers`). Both are small enough for CPU tests.

ComfyUI creates layers with `torch.empty`, so every parameter is filled from a seeded generator.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import host  # noqa: E402

_COMMON = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
    "use_spatial_transformer": True, "legacy": False,
    "use_temporal_attention": False, "use_temporal_resblock": False,
}

UNET_CONFIGS: dict[str, dict] = {
    # SD1.5 style: fixed 8 heads (SD15.unet_extra_config forces num_heads 8 / num_head_channels -1),
    # conv proj_in/out. ComfyUI cross layers: input 1 (32 wide), input 3 (64), output 0, 1 (64),
    # output 2, 3 (32), middle 0 (64): 7 layers, ip_adapter keys 1..13.
    "sd15": {**_COMMON,
             "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": [1, 1],
             "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1],
             "transformer_depth_middle": 1, "context_dim": 768, "num_heads": 8, "num_head_channels": -1,
             "use_linear_in_transformer": False, "adm_in_channels": None},
    # SDXL style: head width 64, linear proj_in/out, adm 2816, a first level without attention
    # (like SDXL), depth 2 on the last level and in the middle (block_index 1 exists).
    # ComfyUI cross layers: input 3 (depth 1, 64 wide), input 5 (depth 2, 128), output 0, 1 (d2, 128),
    # output 2, 3 (d1, 64), middle 0 (d2, 128): 11 layers, ip_adapter keys 1..21.
    "sdxl": {**_COMMON,
             "model_channels": 64, "channel_mult": [1, 1, 2], "num_res_blocks": [1, 1, 1],
             "transformer_depth": [0, 1, 2], "transformer_depth_output": [0, 0, 1, 1, 2, 2],
             "transformer_depth_middle": 2, "context_dim": 2048, "num_heads": -1, "num_head_channels": 64,
             "use_linear_in_transformer": True, "adm_in_channels": 2816, "num_classes": "sequential"},
    # SDXL's block ids in miniature (input 4, 5, 7, 8; output 0..5; middle: 11 layers, t 0..10, like
    # SDXL), so the style/composition weight types find their blocks. Not used by the oracle.
    "sdxl_layout": {**_COMMON,
                    "model_channels": 64, "channel_mult": [1, 1, 2], "num_res_blocks": [2, 2, 2],
                    "transformer_depth": [0, 0, 1, 1, 1, 1], "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
                    "transformer_depth_middle": 1, "context_dim": 2048, "num_heads": -1, "num_head_channels": 64,
                    "use_linear_in_transformer": True, "adm_in_channels": 2816, "num_classes": "sequential"},
}
BASE_FAMILY = {"sd15": "sd15", "sdxl": "sdxl", "sdxl_layout": "sdxl"}


def fill_deterministic(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter and buffer of `module` with seeded values, in named order.

    Matrices / conv kernels: randn / sqrt(fan_in) (keeps activations O(1) through the net, so
    attention logits are not vanishingly small); 1-D "weight" (norm scales): 1 + 0.1 randn;
    other 1-D tensors (biases, embeddings): 0.05 randn.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=gen, dtype=torch.float32)
            if t.ndim >= 2:
                r = r / math.sqrt(max(1, t[0].numel()))
            elif name.endswith("weight"):
                r = 1.0 + 0.1 * r
            else:
                r = 0.05 * r
            t.copy_(r.to(t.dtype))
    return module


def make_comfy_unet(family: str, seed: int = 0):
    """A ComfyUI ModelPatcher (CPU, fp32) around a tiny UNet of `family` (a key of UNET_CONFIGS)."""
    host.import_comfy()
    import comfy.model_patcher
    import comfy.supported_models
    cls = {"sd15": comfy.supported_models.SD15, "sdxl": comfy.supported_models.SDXL}[BASE_FAMILY[family]]
    model_config = cls(UNET_CONFIGS[family])
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    fill_deterministic(model.diffusion_model, seed)  # model_sampling buffers are computed: keep them
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def diffusers_config(family: str) -> dict:
    """UNet2DConditionModel kwargs equivalent to UNET_CONFIGS[family].

    diffusers' `attention_head_dim` is really the number of heads (legacy naming); the up blocks'
    depths are the reverse of the down blocks' and the mid block takes the last down depth.
    """
    c = UNET_CONFIGS[family]
    chans = tuple(c["model_channels"] * m for m in c["channel_mult"])
    assert len(set(c["num_res_blocks"])) == 1
    depth = tuple(c["transformer_depth"])  # one res block per level: one entry per level
    assert c["transformer_depth_middle"] == depth[-1] and len(depth) == len(chans)
    down = tuple("CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depth)
    up = tuple("CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(depth))
    heads = (c["num_heads"] if c["num_heads"] > 0
             else tuple(ch // c["num_head_channels"] for ch in chans))
    cfg = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=chans,
               layers_per_block=c["num_res_blocks"][0], down_block_types=down, up_block_types=up,
               transformer_layers_per_block=tuple(max(d, 1) for d in depth),
               cross_attention_dim=c["context_dim"], attention_head_dim=heads,
               use_linear_projection=c["use_linear_in_transformer"], norm_num_groups=32)
    if c["adm_in_channels"]:
        cfg.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                   projection_class_embeddings_input_dim=c["adm_in_channels"])
    return cfg


def make_diffusers_unet(comfy_patcher, family: str):
    """The diffusers twin (fp32, eval) of a `make_comfy_unet` model, with the same weights."""
    import comfy.utils
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel(**diffusers_config(family)).float().eval()
    comfy_sd = comfy_patcher.model.diffusion_model.state_dict()
    key_map = comfy.utils.unet_to_diffusers(UNET_CONFIGS[family])  # diffusers key -> comfy key
    new_sd, missing = {}, []
    for name, t in unet.state_dict().items():
        src = key_map.get(name)
        if src is None or src not in comfy_sd:
            missing.append(name)
            continue
        assert comfy_sd[src].shape == t.shape, (name, src, comfy_sd[src].shape, t.shape)
        new_sd[name] = comfy_sd[src].float()
    assert not missing, f"diffusers keys without a ComfyUI value: {missing[:8]}"
    unet.load_state_dict(new_sd, strict=True)
    return unet


def sdxl_added_cond(batch: int, seed: int = 0):
    """Same SDXL conditioning in both forms: (`y` [B, 2816] for ComfyUI, `added_cond_kwargs`).

    diffusers' "text_time" embedding concatenates text_embeds [B,1280] with the 256-d sinusoid
    (cos first) of each of the 6 time ids; ComfyUI's UNet takes that vector as `y`, so it is
    built here with ComfyUI's own `Timestep(256)`, as `model_base.SDXL.encode_adm` does.
    """
    host.import_comfy()
    from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep
    gen = torch.Generator().manual_seed(seed)
    text_embeds = torch.randn(batch, 1280, generator=gen)
    time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]).repeat(batch, 1)
    time_ids = time_ids + torch.randint(0, 8, (batch, 6), generator=gen).float()
    y = torch.cat([text_embeds, Timestep(256)(time_ids.flatten()).reshape(batch, -1)], dim=1)
    return y, {"text_embeds": text_embeds, "time_ids": time_ids}


def cross_attention_layer_widths(diffusers_unet) -> list[int]:
    """Hidden width of each cross-attention layer in `attn_processors` order (down, up, mid),
    i.e. the widths for ip_adapter keys 1, 3, 5, ..."""
    widths = []
    for name in diffusers_unet.attn_processors:
        if name.endswith("attn2.processor"):
            attn = diffusers_unet.get_submodule(name[: -len(".processor")])
            widths.append(attn.to_q.in_features)
    return widths


def unet_inputs(family: str, batch: int = 2, size: int = 8, seed: int = 0):
    """(x, timesteps, context, y, added_cond_kwargs) for one forward of either UNet."""
    gen = torch.Generator().manual_seed(seed + 1)
    ctx_dim = UNET_CONFIGS[family]["context_dim"]
    x = torch.randn(batch, 4, size, size, generator=gen)
    t = torch.linspace(999.0, 1.0, batch)
    ctx = torch.randn(batch, 7, ctx_dim, generator=gen)
    y = added = None
    if family == "sdxl":
        y, added = sdxl_added_cond(batch, seed)
    return x, t, ctx, y, added


def assert_unets_agree(family: str, seed: int = 0, rtol: float = 1e-5) -> float:
    """No adapter: ComfyUI's and diffusers' UNets give the same eps. Returns the relative error."""
    patcher = make_comfy_unet(family, seed)
    dunet = make_diffusers_unet(patcher, family)
    x, t, ctx, y, added = unet_inputs(family, seed=seed)
    with torch.no_grad():
        a = patcher.model.diffusion_model(x, t, context=ctx, y=y)
        b = dunet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
    assert torch.isfinite(a).all() and a.std() > 1e-3
    rel = ((a - b).norm() / b.norm()).item()
    assert rel < rtol, f"{family}: relative error {rel:.3g}"
    return rel
