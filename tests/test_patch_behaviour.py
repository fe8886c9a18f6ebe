"""How the applied adapter behaves inside the real host's samplers and model management."""
import copy

import pytest
import torch

import comfy.model_management
import comfy.samplers
from comfy_extras.nodes_custom_sampler import Guider_DualCFG
from comfy_extras.nodes_perpneg import Guider_PerpNeg

from comfyui_ipadapter_kit.patching import cross_attention
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.cross_attention import IPAttentionPatch
from comfyui_ipadapter_kit.ip_models.adapter import IPAdapterModel
from sampling import conditioning, guided_sample, ksample
from support.patches import attn2_patches, count_attention_calls


@pytest.fixture(scope="module")
def sd15_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15")


@pytest.fixture(scope="module")
def plus_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15_plus", ext=".bin")




def test_every_cross_attention_layer_is_patched_including_the_middle_block(sd15_model, sd15_adapter, clip_vit_h,
                                                                           reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    keys = set(attn2_patches(patched))
    assert ("middle", 0, 0) in keys
    assert len(keys) == len(sd15_adapter.spec.layer_keys)
    assert all(isinstance(p, IPAttentionPatch) for p in attn2_patches(patched).values())


def test_patched_model_changes_the_result(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    assert not torch.equal(ksample(patched, "sd15"), ksample(sd15_model, "sd15"))


def test_weight_zero_is_bit_identical_and_calls_no_extra_attention(sd15_model, sd15_adapter, clip_vit_h,
                                                                   reference_images, monkeypatch):
    plain = ksample(sd15_model, "sd15")
    calls = count_attention_calls(monkeypatch)
    ksample(sd15_model, "sd15")
    baseline_calls = len(calls)
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], weight=0.0)
    calls.clear()
    assert torch.equal(ksample(patched, "sd15"), plain)
    assert len(calls) == baseline_calls


def test_sigma_outside_the_window_is_bit_identical_and_calls_no_extra_attention(
        sd15_model, sd15_adapter, clip_vit_h, reference_images, monkeypatch):
    plain = ksample(sd15_model, "sd15", steps=3)
    calls = count_attention_calls(monkeypatch)
    ksample(sd15_model, "sd15", steps=3)
    baseline_calls = len(calls)
    # With 3 normal steps the model sees sigma 14.6, 1.6 and 0.03: none lies in 40%-45%.
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], start_at=0.4, end_at=0.45)
    calls.clear()
    assert torch.equal(ksample(patched, "sd15", steps=3), plain)
    assert len(calls) == baseline_calls


def test_window_covering_some_steps_changes_only_those(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    first_step_only = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], end_at=0.2)
    assert not torch.equal(ksample(first_step_only, "sd15"), ksample(sd15_model, "sd15"))


def test_input_model_is_never_mutated(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    before_options = copy.deepcopy(sd15_model.model_options)
    before_wrappers = copy.deepcopy(sd15_model.wrappers)
    before = ksample(sd15_model, "sd15")
    apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], start_at=0.1, end_at=0.9)
    assert sd15_model.model_options == before_options
    assert sd15_model.wrappers == before_wrappers
    assert attn2_patches(sd15_model) == {}
    assert torch.equal(ksample(sd15_model, "sd15"), before)


def test_applying_twice_gives_independent_clones(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    a = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], weight=1.0)
    b = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[1:2], weight=0.5)
    assert a is not b and a.model_options is not b.model_options
    pa, pb = attn2_patches(a), attn2_patches(b)
    assert all(pa[k] is not pb[k] for k in pa)
    assert not torch.equal(ksample(a, "sd15"), ksample(b, "sd15"))


