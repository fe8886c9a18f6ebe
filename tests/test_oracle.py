"""The numerical oracle: our projections, attention patch and whole patched UNet against diffusers
0.42.1 on the same tiny checkpoints and weights, in fp32."""
import pytest
import torch

from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.plan import AdapterPlan
from comfyui_ipadapter_kit.patching.weight_types import LayerRule
from comfyui_ipadapter_kit.patching.cross_attention import IPAttentionPatch
from comfyui_ipadapter_kit.patching.encode import image_features, unconditional_features
from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
from support.checkpoints import VARIANT_INFO, VARIANTS, make_adapter_state_dict, save_adapter
from support.diffusers_oracle import (diffusers_image_tokens, diffusers_ip_cross_attention, diffusers_unet_eps,
                                      make_cross_attention_pair)
from support.tiny_unets import cross_attention_layer_widths, unet_inputs
from support.one_layer import ours_and_diffusers
from support.patches import relative_error



def tolerance(variant):
    return 1e-4 if VARIANT_INFO[variant]["projection"] == "resampler" else 1e-5




@pytest.fixture(scope="module")
def encoders(clip_vit_h, clip_vit_bigg):
    return {"vit-h": clip_vit_h, "vit-bigg": clip_vit_bigg}


@pytest.fixture(scope="module")
def adapters(models, diffusers_unets, tmp_path_factory):
    """variant -> (state dict, LoadedAdapter read back from a real file), widths taken from diffusers."""
    root = tmp_path_factory.mktemp("oracle")
    out = {}
    for i, variant in enumerate(VARIANTS):
        family = VARIANT_INFO[variant]["family"]
        state = make_adapter_state_dict(variant, cross_attention_layer_widths(diffusers_unets[family]), seed=10 + i)
        path = save_adapter(state, root / f"ip-adapter_{variant}{'.bin' if i % 2 else '.safetensors'}")
        out[variant] = (state, load_adapter(str(path)))
    return out


def features_for(variant, encoders, images):
    info = VARIANT_INFO[variant]
    clip = encoders[info["encoder"]]
    cond = image_features(clip, images, info["clip_input"])
    uncond = unconditional_features(clip, info["clip_input"], cond)
    return cond, uncond


@pytest.mark.parametrize("variant", VARIANTS)
def test_projected_tokens_match_diffusers(variant, adapters, encoders, reference_images):
    state, adapter = adapters[variant]
    cond, _ = features_for(variant, encoders, reference_images[:2])
    ours = adapter.model.project(cond)
    reference = diffusers_image_tokens(state["image_proj"], cond)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < tolerance(variant)


@pytest.mark.parametrize("n_images", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
def test_one_cross_attention_layer_matches_diffusers(variant, n_images, adapters, encoders, models,
                                                     reference_images):
    state, adapter = adapters[variant]
    layer = cross_attention_layers(models[VARIANT_INFO[variant]["family"]].model.diffusion_model)[0]
    heads = 8 if VARIANT_INFO[variant]["family"] == "sd15" else layer.width // 64
    cond, uncond = features_for(variant, encoders, reference_images[:n_images])
    uncond = uncond.expand_as(cond)
    tokens = {kind: adapter.model.project(f).reshape(1, -1, layer.context_dim)
              for kind, f in (("cond", cond), ("uncond", uncond))}
    ref_tokens = torch.cat([diffusers_image_tokens(state["image_proj"], uncond)[None],
                            diffusers_image_tokens(state["image_proj"], cond)[None]])  # [2, n, T, cross]
    ours, reference = ours_and_diffusers(models[VARIANT_INFO[variant]["family"]], state, tokens["cond"],
                                         tokens["uncond"], adapter, ref_tokens, heads=heads)
    assert relative_error(ours, reference) < tolerance(variant)


def test_masked_cross_attention_matches_diffusers(adapters, encoders, models, reference_images):
    state, adapter = adapters["sd15"]
    layer = cross_attention_layers(models["sd15"].model.diffusion_model)[0]
    comfy_attn, diff_attn = make_cross_attention_pair(layer.width, layer.context_dim, 8, layer.width // 8, seed=5)
    cond, uncond = features_for("sd15", encoders, reference_images[:1])
    mask = torch.zeros(1, 6, 10)
    mask[:, 1:5, 2:7] = 1.0  # already on the layer grid: diffusers' bicubic and our bilinear are exact
    plan = AdapterPlan(adapter, adapter.model.project(cond), adapter.model.project(uncond), {layer.key: LayerRule(1.3)},
                       mask=mask)
    patch = IPAttentionPatch(layer, (plan,))
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 60, layer.width, generator=gen)
    text = torch.randn(2, 7, layer.context_dim, generator=gen)
    options = {"n_heads": 8, "dim_head": layer.width // 8, "cond_or_uncond": [0, 1], "original_shape": [2, 4, 6, 10]}
    with torch.no_grad():
        ours = comfy_attn.to_out(patch(comfy_attn.to_q(x), comfy_attn.to_k(text), comfy_attn.to_v(text), options))
    ref_tokens = torch.stack([diffusers_image_tokens(state["image_proj"], cond),
                              diffusers_image_tokens(state["image_proj"], uncond)])  # [2, 1, T, cross]
    kv = state["ip_adapter"]
    reference = diffusers_ip_cross_attention(diff_attn, kv[f"{layer.key}.to_k_ip.weight"],
                                             kv[f"{layer.key}.to_v_ip.weight"], x, text, ref_tokens, 1.3,
                                             ip_mask=mask[None])
    assert relative_error(ours, reference) < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_whole_patched_unet_matches_diffusers(variant, adapters, encoders, models, diffusers_unets, reference_images):
    family = VARIANT_INFO[variant]["family"]
    state, adapter = adapters[variant]
    clip = encoders[VARIANT_INFO[variant]["encoder"]]
    patched = apply_adapter(models[family], adapter, clip, reference_images[:1], weight=0.8)

    x, t, ctx, y, added = unet_inputs(family, batch=2)
    options = dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1])
    with torch.no_grad():
        ours = patched.model.diffusion_model(x, t, context=ctx, y=y, transformer_options=options)

    cond, uncond = features_for(variant, encoders, reference_images[:1])
    reference = diffusers_unet_eps(diffusers_unets[family], state, x, t, ctx, torch.cat([cond, uncond]), 0.8,
                                   added_cond_kwargs=added)
    assert relative_error(ours, reference) < 1e-4
    plain = diffusers_unet_eps(diffusers_unets[family], state, x, t, ctx, torch.cat([cond, uncond]), 0.0,
                               added_cond_kwargs=added)
    assert relative_error(ours, plain) > 1e-3  # the adapter really contributes
