"""The compatibility face: ComfyUI_IPAdapter_plus's 37 node ids with exactly its interface (its
`/object_info`, copied in tests/data), the same results as the native nodes, and coexistence."""
import json

import pytest
import torch

import host
from comfyui_ipadapter_kit import compat
from comfyui_ipadapter_kit.compat.pipeline import Pipeline
from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NATIVE
from comfyui_ipadapter_kit.patching import faceid as engine_faceid
from comfyui_ipadapter_kit.patching.compose import Region
from comfyui_ipadapter_kit.patching.embeds import apply_embeds, encode_embeds
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.compose import apply_style_composition
from comfyui_ipadapter_kit.patching.tiled import apply_enhanced, apply_tiled
from sampling import ksample
from support.object_info import node_info

INTERFACE = json.loads((host.REPO / "tests" / "data" / "ipadapter_plus_interface.json").read_text())["nodes"]
FILE_LISTS = {("IPAdapterModelLoader", "ipadapter_file"), ("IPAdapterLoadEmbeds", "embeds")}


@pytest.fixture(scope="module")
def classes():
    found, names = compat.mappings()
    return found, names


def test_all_37_node_ids_are_registered(classes):
    found, _ = classes
    assert len(INTERFACE) == 37 and set(found) == set(INTERFACE)


@pytest.mark.parametrize("node_id", sorted(INTERFACE))
def test_each_node_has_exactly_the_leading_packs_interface(node_id, classes):
    found, names = classes
    ours, theirs = node_info(found[node_id], names[node_id]), INTERFACE[node_id]
    for field in ("display_name", "category", "input_order", "output", "output_name", "output_is_list", "output_node"):
        assert ours[field] == theirs[field], field
    for section, specs in theirs["input"].items():
        assert list(ours["input"][section]) == list(specs), section
        for name, spec in specs.items():
            if (node_id, name) in FILE_LISTS:  # the files found in the folder: a list either way
                assert isinstance(ours["input"][section][name][0], list)
            else:
                assert ours["input"][section][name] == spec, (section, name)


def test_every_compat_input_has_a_tooltip_and_every_node_a_description(classes):
    for node_id, cls in classes[0].items():
        assert cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, value in spec.get(section, {}).items():
                assert value[1].get("tooltip"), (node_id, name)


# --------------------------------------------------------------------------- coexistence
@pytest.fixture
def custom_nodes(tmp_path, monkeypatch):
    import folder_paths
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "custom_nodes", ([str(tmp_path)], set()))
    monkeypatch.delenv(compat.ENV, raising=False)
    return tmp_path