def test_chained_adapters_share_one_patch_per_layer(sd15_model, sd15_adapter, plus_adapter, clip_vit_h,
                                                    reference_images):
    first = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    both = apply_adapter(first, plus_adapter, clip_vit_h, reference_images[1:2])
    assert all(len(p.plans) == 2 for p in attn2_patches(both).values())
    assert all(len(p.plans) == 1 for p in attn2_patches(first).values())
    assert {id(m) for m in both.model_patches_models()} == {id(sd15_adapter.patcher), id(plus_adapter.patcher)}


def test_adapter_weights_are_loaded_by_model_management_with_the_unet(sd15_model, sd15_adapter, clip_vit_h,
                                                                      reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    assert {id(m) for m in patched.model_patches_models()} == {id(sd15_adapter.patcher)}
    ksample(patched, "sd15", steps=1)
    loaded = [lm.model for lm in comfy.model_management.current_loaded_models]
    assert sd15_adapter.patcher in loaded
    assert sd15_adapter.patcher.model_size() > 0


def test_image_kv_is_computed_once_per_run_not_per_step(sd15_model, sd15_adapter, clip_vit_h, reference_images,
                                                        monkeypatch):
    calls = []
    original = IPAdapterModel.image_kv

    def spy(self, layer_key, *args, **kwargs):
        calls.append(layer_key)
        return original(self, layer_key, *args, **kwargs)
    monkeypatch.setattr(IPAdapterModel, "image_kv", spy)
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[2:3])
    ksample(patched, "sd15", steps=4)
    assert sorted(calls) == sorted(sd15_adapter.spec.layer_keys)


def test_attention_patch_reads_no_device_tensor_when_sigma_is_known(sd15_model, sd15_adapter, clip_vit_h,
                                                                    reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], start_at=0.5)
    patch = next(iter(attn2_patches(patched).values()))

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError("the patch read the sigma tensor (a device sync)")
    q = torch.randn(2, 16, patch.layer.width)
    k = v = torch.randn(2, 77, patch.layer.width)
    options = {"n_heads": 8, "dim_head": patch.layer.width // 8, "cond_or_uncond": [1, 0],
               "sigmas": Untouchable(), "ipakit_sigma": 100.0, "original_shape": [2, 4, 4, 4]}
    assert patch(q, k, v, options).shape == q.shape


@pytest.mark.parametrize("guider_kind", ["cfg", "dual_cfg", "perp_neg"])
def test_any_guider_sends_image_tokens_only_to_positive_chunks(guider_kind, sd15_model, sd15_adapter, clip_vit_h,
                                                              reference_images, monkeypatch):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    seen = []
    original = cross_attention.chunk_positivity

    def spy(extra_options):
        flags = original(extra_options)
        seen.append((tuple(extra_options["cond_or_uncond"]), flags))
        return flags
    monkeypatch.setattr(cross_attention, "chunk_positivity", spy)
    pos, neg, mid = conditioning("sd15", 1), conditioning("sd15", 2), conditioning("sd15", 3)
    if guider_kind == "cfg":
        guider, positive_index = comfy.samplers.CFGGuider(patched), 0
        guider.set_conds(pos, neg)
        guider.set_cfg(4.0)
    elif guider_kind == "dual_cfg":
        guider, positive_index = Guider_DualCFG(patched), 2  # sends [negative, middle, positive]
        guider.set_conds(pos, mid, neg)
        guider.set_cfg(4.0, 2.0)
    else:
        guider, positive_index = Guider_PerpNeg(patched), 0  # sends [positive, negative, empty]
        guider.set_conds(pos, neg, mid)
        guider.set_cfg(4.0, 1.0)
    out = guided_sample(guider, patched)
    assert torch.isfinite(out).all()
    assert seen, "the patch never ran"
    for cond_or_uncond, flags in seen:
        assert flags == tuple(c == positive_index for c in cond_or_uncond)
        assert sum(flags) >= 1


def test_several_reference_images_join_one_attention(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images)
    plan = next(iter(attn2_patches(patched).values())).plans[0]
    assert plan.cond_tokens.shape[:2] == (1, 3 * sd15_adapter.spec.num_tokens)
    assert plan.uncond_tokens.shape == plan.cond_tokens.shape


