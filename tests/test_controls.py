"""Each control's effect in the real host: what the plan holds and what the patch computes from it."""
import pytest
import torch

import comfy.ldm.modules.attention as host_attention
import comfy.samplers
from comfy_extras.nodes_custom_sampler import Guider_DualCFG
from comfy_extras.nodes_perpneg import Guider_PerpNeg

from comfyui_ipadapter_kit.ip_models.combine import combine_embeds
from comfyui_ipadapter_kit.ip_models.scaling import scale_kv
from comfyui_ipadapter_kit.patching.apply import apply_adapter, encode
from comfyui_ipadapter_kit.patching.cross_attention import IPAttentionPatch
from sampling import conditioning, guided_sample, ksample
from support.patches import attn2_patches, count_attention_calls, first_plan, record_layer_inputs


@pytest.fixture(scope="module")
def xl_adapter(sdxl_layout_model, make_adapter):
    return make_adapter(sdxl_layout_model, "sdxl_vit-h")


@pytest.fixture(scope="module")
def sd15_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15")



# Each guider hands the host's calc_cond_batch a list of conditionings; the host numbers each batch
# chunk by its place in that list (`cond_or_uncond`). Where the positive one is, and how many chunks:
POSITIVE_COND = {"cfg": (0, 2),        # [positive, negative]
                 "dual_cfg": (2, 3),   # [negative, middle, positive]: positive last
                 "perp_neg": (0, 3)}   # [positive, negative, empty]


def make_guider(kind, model, family):
    pos, neg, mid = conditioning(family, 1), conditioning(family, 2), conditioning(family, 3)
    if kind == "cfg":
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(pos, neg)
        guider.set_cfg(4.0)
    elif kind == "dual_cfg":
        guider = Guider_DualCFG(model)
        guider.set_conds(pos, mid, neg)
        guider.set_cfg(4.0, 2.0)
    else:
        guider = Guider_PerpNeg(model)
        guider.set_conds(pos, neg, mid)
        guider.set_cfg(4.0, 1.0)
    return guider


# --------------------------------------------------------------------------- weight types in the host
def test_layers_outside_the_weight_type_make_no_attention_call(sdxl_layout_model, xl_adapter, clip_vit_h,
                                                               reference_images, monkeypatch):
    calls = count_attention_calls(monkeypatch)
    ksample(sdxl_layout_model, "sdxl", steps=1)
    baseline = len(calls)
    linear = apply_adapter(sdxl_layout_model, xl_adapter, clip_vit_h, reference_images[:1])
    style = apply_adapter(sdxl_layout_model, xl_adapter, clip_vit_h, reference_images[:1], weight_type="style transfer")
    assert set(attn2_patches(style)) == {("output", 1, 0)}  # only the style layer is patched at all
    calls.clear()
    ksample(linear, "sdxl", steps=1)
    linear_calls = len(calls) - baseline
    calls.clear()
    ksample(style, "sdxl", steps=1)
    assert len(calls) - baseline == linear_calls // 11  # one extra call per step on one of 11 layers


def test_a_custom_zero_weight_layer_is_left_unpatched(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], layer_weights="0:1, 1:0")
    assert set(attn2_patches(patched)) == {("input", 1, 0)}


def test_weight_zero_through_the_weight_type_costs_nothing(sd15_model, sd15_adapter, clip_vit_h, reference_images,
                                                           monkeypatch):
    encoded = []
    monkeypatch.setattr(clip_vit_h, "encode_image", lambda *a, **k: encoded.append(1))
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], weight=0.0,
                            weight_type="ease in")
    assert attn2_patches(patched) == {} and not encoded


# --------------------------------------------------------------------------- precise swaps
@pytest.mark.parametrize("weight_type, boost, swapped_weights",
                         [("style transfer precise", {"style_boost": 0.7}, {0.7}),
                          ("composition precise", {"composition_boost": 0.7}, {0.7, 0.07})])
