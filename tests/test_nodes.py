"""The ComfyUI face of the pack: registered nodes, their inputs and the model folder."""
import folder_paths
import nodes as host_nodes
import pytest
import torch

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


@pytest.fixture
def models_only_under_extra_model_paths(tmp_path, monkeypatch, sd15_model):
    """An SD1.5 plus adapter and a ViT-H encoder (open_clip layout) under folders named only by an
    extra_model_paths.yaml, read by the host's own loader; models/ipadapter and models/clip_vision are empty."""
    import shutil

    import utils.extra_config
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from support.clip_files import write_three_layouts
    for folder in ("ipadapter", "clip_vision"):
        empty = tmp_path / "models" / folder
        empty.mkdir(parents=True)
        monkeypatch.setitem(folder_paths.folder_names_and_paths, folder,
                            ([str(empty)], set(folder_paths.folder_names_and_paths[folder][1])))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    shared = tmp_path / "shared"
    (shared / "adapters").mkdir(parents=True)
    (shared / "encoders").mkdir()
    widths = [layer.width for layer in cross_attention_layers(sd15_model.model.diffusion_model)]
    save_adapter(make_adapter_state_dict("sd15_plus", widths), shared / "adapters" / "from-yaml.bin")
    encoder = write_three_layouts("vit-h", tmp_path / "clip")["open_clip.safetensors"]
    shutil.copy(encoder, shared / "encoders" / "encoder-from-yaml.safetensors")
    yaml = tmp_path / "extra_model_paths.yaml"
    yaml.write_text(f"shared:\n  base_path: {shared}\n  ipadapter: adapters\n  clip_vision: encoders\n")
    utils.extra_config.load_extra_path_config(str(yaml))
    return shared


def test_the_clip_vision_loader_lists_and_loads_encoders_under_extra_model_paths(models_only_under_extra_model_paths):
    listed = NODE_CLASS_MAPPINGS["IPAKitClipVisionLoader"].INPUT_TYPES()["required"]["clip_name"][0]
    assert listed == ["encoder-from-yaml.safetensors"]
    (clip,) = NODE_CLASS_MAPPINGS["IPAKitClipVisionLoader"]().load("encoder-from-yaml.safetensors")
    assert clip.model.vision_model.post_layernorm.weight.shape == (1280,)


def test_the_unified_loader_finds_adapter_and_encoder_only_under_extra_model_paths(models_only_under_extra_model_paths,
                                                                                    sd15_model):
    from comfyui_ipadapter_kit.patching.clip_loader import load_clip_vision
    model, adapter, clip = NODE_CLASS_MAPPINGS["IPAKitUnifiedLoader"]().load(sd15_model, "PLUS (high strength)")
    assert model is sd15_model and adapter.name == "from-yaml.bin" and adapter.spec.variant == "sd15_plus"
    expected = load_clip_vision(str(models_only_under_extra_model_paths / "encoders" / "encoder-from-yaml.safetensors"))
    assert torch.equal(clip.model.vision_model.post_layernorm.weight, expected.model.vision_model.post_layernorm.weight)


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
