"""FaceID against diffusers 0.42.1 on tiny weights, fp32: every variant's projection, the whole patched
UNet, and the LoRA inside the checkpoint applied through ComfyUI's patches against diffusers with the
same LoRA loaded through PEFT."""
import pytest
import torch

import comfy.model_management

from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
from comfyui_ipadapter_kit.patching.encode import image_features, unconditional_features
from comfyui_ipadapter_kit.patching.faceid import Faces, apply_faceid
from support.checkpoints import FACEID_VARIANTS, VARIANT_INFO, make_adapter_state_dict, save_adapter
from support.diffusers_oracle import diffusers_face_tokens, diffusers_unet_eps_faceid
from support.patches import relative_error
from support.tiny_unets import cross_attention_layer_widths, unet_inputs

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def face_adapters(diffusers_unets, tmp_path_factory):
    root = tmp_path_factory.mktemp("faceid")
    out = {}
    for i, variant in enumerate(FACEID_VARIANTS):
        family = VARIANT_INFO[variant]["family"]
        state = make_adapter_state_dict(variant, cross_attention_layer_widths(diffusers_unets[family]), seed=70 + i)
        path = save_adapter(state, root / f"ip-adapter-{variant}.bin")  # released as .bin
        out[variant] = (state, load_adapter(str(path)))
    return out


@pytest.fixture(scope="module")
def faces():
    gen = torch.Generator().manual_seed(8)
    return Faces(torch.randn(1, 512, generator=gen) * 20, torch.rand(1, 56, 56, 3, generator=gen), (0,))


def face_input(adapter, faces):
    e = faces.embeddings if adapter.spec.raw_face else torch.nn.functional.normalize(faces.embeddings, dim=-1)
    return torch.cat([e, torch.zeros_like(e)])  # cond, uncond rows


def clip_input(adapter, faces, clip):
    if adapter.spec.face != "plus":
        return None
    cond = image_features(clip, faces.crops, "penultimate")
    return torch.cat([cond, unconditional_features(clip, "penultimate", cond)])


def test_every_faceid_variant_is_detected_with_its_lora(face_adapters):
    for variant, (_, adapter) in face_adapters.items():
        assert adapter.spec.variant == variant
        assert bool(adapter.lora) == VARIANT_INFO[variant]["lora"] == adapter.spec.has_lora


@pytest.mark.parametrize("variant", FACEID_VARIANTS)
def test_face_tokens_match_diffusers(variant, face_adapters, faces, clip_vit_h):
    state, adapter = face_adapters[variant]
    e = face_input(adapter, faces)
    clip = clip_input(adapter, faces, clip_vit_h)
    for shortcut, scale in ((False, 1.0), (True, 1.7)) if adapter.spec.face == "plus" else ((None, 1.0),):
        ours = adapter.model.project_faces(e, clip, shortcut, scale)
        reference = diffusers_face_tokens(state["image_proj"], e, clip, bool(shortcut), scale)
        assert relative_error(ours, reference) < TOLERANCE, (shortcut, scale)


def run_ours(patched, family):
    x, t, ctx, y, added = unet_inputs(family, batch=2)
    options = dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1])
    comfy.model_management.load_models_gpu([patched])  # merges the LoRA patches, as sampling does
    try:
        with torch.no_grad():
            return patched.model.diffusion_model(x, t, context=ctx, y=y, transformer_options=options)
    finally:
        comfy.model_management.unload_all_models()


@pytest.mark.parametrize("variant, lora_strength", [
    ("faceid_sd15", 1.0), ("faceid_sd15", 0.6), ("faceid-plusv2_sd15", 1.0), ("faceid-plus_sd15", 0.8),
    ("faceid_sdxl", 1.0), ("faceid-plusv2_sdxl", 0.5), ("faceid-portrait_sd15", None),
    ("faceid-portrait_sdxl", None), ("faceid-portrait-unnorm_sdxl", None)])
def test_whole_unet_with_the_lora_inside_matches_diffusers_with_peft(variant, lora_strength, face_adapters, faces,
                                                                      models, diffusers_unets, clip_vit_h):
    family = VARIANT_INFO[variant]["family"]
    state, adapter = face_adapters[variant]
    patched = apply_faceid(models[family], adapter, faces, clip_vit_h, weight=0.9, weight_faceidv2=1.5,
                           lora_strength=lora_strength or 0.0)
    ours = run_ours(patched, family)
    x, t, ctx, y, added = unet_inputs(family, batch=2)
    reference = diffusers_unet_eps_faceid(diffusers_unets[family], state, x, t, ctx, face_input(adapter, faces), 0.9,
                                          clip_input(adapter, faces, clip_vit_h), adapter.spec.plus_v2, 1.5,
                                          lora_strength, added_cond_kwargs=added)
    assert relative_error(ours, reference) < TOLERANCE
    if lora_strength is not None:  # the LoRA really contributes
        without = diffusers_unet_eps_faceid(diffusers_unets[family], state, x, t, ctx, face_input(adapter, faces), 0.9,
                                            clip_input(adapter, faces, clip_vit_h), adapter.spec.plus_v2, 1.5, None,
                                            added_cond_kwargs=added)
        assert relative_error(reference, without) > 1e-3


def test_the_input_model_keeps_its_weights(face_adapters, faces, models, clip_vit_h):
    before = {k: v.clone() for k, v in models["sd15"].model.diffusion_model.state_dict().items()}
    patched = apply_faceid(models["sd15"], face_adapters["faceid_sd15"][1], faces, clip_vit_h, lora_strength=1.0)
    run_ours(patched, "sd15")
    after = models["sd15"].model.diffusion_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not models["sd15"].patches and patched.patches  # the LoRA lives in the clone's patches only
