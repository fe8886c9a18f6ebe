"""Weight types are per-layer maps derived from the model's block table, equal to the leading pack's
tables (ipadapter-plus-behaviour.md, section 3) with the middle block really patched."""
import pytest
import torch

from comfyui_ipadapter_kit.patching import weight_types as wt
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.layers import cross_attention_layers, transformer_count
from support import controls_doc
from support.layouts import real_layers

# The leading pack's curve tables, as published (ipadapter-plus-behaviour.md, section 3): t -> factor of w.
EASE = {
    "sd15": {"ease in": [1, .9406, .8812, .8219, .7625, .7031, .6438, .5844, .525, .4656, .4062, .3469, .2875,
                         .2281, .1688, .1094],
             "ease out": [.05, .1094, .1688, .2281, .2875, .3469, .4062, .4656, .525, .5844, .6438, .7031, .7625,
                          .8219, .8812, .9406],
             "ease in-out": [.05, .1688, .2875, .4062, .525, .6438, .7625, .8812, 1, .8812, .7625, .6438, .525,
                             .4062, .2875, .1688],
             "reverse in-out": [1, .8812, .7625, .6438, .525, .4062, .2875, .1688, .05, .1688, .2875, .4062, .525,
                                .6438, .7625, .8812]},
    "sdxl": {"ease in": [1, .9136, .8273, .7409, .6545, .5682, .4818, .3955, .3091, .2227, .1364],
             "ease out": [.05, .1364, .2227, .3091, .3955, .4818, .5682, .6545, .7409, .8273, .9136],
             "ease in-out": [.05, .2227, .3955, .5682, .7409, .9136, .9136, .7409, .5682, .3955, .2227],
             "reverse in-out": [1, .8273, .6545, .4818, .3091, .1364, .1364, .3091, .4818, .6545, .8273]},
}
# The block kind of each t (same section: SD1.5 input 1..8, middle, output 3..11; SDXL input 4..8,
# middle, output 0..5).
KINDS = {"sd15": ["input"] * 6 + ["middle"] + ["output"] * 9,
         "sdxl": ["input"] * 4 + ["middle"] + ["output"] * 6}
BLOCK_TYPES = ["weak input", "weak output", "weak middle", "strong input", "strong output", "strong middle"]


def published_factor(name: str, t: int, family: str) -> float:
    """The factor of w at t, from the facts' formulas (not the engine's): curves over L layers; weak X
    = 0.2 on blocks of kind X; strong X = 0.2 on the other kinds (the middle block really patched)."""
    count, kind = len(KINDS[family]), KINDS[family][t]
    half = count / 2
    curves = {"linear": 1.0, "ease in": 0.05 + 0.95 * (1 - t / count), "ease out": 0.05 + 0.95 * t / count,
              "ease in-out": 0.05 + 0.95 * (1 - abs(t - half) / half),
              "reverse in-out": 0.05 + 0.95 * abs(t - half) / half}
    if name in curves:
        return curves[name]
    strength, target = name.split(" ")
    return 0.2 if (kind == target) == (strength == "weak") else 1.0


# rows: t range -> cells for (style transfer, composition, strong style transfer, style and composition,
# strong style and composition, style transfer precise, composition precise)
STYLE_TABLES = {
    "sd15": [(range(0, 4), ("w", "—", "w", "w", "w", "w", "cb ⇄")),
             (range(4, 5), ("—", "0.25w", "—", "0.25wc", "wc", "0.25sb ⇄", "0.25w")),
             (range(5, 6), ("—", "w", "—", "wc", "wc", "sb ⇄", "w")),
             (range(6, 9), ("—", "—", "w", "—", "w", "—", "0.1cb ⇄")),
             (range(9, 16), ("w", "—", "w", "w", "w", "w", "cb ⇄"))],
    "sdxl": [(range(0, 3), ("—", "—", "w", "—", "w", "—", "0.1cb ⇄")),
             (range(3, 4), ("—", "w", "—", "wc", "wc", "sb ⇄", "w")),
             (range(4, 6), ("—", "—", "w", "—", "w", "—", "0.1cb ⇄")),
             (range(6, 7), ("w", "—", "w", "w", "w", "w", "cb ⇄")),
             (range(7, 11), ("—", "—", "w", "—", "w", "—", "0.1cb ⇄"))],
}
CHECKPOINT_BLOCKS = {  # ipadapter-checkpoints.md: first key of each ComfyUI block
    "sd15": {1: ("input", 1), 3: ("input", 2), 5: ("input", 4), 7: ("input", 5), 9: ("input", 7), 11: ("input", 8),
             13: ("output", 3), 19: ("output", 6), 25: ("output", 9), 29: ("output", 11), 31: ("middle", 0)},
    "sdxl": {1: ("input", 4), 5: ("input", 5), 9: ("input", 7), 29: ("input", 8), 49: ("output", 0),
             69: ("output", 1), 109: ("output", 3), 117: ("output", 5), 121: ("middle", 0)},
}


@pytest.mark.parametrize("family, count, transformers", [("sd15", 16, 16), ("sdxl", 70, 11)])
def test_the_block_table_is_read_off_the_model_with_the_middle_block_last(family, count, transformers):
    layers = real_layers(family)
    assert len(layers) == count and transformer_count(layers) == transformers
    assert [l.key for l in layers] == list(range(1, 2 * count, 2))
    for key, block in CHECKPOINT_BLOCKS[family].items():
        assert next(l for l in layers if l.key == key).block == block
    middle = [l for l in layers if l.kind == "middle"]
    assert middle and all(l.block == ("middle", 0) for l in middle)
    assert {l.transformer_index for l in middle} == {6 if family == "sd15" else 4}


