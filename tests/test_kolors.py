"""Kolors-IP-Adapter-Plus (CLIP ViT-L/14-336 hidden states, resampler at 2048 with 12 heads) on an
SDXL-type UNet, checked against diffusers on the same weights; its real resampler, written as the
official `.bin`, read back and identified by its weights."""
import pytest
import torch

from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.encode import image_features, unconditional_features
from support.checkpoints import make_adapter_state_dict, save_adapter
from support.diffusers_oracle import diffusers_unet_eps
from support.patches import relative_error
from support.tiny_clip import make_clip_vision
from support.tiny_unets import cross_attention_layer_widths, unet_inputs


@pytest.fixture(scope="module")
def kolors(diffusers_unets, tmp_path_factory):
    state = make_adapter_state_dict("kolors_plus", cross_attention_layer_widths(diffusers_unets["sdxl"]), seed=60)
    state = {g: {k: v.half() for k, v in sub.items()} for g, sub in state.items()}  # as released: fp16
    path = save_adapter(state, tmp_path_factory.mktemp("kolors") / "ip_adapter_plus_general.bin")
    return state, load_adapter(str(path))


@pytest.fixture(scope="module")
def vit_l():
    return make_clip_vision("vit-l", seed=61)


def test_kolors_plus_is_recognised_with_the_encoder_it_needs(kolors):
    _, adapter = kolors
    spec = adapter.spec
    assert spec.variant == "kolors_plus" and spec.family == "sdxl" and spec.encoder.name == "ViT-L-14-336"
    assert (spec.resampler.dim, spec.resampler.heads, spec.resampler.embedding_dim) == (2048, 12, 1024)


def test_kolors_plus_through_a_whole_sdxl_type_unet_matches_diffusers(kolors, vit_l, models, diffusers_unets,
                                                                      reference_images):
    state, adapter = kolors
    patched = apply_adapter(models["sdxl"], adapter, vit_l, reference_images[:1], weight=0.8)
    x, t, ctx, y, added = unet_inputs("sdxl", batch=2)
    options = dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1])
    with torch.no_grad():
        ours = patched.model.diffusion_model(x, t, context=ctx, y=y, transformer_options=options)
    cond = image_features(vit_l, reference_images[:1], "penultimate")
    uncond = unconditional_features(vit_l, "penultimate", cond)
    reference = diffusers_unet_eps(diffusers_unets["sdxl"], state, x, t, ctx, torch.cat([cond, uncond]), 0.8,
                                   added_cond_kwargs=added)
    assert relative_error(ours, reference) < 1e-4


def test_kolors_plus_with_a_vit_h_encoder_says_which_to_load(kolors, clip_vit_h, models, reference_images):
    from comfyui_ipadapter_kit.patching.encode import EncoderMismatchError
    with pytest.raises(EncoderMismatchError, match="needs the CLIP ViT-L-14-336 .*clip-vit-large-patch14-336"):
        apply_adapter(models["sdxl"], kolors[1], clip_vit_h, reference_images[:1])


def test_kolors_plus_samples_through_the_hosts_ksampler(kolors, vit_l, models, reference_images):
    from sampling import ksample
    patched = apply_adapter(models["sdxl"], kolors[1], vit_l, reference_images[:1], weight=0.8)
    out, plain = ksample(patched, "sdxl"), ksample(models["sdxl"], "sdxl")
    assert torch.isfinite(out).all() and not torch.allclose(out, plain, atol=1e-3)
