"""The reference side of the numerical oracle, computed only with diffusers 0.42.1 classes.

Why: diffusers implements the IP-Adapter math independently (projection models, decoupled
cross-attention, checkpoint conversion); running its code on the same tiny checkpoint and the same
weights as the pack gives an answer key. Nothing here implements IP-Adapter math itself.

Layouts diffusers 0.42.1 uses (read off its source):
- `UNet2DConditionModel.forward` with `encoder_hid_dim_type == "ip_image_proj"` projects
  `added_cond_kwargs["image_embeds"]` with `MultiIPAdapterImageProjection`: a list with one
  tensor per adapter, `[B, n_images, clip]` for plain models or `[B, n_images, N, width]` for
  hidden-state models; it flattens to `[B*n_images, ...]`, projects, and returns
  `[B, n_images, T, cross]`. The processors then get
  `encoder_hidden_states = (text [B, L, cross], [ip_states [B, n_images, T, cross]])`.
- `IPAdapterAttnProcessor2_0` without masks runs `to_k_ip` on the 4-D tensor and views it as
  `[B, n_images*T, heads, dim]`: all images of one adapter share ONE softmax (same as a 3-D
  `[B, n_images*T, cross]` input). With a mask it attends per image (`ip_states[:, i]`), one
  softmax each, multiplies by the mask and by `scale[i]`, and sums.
- Masks: one `[1, n_images, H, W]` tensor per adapter (`IPAdapterMaskProcessor.preprocess`
  output reshaped), passed as `cross_attention_kwargs={"ip_adapter_masks": [mask]}`. Each layer
  resizes it with `IPAdapterMaskProcessor.downsample`: mask_h = ceil-ish(sqrt(HW / (W/H))),
  mask_w = HW // mask_h, **bicubic** interpolation, same mask for every batch entry (cond and
  uncond). Bicubic is the identity only when the mask already has the layer's grid size; compare
  exactly only then.
"""
from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

import torch

try:  # imported as part of a package (tests.support / support) or with support/ on sys.path
    from .tiny_unets import fill_deterministic, host
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tiny_unets import fill_deterministic, host  # noqa: E402


@contextlib.contextmanager
def _skip_random_init():
    """Skip nn.Linear / nn.LayerNorm random init while diffusers builds modules it then fills
    with `load_state_dict(strict=True)` (a real-shape SDXL resampler has 88M parameters; its
    kaiming init alone takes seconds on 2 cores). Results are unaffected: every weight is loaded."""
    saved = torch.nn.Linear.reset_parameters, torch.nn.LayerNorm.reset_parameters
    torch.nn.Linear.reset_parameters = torch.nn.LayerNorm.reset_parameters = lambda self: None
    try:
        yield
    finally:
        torch.nn.Linear.reset_parameters, torch.nn.LayerNorm.reset_parameters = saved


def diffusers_projection(image_proj_sd: dict) -> torch.nn.Module:
    """diffusers' projection module for an `image_proj` state dict (fp32, eval).

    `_convert_ip_adapter_image_proj_to_diffusers` is a UNet method but only touches `self` when
    low_cpu_mem_usage=True, so it is called unbound with `self=None`. Its assumptions: plain
    models have 4 tokens (it divides proj rows by 4); full-face takes the clip width from
    proj.0's *rows*; resamplers have dim_head 64 (heads = to_q rows / 64) and depth 4.
    """
    from diffusers import UNet2DConditionModel
    convert = UNet2DConditionModel._convert_ip_adapter_image_proj_to_diffusers
    with _skip_random_init():
        proj = convert(None, {k: v.float() for k, v in image_proj_sd.items()}, low_cpu_mem_usage=False)
    return proj.float().eval()


@torch.no_grad()
def diffusers_image_tokens(image_proj_sd: dict, features: torch.Tensor) -> torch.Tensor:
    """Image tokens [B, T, cross] from CLIP `features`: [B, clip] pooled image_embeds (plain)
    or [B, N, width] hidden states (resampler, full-face)."""
    return diffusers_projection(image_proj_sd)(features.float())


def make_cross_attention_pair(query_dim: int, context_dim: int, heads: int, dim_head: int, seed: int = 0):
    """(ComfyUI `CrossAttention`, diffusers `Attention`), fp32, with identical weights
    (to_q/to_k/to_v without bias, to_out.0 with bias, as in both UNets)."""
    host.import_comfy()
    from comfy.ldm.modules.attention import CrossAttention
    from diffusers.models.attention_processor import Attention
    comfy_attn = CrossAttention(query_dim, context_dim, heads=heads, dim_head=dim_head, dtype=torch.float32)
    fill_deterministic(comfy_attn, seed).eval()
    diff_attn = Attention(query_dim, cross_attention_dim=context_dim, heads=heads, dim_head=dim_head,
                          bias=False, out_bias=True).float().eval()
    diff_attn.load_state_dict(comfy_attn.state_dict(), strict=True)  # same key names
    return comfy_attn, diff_attn