@pytest.mark.parametrize("guider_kind", ["cfg", "dual_cfg", "perp_neg"])
def test_precise_swaps_follow_the_positive_chunk_under_any_guider(guider_kind, weight_type, boost, swapped_weights,
                                                                  sdxl_layout_model, xl_adapter, clip_vit_h,
                                                                  reference_images, monkeypatch):
    patched = apply_adapter(sdxl_layout_model, xl_adapter, clip_vit_h, reference_images[:1], weight=0.9,
                            weight_type=weight_type, **boost)
    plan = first_plan(patched)
    swapped = {k for k, r in plan.layers.items() if r.swap}
    assert swapped and swapped != set(plan.layers)
    assert {round(r.weight, 6) for r in plan.layers.values() if r.swap} == swapped_weights
    seen = record_layer_inputs(monkeypatch)
    guided_sample(make_guider(guider_kind, patched, "sdxl"), patched, steps=1)
    assert {call["key"] for call in seen} == set(plan.layers)
    positive_cond, chunks = POSITIVE_COND[guider_kind]
    for call in seen:
        # the real positive chunk: where the host put the guider's positive conditioning
        assert len(call["cond_or_uncond"]) == chunks  # every conditioning batched in one call
        at = call["cond_or_uncond"].index(positive_cond)
        assert call["positive"] == tuple(i == at for i in range(chunks))
        k_cond, k_uncond = xl_adapter.model.image_kv(call["key"], torch.cat((plan.cond_tokens, plan.uncond_tokens)))[0]
        k, _, factor = call["out"]
        for i, chunk in enumerate(k.chunk(chunks)):
            if call["rule"].swap:  # nothing on the positive chunk, the image on every other one
                expected = torch.zeros_like(k_cond) if i == at else k_cond
            else:  # the image on the positive chunk, the unconditional tokens elsewhere
                expected = k_cond if i == at else k_uncond
            assert torch.allclose(chunk[0], expected, atol=1e-6), (call["key"], i, at)
        assert factor == call["rule"].weight  # V only: the layer's weight (the boost where swapped)


def test_the_swapped_side_gets_the_image_tokens(sdxl_layout_model, xl_adapter, clip_vit_h, reference_images):
    precise = first_plan(apply_adapter(sdxl_layout_model, xl_adapter, clip_vit_h, reference_images[:1],
                                     weight_type="composition precise", composition_boost=1.0))
    key = next(k for k, r in precise.layers.items() if r.swap)
    k, v, _ = precise.layer_inputs(key, precise.layers[key], (False, True), 1, None, torch.device("cpu"), torch.float32)
    k_cond, _ = xl_adapter.model.image_kv(key, precise.cond_tokens)
    assert torch.equal(k[0], k_cond[0]) and (k[1] == 0).all()


# --------------------------------------------------------------------------- combining images
def test_combine_methods_match_their_formulas():
    e = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    assert torch.equal(combine_embeds(e, "concat"), e)
    assert torch.equal(combine_embeds(e, "add"), torch.tensor([[4.0, 6.0]]))
    assert torch.equal(combine_embeds(e, "subtract"), torch.tensor([[2.5, 3.0]]))
    assert torch.allclose(combine_embeds(e, "average"), torch.tensor([[4 / 3, 2.0]]))
    # each embedding divided by its own norm (5, 1, 2), then averaged; not a norm across the batch
    assert torch.allclose(combine_embeds(e, "norm average"), torch.tensor([[(0.6 + 1.0) / 3, (0.8 + 1.0) / 3]]))
    assert torch.equal(combine_embeds(e, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.equal(combine_embeds(e, "min"), torch.tensor([[0.0, 0.0]]))
    assert torch.equal(combine_embeds(e[:1], "subtract"), e[:1])  # one image: nothing to subtract


def test_norm_average_normalises_hidden_state_embeddings_one_by_one():
    e = torch.randn(2, 5, 3)
    expected = (e[0] / e[0].norm() + e[1] / e[1].norm()) / 2
    assert torch.allclose(combine_embeds(e, "norm average")[0], expected)
    assert torch.equal(combine_embeds(torch.zeros(2, 4), "norm average"), torch.zeros(1, 4))


@pytest.mark.parametrize("method", ["average", "norm average", "max"])
def test_combined_images_and_their_negatives_follow_the_same_rule(method, sd15_model, sd15_adapter, clip_vit_h,
                                                                  reference_images):
    negatives = reference_images.flip(1)
    plan = first_plan(apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images, combine_embeds=method,
                                  image_negative=negatives))
    cond, uncond = encode(sd15_adapter, clip_vit_h, reference_images, negatives, "concat")
    assert plan.cond_tokens.shape == plan.uncond_tokens.shape == (1, 4, 768)  # one image's tokens
    assert torch.allclose(plan.cond_tokens, sd15_adapter.model.project(combine_embeds(cond, method)), atol=1e-6)
    assert torch.allclose(plan.uncond_tokens, sd15_adapter.model.project(combine_embeds(uncond, method)), atol=1e-6)


# --------------------------------------------------------------------------- embeds scaling
def test_each_scaling_mode_matches_its_formula():
    gen = torch.Generator().manual_seed(0)
    k, v = torch.randn(2, 4, 640, generator=gen), torch.randn(2, 4, 640, generator=gen)
    w = 0.8
    same_k, same_v, factor = scale_kv(k, v, w, "V only")
    assert same_k is k and same_v is v and factor == w
    k2, v2, factor = scale_kv(k, v, w, "K+V")
    assert factor is None and torch.equal(k2, k * w) and torch.equal(v2, v * w)
    wp = w * 640 / 1280
    k3, v3, _ = scale_kv(k, v, w, "K+V w/ C penalty")
    assert torch.allclose(k3, k * wp) and torch.allclose(v3, v * wp)
    k4, v4, _ = scale_kv(k, v, w, "K+mean(V) w/ C penalty")
    m = v.mean(dim=1, keepdim=True)
    assert torch.allclose(k4, k * wp) and torch.allclose(v4, (v - m) + wp * m)
    assert torch.allclose(v4.mean(dim=1), wp * v.mean(dim=1), atol=1e-6)  # only the mean is scaled


@pytest.mark.parametrize("mode", ["K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"])
def test_k_modes_scale_the_image_kv_in_first_plan(mode, sd15_model, sd15_adapter, clip_vit_h, reference_images):
    plan = first_plan(apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], weight=0.6,
                                  embeds_scaling=mode))
    key = sd15_adapter.spec.layer_keys[0]
    k, v, factor = plan.layer_inputs(key, plan.layers[key], (True,), 1, None, torch.device("cpu"), torch.float32)
    k_raw, v_raw = sd15_adapter.model.image_kv(key, plan.cond_tokens)
    expected_k, expected_v, _ = scale_kv(k_raw, v_raw, 0.6, mode)
    assert factor is None and torch.allclose(k, expected_k) and torch.allclose(v, expected_v)


