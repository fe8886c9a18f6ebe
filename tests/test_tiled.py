"""Tiled encoding covers the whole reference with masked tiles; the enhancer merges crop features."""
import pytest
import torch

from comfyui_ipadapter_kit.ip_models.enhance import crops, merge
from comfyui_ipadapter_kit.ip_models.image_prep import tile_reference
from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching.encode import image_features
from sampling import ksample
from support.patches import attn2_patches
from support.tiny_clip import make_clip_vision
from test_embeds import CONTROL_CHANGES, count_vision_forwards


@pytest.mark.parametrize("hw, tiles, frame", [((300, 310), 4, (512, 512)), ((200, 400), 2, (256, 512)),
                                              ((300, 700), 3, (256, 597)), ((100, 600), 4, (256, 1024)),
                                              ((900, 150), 4, (1024, 256))])
def test_tiles_cover_the_whole_reference_and_their_masks_partition_it(hw, tiles, frame):
    image = torch.rand(2, *hw, 3, generator=torch.Generator().manual_seed(0))
    out, masks = tile_reference(image)
    assert out.shape == (tiles, 2, 256, 256, 3) and masks.shape == (tiles, *frame)
    assert (masks.sum(0) >= 1 - 1e-6).all()  # every pixel belongs to a tile (overlaps count twice)
    assert all(m.bool().sum() == 256 * 256 for m in masks)


def test_a_given_mask_is_carried_into_each_tile():
    mask = torch.zeros(1, 200, 400)
    mask[:, :, :100] = 1
    _, masks = tile_reference(torch.rand(1, 200, 400, 3), mask)
    assert masks[0].sum() > 0 and masks[1].sum() == 0


def test_the_tiled_node_applies_one_plan_per_tile(sd15_model, make_adapter, clip_vit_h):
    adapter = make_adapter(sd15_model, "sd15")
    wide = torch.rand(1, 120, 300, 3, generator=torch.Generator().manual_seed(2))
    model, tiles, masks = NODES["IPAKitApplyTiled"]().apply(sd15_model, adapter, clip_vit_h, wide, 1.0, "linear",
                                                            "concat", 0.0, 1.0, 0.0, "V only")
    patch = next(iter(attn2_patches(model).values()))
    assert len(patch.plans) == masks.shape[0] == tiles.shape[0] == 3
    assert all(torch.equal(p.mask[0], m) for p, m in zip(patch.plans, masks))
    assert not torch.equal(ksample(model, "sd15"), ksample(sd15_model, "sd15"))


def test_crops_are_row_major_and_drop_the_remainder():
    image = torch.arange(5 * 7, dtype=torch.float32).view(1, 5, 7, 1)
    parts = crops(image, 2)
    assert parts.shape == (4, 2, 3, 1)
    assert parts[1, 0, 0, 0] == image[0, 0, 3, 0] and parts[2, 0, 0, 0] == image[0, 2, 0, 0]


