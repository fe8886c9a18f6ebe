"""Finding models by their weights: every variant and encoder identified from its header alone,
presets paired with the encoder they need for the connected model, clear errors when not found."""
import os
import shutil

import pytest
import torch

from comfyui_ipadapter_kit.ip_models import headers
from comfyui_ipadapter_kit.ip_models.identify import identify_file
from comfyui_ipadapter_kit.ip_models.presets import PRESET_NAMES
from comfyui_ipadapter_kit.patching.finder import ModelNotFoundError, find_preset_files
from support.checkpoints import VARIANT_INFO, VARIANTS, image_proj_shapes
from support.layouts import real_layers
from support.sparse import meta_shapes, write_shape_only_bin, write_sparse_safetensors

EXPECTED_ENCODER = {"vit-h": "ViT-H-14", "vit-bigg": "ViT-bigG-14", "vit-l": "ViT-L-14-336"}
REAL_ENCODERS = {  # released encoders: width, layers, heads, MLP, projection, image size
    "ViT-H-14": (1280, 32, 16, 5120, 1024, 224),
    "ViT-bigG-14": (1664, 48, 16, 8192, 1280, 224),
    "ViT-L-14-336": (1024, 24, 16, 4096, 768, 336),
}


def real_adapter_shapes(variant: str) -> dict:
    """{"image_proj": {...}, "ip_adapter": {...}} shapes of the released file of `variant` (all 16 / 70 layers)."""
    info = VARIANT_INFO[variant]
    layers = real_layers(info["family"])
    kv = {f"{l.key}.{n}.weight": (l.width, info["cross_dim"]) for l in layers for n in ("to_k_ip", "to_v_ip")}
    return {"image_proj": image_proj_shapes(variant), "ip_adapter": kv}


def write_adapter(variant: str, path) -> str:
    shapes = real_adapter_shapes(variant)
    if str(path).endswith(".bin"):
        write_shape_only_bin(shapes, path)
    else:
        write_sparse_safetensors({f"{g}.{k}": s for g, sub in shapes.items() for k, s in sub.items()}, path)
    return str(path)


def encoder_shapes(name: str, layout: str) -> dict:
    width, layers, heads, mlp, proj, size = REAL_ENCODERS[name]
    with torch.device("meta"):
        if layout == "transformers":
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
            model = CLIPVisionModelWithProjection(CLIPVisionConfig(
                hidden_size=width, intermediate_size=mlp, projection_dim=proj, num_hidden_layers=layers,
                num_attention_heads=heads, image_size=size, patch_size=14))
            return meta_shapes(model)
        from open_clip.model import CLIPVisionCfg, _build_vision_tower
        tower = _build_vision_tower(proj, CLIPVisionCfg(layers=layers, width=width, head_width=width // heads,
                                                        patch_size=14, image_size=size, mlp_ratio=mlp / width))
        return {**meta_shapes(tower, "visual."), **text_tower_shapes(name), "logit_scale": ()}


def text_tower_shapes(name: str) -> dict:
    """The text tower a released open_clip file carries beside the image tower, from open_clip's own config."""
    import open_clip
    from open_clip.model import CLIPTextCfg, _build_text_tower
    config = open_clip.get_model_config(name)
    with torch.device("meta"):
        return meta_shapes(_build_text_tower(config["embed_dim"], CLIPTextCfg(**config["text_cfg"])))


