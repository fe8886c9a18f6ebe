"""Style & Composition: the style image's tokens on the style layers, the composition image's on the
composition layers, each with its own weight, on SDXL and SD1.5, through the native node.

Expected layers are the leading pack's maps (ipadapter-plus-behaviour.md, section 3), written here
by ComfyUI block id: SDXL style = output 1, composition = input 8; SD1.5 style = input 1, 2, 4, 5
and output 5..11, composition = input 7 (a quarter) and input 8. "strong style and composition"
(expand_style) puts the style image on every layer that is not a composition layer, middle included,
and the composition weight on the composition layers without the quarter.
"""
import pytest
import torch

from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching.apply import apply_adapter, encode
from comfyui_ipadapter_kit.patching.compose import apply_style_composition
from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
from comfyui_ipadapter_kit.patching.plan import BatchMismatchError
from sampling import ksample
from support.layouts import REAL_UNETS
from support.patches import attn2_patches
from support.tiny_unets import fill_deterministic

STYLE = {"sdxl": {("output", 1)},
         "sd15": {("input", 1), ("input", 2), ("input", 4), ("input", 5), *(("output", i) for i in range(5, 12))}}
COMPOSITION = {"sdxl": {("input", 8): 1.0}, "sd15": {("input", 7): 0.25, ("input", 8): 1.0}}
WS, WC = 0.8, 0.3  # weight_style, weight_composition


def make_sd15_layout_model(seed: int = 6):
    """SD1.5's block ids (input 1..8, middle, output 3..11: 16 cross-attention layers) at a tiny width."""
    import comfy.model_patcher
    import comfy.supported_models
    config = dict(REAL_UNETS["sd15"], model_channels=32, image_size=32, in_channels=4, out_channels=4,
                  use_spatial_transformer=True, legacy=False, use_checkpoint=False, use_temporal_resblock=False,
                  use_temporal_attention=False)
    model_config = comfy.supported_models.SD15(config)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    fill_deterministic(model.diffusion_model, seed)
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


@pytest.fixture(scope="module")
def sd15_layout_model():
    return make_sd15_layout_model()


@pytest.fixture(scope="module")
def setups(sd15_layout_model, sdxl_layout_model, make_adapter):
    return {"sd15": (sd15_layout_model, make_adapter(sd15_layout_model, "sd15")),
            "sdxl": (sdxl_layout_model, make_adapter(sdxl_layout_model, "sdxl_vit-h"))}


def style_composition(model, adapter, clip, style, composition, weight_style=WS, weight_composition=WC,
                      expand_style=False):
    """Through the native node, as a workflow runs it."""
    (patched,) = NODES["IPAKitStyleComposition"]().apply(model, adapter, clip, style, composition, weight_style,
                                                         weight_composition, expand_style, "concat", 0.0, 1.0,
                                                         "V only")
    return patched


