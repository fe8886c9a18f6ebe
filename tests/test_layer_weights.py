"""Custom per-layer weights: the leading pack's index string and InstantStyle block dicts."""
import pytest

from comfyui_ipadapter_kit.patching import weight_types as wt
from comfyui_ipadapter_kit.patching.apply import Controls, plan_rules
from comfyui_ipadapter_kit.patching.layer_weights import LayerWeightsError, parse_layer_weights
from support.layouts import real_layers


def by_block(factors, layers):
    return {layer.block: factors[layer.key] for layer in layers if layer.key in factors}


def test_an_index_string_weights_the_listed_layers_and_skips_the_rest():
    layers = real_layers("sdxl")
    factors = parse_layer_weights("3: 1.0, 6:0.5,\n", layers)  # spaces, new lines and a trailing comma
    assert set(by_block(factors, layers).items()) == {(("input", 8), 1.0), (("output", 1), 0.5)}
    assert len(factors) == 20  # input 8 and output 1 each hold 10 transformer blocks


def test_the_middle_block_can_be_addressed_by_its_index():
    layers = real_layers("sd15")
    assert by_block(parse_layer_weights("6:0.7", layers), layers) == {("middle", 0): 0.7}


def test_an_empty_string_means_use_the_weight_type():
    assert parse_layer_weights("  \n", real_layers("sd15")) is None


def test_custom_weights_multiply_the_weight_and_replace_the_type():
    layers = real_layers("sd15")
    rules = plan_rules(Controls(weight_type="ease in", layer_weights="0:1, 15:0.5"), layers, "sd15", weight=0.8)
    t_of = {layer.key: layer.transformer_index for layer in layers}
    assert {t_of[key]: rule.weight for key, rule in rules.items()} == {0: 0.8, 15: 0.4}


def test_custom_weights_on_a_precise_type_keep_its_swaps():
    layers = real_layers("sdxl")
    rules = plan_rules(Controls(weight_type="style transfer precise", layer_weights="3:1, 6:1"), layers, "sdxl", 1.0)
    swapped = {l.block for l in layers if l.key in rules and rules[l.key].swap}
    plain = {l.block for l in layers if l.key in rules and not rules[l.key].swap}
    assert swapped == {("input", 8)} and plain == {("output", 1)}


@pytest.mark.parametrize("text, message", [
    ("16:1.0", r"index 16 is not a layer of this model; its layers are 0..15"),
    ("3=1.0", r"'3=1.0' is not 'index:value'"),
    ("a:1", r"'a:1' is not 'index:value'"),
])
def test_a_bad_index_string_names_the_input_and_the_problem(text, message):
    with pytest.raises(LayerWeightsError, match=r"^layer_weights: " + message):
        parse_layer_weights(text, real_layers("sd15"))


def test_instantstyles_style_and_layout_dict_is_style_and_composition_on_sdxl():
    layers = real_layers("sdxl")
    factors = parse_layer_weights('{"down": {"block_2": [0.0, 1.0]}, "up": {"block_0": [0.0, 1.0, 0.0]}}', layers)
    nonzero = {k for k, v in factors.items() if v}
    assert nonzero == set(wt.layer_rules("style and composition", layers, "sdxl"))


def test_a_python_literal_dict_and_numbers_for_whole_blocks_are_accepted():
    layers = real_layers("sd15")
    factors = parse_layer_weights("{'up': {'block_1': 0.5}, 'mid': [0.25], 'down': 1}", layers)
    got = by_block(factors, layers)
    assert got[("output", 3)] == got[("output", 4)] == got[("output", 5)] == 0.5
    assert got[("middle", 0)] == 0.25
    assert all(got[("input", i)] == 1.0 for i in (1, 2, 4, 5, 7, 8))
    assert got[("output", 9)] == 0.0  # not named: off, as in diffusers


@pytest.mark.parametrize("text, message", [
    ('{"middle": 1}', r"unknown key\(s\) \['middle'\]"),
    ('{"up": {"block_3": [1, 1]}}', r"up.block_3 has 3 attention\(s\), got 2 values"),
    ('{"down": {"block_3": 1}}', r"down.block_3 is not a down block with attention in this model; "
                                 r"those are block_0, block_1, block_2"),
    ('{"up": {"block_1": "high"}}', r"must be a number, got 'high'"),
    ('{"down": {"block_0": [1, }', r"neither JSON nor a Python dict"),
    ('{"mid": [1, 2]}', r"'mid' takes one value, got 2"),
])
def test_a_malformed_block_dict_says_what_is_wrong(text, message):
    with pytest.raises(LayerWeightsError, match=message):
        parse_layer_weights(text, real_layers("sd15"))