def test_transformer_index_is_the_one_the_host_passes_to_each_layer(sd15_model, make_adapter, clip_vit_h,
                                                                     reference_images):
    patched = apply_adapter(sd15_model, make_adapter(sd15_model, "sd15"), clip_vit_h, reference_images[:1])
    seen = {}
    for key, patch in patched.model_options["transformer_options"]["patches_replace"]["attn2"].items():
        def spy(q, k, v, extra_options, patch=patch):
            seen[patch.layer.key] = (extra_options["transformer_index"], extra_options["block"])
            return patch(q, k, v, extra_options)
        patched.set_model_attn2_replace(spy, *key)
    x = torch.randn(2, 4, 8, 8)
    patched.model.apply_model(x, torch.tensor([5.0, 5.0]), c_crossattn=torch.randn(2, 7, 768),
                              transformer_options=dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1]))
    layers = cross_attention_layers(sd15_model.model.diffusion_model)
    assert seen == {l.key: (l.transformer_index, l.block) for l in layers}


def engine_factors(name, family, weight=1.0):
    """t -> the weight the engine gives every layer of that t (one value per t, checked)."""
    layers = real_layers(family)
    rules = wt.layer_rules(name, layers, family, weight=weight)
    by_t = {}
    for layer in layers:
        assert KINDS[family][layer.transformer_index] == layer.kind  # the facts' t -> block kind
        by_t.setdefault(layer.transformer_index, set()).add(rules[layer.key].weight)
    assert all(len(values) == 1 for values in by_t.values()), name
    return [by_t[t].pop() for t in range(len(by_t))]


@pytest.mark.parametrize("name", ["ease in", "ease out", "ease in-out", "reverse in-out"])
@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_curves_match_the_leading_packs_table(family, name):
    got = engine_factors(name, family)
    expected = [published_factor(name, t, family) for t in range(len(KINDS[family]))]
    assert got == pytest.approx(expected, abs=1e-12)
    assert got == pytest.approx(EASE[family][name], abs=6e-5)  # the published table, to its 4 decimals
    doubled = engine_factors(name, family, weight=2.0)
    assert doubled == pytest.approx([2 * v for v in got])


@pytest.mark.parametrize("name", ["linear", *BLOCK_TYPES])
@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_linear_and_block_types_match_the_leading_packs_factors(family, name):
    got = engine_factors(name, family, weight=1.5)
    assert got == pytest.approx([1.5 * published_factor(name, t, family) for t in range(len(KINDS[family]))],
                                abs=1e-12)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_weak_and_strong_middle_act_on_the_middle_block(family):
    layers = real_layers(family)
    weak = wt.layer_rules("weak middle", layers, family, weight=1.0)
    strong = wt.layer_rules("strong middle", layers, family, weight=1.0)
    for layer in layers:
        middle = layer.kind == "middle"
        assert weak[layer.key].weight == (0.2 if middle else 1.0)
        assert strong[layer.key].weight == (1.0 if middle else 0.2)
    assert weak != wt.layer_rules("linear", layers, family)


@pytest.mark.parametrize("kind", ["input", "output"])
def test_weak_and_strong_block_types_weaken_the_named_or_the_other_blocks(kind):
    layers = real_layers("sdxl")
    weak = wt.layer_rules(f"weak {kind}", layers, "sdxl")
    strong = wt.layer_rules(f"strong {kind}", layers, "sdxl")
    for layer in layers:
        assert weak[layer.key].weight == (0.2 if layer.kind == kind else 1.0)
        assert strong[layer.key].weight == (1.0 if layer.kind == kind else 0.2)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_style_and_composition_types_match_the_leading_packs_tables(family):
    layers = real_layers(family)
    basis = {name: [wt.layer_rules(name, layers, family, *(1.0 if i == j else 0.0 for j in range(4)))
                    for i in range(4)] for name in wt.STYLE_TYPES}
    for t_range, cells in STYLE_TABLES[family]:
        for layer in (l for l in layers if l.transformer_index in t_range):
            got = tuple(controls_doc._cell(basis[name], layer.key) for name in wt.STYLE_TYPES)
            assert got == cells, (layer.block, layer.transformer_index)


def test_style_and_composition_give_the_composition_layers_the_composition_role():
    layers = real_layers("sdxl")
    rules = wt.layer_rules("style and composition", layers, "sdxl", 1.0, 0.5)
    composition = {layer.block for layer in layers if layer.key in rules and rules[layer.key].role == "composition"}
    assert composition == {("input", 8)}
    assert {r.weight for r in rules.values() if r.role == "composition"} == {0.5}


def test_a_style_type_on_a_model_without_those_blocks_says_which_blocks_it_needs(sd15_model):
    layers = cross_attention_layers(sd15_model.model.diffusion_model)  # two-level miniature: no input 7/8
    with pytest.raises(wt.WeightTypeError, match=r"'composition' acts on the composition blocks of SD15 .*"
                                                  r"input 7, input 8.*has none of them"):
        wt.layer_rules("composition", layers, "sd15")


def test_an_unknown_weight_type_lists_the_known_ones():
    with pytest.raises(wt.WeightTypeError, match="not one of: linear, ease in"):
        wt.layer_rules("stronk", real_layers("sd15"), "sd15")


def test_the_documented_tables_are_the_engines():
    assert controls_doc.current_doc_tables() == controls_doc.tables(), \
        "docs/controls.md is stale: run tests/support/controls_doc.py"