def test_a_negative_weight_flips_the_keys_in_k_modes(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    plan = first_plan(apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], weight=-1.0,
                                  embeds_scaling="K+V"))
    key = sd15_adapter.spec.layer_keys[0]
    k, _, _ = plan.layer_inputs(key, plan.layers[key], (True,), 1, None, torch.device("cpu"), torch.float32)
    assert torch.allclose(k, -sd15_adapter.model.image_kv(key, plan.cond_tokens)[0])


# --------------------------------------------------------------------------- stacking
def test_stacked_adapters_take_effect_in_one_patch_per_layer(sd15_model, sd15_adapter, make_adapter, clip_vit_h,
                                                              reference_images):
    plus = make_adapter(sd15_model, "sd15_plus", ext=".bin")
    one = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    two = apply_adapter(one, plus, clip_vit_h, reference_images[1:2], weight_type="ease out")
    three = apply_adapter(two, sd15_adapter, clip_vit_h, reference_images[2:3], attn_mask=torch.ones(1, 8, 8))
    assert all(len(p.plans) == 3 for p in attn2_patches(three).values())
    results = [ksample(m, "sd15") for m in (sd15_model, one, two, three)]
    assert all(not torch.equal(a, b) for a, b in zip(results, results[1:]))


def test_another_packs_attn2_patch_placed_first_is_called_not_overwritten(sd15_model, sd15_adapter, make_adapter,
                                                                          clip_vit_h, reference_images):
    class ForeignPatch:  # what another pack may have put on a layer: it computes the text part
        calls, moved = [], []  # on the class: v0.3.75 deep-copies patches on clone

        def __call__(self, q, k, v, extra_options):
            ForeignPatch.calls.append(1)
            return host_attention.optimized_attention(q, k, v, extra_options["n_heads"]) * 0.5

        def to(self, device_or_dtype):
            ForeignPatch.moved.append(device_or_dtype)
            return self

    model = sd15_model.clone()
    model.set_model_attn2_replace(ForeignPatch(), "input", 1, 0)
    first = apply_adapter(model, sd15_adapter, clip_vit_h, reference_images[:1])
    both = apply_adapter(first, make_adapter(sd15_model, "sd15_plus"), clip_vit_h, reference_images[1:2])
    patch = attn2_patches(both)[("input", 1, 0)]
    assert isinstance(patch, IPAttentionPatch) and isinstance(patch.inner, ForeignPatch) and len(patch.plans) == 2
    ksample(both, "sd15", steps=2)
    assert ForeignPatch.calls and ForeignPatch.moved  # called every step, moved with the model
    # an adapter at weight 0 on that layer leaves the foreign patch alone there
    silent = apply_adapter(model, sd15_adapter, clip_vit_h, reference_images[:1], layer_weights="1:1")
    assert isinstance(attn2_patches(silent)[("input", 1, 0)], ForeignPatch)


# --------------------------------------------------------------------------- bad input
def test_an_unknown_layer_index_names_the_input(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    with pytest.raises(ValueError, match=r"layer_weights: index 9 is not a layer of this model; its layers are 0..6"):
        apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], layer_weights="9:1")


def test_a_malformed_block_dict_names_the_input(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    with pytest.raises(ValueError, match=r"layer_weights: up.block_7 is not an up block"):
        apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], layer_weights='{"up": {"block_7": 1}}')


def test_unknown_option_strings_list_the_known_ones(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    with pytest.raises(ValueError, match="combine_embeds 'mean' is not one of: concat, add"):
        apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], combine_embeds="mean")
    with pytest.raises(ValueError, match="embeds_scaling 'K' is not one of: V only"):
        apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], embeds_scaling="K")
