"""Weight types are per-layer maps derived from the model's block table, equal to the leading pack's
tables (ipadapter-plus-behaviour.md, section 3) with the middle block really patched."""
import pytest
import torch

from comfyui_ipadapter_kit.patching import weight_types as wt
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.layers import cross_attention_layers, transformer_count
from support import controls_doc
from support.layouts import real_layers

# The leading pack's tables, as published: t -> value (curves: factor of w; styles: monomials).
EASE = {
    "sd15": {"ease in": [1, .9406, .8812, .8219, .7625, .7031, .6438, .5844, .525, .4656, .4062, .3469, .2875,
                         .2281, .1688, .1094],
             "ease in-out": [.05, .1688, .2875, .4062, .525, .6438, .7625, .8812, 1, .8812, .7625, .6438, .525,
                             .4062, .2875, .1688]},
    "sdxl": {"ease out": [.05, .1364, .2227, .3091, .3955, .4818, .5682, .6545, .7409, .8273, .9136],
             "reverse in-out": [1, .8273, .6545, .4818, .3091, .1364, .1364, .3091, .4818, .6545, .8273]},
}
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


def factors_by_t(rules, layers):
    out = {}
    for layer in layers:
        rule = rules.get(layer.key)
        out.setdefault(layer.transformer_index, set()).add(None if rule is None else round(rule.weight, 4))
    return out


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


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_curves_match_the_leading_packs_table(family):
    layers = real_layers(family)
    for name, values in EASE[family].items():
        got = factors_by_t(wt.layer_rules(name, layers, family, weight=1.0), layers)
        assert got == {t: {v} for t, v in enumerate(values)}, name
        doubled = wt.layer_rules(name, layers, family, weight=2.0)
        assert all(doubled[k].weight == pytest.approx(2 * r.weight)
                   for k, r in wt.layer_rules(name, layers, family).items())


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