def plans_by_image(patched):
    """(plan, {block: weight}) of the style plan and of the composition plan on the patched model."""
    plans = {}
    for patch in attn2_patches(patched).values():
        for plan in patch.plans:
            plans.setdefault(id(plan), plan)
    layers = {layer.key: layer for layer in cross_attention_layers(patched.model.diffusion_model)}
    assert len(plans) == 2
    by_role = {next(iter(p.layers.values())).role: p for p in plans.values()}
    style, composition = by_role["style"], by_role["composition"]
    maps = []
    for plan in (style, composition):
        weights = {}
        for key, rule in plan.layers.items():
            assert not rule.swap and rule.role == next(iter(plan.layers.values())).role
            weights.setdefault(layers[key].block, set()).add(round(rule.weight, 6))
        assert all(len(v) == 1 for v in weights.values())  # every transformer block of a block alike
        maps.append({block: v.pop() for block, v in weights.items()})
    return (style, maps[0]), (composition, maps[1])


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_each_image_goes_to_its_own_layers_with_its_own_weight(family, setups, clip_vit_h, reference_images):
    model, adapter = setups[family]
    patched = style_composition(model, adapter, clip_vit_h, reference_images[:1], reference_images[1:2])
    (style, style_map), (composition, composition_map) = plans_by_image(patched)
    assert style_map == {block: WS for block in STYLE[family]}
    assert composition_map == {block: round(WC * f, 6) for block, f in COMPOSITION[family].items()}
    for plan, image in ((style, reference_images[:1]), (composition, reference_images[1:2])):
        cond, uncond = encode(adapter, clip_vit_h, image)
        assert torch.allclose(plan.cond_tokens, adapter.model.project(cond), atol=1e-6)
        assert torch.allclose(plan.uncond_tokens, adapter.model.project(uncond), atol=1e-6)
    assert not torch.allclose(style.cond_tokens, composition.cond_tokens)
    patched_blocks = {key[:2] for key in attn2_patches(patched)}
    assert patched_blocks == STYLE[family] | set(COMPOSITION[family])  # nothing else makes an attention call


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_expand_style_puts_the_style_image_on_every_non_composition_layer(family, setups, clip_vit_h,
                                                                         reference_images):
    model, adapter = setups[family]
    patched = style_composition(model, adapter, clip_vit_h, reference_images[:1], reference_images[1:2],
                                expand_style=True)
    (_, style_map), (_, composition_map) = plans_by_image(patched)
    every_block = {layer.block for layer in cross_attention_layers(model.model.diffusion_model)}
    assert style_map == {block: WS for block in every_block - set(COMPOSITION[family])}
    assert ("middle", 0) in style_map and STYLE[family] < set(style_map)
    assert composition_map == {block: WC for block in COMPOSITION[family]}  # "strong": no quarter on SD1.5


def test_the_two_halves_are_the_style_transfer_and_composition_types(setups, clip_vit_h, reference_images):
    model, adapter = setups["sd15"]
    style, layout = reference_images[:1], reference_images[1:2]
    style_only = ksample(style_composition(model, adapter, clip_vit_h, style, layout, weight_composition=0.0),
                         "sd15", steps=1)
    layout_only = ksample(style_composition(model, adapter, clip_vit_h, style, layout, weight_style=0.0),
                          "sd15", steps=1)
    style_transfer = apply_adapter(model, adapter, clip_vit_h, style, WS, weight_type="style transfer")
    composition = apply_adapter(model, adapter, clip_vit_h, layout, WC, weight_type="composition")
    assert torch.allclose(style_only, ksample(style_transfer, "sd15", steps=1), atol=1e-6)
    assert torch.allclose(layout_only, ksample(composition, "sd15", steps=1), atol=1e-6)
    assert (style_only - layout_only).abs().max() > 1e-4


def test_on_sd15_both_the_style_and_the_composition_image_change_the_result(setups, clip_vit_h, reference_images):
    model, adapter = setups["sd15"]
    a, b, c = reference_images[:1], reference_images[1:2], reference_images[2:3]
    plain = ksample(model, "sd15", steps=2)
    both = ksample(style_composition(model, adapter, clip_vit_h, a, b), "sd15", steps=2)
    other_style = ksample(style_composition(model, adapter, clip_vit_h, c, b), "sd15", steps=2)
    other_layout = ksample(style_composition(model, adapter, clip_vit_h, a, c), "sd15", steps=2)
    assert all(torch.isfinite(x).all() for x in (both, other_style, other_layout))
    assert (both - plain).abs().max() > 1e-3
    assert (other_style - both).abs().max() > 1e-4   # the style image matters
    assert (other_layout - both).abs().max() > 1e-4  # and so does the composition image
    assert (other_style - other_layout).abs().max() > 1e-4


def test_an_image_count_error_names_the_style_or_composition_input(setups, clip_vit_h, reference_images):
    model, adapter = setups["sd15"]
    one_per_frame = apply_style_composition(model, adapter, clip_vit_h, reference_images[:1], reference_images,
                                            WS, WC, unfold_batch=True)  # what the Batch form does
    with pytest.raises(BatchMismatchError, match=r"^image_composition has 3 images for 2 latent frames"):
        ksample(one_per_frame, "sd15", steps=1, batch=2)