@torch.no_grad()
def diffusers_ip_cross_attention(diff_attn, to_k_ip, to_v_ip, hidden_states, text_context, ip_tokens,
                                 scale, ip_mask=None) -> torch.Tensor:
    """Output (to_out included) of `IPAdapterAttnProcessor2_0` with one IP-Adapter.

    hidden_states [B, HW, query_dim] (tokens row-major over an H x W grid); text_context
    [B, L, cross]; to_k_ip / to_v_ip weights [inner, cross]; ip_tokens [B, T, cross] (one image,
    or several images' tokens already concatenated: one softmax) or [B, n_images, T, cross].
    scale: float, or a list of per-image floats (mask path only).
    ip_mask: None, or diffusers' mask format [1, n_images, h, w] (also accepted: [n_images, h, w]
    or [h, w]); requires 4-D ip_tokens (a 3-D one is taken as a single image).
    """
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    inner, cross = to_k_ip.shape
    proc = IPAdapterAttnProcessor2_0(hidden_size=inner, cross_attention_dim=cross,
                                     num_tokens=(ip_tokens.shape[-2],), scale=1.0)
    proc.load_state_dict({"to_k_ip.0.weight": to_k_ip.float(), "to_v_ip.0.weight": to_v_ip.float()})
    proc.scale = [scale]
    kwargs = {}
    if ip_mask is not None:
        if ip_tokens.ndim == 3:
            ip_tokens = ip_tokens.unsqueeze(1)
        while ip_mask.ndim < 4:
            ip_mask = ip_mask.unsqueeze(0)
        kwargs["ip_adapter_masks"] = [ip_mask.float()]
    return proc(diff_attn, hidden_states.float(), encoder_hidden_states=(text_context.float(), [ip_tokens.float()]),
                **kwargs)


def _image_embeds_arg(image_proj_sd: dict, features: torch.Tensor) -> list[torch.Tensor]:
    """Shape CLIP features the way `MultiIPAdapterImageProjection` wants them (see module doc):
    plain [B, clip] -> [B, 1, clip]; hidden [B, N, width] -> [B, 1, N, width]; inputs that
    already carry the n_images axis pass through."""
    single_rank = 2 if "proj.weight" in image_proj_sd else 3
    if features.ndim == single_rank:
        features = features.unsqueeze(1)
    return [features.float()]


