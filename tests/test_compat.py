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
from sampling import ksample
from support.object_info import node_info
from support.patches import first_plan

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


def test_ids_already_registered_by_the_leading_pack_are_left_to_it(custom_nodes, monkeypatch, caplog):
    import nodes  # it loaded first, from a folder of any name: ComfyUI set its class's module and origin
    peer = type("IPAdapterAdvanced", (), {"__module__": "/srv/custom_nodes/my ipadapter copy.IPAdapterPlus",
                                          "RELATIVE_PYTHON_MODULE": "custom_nodes.my ipadapter copy"})
    monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, "IPAdapterAdvanced", peer)
    with caplog.at_level("INFO"):
        assert compat.mappings() == ({}, {})
    assert [r.message for r in caplog.records if "left to it" in r.message] == [
        "IPAdapter Kit: ComfyUI_IPAdapter_plus is installed (IPAdapterAdvanced is already registered by "
        "custom_nodes.my ipadapter copy): its node ids are left to it (set IPAKIT_COMPAT=on to use this pack's "
        "instead)"]
    monkeypatch.setenv(compat.ENV, "on")
    assert len(compat.mappings()[0]) == 37


def test_our_own_earlier_registration_does_not_count_as_the_leading_pack(custom_nodes, monkeypatch, classes):
    import nodes
    monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, "IPAdapterAdvanced", classes[0]["IPAdapterAdvanced"])
    assert len(compat.mappings()[0]) == 37


def test_a_renamed_copy_of_the_leading_pack_is_found_by_its_modules(custom_nodes):
    copy = custom_nodes / "ipadapter-fork-main"
    copy.mkdir()
    for name in ("__init__.py", "IPAdapterPlus.py", "CrossAttentionPatch.py"):
        (copy / name).write_text("")
    assert compat.mappings() == ({}, {})


def test_registering_says_what_was_checked_not_that_the_pack_is_absent(custom_nodes, caplog):
    (custom_nodes / "some-other-pack").mkdir()  # could be the leading pack renamed and trimmed: not knowable
    with caplog.at_level("INFO"):
        assert len(compat.mappings()[0]) == 37
    (line,) = [r.message for r in caplog.records if "registered on this pack's engine" in r.message]
    assert "not found in custom_nodes" in line and "under another folder name that loads after this pack would " \
                                                  "replace them: set IPAKIT_COMPAT=off" in line


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
def setup(sdxl_layout_model, make_adapter, clip_vit_h, tmp_path_factory):
    import folder_paths
    from support.onnx_faces import make_model_folder
    root = make_model_folder(tmp_path_factory.mktemp("compat-insightface"))
    folder_paths.folder_names_and_paths["insightface"] = ([str(root)], {".onnx"})
    face_model = NATIVE["IPAKitInsightFaceLoader"]().load("buffalo_l", "CPU")[0]
    plain = make_adapter(sdxl_layout_model, "sdxl_vit-h")
    face = make_adapter(sdxl_layout_model, "faceid-plusv2_sdxl", ext=".bin")  # v2: weight_faceidv2 matters
    assert face.spec.plus_v2
    images = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.5
    return dict(model=sdxl_layout_model, plain=plain, face=face, clip=clip_vit_h, insight=face_model, images=images,
                pipeline=Pipeline(plain, clip_vit_h), face_pipeline=Pipeline(face, clip_vit_h, face_model))


@pytest.fixture
def kolors(setup, make_adapter):
    """Kolors FaceID-Plus on a UNet that carries the Kolors encoder_hid_proj (4096 -> 2048), for this test only."""
    from support.tiny_clip import make_clip_vision
    unet = setup["model"].model.diffusion_model
    proj = torch.nn.Linear(4096, 2048)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        proj.weight.copy_(torch.randn(2048, 4096, generator=gen) / 64)
        proj.bias.copy_(torch.randn(2048, generator=gen) * 0.02)
    unet.encoder_hid_proj = proj
    adapter = make_adapter(setup["model"], "kolors_faceid-plus")
    vit_l = make_clip_vision("vit-l", seed=5)
    try:
        yield dict(kolors=adapter, vit_l=vit_l, kolors_pipeline=Pipeline(adapter, vit_l, setup["insight"]))
    finally:
        del unet.encoder_hid_proj


def run_compat(node_id, classes, **kwargs):
    return classes[0][node_id]().execute(**kwargs)[0]