def test_with_the_leading_pack_installed_its_ids_are_left_alone(custom_nodes, monkeypatch, caplog):
    (custom_nodes / "ComfyUI_IPAdapter_plus").mkdir()
    (custom_nodes / "ComfyUI_IPAdapter_plus" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    with caplog.at_level("INFO"):
        assert compat.mappings() == ({}, {})
    assert sum("ComfyUI_IPAdapter_plus is installed" in r.message for r in caplog.records) == 1
    monkeypatch.setenv(compat.ENV, "on")
    assert len(compat.mappings()[0]) == 37


def test_without_it_the_ids_are_registered_unless_switched_off(custom_nodes, monkeypatch):
    (custom_nodes / "ComfyUI_IPAdapter_plus.disabled").mkdir()  # ComfyUI-Manager's disabled form
    assert len(compat.mappings()[0]) == 37
    monkeypatch.setenv(compat.ENV, "off")
    assert compat.mappings() == ({}, {})


def test_native_nodes_are_always_registered(custom_nodes):
    import importlib.util
    import sys
    (custom_nodes / "comfyui_ipadapter_plus").mkdir()
    spec = importlib.util.spec_from_file_location("ipakit_second_copy", host.REPO / "__init__.py",
                                                  submodule_search_locations=[str(host.REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    try:
        spec.loader.exec_module(pack)  # the pack as ComfyUI imports it, with the peer installed
    finally:
        for name in [n for n in sys.modules if n.startswith("ipakit_second_copy")]:
            del sys.modules[name]
    assert set(NATIVE) <= set(pack.NODE_CLASS_MAPPINGS) and "IPAdapterAdvanced" not in pack.NODE_CLASS_MAPPINGS


# --------------------------------------------------------------------------- the same results
@pytest.fixture(scope="module")
def setup(sdxl_layout_model, make_adapter, clip_vit_h, reference_images, tmp_path_factory):
    import folder_paths
    from support.onnx_faces import make_model_folder
    root = make_model_folder(tmp_path_factory.mktemp("compat-insightface"))
    folder_paths.folder_names_and_paths["insightface"] = ([str(root)], {".onnx"})
    face_model = engine_faceid.insightface_model("buffalo_l")
    plain = make_adapter(sdxl_layout_model, "sdxl_vit-h")
    face = make_adapter(sdxl_layout_model, "faceid_sdxl", ext=".bin")
    images = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.5
    return dict(model=sdxl_layout_model, plain=plain, face=face, clip=clip_vit_h, insight=face_model, images=images,
                pipeline=Pipeline(plain, clip_vit_h), face_pipeline=Pipeline(face, clip_vit_h, face_model))


def run_compat(node_id, classes, **kwargs):
    return classes[0][node_id]().execute(**kwargs)[0]


A = dict(weight=0.8, start_at=0.0, end_at=1.0, embeds_scaling="K+V", combine_embeds="average")


def cases(s):
    m, p, fp, img, clip = s["model"], s["pipeline"], s["face_pipeline"], s["images"], s["clip"]
    faces = engine_faceid.analyze_faces(s["insight"], img, "highest score", 0, False, 256)
    pos, neg = encode_embeds(s["plain"], clip, img)
    regions = (Region(img[:1], torch.ones(1, 8, 8)), Region(img[1:], torch.zeros(1, 8, 8), 0.5, 1.0, "ease in"))
    native = {k: v for k, v in NATIVE.items()}
    return {
        "IPAdapter": (dict(model=m, ipadapter=p, image=img, weight=0.8, start_at=0.0, end_at=1.0,
                           weight_type="prompt is more important"),
                      lambda: native["IPAKitApplyAdvanced"]().apply(m, s["plain"], clip, img, 0.8, "ease out", "concat",
                                                                    0.0, 1.0, "V only")[0]),
        "IPAdapterAdvanced": (dict(model=m, ipadapter=p, image=img, weight_type="ease in", **A),
                              lambda: native["IPAKitApplyAdvanced"]().apply(m, s["plain"], clip, img, 0.8, "ease in",
                                                                            "average", 0.0, 1.0, "K+V")[0]),
        "IPAdapterBatch": (dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", start_at=0.0,
                                end_at=1.0, embeds_scaling="V only", encode_batch_size=1),
                           lambda: native["IPAKitApplyBatch"]().apply(m, s["plain"], clip, img, 0.8, "linear", 0.0, 1.0,
                                                                      "V only")[0]),
        "IPAdapterMS": (dict(model=m, ipadapter=p, image=img, weight_faceidv2=1.0, weight_type="linear",
                             layer_weights="3:1, 6:0.5", **A),
                        lambda: native["IPAKitApplyAdvanced"]().apply(m, s["plain"], clip, img, 0.8, "linear", "average",
                                                                      0.0, 1.0, "K+V", layer_weights="3:1, 6:0.5")[0]),
        "IPAdapterPreciseStyleTransfer": (
            dict(model=m, ipadapter=p, image=img, style_boost=1.5, **A),
            lambda: native["IPAKitPreciseStyleTransfer"]().apply(m, s["plain"], clip, img, 0.8, 1.5, "average", 0.0,
                                                                 1.0, "K+V")[0]),
        "IPAdapterPreciseComposition": (
            dict(model=m, ipadapter=p, image=img, composition_boost=0.3, **A),
            lambda: native["IPAKitPreciseComposition"]().apply(m, s["plain"], clip, img, 0.8, 0.3, "average", 0.0,
                                                               1.0, "K+V")[0]),
        "IPAdapterStyleComposition": (
            dict(model=m, ipadapter=p, image_style=img[:1], image_composition=img[1:], weight_style=1.0,
                 weight_composition=0.7, expand_style=True, **{k: v for k, v in A.items() if k != "weight"}),
            lambda: native["IPAKitStyleComposition"]().apply(m, s["plain"], clip, img[:1], img[1:], 1.0, 0.7, True,
                                                             "average", 0.0, 1.0, "K+V")[0]),
        "IPAdapterStyleCompositionBatch": (
            dict(model=m, ipadapter=p, image_style=img, image_composition=img.flip(0), weight_style=1.0,
                 weight_composition=0.7, expand_style=False, start_at=0.0, end_at=1.0, embeds_scaling="V only"),
            lambda: apply_style_composition(m, s["plain"], clip, img, img.flip(0), 1.0, 0.7, False, start_at=0.0,
                                            end_at=1.0, embeds_scaling="V only", unfold_batch=True)),
        "IPAdapterTiled": (dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", combine_embeds="concat",
                                start_at=0.0, end_at=1.0, sharpening=0.2, embeds_scaling="V only"),
                           lambda: native["IPAKitApplyTiled"]().apply(m, s["plain"], clip, img, 0.8, "linear", "concat",
                                                                      0.0, 1.0, 0.2, "V only")[0]),
        "IPAdapterTiledBatch": (dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", start_at=0.0,
                                     end_at=1.0, sharpening=0.0, embeds_scaling="V only", encode_batch_size=0),
                                lambda: apply_tiled(m, s["plain"], clip, img, 0.0, weight=0.8, unfold_batch=True)[0]),
        "IPAdapterClipVisionEnhancer": (
            dict(model=m, ipadapter=p, image=img, weight_type="linear", enhance_tiles=2, enhance_ratio=0.5, **A),
            lambda: native["IPAKitApplyEnhanced"]().apply(m, s["plain"], clip, img, 0.8, "linear", "average", 0.0, 1.0,
                                                          "K+V", 2, 0.5)[0]),
        "IPAdapterClipVisionEnhancerBatch": (
            dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", start_at=0.0, end_at=1.0,
                 embeds_scaling="V only", enhance_tiles=2, enhance_ratio=0.5, encode_batch_size=0),
            lambda: apply_enhanced(m, s["plain"], clip, img, 2, 0.5, weight=0.8, unfold_batch=True)),
        "IPAdapterEmbeds": (dict(model=m, ipadapter=p, pos_embed=pos, weight=0.8, weight_type="linear", start_at=0.0,
                                 end_at=1.0, embeds_scaling="V only", neg_embed=neg),
                            lambda: native["IPAKitApplyEmbeds"]().apply(m, s["plain"], pos, 0.8, "linear", 0.0, 1.0,
                                                                        "V only", neg_embed=neg)[0]),
        "IPAdapterEmbedsBatch": (dict(model=m, ipadapter=p, pos_embed=pos, weight=0.8, weight_type="linear", start_at=0.0,
                                      end_at=1.0, embeds_scaling="V only"),
                                 lambda: apply_embeds(m, s["plain"], pos, None, clip, weight=0.8, unfold_batch=True)),
        "IPAdapterFromParams": (dict(model=m, ipadapter=p, ipadapter_params=regions, combine_embeds="concat",
                                     embeds_scaling="V only"),
                                lambda: native["IPAKitApplyRegions"]().apply(m, s["plain"], clip, regions, "concat",
                                                                             "V only")[0]),
        "IPAdapterFaceID": (dict(model=m, ipadapter=fp, image=img, weight=0.8, weight_faceidv2=1.3, weight_type="linear",
                                 combine_embeds="concat", start_at=0.0, end_at=1.0, embeds_scaling="V only"),
                            lambda: native["IPAKitApplyFaceID"]().apply(m, s["face"], faces, 0.8, 1.3, "linear", "concat",
                                                                        0.0, 1.0, "V only", 0.0, "auto", clip)[0]),
        "IPAAdapterFaceIDBatch": (dict(model=m, ipadapter=fp, image=img, weight=0.8, weight_faceidv2=1.3,
                                       weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                                       embeds_scaling="V only"),
                                  lambda: engine_faceid.apply_faceid(m, s["face"], faces, clip, 0.8, 1.3, 0.0,
                                                                     unfold_batch=True)),
        "IPAdapterFaceIDKolors": (dict(model=m, ipadapter=fp, image=img, weight=0.8, weight_faceidv2=1.3, weight_kolors=1.0,
                                       weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                                       embeds_scaling="V only"),
                                  lambda: engine_faceid.apply_faceid(m, s["face"], faces, clip, 0.8, 1.3, 0.0)),
        "IPAdapterPreciseStyleTransferBatch": (
            dict(model=m, ipadapter=p, image=img, style_boost=1.0, **A),
            lambda: apply_adapter(m, s["plain"], clip, img, 0.8, weight_type="style transfer precise", style_boost=1.0,
                                  embeds_scaling="K+V", combine_embeds="average", unfold_batch=True)),
        "IPAdapterPreciseCompositionBatch": (
            dict(model=m, ipadapter=p, image=img, composition_boost=0.0, **A),
            lambda: apply_adapter(m, s["plain"], clip, img, 0.8, weight_type="composition precise", composition_boost=0.0,
                                  embeds_scaling="K+V", combine_embeds="average", unfold_batch=True)),
    }


