"""Regions: an image per mask, any aspect ratio and split direction, text conditioning masked alike."""
import pytest
import torch

import comfy.sample
import comfy.samplers
from comfy_extras.nodes_perpneg import Guider_PerpNeg

from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.compose import Region, apply_regions
from comfyui_ipadapter_kit.patching.plan import AdapterPlan, BatchMismatchError
from sampling import conditioning
from support.patches import record_layer_inputs


@pytest.fixture(scope="module")
def sd15_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15")


def halves(direction: str, h: int = 60, w: int = 100):
    first = torch.zeros(1, h, w)
    if direction == "left/right":
        first[:, :, : w // 2] = 1
    else:
        first[:, : h // 2, :] = 1
    return first, 1 - first


def sample(model, latent_hw, seed=0, frames=1):
    noise = torch.randn(frames, 4, *latent_hw, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample(model, noise, 2, 5.0, "euler", "normal", conditioning("sd15", 1),
                               conditioning("sd15", 2), torch.zeros_like(noise), seed=seed, disable_pbar=True)


def perp_neg_sample(model, frames, seed=0):
    """Two steps under PerpNeg, which batches three chunks: positive, negative, empty."""
    guider = Guider_PerpNeg(model)
    guider.set_conds(conditioning("sd15", 1), conditioning("sd15", 2), conditioning("sd15", 3))
    guider.set_cfg(4.0, 1.0)
    noise = torch.randn(frames, 4, 6, 10, generator=torch.Generator().manual_seed(seed))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 2)
    return guider.sample(noise, torch.zeros_like(noise), comfy.samplers.sampler_object("euler"), sigmas,
                         disable_pbar=True, seed=seed)


@pytest.mark.parametrize("latent_hw", [(6, 10), (10, 6), (7, 5)])
@pytest.mark.parametrize("direction", ["left/right", "top/bottom"])
def test_two_regions_split_each_layer_grid_in_any_direction(direction, latent_hw, sd15_model, sd15_adapter,
                                                            clip_vit_h, reference_images, monkeypatch):
    first, second = halves(direction)
    regions = (Region(reference_images[:1], first), Region(reference_images[1:2], second, image_weight=0.5))
    patched = apply_regions(sd15_model, sd15_adapter, clip_vit_h, regions)
    grids = []
    original = AdapterPlan.token_mask

    def spy(self, tokens, hw, *args):
        grid = original(self, tokens, hw, *args)
        grids.append((id(self), tokens, grid))
        return grid
    monkeypatch.setattr(AdapterPlan, "token_mask", spy)
    out = sample(patched, latent_hw)
    assert torch.isfinite(out).all() and not torch.equal(out, sample(sd15_model, latent_hw))
    by_tokens = {}
    for plan_id, tokens, grid in grids:
        by_tokens.setdefault(tokens, {})[plan_id] = grid[0, :, 0]
    for tokens, per_plan in by_tokens.items():
        a, b = per_plan.values()
        assert torch.allclose(a + b, torch.ones_like(a), atol=1e-6)  # the two regions tile the picture
        h, w = latent_hw
        for _ in range(8):  # the layer's exact grid (ceil-halving from the latent)
            if h * w == tokens:
                break
            h, w = -(-h // 2), -(-w // 2)
        grid = a.view(h, w)
        if direction == "left/right":
            assert torch.allclose(grid, grid[:1].expand(h, w)) and grid[0, 0] > grid[0, -1]
        else:
            assert torch.allclose(grid, grid[:, :1].expand(h, w)) and grid[0, 0] > grid[-1, 0]


def test_each_region_is_its_own_plan_in_one_patch_per_layer(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    first, second = halves("left/right")
    regions = (Region(reference_images[:1], first, image_weight=0.7, weight_type="ease in", start_at=0.2),
               Region(reference_images[1:2], second, image_weight=1.2))
    patched = apply_regions(sd15_model, sd15_adapter, clip_vit_h, regions)
    patches = patched.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert all(len(p.plans) == 2 for p in patches.values())
    a, b = next(iter(patches.values())).plans
    assert torch.equal(a.mask, first) and torch.equal(b.mask, second)
    assert a.needs_sigma and not b.needs_sigma
    assert {r.weight for r in b.layers.values()} == {1.2}
    assert max(r.weight for r in a.layers.values()) == pytest.approx(0.7)


def test_the_region_node_masks_positive_and_negative_conditioning(reference_images):
    mask = halves("top/bottom")[0]
    positive, negative = conditioning("sd15", 1), conditioning("sd15", 2)
    regions, pos, neg = NODES["IPAKitRegion"]().region(reference_images[:1], 1.0, 2.5, "linear", 0.0, 1.0, mask=mask,
                                                        positive=positive, negative=negative)
    for out, given in ((pos, positive), (neg, negative)):
        assert torch.equal(out[0][0], given[0][0])
        assert torch.equal(out[0][1]["mask"], mask) and out[0][1]["mask_strength"] == 2.5
        assert out[0][1]["set_area_to_bounds"] is False
        assert "mask" not in given[0][1]  # the input conditioning is left as it was
    (region,) = regions
    assert region.image is not None and region.mask is mask
    assert (region.image_weight, region.prompt_weight, region.weight_type, region.start_at, region.end_at) == \
        (1.0, 2.5, "linear", 0.0, 1.0)
    _, unmasked, _ = NODES["IPAKitRegion"]().region(reference_images[:1], 1.0, 2.5, "linear", 0.0, 1.0,
                                                    positive=positive)
    assert unmasked is positive


def test_combine_regions_keeps_every_region_in_order(reference_images):
    make = NODES["IPAKitRegion"]()
    r = [make.region(reference_images[i:i + 1], 1.0, 1.0, "linear", 0.0, 1.0)[0] for i in range(3)]
    (joined,) = NODES["IPAKitCombineRegions"]().combine(r[0], r[1], regions_4=r[2])
    assert [x.image.data_ptr() for x in joined] == [reference_images[i:i + 1].data_ptr() for i in range(3)]


def test_an_empty_region_list_is_refused(sd15_model, sd15_adapter, clip_vit_h):
    with pytest.raises(ValueError, match="regions input is empty: connect at least one 'IP-Adapter Region"):
        apply_regions(sd15_model, sd15_adapter, clip_vit_h, ())


def test_a_masked_region_and_per_frame_weights_hold_under_a_three_chunk_guider(sd15_model, sd15_adapter, clip_vit_h,
                                                                               reference_images, monkeypatch):
    left, right = halves("left/right")
    regional = apply_regions(sd15_model, sd15_adapter, clip_vit_h,
                             (Region(reference_images[:1], left, image_weight=0.8),
                              Region(reference_images[1:2], right, image_weight=0.6)))
    frame_masks = torch.stack((halves("top/bottom")[0][0], torch.ones(60, 100)))  # one mask per frame
    patched = apply_adapter(regional, sd15_adapter, clip_vit_h, reference_images[1:3], weight=[1.0, 0.4],
                            unfold_batch=True, attn_mask=frame_masks)
    seen = record_layer_inputs(monkeypatch)
    masks = []
    original = AdapterPlan.token_mask

    def spy(self, *args):
        grid = original(self, *args)
        masks.append((self, grid))
        return grid
    monkeypatch.setattr(AdapterPlan, "token_mask", spy)
    out = perp_neg_sample(patched, frames=2)
    assert torch.isfinite(out).all() and not torch.equal(out, perp_neg_sample(sd15_model, frames=2))
    per_frame = next(p for p in (call["plan"] for call in seen) if p.frame_weights is not None)
    assert len({id(call["plan"]) for call in seen}) == 3  # both regions and the per-frame adapter ran
    for call in seen:
        assert len(call["cond_or_uncond"]) == 3  # PerpNeg: positive, negative, empty in one batch
        at = call["cond_or_uncond"].index(0)     # where the host put the positive conditioning
        assert call["positive"] == tuple(i == at for i in range(3))
        k, _, factor = call["out"]
        assert k.shape[0] == 6  # 3 chunks of 2 frames
        if call["plan"] is per_frame:  # frame i's image and weight i on every chunk
            assert factor.flatten().tolist() == pytest.approx([1.0, 0.4] * 3)
            k_images = sd15_adapter.model.image_kv(call["key"], per_frame.cond_tokens)[0]
            assert torch.allclose(k[2 * at:2 * at + 2], k_images, atol=1e-6)
        else:
            assert factor == call["rule"].weight
    for plan, grid in masks:
        assert grid.shape[0] == 6
        chunks = grid.chunk(3)
        assert all(torch.equal(c, chunks[0]) for c in chunks)  # the same mask on every chunk
        if plan is per_frame:  # frame 0 the top half, frame 1 everywhere
            assert chunks[0][1].min() == 1 and chunks[0][0].min() == 0 and chunks[0][0].max() == 1
        else:
            assert torch.equal(chunks[0][0], chunks[0][1]) and 0 < chunks[0].mean() < 1


def test_a_bad_region_mask_is_reported_under_the_mask_input(sd15_model, sd15_adapter, clip_vit_h, reference_images):
    with pytest.raises(ValueError, match=r"^mask must be a MASK \[batch, height, width\]; got shape \(1, 1, 8, 8\)"):
        NODES["IPAKitRegion"]().region(reference_images[:1], 1.0, 1.0, "linear", 0.0, 1.0,
                                       mask=torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"^mask \(region 2 of 2\) must be a MASK"):
        apply_regions(sd15_model, sd15_adapter, clip_vit_h,
                      (Region(reference_images[:1]), Region(reference_images[1:2], torch.ones(1, 1, 8, 8))))
    patched = apply_regions(sd15_model, sd15_adapter, clip_vit_h,
                            (Region(reference_images[:1], torch.ones(1, 8, 8)),
                             Region(reference_images[1:2], torch.ones(3, 8, 8))))
    with pytest.raises(BatchMismatchError, match=r"^mask \(region 2 of 2\) has 3 masks but the latent batch has 2 "
                                                 r"images: give one mask, or one per latent image"):
        sample(patched, (8, 8), frames=2)