A = dict(weight=0.8, start_at=0.0, end_at=1.0, embeds_scaling="K+V", combine_embeds="average")
ADV = {k: v for k, v in A.items() if k != "weight"}
V = dict(start_at=0.0, end_at=1.0, embeds_scaling="V only")
FACE = dict(weight_type="linear", combine_embeds="concat", **V)


def native(name):
    return NATIVE[name]()


def faces_of(s, images, crop=256, choice="highest score"):  # the leading pack's SDXL crop and choice of face
    return native("IPAKitFaceAnalysis").analyze(s["insight"], images, choice, 0, False, crop)[0]


def native_faceid(s, model, adapter, faces, clip, weight, v2, controls=FACE, **more):  # every value explicit
    return native("IPAKitApplyFaceID").apply(model=model, ipadapter=adapter, faces=faces, weight=weight,
                                             weight_faceidv2=v2, lora_strength=0.0, plus_version="v2", clip_vision=clip,
                                             **controls, **more)[0]


def batch(s, model, image, weight, weight_type, **more):
    return native("IPAKitApplyBatch").apply(model, s["plain"], s["clip"], image, weight, weight_type, 0.0, 1.0,
                                            "V only", **more)[0]


def style_composition_batch(s, m, img):
    # Style & Composition puts the style images on every non-composition layer (expand_style) at weight_style and
    # the composition images on the composition layer at weight_composition, each with its own negative: the
    # native batch node twice, "strong style transfer" then "composition" (one plan per layer either way).
    return batch(s, batch(s, m, img, 1.0, "strong style transfer"), img.flip(0), 0.7, "composition")


def tiled_batch(s, m, img):
    # Tiled Batch: every tile of the references, one reference per latent frame, under the tile's mask: the native
    # tiled node's own tiles and masks through the native batch node, one tile after the other.
    _, tiles, masks = native("IPAKitApplyTiled").apply(m, s["plain"], s["clip"], img, 0.8, "linear", "concat", 0.0,
                                                       1.0, 0.2, "V only")
    for t in range(masks.shape[0]):
        m = batch(s, m, tiles[t * len(img):(t + 1) * len(img)], 0.8, "linear", attn_mask=masks[t:t + 1])
    return m


