"""FaceID against diffusers 0.42.1 on tiny weights, fp32: every variant's projection, the whole patched
UNet, the LoRA inside the checkpoint applied through ComfyUI's patches against diffusers with the
same LoRA loaded through PEFT, Portrait's several faces in one attention, and Kolors FaceID-Plus
(read from its released nested layout) through the Kolors UNet's encoder_hid_proj."""
import pytest
import torch

import comfy.model_management

from comfyui_ipadapter_kit.ip_models.identify import identify_file
from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
from comfyui_ipadapter_kit.patching.encode import image_features, unconditional_features
from comfyui_ipadapter_kit.patching.faceid import Faces, apply_faceid, face_tokens
from support.checkpoints import (FACEID_VARIANTS, VARIANT_INFO, make_adapter_state_dict, save_adapter,
                                 save_released_kolors_faceid)
from support.diffusers_oracle import (diffusers_face_tokens, diffusers_projection,
                                      diffusers_unet_eps_faceid, load_adapter_into)
from support.one_layer import ours_and_diffusers
from support.patches import first_plan, relative_error
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


# --------------------------------------------------------------------------- one attention layer


# --------------------------------------------------------------------------- Portrait: several faces
@pytest.fixture(scope="module")
def three_faces():
    gen = torch.Generator().manual_seed(9)
    return Faces(torch.randn(3, 512, generator=gen) * 20, torch.rand(3, 56, 56, 3, generator=gen), (0, 1, 2))


def test_portrait_with_three_faces_in_one_attention_layer_matches_diffusers(face_adapters, three_faces, models):
    state, adapter = face_adapters["faceid-portrait_sd15"]
    plan = first_plan(apply_faceid(models["sd15"], adapter, three_faces, weight=0.7))
    assert plan.cond_tokens.shape == (1, 48, 768)  # 3 faces x 16 tokens, one softmax
    normed = torch.nn.functional.normalize(three_faces.embeddings, dim=-1)
    reference_tokens = torch.stack([diffusers_face_tokens(state["image_proj"], torch.zeros_like(normed)),
                                    diffusers_face_tokens(state["image_proj"], normed)])  # [2, 3 faces, 16, 768]
    ours, reference = ours_and_diffusers(models["sd15"], state, plan.cond_tokens, plan.uncond_tokens, adapter, reference_tokens)
    assert relative_error(ours, reference) < TOLERANCE


def test_portrait_with_two_faces_through_the_whole_unet_matches_diffusers(face_adapters, three_faces, models,
                                                                          diffusers_unets):
    state, adapter = face_adapters["faceid-portrait_sd15"]
    two = Faces(three_faces.embeddings[:2], three_faces.crops[:2], (0, 1))
    ours = run_ours(apply_faceid(models["sd15"], adapter, two, weight=0.9), "sd15")
    x, t, ctx, _, _ = unet_inputs("sd15", batch=2)
    normed = torch.nn.functional.normalize(two.embeddings, dim=-1)
    faces = torch.stack([normed, torch.zeros_like(normed)])  # [B (cond, uncond), 2 faces, 512]
    unet = load_adapter_into(diffusers_unets["sd15"], state, 0.9)
    with torch.no_grad():  # diffusers projects each face and joins their tokens: [B, 2, 16, 768]
        reference = unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs={"image_embeds": [faces]}).sample
    assert relative_error(ours, reference) < TOLERANCE


# --------------------------------------------------------------------------- Kolors FaceID-Plus
@pytest.fixture(scope="module")
def kolors(diffusers_unets, models, tmp_path_factory):
    """Kolors FaceID-Plus at its real width (4096-wide tokens, 6 of them; a 1-layer perceiver), written as
    released; the Kolors UNet's encoder_hid_proj (4096 -> 2048) on the SDXL-type model while in use."""
    state = make_adapter_state_dict("kolors_faceid-plus", cross_attention_layer_widths(diffusers_unets["sdxl"]), seed=90)
    path = save_released_kolors_faceid(state, tmp_path_factory.mktemp("kolors") / "ipa-faceid-plus.bin")
    unet = models["sdxl"].model.diffusion_model
    unet.encoder_hid_proj = torch.nn.Linear(4096, 2048)
    try:
        yield state, path, load_adapter(str(path))
    finally:
        del unet.encoder_hid_proj


def test_the_released_kolors_layout_with_nested_adapter_modules_loads_and_is_identified(kolors):
    state, path, adapter = kolors
    assert set(torch.load(path, map_location="meta", weights_only=True)) == {"image_proj", "adapter_modules"}
    assert (adapter.spec.variant, adapter.spec.projected_dim, adapter.spec.num_tokens) == ("kolors_faceid-plus", 4096, 6)
    key = adapter.spec.layer_keys[0]
    assert torch.equal(adapter.model.ip_adapter[str(key)].to_k_ip.weight.float(), state["ip_adapter"][f"{key}.to_k_ip.weight"])
    identified = identify_file(str(path))  # headers only
    assert identified.kind == "adapter" and identified.spec == adapter.spec


def diffusers_kolors_projection(image_proj: dict, monkeypatch):
    """diffusers' IPAdapterFaceIDPlusImageProjection at Kolors' sizes, loaded by diffusers' own converter (which
    otherwise assumes 4 tokens and 4 layers of FF ratio 4)."""
    import functools

    import diffusers.loaders.unet as loader
    info = VARIANT_INFO["kolors_faceid-plus"]
    monkeypatch.setattr(loader, "IPAdapterFaceIDPlusImageProjection", functools.partial(
        loader.IPAdapterFaceIDPlusImageProjection, num_tokens=info["tokens"], depth=info["depth"],
        ffn_ratio=info["ff_mult"]))
    return diffusers_projection(image_proj)


def test_kolors_faceid_tokens_and_one_attention_layer_match_diffusers(kolors, models, monkeypatch):
    from support.tiny_clip import make_clip_vision
    state, _, adapter = kolors
    vit_l = make_clip_vision("vit-l", seed=5)
    gen = torch.Generator().manual_seed(10)
    faces = Faces(torch.randn(1, 512, generator=gen) * 20, torch.rand(1, 56, 56, 3, generator=gen), (0,),
                  box_crops=torch.rand(1, 48, 48, 3, generator=gen), model_name="antelopev2")
    cond, uncond = face_tokens(models["sdxl"], adapter, faces, vit_l, shortcut_scale=1.3)
    # the official recipe: the raw embedding and the square box crop; uncond: zeros for both inputs
    clip_cond = image_features(vit_l, faces.box_crops, "penultimate")
    proj = diffusers_kolors_projection(state["image_proj"], monkeypatch)
    hid_proj = models["sdxl"].model.diffusion_model.encoder_hid_proj  # a plain linear before to_k_ip / to_v_ip
    with torch.no_grad():
        reference_tokens = []
        for embedding, clip in ((torch.zeros_like(faces.embeddings), torch.zeros_like(clip_cond)),
                                (faces.embeddings, clip_cond)):
            proj.clip_embeds, proj.shortcut, proj.shortcut_scale = clip.float()[:, None], True, 1.3
            reference_tokens.append(hid_proj(proj(embedding.float())))
    assert relative_error(cond, reference_tokens[1].reshape(1, -1, 2048)) < TOLERANCE
    assert relative_error(uncond, reference_tokens[0].reshape(1, -1, 2048)) < TOLERANCE
    ours, reference = ours_and_diffusers(models["sdxl"], state, cond, uncond, adapter, torch.stack(reference_tokens), heads=4)
    assert relative_error(ours, reference) < TOLERANCE
