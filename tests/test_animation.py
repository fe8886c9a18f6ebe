"""Animation batches: a reference and a weight per latent frame, and context windows that keep memory
at the frames of the current window (AnimateDiff's `ad_params`, ComfyUI's `context_window`)."""
import pytest
import torch

from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.plan import BatchMismatchError
from sampling import ksample
from support.patches import first_plan

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sd15_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15")


@pytest.fixture(scope="module")
def frames(clip_vit_h):
    gen = torch.Generator().manual_seed(11)
    return torch.rand(4, 32, 32, 3, generator=gen)



def first_layer(plan):
    key = min(plan.layers)
    return key, plan.layers[key]


def test_each_frame_gets_its_reference_and_weight_and_the_last_is_repeated(sd15_model, sd15_adapter, clip_vit_h,
                                                                           frames):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, frames[:2], weight=[1.0, 0.5, 0.25],
                            unfold_batch=True)
    plan = first_plan(patched)
    assert plan.cond_tokens.shape == (2, 4, 768)  # one row of tokens per reference image
    key, rule = first_layer(plan)
    k, _, factor = plan.layer_inputs(key, rule, (True, False), 4, None, CPU, torch.float32)
    k_images, _ = sd15_adapter.model.image_kv(key, plan.cond_tokens)
    assert torch.equal(k[0], k_images[0]) and all(torch.equal(k[i], k_images[1]) for i in (1, 2, 3))
    assert factor.flatten().tolist() == [1.0, 0.5, 0.25, 0.25] * 2  # per frame, both chunks
    assert not torch.equal(ksample(patched, "sd15", batch=4), ksample(sd15_model, "sd15", batch=4))


def test_a_weight_list_of_zeros_costs_nothing(sd15_model, sd15_adapter, clip_vit_h, frames):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, frames, weight=[0.0, 0.0], unfold_batch=True)
    assert "patches_replace" not in patched.model_options["transformer_options"] or \
        not patched.model_options["transformer_options"]["patches_replace"].get("attn2")


def test_more_references_than_frames_is_refused_with_the_counts(sd15_model, sd15_adapter, clip_vit_h, frames):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, frames, unfold_batch=True)
    with pytest.raises(BatchMismatchError, match="^image has 4 images for 2 latent frames: give one image, or up to "
                                                 "one per latent frame"):
        ksample(patched, "sd15", batch=2)


def test_masks_must_be_one_or_one_per_frame(sd15_model, sd15_adapter, clip_vit_h, frames):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, frames[:1], unfold_batch=True,
                            attn_mask=torch.ones(2, 8, 8))
    with pytest.raises(BatchMismatchError, match="^attn_mask has 2 masks but the latent batch has 3 images"):
        ksample(patched, "sd15", batch=3)


def window_options(plan_model, sub_idxs, full_length, kind="ad_params"):
    options = dict(plan_model.model_options["transformer_options"], cond_or_uncond=[0, 1])
    if kind == "ad_params":
        options["ad_params"] = {"sub_idxs": list(sub_idxs), "full_length": full_length}
    else:
        class Window:  # what ComfyUI's IndexListContextWindow carries (0.3x and later)
            dim, index_list, total_frames = 0, list(sub_idxs), full_length
        options["context_window"] = Window()
    return options


def cached_elements(plan) -> int:
    return sum(t.numel() for _, value in plan._cache.values()
               for t in (value if isinstance(value, tuple) else (value,))
               for t in (t if isinstance(t, tuple) else (t,)) if torch.is_tensor(t))


def run_windows(model, full_length, window=4, kind="ad_params"):
    gen = torch.Generator().manual_seed(0)
    starts = list(range(0, full_length - window + 1, window))
    for start in starts:
        idx = range(start, start + window)
        x = torch.randn(2 * window, 4, 8, 8, generator=gen)
        model.model.apply_model(x, torch.full((2 * window,), 5.0), c_crossattn=torch.randn(2 * window, 7, 768),
                                transformer_options=window_options(model, idx, full_length, kind))


@pytest.mark.parametrize("kind", ["ad_params", "context_window"])
def test_context_windows_index_frames_and_weights_by_the_window(kind, sd15_model, sd15_adapter, clip_vit_h, frames):
    weights = [i / 10 for i in range(12)]
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, frames, weight=weights, unfold_batch=True)
    plan = first_plan(patched)
    key, rule = first_layer(plan)
    window = ((2, 3, 4, 5), 12)
    k, _, factor = plan.layer_inputs(key, rule, (True, False), 4, window, CPU, torch.float32)
    k_images, _ = sd15_adapter.model.image_kv(key, plan.cond_tokens)
    assert [next(i for i in range(4) if torch.equal(k[f], k_images[i])) for f in range(4)] == [2, 3, 3, 3]
    assert factor.flatten().tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5] * 2)
    run_windows(patched, 12, kind=kind)  # and through the real UNet


def test_memory_follows_the_window_not_the_frame_count(sd15_model, sd15_adapter, clip_vit_h, frames):
    footprints = {}
    for full_length in (8, 32):
        refs = frames[torch.arange(full_length) % 4]
        patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, refs, unfold_batch=True,
                                attn_mask=torch.ones(full_length, 8, 8), weight=[1.0] * full_length)
        run_windows(patched, full_length)
        footprints[full_length] = cached_elements(first_plan(patched))
    assert footprints[8] == footprints[32] > 0


def test_the_batch_node_unfolds_and_takes_a_weights_list(sd15_model, sd15_adapter, clip_vit_h, frames):
    weights, *_ = NODES["IPAKitFrameWeights"]().weights("1.0, 0.0", "linear", 4, 0, 9999, 0, 0, "full batch", 0)
    (patched,) = NODES["IPAKitApplyBatch"]().apply(sd15_model, sd15_adapter, clip_vit_h, frames, weights, "linear",
                                                   0.0, 1.0, "V only")
    plan = first_plan(patched)
    assert plan.cond_tokens.shape[0] == 4
    assert plan.frame_weights.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