def cases(s):
    """key -> (compat node id, its inputs, the native path). Batch nodes without a native batch twin are compared
    with one reference image against the native node: one image serves every frame whether unfolded or not, and no
    combine happens (marked "one image")."""
    m, p, fp, img, clip, ad = s["model"], s["pipeline"], s["face_pipeline"], s["images"], s["clip"], s["plain"]
    one = img[:1]
    pos, neg = native("IPAKitEncoder").encode(ad, clip, img, 1.0)
    regions = (Region(img[:1], torch.ones(1, 8, 8)), Region(img[1:], torch.zeros(1, 8, 8), 0.5, 1.0, "ease in"))
    found = {
        "IPAdapter": (dict(model=m, ipadapter=p, image=img, weight=0.8, start_at=0.0, end_at=1.0,
                           weight_type="prompt is more important"),
                      lambda: native("IPAKitApplyAdvanced").apply(m, ad, clip, img, 0.8, "ease out", "concat", 0.0, 1.0,
                                                                  "V only")[0]),
        "IPAdapterAdvanced": (dict(model=m, ipadapter=p, image=img, weight_type="ease in", **A),
                              lambda: native("IPAKitApplyAdvanced").apply(m, ad, clip, img, 0.8, "ease in", "average",
                                                                          0.0, 1.0, "K+V")[0]),
        "IPAdapterBatch": (dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", encode_batch_size=1,
                                **V), lambda: batch(s, m, img, 0.8, "linear")),
        "IPAdapterMS": (dict(model=m, ipadapter=p, image=img, weight_faceidv2=1.0, weight_type="linear",
                             layer_weights="3:1, 6:0.5", **A),
                        lambda: native("IPAKitApplyAdvanced").apply(m, ad, clip, img, 0.8, "linear", "average", 0.0,
                                                                    1.0, "K+V", layer_weights="3:1, 6:0.5")[0]),
        "IPAdapterPreciseStyleTransfer": (
            dict(model=m, ipadapter=p, image=img, style_boost=1.5, **A),
            lambda: native("IPAKitPreciseStyleTransfer").apply(m, ad, clip, img, 0.8, 1.5, "average", 0.0, 1.0,
                                                               "K+V")[0]),
        # a boost equal to the weight is the precise type's default: the native batch node with that type
        "IPAdapterPreciseStyleTransferBatch": (dict(model=m, ipadapter=p, image=img, weight=0.8, style_boost=0.8,
                                                    combine_embeds="average", **V),
                                               lambda: batch(s, m, img, 0.8, "style transfer precise")),
        "IPAdapterPreciseStyleTransferBatch/one image": (
            dict(model=m, ipadapter=p, image=one, style_boost=1.5, **A),
            lambda: native("IPAKitPreciseStyleTransfer").apply(m, ad, clip, one, 0.8, 1.5, "concat", 0.0, 1.0,
                                                               "K+V")[0]),
        "IPAdapterPreciseComposition": (
            dict(model=m, ipadapter=p, image=img, composition_boost=0.3, **A),
            lambda: native("IPAKitPreciseComposition").apply(m, ad, clip, img, 0.8, 0.3, "average", 0.0, 1.0,
                                                             "K+V")[0]),
        "IPAdapterPreciseCompositionBatch": (dict(model=m, ipadapter=p, image=img, weight=0.8, composition_boost=0.8,
                                                  combine_embeds="average", **V),
                                             lambda: batch(s, m, img, 0.8, "composition precise")),
        "IPAdapterPreciseCompositionBatch/one image": (
            dict(model=m, ipadapter=p, image=one, composition_boost=0.3, **A),
            lambda: native("IPAKitPreciseComposition").apply(m, ad, clip, one, 0.8, 0.3, "concat", 0.0, 1.0,
                                                             "K+V")[0]),
        "IPAdapterStyleComposition": (
            dict(model=m, ipadapter=p, image_style=img[:1], image_composition=img[1:], weight_style=1.0,
                 weight_composition=0.7, expand_style=True, **ADV),
            lambda: native("IPAKitStyleComposition").apply(m, ad, clip, img[:1], img[1:], 1.0, 0.7, True, "average",
                                                           0.0, 1.0, "K+V")[0]),
        "IPAdapterStyleCompositionBatch": (
            dict(model=m, ipadapter=p, image_style=img, image_composition=img.flip(0), weight_style=1.0,
                 weight_composition=0.7, expand_style=True, **V), lambda: style_composition_batch(s, m, img)),
        "IPAdapterTiled": (dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", combine_embeds="concat",
                                sharpening=0.2, **V),
                           lambda: native("IPAKitApplyTiled").apply(m, ad, clip, img, 0.8, "linear", "concat", 0.0, 1.0,
                                                                    0.2, "V only")[0]),
        "IPAdapterTiledBatch": (dict(model=m, ipadapter=p, image=img, weight=0.8, weight_type="linear", sharpening=0.2,
                                     encode_batch_size=0, **V), lambda: tiled_batch(s, m, img)),
        "IPAdapterClipVisionEnhancer": (
            dict(model=m, ipadapter=p, image=img, weight_type="linear", enhance_tiles=2, enhance_ratio=0.5, **A),
            lambda: native("IPAKitApplyEnhanced").apply(m, ad, clip, img, 0.8, "linear", "average", 0.0, 1.0, "K+V", 2,
                                                        0.5)[0]),
        "IPAdapterClipVisionEnhancerBatch/one image": (
            dict(model=m, ipadapter=p, image=one, weight=0.8, weight_type="linear", enhance_tiles=2, enhance_ratio=0.5,
                 encode_batch_size=0, **V),
            lambda: native("IPAKitApplyEnhanced").apply(m, ad, clip, one, 0.8, "linear", "concat", 0.0, 1.0, "V only",
                                                        2, 0.5)[0]),
        "IPAdapterEmbeds": (dict(model=m, ipadapter=p, pos_embed=pos, weight=0.8, weight_type="linear", neg_embed=neg,
                                 **V),
                            lambda: native("IPAKitApplyEmbeds").apply(m, ad, pos, 0.8, "linear", 0.0, 1.0, "V only",
                                                                      neg_embed=neg)[0]),
        # the encoder's embeddings of the images, one per frame: what the native batch node does with the images
        "IPAdapterEmbedsBatch": (dict(model=m, ipadapter=p, pos_embed=pos, weight=0.8, weight_type="linear",
                                      neg_embed=neg, **V), lambda: batch(s, m, img, 0.8, "linear")),
        "IPAdapterFromParams": (dict(model=m, ipadapter=p, ipadapter_params=regions, combine_embeds="concat",
                                     embeds_scaling="V only"),
                                lambda: native("IPAKitApplyRegions").apply(m, ad, clip, regions, "concat",
                                                                           "V only")[0]),
        "IPAdapterFaceID": (dict(model=m, ipadapter=fp, image=img, weight=0.8, weight_faceidv2=1.3, **FACE),
                            lambda: native_faceid(s, m, s["face"], faces_of(s, img), clip, 0.8, 1.3)),
        # nodes without weight_faceidv2 give the v2 shortcut twice the weight, as the leading pack does
        "IPAdapterAdvanced/FaceID-Plus v2": (dict(model=m, ipadapter=fp, image=img, weight_type="linear", **A),
                                             lambda: native_faceid(s, m, s["face"], faces_of(s, img), clip, 0.8, 1.6,
                                                                   dict(weight_type="linear", **ADV))),
        "IPAAdapterFaceIDBatch/one image": (
            dict(model=m, ipadapter=fp, image=one, weight=0.8, weight_faceidv2=1.3, **FACE),
            lambda: native_faceid(s, m, s["face"], faces_of(s, one), clip, 0.8, 1.3)),
    }
    if "kolors" in s:
        found["IPAdapterFaceIDKolors"] = (
            dict(model=m, ipadapter=s["kolors_pipeline"], image=img, weight=0.8, weight_faceidv2=1.3, weight_kolors=0.6,
                 **FACE),
            # Kolors FaceID: 336 px crops of the largest face (its official recipe, as the compat node analyses)
            lambda: native_faceid(s, m, s["kolors"], faces_of(s, img, 336, "largest"), s["vit_l"], 0.8, 1.3,
                                  weight_kolors=0.6))
    return found


