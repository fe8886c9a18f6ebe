"""The ComfyUI face of the pack: registered nodes, their inputs and the model folder."""
import folder_paths
import nodes as host_nodes
import pytest

from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

PEER_NODE_IDS = {"IPAdapter", "IPAdapterAdvanced", "IPAdapterModelLoader", "IPAdapterUnifiedLoader"}


def all_inputs(node_class):
    spec = node_class.INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def test_node_ids_are_distinct_from_other_ipadapter_packs():
    assert set(NODE_CLASS_MAPPINGS).isdisjoint(PEER_NODE_IDS)
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_every_input_has_a_tooltip_and_every_node_a_description(node_id):
    node_class = NODE_CLASS_MAPPINGS[node_id]
    assert node_class.DESCRIPTION
    for name, (_, options) in all_inputs(node_class).items():
        assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_apply_node_takes_the_core_clip_vision_type():
    inputs = all_inputs(NODE_CLASS_MAPPINGS["IPAKitApply"])
    assert inputs["clip_vision"][0] == "CLIP_VISION"
    assert inputs["weight"][1]["min"] == -1.0 and inputs["weight"][1]["max"] == 5.0


def test_loader_lists_models_ipadapter_and_extra_model_paths(tmp_path, make_adapter, sd15_model):
    default = folder_paths.get_folder_paths("ipadapter")[0]
    assert default == f"{folder_paths.models_dir}/ipadapter"
    extra = tmp_path / "shared-ipadapters"
    extra.mkdir()
    make_adapter(sd15_model, "sd15")  # writes into the session folder, not here
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    widths = [layer.width for layer in cross_attention_layers(sd15_model.model.diffusion_model)]
    save_adapter(make_adapter_state_dict("sd15_plus", widths), extra / "plus-from-yaml.bin")
    (extra / "notes.txt").write_text("not a model")
    yaml = tmp_path / "extra_model_paths.yaml"
    yaml.write_text(f"mine:\n  base_path: {tmp_path}\n  ipadapter: shared-ipadapters\n")
    import utils.extra_config
    utils.extra_config.load_extra_path_config(str(yaml))
    listed = NODE_CLASS_MAPPINGS["IPAKitAdapterLoader"].INPUT_TYPES()["required"]["adapter_name"][0]
    assert "plus-from-yaml.bin" in listed and "notes.txt" not in listed
    (adapter,) = NODE_CLASS_MAPPINGS["IPAKitAdapterLoader"]().load("plus-from-yaml.bin")
    assert adapter.spec.variant == "sd15_plus"


def test_pack_loads_through_the_hosts_custom_node_loader(tmp_path):
    import asyncio
    from host import REPO
    link = tmp_path / "comfyui-ipadapter-kit"
    link.symlink_to(REPO, target_is_directory=True)
    before = dict(host_nodes.NODE_CLASS_MAPPINGS)
    try:
        assert asyncio.run(host_nodes.load_custom_node(str(link)))
        assert {"IPAKitAdapterLoader", "IPAKitApply"} <= set(host_nodes.NODE_CLASS_MAPPINGS)
    finally:
        host_nodes.NODE_CLASS_MAPPINGS.clear()
        host_nodes.NODE_CLASS_MAPPINGS.update(before)


def test_apply_node_returns_a_patched_clone(sd15_model, make_adapter, clip_vit_h, reference_images):
    adapter = make_adapter(sd15_model, "sd15")
    (patched,) = NODE_CLASS_MAPPINGS["IPAKitApply"]().apply(sd15_model, adapter, clip_vit_h, reference_images[:1],
                                                            1.0, 0.0, 1.0)
    assert patched is not sd15_model and patched.is_clone(sd15_model)
    assert patched.model_options["transformer_options"]["patches_replace"]["attn2"]
