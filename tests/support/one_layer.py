"""Our attention patch and diffusers' IP-Adapter processor on one cross-attention layer, same weights."""
import torch

from comfyui_ipadapter_kit.patching.cross_attention import IPAttentionPatch
from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
from comfyui_ipadapter_kit.patching.plan import AdapterPlan
from comfyui_ipadapter_kit.patching.weight_types import LayerRule
from support.diffusers_oracle import diffusers_ip_cross_attention, make_cross_attention_pair


def ours_and_diffusers(model, adapter_state, cond_tokens, uncond_tokens, adapter, reference_tokens, weight=0.7,
                       heads=8):
    """(ours, diffusers') outputs of the model's first cross-attention layer with the adapter at `weight`;
    reference_tokens: [2 (uncond, cond), n_images, T, cross] for diffusers."""
    layer = cross_attention_layers(model.model.diffusion_model)[0]
    comfy_attn, diff_attn = make_cross_attention_pair(layer.width, layer.context_dim, heads, layer.width // heads, seed=3)
    patch = IPAttentionPatch(layer, (AdapterPlan(adapter, cond_tokens, uncond_tokens, {layer.key: LayerRule(weight)}),))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6 * 6, layer.width, generator=gen)
    text = torch.randn(2, 7, layer.context_dim, generator=gen)
    options = {"n_heads": heads, "dim_head": layer.width // heads, "cond_or_uncond": [1, 0],
               "original_shape": [2, 4, 6, 6]}
    with torch.no_grad():
        ours = comfy_attn.to_out(patch(comfy_attn.to_q(x), comfy_attn.to_k(text), comfy_attn.to_v(text), options))
    kv = adapter_state["ip_adapter"]
    reference = diffusers_ip_cross_attention(diff_attn, kv[f"{layer.key}.to_k_ip.weight"],
                                             kv[f"{layer.key}.to_v_ip.weight"], x, text, reference_tokens, weight)
    return ours, reference