CASES = ["IPAdapter", "IPAdapterAdvanced", "IPAdapterBatch", "IPAdapterMS", "IPAdapterPreciseStyleTransfer",
         "IPAdapterPreciseStyleTransferBatch", "IPAdapterPreciseStyleTransferBatch/one image",
         "IPAdapterPreciseComposition", "IPAdapterPreciseCompositionBatch",
         "IPAdapterPreciseCompositionBatch/one image", "IPAdapterStyleComposition", "IPAdapterStyleCompositionBatch",
         "IPAdapterTiled", "IPAdapterTiledBatch", "IPAdapterClipVisionEnhancer",
         "IPAdapterClipVisionEnhancerBatch/one image", "IPAdapterEmbeds", "IPAdapterEmbedsBatch", "IPAdapterFromParams",
         "IPAdapterFaceID", "IPAdapterAdvanced/FaceID-Plus v2", "IPAAdapterFaceIDBatch/one image",
         "IPAdapterFaceIDKolors"]


def test_every_apply_node_has_an_equality_case():
    apply_ids = {i for i, spec in INTERFACE.items() if "Loader" not in i and spec["output"][:1] == ["MODEL"]}
    assert apply_ids == {case.split("/")[0] for case in CASES} and len(apply_ids) == 20


@pytest.mark.parametrize("case", CASES)
def test_compat_apply_equals_the_native_path_bit_for_bit(case, setup, classes, request):
    s = {**setup, **(request.getfixturevalue("kolors") if "Kolors" in case else {})}
    kwargs, native_path = cases(s)[case]
    node_id = case.split("/")[0]
    frames = 2 if "Batch" in node_id else 1
    ours = ksample(run_compat(node_id, classes, **kwargs), "sdxl", steps=1, batch=frames)
    assert torch.equal(ours, ksample(native_path(), "sdxl", steps=1, batch=frames))
    assert not torch.equal(ours, ksample(s["model"], "sdxl", steps=1, batch=frames))


@pytest.mark.parametrize("node_id, name, values", [("IPAdapterFaceID", "weight_faceidv2", (1.3, 0.3)),
                                                   ("IPAdapterFaceIDKolors", "weight_kolors", (1.0, 0.6))])
def test_each_faceid_weight_input_changes_the_identity_tokens(node_id, name, values, setup, classes, request):
    s = {**setup, **(request.getfixturevalue("kolors") if "Kolors" in node_id else {})}
    kwargs = cases(s)[node_id][0]
    first, second = (first_plan(run_compat(node_id, classes, **{**kwargs, name: v})).cond_tokens for v in values)
    assert not torch.allclose(first, second)


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