def test_the_enhancer_stitches_crop_grids_and_blends_with_the_ratio():
    g, width = 2, 3
    whole = torch.zeros(1, 1 + g * g, width)
    parts = torch.stack([torch.full((1 + g * g, width), float(i)) for i in range(4)])  # crop i is all i
    merged = merge(whole, parts, 2, 0.0)
    assert torch.equal(merged[0, 0], torch.full((width,), 1.5))  # the crops' mean class token
    # the 4x4 stitched grid pooled 2x2 gives each crop's value at its position, row-major
    assert merged[0, 1:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert torch.equal(merge(whole, parts, 2, 0.25), 0.75 * merged)
    pooled = merge(torch.ones(1, 5), torch.arange(4.0).view(4, 1).expand(4, 5), 2, 0.5)
    assert torch.allclose(pooled, torch.full((1, 5), 0.5 + 0.75))


def test_the_enhanced_node_uses_whole_and_crop_features(sd15_model, make_adapter, clip_vit_h, reference_images):
    adapter = make_adapter(sd15_model, "sd15_plus")
    (plain,) = NODES["IPAKitApplyAdvanced"]().apply(sd15_model, adapter, clip_vit_h, reference_images[:1], 1.0,
                                                    "linear", "concat", 0.0, 1.0, "V only")
    (enhanced,) = NODES["IPAKitApplyEnhanced"]().apply(sd15_model, adapter, clip_vit_h, reference_images[:1], 1.0,
                                                       "linear", "concat", 0.0, 1.0, "V only", 2, 0.5)
    a = next(iter(attn2_patches(plain).values())).plans[0].cond_tokens
    b = next(iter(attn2_patches(enhanced).values())).plans[0].cond_tokens
    whole = image_features(clip_vit_h, reference_images[:1], "penultimate")
    expected = merge(whole, image_features(clip_vit_h, crops(reference_images[:1], 2), "penultimate"), 2, 0.5)
    assert torch.allclose(b, adapter.model.project(expected).reshape(1, -1, 768), atol=1e-6) and not torch.equal(a, b)


def tiled(model, adapter, clip, image, weight=1.0, weight_type="linear", start_at=0.0, end_at=1.0, batch_size=0):
    return NODES["IPAKitApplyTiled"]().apply(model, adapter, clip, image, weight, weight_type, "concat", start_at,
                                             end_at, 0.0, "V only", encode_batch_size=batch_size)


def test_a_tiled_encode_shows_one_progress_bar_over_its_tiles(sd15_model, make_adapter, monkeypatch):
    import comfy.utils
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None: updates.append(
        (value, total)), raising=False)
    two_wide = torch.rand(2, 120, 300, 3, generator=torch.Generator().manual_seed(12))
    # chunks of one image: each tile's encode runs in two chunks, which alone would show a bar of their own
    _, tiles, masks = tiled(sd15_model, make_adapter(sd15_model, "sd15"), make_clip_vision("vit-h", seed=2), two_wide,
                            batch_size=1)
    assert masks.shape[0] == 3 and tiles.shape[0] == 6
    assert updates[0] == (1, 3) and updates[-1] == (3, 3) and all(total == 3 for _, total in updates)
    assert [value for value, _ in updates] == sorted({value for value, _ in updates})  # no bar restarts inside it


def test_a_tiled_rerun_with_other_controls_runs_no_clip_vision_forward(sd15_model, make_adapter):
    clip = make_clip_vision("vit-h", seed=2)
    forwards = count_vision_forwards(clip)
    adapter = make_adapter(sd15_model, "sd15_plus")
    wide = torch.rand(1, 120, 300, 3, generator=torch.Generator().manual_seed(13))
    tiled(sd15_model, adapter, clip, wide)
    assert len(forwards) == 3 + 1  # three tiles, and zero pixels for the plus adapter's negative
    for controls in (CONTROL_CHANGES[0], CONTROL_CHANGES[-1]):  # the weight; all four controls at once
        tiled(sd15_model, adapter, clip, wide.clone(), **controls)
    assert len(forwards) == 4


def test_an_enhanced_rerun_with_other_controls_runs_no_clip_vision_forward(sd15_model, make_adapter):
    clip = make_clip_vision("vit-h", seed=2)
    forwards = count_vision_forwards(clip)
    adapter = make_adapter(sd15_model, "sd15_plus")
    image = torch.rand(1, 96, 96, 3, generator=torch.Generator().manual_seed(14))

    def enhanced(weight=1.0, weight_type="linear", start_at=0.0, end_at=1.0):
        return NODES["IPAKitApplyEnhanced"]().apply(sd15_model, adapter, clip, image.clone(), weight, weight_type,
                                                    "concat", start_at, end_at, "V only", 3, 0.5)
    enhanced()
    assert len(forwards) == 3  # the whole image, its 3 x 3 crops in one batch, zero pixels for the negative
    for controls in CONTROL_CHANGES:
        enhanced(**controls)
    assert len(forwards) == 3