@pytest.mark.parametrize("latent_hw", [(8, 8), (6, 10), (7, 5)])
def test_masks_follow_each_layer_grid_for_any_aspect_ratio(latent_hw, sd15_model, sd15_adapter, clip_vit_h,
                                                           reference_images):
    mask = torch.zeros(1, 40, 24)
    mask[:, :, :12] = 1.0  # left half only
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], attn_mask=mask)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, *latent_hw, generator=gen)
    import comfy.sample
    out = comfy.sample.sample(patched, noise, 2, 5.0, "euler", "normal", conditioning("sd15", 1),
                              conditioning("sd15", 2), torch.zeros_like(noise), seed=0, disable_pbar=True)
    plain = comfy.sample.sample(sd15_model, noise, 2, 5.0, "euler", "normal", conditioning("sd15", 1),
                                conditioning("sd15", 2), torch.zeros_like(noise), seed=0, disable_pbar=True)
    assert out.shape == plain.shape and torch.isfinite(out).all()
    assert not torch.equal(out, plain)


def test_a_zero_mask_leaves_the_output_unchanged(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1],
                            attn_mask=torch.zeros(1, 16, 16))
    assert torch.allclose(ksample(patched, "sd15"), ksample(sd15_model, "sd15"), atol=1e-6)


def test_mask_count_must_match_the_latent_batch(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1],
                            attn_mask=torch.ones(3, 16, 16))
    with pytest.raises(ValueError, match="one mask, or one per latent image"):
        ksample(patched, "sd15", batch=2)


def test_negative_image_replaces_the_trained_unconditional_tokens(sd15_model, plus_adapter, clip_vit_h,
                                                                  reference_images):
    default = apply_adapter(sd15_model, plus_adapter, clip_vit_h, reference_images[:1])
    negative = apply_adapter(sd15_model, plus_adapter, clip_vit_h, reference_images[:1],
                             image_negative=reference_images[1:2])
    b_default = next(iter(attn2_patches(default).values())).plans[0]
    b_negative = next(iter(attn2_patches(negative).values())).plans[0]
    assert torch.equal(b_default.cond_tokens, b_negative.cond_tokens)
    assert not torch.equal(b_default.uncond_tokens, b_negative.uncond_tokens)


def test_unconditional_tokens_are_what_each_variant_was_trained_with(sd15_model, sd15_adapter, plus_adapter,
                                                                     clip_vit_h, reference_images):
    from comfyui_ipadapter_kit.patching.encode import unconditional_features
    plain = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    plan = next(iter(attn2_patches(plain).values())).plans[0]
    expected = sd15_adapter.model.project(torch.zeros(1, 1024))
    assert torch.allclose(plan.uncond_tokens, expected.reshape(1, -1, expected.shape[-1]))
    # plus: the encoder on pixels that are zero after normalisation, not on a black image
    zero_pixels = clip_vit_h.model(pixel_values=torch.zeros(1, 3, clip_vit_h.image_size, clip_vit_h.image_size),
                                   intermediate_output=-2)[1]
    assert torch.allclose(unconditional_features(clip_vit_h, "penultimate", None), zero_pixels.float())
    black = clip_vit_h.encode_image(torch.zeros(1, 64, 64, 3))["penultimate_hidden_states"]
    assert not torch.allclose(zero_pixels, black)


def test_features_are_cached_by_image_content(sd15_model, sd15_adapter, clip_vit_h, reference_images, monkeypatch):
    calls = []
    original = clip_vit_h.encode_image
    monkeypatch.setattr(clip_vit_h, "encode_image", lambda image, **kw: calls.append(1) or original(image, **kw))
    fresh = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(42))
    for weight in (0.3, 0.7, 1.2):
        apply_adapter(sd15_model, sd15_adapter, clip_vit_h, fresh.clone(), weight=weight)
    assert len(calls) == 1