def load_adapter_into(diff_unet, adapter_state_dict: dict, scale):
    """A deepcopy of `diff_unet` with the adapter loaded by diffusers and `scale` (float or
    per-image list) set on every IP processor. The input UNet stays untouched."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    unet = copy.deepcopy(diff_unet)
    sd = {g: {k: v.float() for k, v in sub.items()} for g, sub in adapter_state_dict.items()}
    from diffusers.utils import logging as dlog
    level = dlog.get_verbosity()
    dlog.set_verbosity_error()  # silence "modules that should be kept in float32: []" from .to()
    try:
        with _skip_random_init():
            unet._load_ip_adapter_weights([sd], low_cpu_mem_usage=False)
    finally:
        dlog.set_verbosity(level)
    n = 0
    for proc in unet.attn_processors.values():
        if isinstance(proc, IPAdapterAttnProcessor2_0):
            proc.scale = [scale]
            n += 1
    assert n == sum(k.endswith(".to_k_ip.weight") for k in adapter_state_dict["ip_adapter"]), \
        "IP processors vs checkpoint layers"
    return unet.eval()


@torch.no_grad()
def diffusers_unet_eps(diff_unet, adapter_state_dict, sample, timestep, text_context, image_features,
                       scale, added_cond_kwargs=None, ip_mask=None) -> torch.Tensor:
    """One diffusers UNet forward with the adapter loaded; returns `.sample`.

    image_features: per batch entry (cond and uncond rows alike), the CLIP output the projection
    eats: [B, clip] image_embeds for plain models, [B, N, width] penultimate hidden states for
    resampler / full-face, or with an extra n_images axis after B. diffusers projects them
    inside the UNet (`encoder_hid_proj`). ip_mask: optional [1, n_images, h, w] (module doc).
    """
    unet = load_adapter_into(diff_unet, adapter_state_dict, scale)
    added = dict(added_cond_kwargs or {})
    added["image_embeds"] = _image_embeds_arg(adapter_state_dict["image_proj"], image_features)
    xattn = {"ip_adapter_masks": [ip_mask.float()]} if ip_mask is not None else None
    if not torch.is_tensor(timestep):
        timestep = torch.tensor(timestep, dtype=torch.float32)
    return unet(sample.float(), timestep, encoder_hidden_states=text_context.float(),
                added_cond_kwargs=added, cross_attention_kwargs=xattn).sample


def load_adapters_with_scales(diff_unet, adapter_state_dicts: list, scale_config):
    """A deepcopy of `diff_unet` with several adapters loaded by diffusers, scales set by diffusers'
    own `set_ip_adapter_scale` (a float, an InstantStyle block dict, or a list of them, one per adapter)."""
    from types import SimpleNamespace

    from diffusers.loaders.ip_adapter import IPAdapterMixin
    unet = copy.deepcopy(diff_unet)
    sds = [{g: {k: v.float() for k, v in sub.items()} for g, sub in sd.items()} for sd in adapter_state_dicts]
    from diffusers.utils import logging as dlog
    level = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        with _skip_random_init():
            unet._load_ip_adapter_weights(sds, low_cpu_mem_usage=False)
    finally:
        dlog.set_verbosity(level)
    IPAdapterMixin.set_ip_adapter_scale(SimpleNamespace(unet=unet), scale_config)
    return unet.eval()


@torch.no_grad()
def diffusers_unet_eps_multi(diff_unet, adapter_state_dicts: list, sample, timestep, text_context,
                             image_features: list, scale_config, added_cond_kwargs=None, ip_masks=None):
    """`diffusers_unet_eps` for several adapters: one features tensor (and optional mask) per adapter."""
    unet = load_adapters_with_scales(diff_unet, adapter_state_dicts, scale_config)
    added = dict(added_cond_kwargs or {})
    added["image_embeds"] = [_image_embeds_arg(sd["image_proj"], f)[0]
                             for sd, f in zip(adapter_state_dicts, image_features)]
    xattn = {"ip_adapter_masks": [m.float() for m in ip_masks]} if ip_masks is not None else None
    if not torch.is_tensor(timestep):
        timestep = torch.tensor(timestep, dtype=torch.float32)
    return unet(sample.float(), timestep, encoder_hidden_states=text_context.float(),
                added_cond_kwargs=added, cross_attention_kwargs=xattn).sample


def _face_projection(diff_unet_or_module):
    layers = diff_unet_or_module.encoder_hid_proj.image_projection_layers
    return layers[0]


@torch.no_grad()
def diffusers_face_tokens(image_proj_sd: dict, faces: torch.Tensor, clip_hidden: torch.Tensor | None = None,
                          shortcut: bool = False, shortcut_scale: float = 1.0) -> torch.Tensor:
    """diffusers' FaceID projection of face embeddings [B, 512] (FaceID-Plus: with the crops' CLIP
    hidden states [B, tokens, width], set from outside as diffusers requires)."""
    proj = diffusers_projection(image_proj_sd)
    if clip_hidden is not None:
        proj.clip_embeds = clip_hidden.float()[:, None]
        proj.shortcut, proj.shortcut_scale = shortcut, shortcut_scale
    if "latents" in image_proj_sd:  # Portrait unnorm: a plus resampler over the raw embedding as one token
        return proj(faces.float()[:, None])
    return proj(faces.float())


def faceid_lora_for_peft(adapter_state_dict: dict, diff_unet) -> dict:
    """The checkpoint's own LoRA pairs in diffusers/PEFT names (processor i = i-th attention processor)."""
    names = [n[: -len(".processor")] for n in diff_unet.attn_processors]
    out = {}
    for i, name in enumerate(names):
        for source, target in (("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("to_out", "to_out.0")):
            down = adapter_state_dict["ip_adapter"].get(f"{i}.{source}_lora.down.weight")
            if down is not None:
                out[f"{name}.{target}.lora_A.weight"] = down.float()
                out[f"{name}.{target}.lora_B.weight"] = adapter_state_dict["ip_adapter"][f"{i}.{source}_lora.up.weight"].float()
    return out


@torch.no_grad()
def diffusers_unet_eps_faceid(diff_unet, adapter_state_dict, sample, timestep, text_context, faces: torch.Tensor,
                              scale, clip_hidden=None, shortcut=False, shortcut_scale=1.0, lora_strength=None,
                              added_cond_kwargs=None) -> torch.Tensor:
    """One diffusers UNet forward with a FaceID adapter (and, with lora_strength, its LoRA through PEFT).
    faces: [B, 512] per batch entry (cond and uncond rows); clip_hidden likewise [B, tokens, width]."""
    unet = load_adapter_into(diff_unet, adapter_state_dict, scale)
    if lora_strength is not None:
        unet.load_lora_adapter(faceid_lora_for_peft(adapter_state_dict, unet), prefix=None, adapter_name="faceid")
        unet.set_adapters(["faceid"], [float(lora_strength)])
    proj = _face_projection(unet)
    if clip_hidden is not None:
        proj.clip_embeds = clip_hidden.float()[:, None]
        proj.shortcut, proj.shortcut_scale = shortcut, shortcut_scale
    added = dict(added_cond_kwargs or {})
    one_token = "latents" in adapter_state_dict["image_proj"]  # Portrait unnorm: the embedding as one token
    added["image_embeds"] = [faces.float()[:, None, None] if one_token else faces.float()[:, None]]
    if not torch.is_tensor(timestep):
        timestep = torch.tensor(timestep, dtype=torch.float32)
    return unet(sample.float(), timestep, encoder_hidden_states=text_context.float(), added_cond_kwargs=added).sample