APPLY_IDS = ["IPAdapter", "IPAdapterAdvanced", "IPAdapterBatch", "IPAdapterMS", "IPAdapterPreciseStyleTransfer",
             "IPAdapterPreciseStyleTransferBatch", "IPAdapterPreciseComposition", "IPAdapterPreciseCompositionBatch",
             "IPAdapterStyleComposition", "IPAdapterStyleCompositionBatch", "IPAdapterTiled", "IPAdapterTiledBatch",
             "IPAdapterClipVisionEnhancer", "IPAdapterClipVisionEnhancerBatch", "IPAdapterEmbeds",
             "IPAdapterEmbedsBatch", "IPAdapterFromParams", "IPAdapterFaceID", "IPAAdapterFaceIDBatch",
             "IPAdapterFaceIDKolors"]


@pytest.mark.parametrize("node_id", APPLY_IDS)
def test_compat_apply_equals_the_native_path_bit_for_bit(node_id, setup, classes):
    kwargs, native = cases(setup)[node_id]
    compat_model = run_compat(node_id, classes, **kwargs)
    native_model = native()
    batch = 2 if "Batch" in node_id else 1
    assert torch.equal(ksample(compat_model, "sdxl", steps=1, batch=batch),
                       ksample(native_model, "sdxl", steps=1, batch=batch))
    assert not torch.equal(ksample(compat_model, "sdxl", steps=1, batch=batch),
                           ksample(setup["model"], "sdxl", steps=1, batch=batch))


def test_a_raw_adapter_without_an_encoder_says_what_to_connect(setup, classes):
    with pytest.raises(ValueError, match="no CLIP vision model: connect clip_vision, or load the adapter with a unified"):
        run_compat("IPAdapterAdvanced", classes, model=setup["model"], ipadapter=Pipeline(setup["plain"]),
                   image=setup["images"], weight_type="linear", **A)


def test_a_faceid_adapter_without_insightface_says_what_to_connect(setup, classes):
    with pytest.raises(engine_faceid.FaceIDError, match="an insightface model is required for FaceID models: connect"):
        run_compat("IPAdapterAdvanced", classes, model=setup["model"], ipadapter=Pipeline(setup["face"], setup["clip"]),
                   image=setup["images"], weight_type="linear", **A)


def test_a_chained_unified_loader_keeps_the_upstream_insightface():
    upstream = Pipeline("faceid-adapter", "clip", "insightface")
    chained = Pipeline("plus-adapter", "clip2").joined(upstream)
    assert (chained.adapter, chained.clip_vision, chained.insightface) == ("plus-adapter", "clip2", "insightface")
    assert upstream.adapter == "faceid-adapter"  # the upstream pipeline is never changed