def real_faceid_shapes(variant: str) -> dict:
    """{"image_proj": {...}, "ip_adapter": {...}} of the released FaceID file of `variant`, LoRA included."""
    from support.checkpoints import _face_shapes, lora_shapes
    info = VARIANT_INFO[variant]
    shapes = real_adapter_shapes(variant)
    if variant == "kolors_faceid-plus":  # the released perceiver: 4 layers, FF ratio 4
        shapes["image_proj"] = _face_shapes({**info, "depth": 4, "ff_mult": 4})
    if info["lora"]:
        shapes["ip_adapter"].update(lora_shapes([l.width for l in real_layers(info["family"])], info["cross_dim"]))
    return shapes


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Every variant as released (real key sets and shapes, no data), in both formats."""
    root = tmp_path_factory.mktemp("released")
    files = {}
    for variant in [*VARIANTS, "kolors_plus"]:
        for ext in (".bin", ".safetensors"):
            files[variant, ext] = write_adapter(variant, root / f"ip-adapter_{variant}{ext}")
    return files


@pytest.mark.parametrize("ext", [".bin", ".safetensors"])
@pytest.mark.parametrize("variant", [*VARIANTS, "kolors_plus"])
def test_every_variant_is_identified_from_its_header(variant, ext, released):
    identity = identify_file(released[variant, ext])
    info = VARIANT_INFO[variant]
    assert identity.kind == "adapter"
    assert identity.spec.variant == variant and identity.spec.family == info["family"]
    assert identity.spec.encoder.name == EXPECTED_ENCODER[info["encoder"]]
    assert len(identity.spec.layer_keys) == (16 if info["family"] == "sd15" else 70)


def test_a_safetensors_file_is_identified_from_a_few_kilobytes(released, tmp_path, monkeypatch):
    path = shutil.copy(released["sdxl_plus_vit-h", ".safetensors"], tmp_path / "fresh.safetensors")  # not cached
    read = []
    real_open = open

    class Counting:
        def __init__(self, *args, **kwargs):
            self.f = real_open(*args, **kwargs)

        def read(self, n=-1):
            data = self.f.read(n)
            read.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
    monkeypatch.setattr(headers, "open", Counting, raising=False)
    assert identify_file(str(path)).spec.variant == "sdxl_plus_vit-h"
    assert os.path.getsize(path) > 100 * 2 ** 20 and 0 < sum(read) < 64 * 2 ** 10


def _bytes_read_and_pages_touched() -> tuple[int, int]:
    """(bytes this process has read through read() calls, minor page faults of this thread): mapped file
    pages that are touched show up as page faults, read ones as bytes read."""
    import resource
    with open("/proc/self/io") as f:
        rchar = next(int(line.split()[1]) for line in f if line.startswith("rchar"))
    return rchar, resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


@pytest.mark.parametrize("torch_loading", ["as installed", "as before PyTorch 2.10"])
def test_a_bin_file_is_identified_without_reading_its_tensor_data(torch_loading, tmp_path, monkeypatch):
    if torch_loading != "as installed":  # older releases read every storage before moving it to the meta device
        if not hasattr(torch.serialization, "_is_meta_location"):
            pytest.skip("the installed PyTorch is such a release")
        monkeypatch.setattr(torch.serialization, "_is_meta_location", lambda map_location: False)
    shapes = real_adapter_shapes("sd15")  # the released file in fp32: real tensors, about 89 MB of data
    path = tmp_path / "renamed.bin"
    torch.save({g: {k: torch.zeros(s) for k, s in sub.items()} for g, sub in shapes.items()}, path)
    size = os.path.getsize(path)
    read_before, touched_before = _bytes_read_and_pages_touched()
    identity = identify_file(str(path))
    read, touched = (after - before for after, before in zip(_bytes_read_and_pages_touched(),
                                                              (read_before, touched_before)))
    assert identity.spec.variant == "sd15" and size > 64 * 2 ** 20
    assert read < size / 100  # the pickle's key names and shapes, not the storages
    assert touched * 64 * 2 ** 10 < size / 4  # nor the data mapped and then touched (64 KiB per fault at most)


def test_a_legacy_pickle_is_still_identified(tmp_path):
    shapes = real_adapter_shapes("sd15_plus")
    path = tmp_path / "old-format.bin"  # PyTorch before 1.6: not a zip, so it cannot be mapped and is read whole
    torch.save({g: {k: torch.zeros(1, dtype=torch.float16).expand(*s) if s else torch.zeros(())
                    for k, s in sub.items()} for g, sub in shapes.items()}, path, _use_new_zipfile_serialization=False)
    assert identify_file(str(path)).spec.variant == "sd15_plus"


def test_headers_are_read_once_per_file_version(released, tmp_path):
    path = shutil.copy(released["sd15", ".bin"], tmp_path / "again.bin")
    before = dict(headers.stats)
    identify_file(path)
    identify_file(path)
    assert headers.stats["parsed"] == before["parsed"] + 1  # the second look reads nothing
    os.utime(path, ns=(0, 0))  # a changed file is read again
    identify_file(path)
    assert headers.stats["parsed"] == before["parsed"] + 2


@pytest.mark.parametrize("layout", ["transformers", "open_clip"])
@pytest.mark.parametrize("name", list(REAL_ENCODERS))
def test_every_encoder_is_identified_from_its_header_in_each_layout(name, layout, tmp_path):
    path = write_sparse_safetensors(encoder_shapes(name, layout), tmp_path / "model.safetensors")
    identity = identify_file(str(path))
    assert identity.kind == "clip_vision" and identity.encoder.name == name
    assert identity.encoder.image_size == REAL_ENCODERS[name][5]


def test_community_adapters_are_identified_whatever_their_names(tmp_path):
    noob = identify_file(write_adapter("sdxl", tmp_path / "noobIPAMARK1_mark1.safetensors"))
    assert noob.spec.variant == "sdxl" and noob.spec.encoder.name == "ViT-bigG-14" and noob.spec.num_tokens == 4
    composition = identify_file(write_adapter("sdxl_plus_vit-h", tmp_path / "ip_plus_composition_sdxl.safetensors"))
    assert composition.spec.variant == "sdxl_plus-composition_vit-h" and composition.spec.projection == "resampler"
    kolors = identify_file(write_adapter("kolors_plus", tmp_path / "whatever.bin"))
    assert kolors.spec.variant == "kolors_plus" and kolors.spec.encoder.image_size == 336


def test_other_files_are_reported_as_unknown_with_the_reason(tmp_path):
    from safetensors.torch import save_file
    save_file({"lora_unet_down.alpha": torch.ones(1)}, str(tmp_path / "a_lora.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00\x01")
    for name in ("a_lora.safetensors", "broken.safetensors"):
        identity = identify_file(str(tmp_path / name))
        assert identity.kind == "unknown" and identity.note


# --------------------------------------------------------------------------- presets
@pytest.fixture
def model_folders(tmp_path, monkeypatch):
    """models/ipadapter and models/clip_vision of their own for one test."""
    import folder_paths
    adapters, encoders = tmp_path / "ipadapter", tmp_path / "clip_vision"
    adapters.mkdir()
    encoders.mkdir()
    for folder, path in (("ipadapter", adapters), ("clip_vision", encoders)):
        monkeypatch.setitem(folder_paths.folder_names_and_paths, folder,
                            ([str(path)], {".safetensors", ".bin"}))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return adapters, encoders


def populate(adapters, encoders, names: dict, encoder_names=("ViT-H-14", "ViT-bigG-14", "ViT-L-14-336")):
    for file_name, variant in names.items():
        write_adapter(variant, adapters / file_name)
    for i, name in enumerate(encoder_names):
        write_sparse_safetensors(encoder_shapes(name, ("transformers", "open_clip")[i % 2]),
                                 encoders / f"encoder_{i}.safetensors")


RENAMED = {"a.safetensors": "sd15", "b.bin": "sd15_vit-G", "c.safetensors": "sd15_plus", "d.safetensors": "sd15_full-face",
           "e.safetensors": "sdxl", "f.bin": "sdxl_vit-h", "g.safetensors": "sdxl_plus_vit-h", "h.bin": "kolors_plus"}


@pytest.mark.parametrize("preset, family, variant, encoder", [
    ("STANDARD (medium strength)", "sd15", "sd15", "ViT-H-14"),
    ("VIT-G (medium strength)", "sd15", "sd15_vit-G", "ViT-bigG-14"),
    ("PLUS (high strength)", "sd15", "sd15_plus", "ViT-H-14"),
    ("FULL FACE - SD1.5 only (portraits stronger)", "sd15", "sd15_full-face", "ViT-H-14"),
    ("STANDARD (medium strength)", "sdxl", "sdxl_vit-h", "ViT-H-14"),
    ("VIT-G (medium strength)", "sdxl", "sdxl", "ViT-bigG-14"),
    ("PLUS (high strength)", "sdxl", "sdxl_plus_vit-h", "ViT-H-14"),
    ("Kolors", "sdxl", "kolors_plus", "ViT-L-14-336"),
])
def test_presets_find_files_by_their_weights_not_their_names(preset, family, variant, encoder, model_folders):
    populate(*model_folders, RENAMED)
    adapter, clip = find_preset_files(preset, family)
    assert adapter.spec.variant.replace("-composition", "") == variant and clip.encoder.name == encoder


def test_a_name_hint_orders_files_the_weights_cannot_tell_apart(model_folders):
    populate(*model_folders, {"plus.safetensors": "sd15_plus", "my-plus-face.safetensors": "sd15_plus-face",
                              "x_composition.safetensors": "sd15_plus"})
    assert find_preset_files("PLUS FACE (portraits)", "sd15")[0].name == "my-plus-face.safetensors"
    assert find_preset_files("PLUS (high strength)", "sd15")[0].name == "plus.safetensors"
    assert find_preset_files("Composition", "sd15")[0].name == "x_composition.safetensors"


def test_a_missing_adapter_lists_what_was_found_and_what_would_do(model_folders):
    populate(*model_folders, {"only-this.safetensors": "sd15"}, encoder_names=("ViT-H-14",))
    with pytest.raises(ModelNotFoundError) as err:
        find_preset_files("PLUS (high strength)", "sd15")
    message = str(err.value)
    assert "resampler projection, CLIP ViT-H-14" in message and "ip-adapter-plus_sd15.safetensors" in message
    assert "only-this.safetensors (sd15" in message and "recognised by their weights" in message
    # every released file of that layout would do (plus face and composition share plus's weights' layout)
    assert ("Files with that layout, under any name: ip-adapter-plus_sd15.safetensors (or .bin), "
            "ip-adapter-plus-face_sd15.safetensors (or .bin), ip_plus_composition_sd15.safetensors.") in message


@pytest.mark.parametrize("preset, family, files", [
    ("STANDARD (medium strength)", "sd15", "ip-adapter_sd15.safetensors (or .bin), ip-adapter_sd15_light.safetensors, "
                                           "ip-adapter_sd15_light_v11.bin"),
    ("LIGHT - SD1.5 only (low strength)", "sd15", "ip-adapter_sd15_light.safetensors, ip-adapter_sd15_light_v11.bin, "
                                                  "ip-adapter_sd15.safetensors (or .bin)"),
    ("VIT-G (medium strength)", "sdxl", "ip-adapter_sdxl.safetensors (or .bin), a community ViT-bigG 4-token SDXL "
                                        "adapter (e.g. noobIPAMARK1_mark1.safetensors)"),
    ("PLUS FACE (portraits)", "sdxl", "ip-adapter-plus-face_sdxl_vit-h.safetensors (or .bin), "
                                      "ip-adapter-plus_sdxl_vit-h.safetensors (or .bin), ip_plus_composition_sdxl.safetensors"),
    ("FULL FACE - SD1.5 only (portraits stronger)", "sd15", "ip-adapter-full-face_sd15.safetensors (or .bin)"),
    ("Kolors", "sdxl", "ip_adapter_plus_general.bin (Kolors-IP-Adapter-Plus), Kolors-IP-Adapter-Plus.safetensors"),
])
def test_a_missing_adapter_lists_every_file_that_would_satisfy_the_preset(preset, family, files, model_folders):
    populate(*model_folders, {}, encoder_names=())
    with pytest.raises(ModelNotFoundError) as err:
        find_preset_files(preset, family)
    assert f"Files with that layout, under any name: {files}. Found there: nothing" in str(err.value)


def test_a_missing_encoder_names_the_one_needed(model_folders):
    populate(*model_folders, {"g.safetensors": "sdxl"}, encoder_names=("ViT-H-14",))
    with pytest.raises(ModelNotFoundError, match=r"no CLIP ViT-bigG-14 image encoder in models/clip_vision "
                                                 r"\(e.g. CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"):
        find_preset_files("VIT-G (medium strength)", "sdxl")


def test_a_preset_for_the_other_base_model_says_so(model_folders):
    from comfyui_ipadapter_kit.ip_models.presets import PresetError
    with pytest.raises(PresetError, match=r"'LIGHT - SD1.5 only \(low strength\)' exists for SD1.5 only, but the "
                                          r"model is SDXL"):
        find_preset_files(PRESET_NAMES[0], "sdxl")


def test_the_unified_loader_skips_adapters_whose_layers_do_not_fit_the_model(model_folders, sd15_model):
    from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
    populate(*model_folders, {"for-real-sd15.safetensors": "sd15_plus"}, encoder_names=("ViT-H-14",))
    with pytest.raises(ModelNotFoundError, match=r"layers matching this model.*for-real-sd15.safetensors \(sd15_plus"):
        NODES["IPAKitUnifiedLoader"]().load(sd15_model, "PLUS (high strength)")  # a two-level miniature UNet


def test_the_unified_loader_loads_the_pair_and_passes_the_model_through(model_folders, sd15_model, tmp_path):
    from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from support.clip_files import write_three_layouts
    adapters, encoders = model_folders
    widths = [l.width for l in cross_attention_layers(sd15_model.model.diffusion_model)]
    save_adapter(make_adapter_state_dict("sd15_plus", widths), adapters / "renamed.bin")
    save_adapter(make_adapter_state_dict("sd15", widths), adapters / "other.safetensors")
    layouts = write_three_layouts("vit-h", tmp_path / "clip")
    shutil.copy(layouts["open_clip.safetensors"], encoders / "my_encoder.safetensors")
    model, adapter, clip = NODES["IPAKitUnifiedLoader"]().load(sd15_model, "PLUS (high strength)")
    assert model is sd15_model and adapter.name == "renamed.bin" and adapter.spec.variant == "sd15_plus"
    assert clip.model.vision_model.post_layernorm.weight.shape[0] == 1280


@pytest.mark.parametrize("variant", ["faceid_sd15", "faceid_sdxl", "faceid-plus_sd15", "faceid-plusv2_sdxl",
                                     "faceid-portrait-v11_sd15", "faceid-portrait_sdxl", "faceid-portrait-unnorm_sdxl",
                                     "kolors_faceid-plus"])
def test_every_faceid_variant_is_identified_from_its_header(variant, tmp_path):
    info = VARIANT_INFO[variant]
    shapes = real_faceid_shapes(variant)
    name = {"faceid-plus_sd15": "ip-adapter-faceid-plus_sd15.bin",
            "faceid-portrait-v11_sd15": "ip-adapter-faceid-portrait-v11_sd15.bin"}.get(variant, f"{variant}.bin")
    write_shape_only_bin(shapes, tmp_path / name)
    spec = identify_file(str(tmp_path / name)).spec
    assert spec.variant == variant and spec.has_lora == info["lora"]
    assert spec.face and (spec.encoder is None) == (info["projection"] != "face-plus")
