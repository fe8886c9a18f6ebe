"""FaceID in the host: which inputs each kind needs (and the errors when they are missing), the
v2 shortcut, Kolors' encoder_hid_proj, faces saved and loaded, the LoRA applied once, the unified
FaceID loader pairing adapter, encoder, insightface and LoRA by their weights."""
import pytest
import torch

from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching import faceid as engine
from comfyui_ipadapter_kit.patching.encode import image_features
from comfyui_ipadapter_kit.patching.faceid import FaceIDError, Faces, apply_faceid, face_tokens
from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
from sampling import ksample
from support.checkpoints import make_adapter_state_dict, save_adapter
from support.patches import first_plan


def widths(model):
    return [l.width for l in cross_attention_layers(model.model.diffusion_model)]


@pytest.fixture(scope="module")
def faceid(sd15_model, make_adapter):
    return make_adapter(sd15_model, "faceid_sd15", ext=".bin")


@pytest.fixture(scope="module")
def plusv2(sd15_model, make_adapter):
    return make_adapter(sd15_model, "faceid-plusv2_sd15", ext=".bin", name="ip-adapter-faceid-plusv2_sd15.bin")


@pytest.fixture(scope="module")
def faces():
    gen = torch.Generator().manual_seed(3)
    return Faces(torch.randn(2, 512, generator=gen) * 15, torch.rand(2, 56, 56, 3, generator=gen), (0, 1))


def test_faceid_changes_the_result_and_carries_its_lora_in_patches(sd15_model, faceid, faces):
    patched = apply_faceid(sd15_model, faceid, faces, lora_strength=1.0)
    assert patched.patches and not sd15_model.patches
    assert first_plan(patched).cond_tokens.shape == (1, 8, 768)  # two faces' tokens join one attention
    assert not torch.equal(ksample(patched, "sd15"), ksample(sd15_model, "sd15"))
    again = apply_faceid(patched, faceid, faces, lora_strength=1.0)  # already there: not applied twice
    assert len(again.patches) == len(patched.patches) and all(len(again.patches[k]) == len(patched.patches[k])
                                                              for k in patched.patches)


def test_the_v2_shortcut_defaults_to_twice_the_weight_and_the_version_can_be_chosen(sd15_model, plusv2, faces,
                                                                                     clip_vit_h):
    assert plusv2.spec.plus_v2  # from the name
    default = first_plan(apply_faceid(sd15_model, plusv2, faces, clip_vit_h, weight=0.7)).cond_tokens
    explicit = first_plan(apply_faceid(sd15_model, plusv2, faces, clip_vit_h, weight=0.7,
                                       weight_faceidv2=1.4)).cond_tokens
    v1 = first_plan(apply_faceid(sd15_model, plusv2, faces, clip_vit_h, weight=0.7, plus_version="v1")).cond_tokens
    assert torch.equal(default, explicit) and not torch.allclose(default, v1)


def test_a_plain_adapter_given_faces_names_the_fix(sd15_model, make_adapter, faces):
    with pytest.raises(FaceIDError, match="is not a FaceID adapter: it takes images, not faces"):
        apply_faceid(sd15_model, make_adapter(sd15_model, "sd15"), faces)


def test_faceid_plus_without_clip_vision_says_what_to_connect(sd15_model, plusv2, faces):
    with pytest.raises(FaceIDError, match=r"also encodes the face crop with CLIP ViT-H-14: connect clip_vision"):
        apply_faceid(sd15_model, plusv2, faces)


def test_all_faces_skipped_is_a_clear_error(sd15_model, faceid):
    with pytest.raises(FaceIDError, match="every reference image was skipped"):
        apply_faceid(sd15_model, faceid, Faces(torch.zeros(0, 512), torch.zeros(0, 56, 56, 3), ()))


def test_kolors_faceid_goes_through_the_unets_encoder_hid_proj(sdxl_model, make_adapter, faces):
    from support.tiny_clip import make_clip_vision
    vit_l = make_clip_vision("vit-l", seed=5)
    kolors = make_adapter(sdxl_model, "kolors_faceid-plus")
    assert kolors.spec.variant == "kolors_faceid-plus" and kolors.spec.raw_face and kolors.spec.projected_dim == 4096
    with pytest.raises(FaceIDError, match="needs a Kolors UNet that carries its encoder_hid_proj"):
        apply_faceid(sdxl_model, kolors, faces, vit_l)
    unet = sdxl_model.model.diffusion_model
    unet.encoder_hid_proj = torch.nn.Linear(4096, 2048)
    try:
        tokens, _ = face_tokens(sdxl_model, kolors, faces, vit_l, shortcut_scale=1.0, kolors_scale=0.5)
        raw = kolors.model.project_faces(faces.embeddings, image_features(vit_l, faces.crops, "penultimate"))
        assert torch.allclose(tokens[0], (0.5 * unet.encoder_hid_proj(raw)).reshape(-1, 2048), atol=1e-5)
        patched = apply_faceid(sdxl_model, kolors, faces, vit_l, weight_kolors=0.5)
        assert not torch.equal(ksample(patched, "sdxl", steps=1), ksample(sdxl_model, "sdxl", steps=1))
    finally:
        del unet.encoder_hid_proj


def test_a_plain_adapter_given_faces_on_the_apply_faceid_node_names_the_fix(sd15_model, make_adapter, faces):
    plain = make_adapter(sd15_model, "sd15")
    for weight in (1.0, 0.0):  # checked when applied, even where nothing would be encoded
        with pytest.raises(FaceIDError, match=r"is not a FaceID adapter: it takes images, not faces: use 'Apply "
                                              r"IP-Adapter \(Kit\)'"):
            NODES["IPAKitApplyFaceID"]().apply(sd15_model, plain, faces, weight, -1.0, "linear", "concat", 0.0, 1.0,
                                               "V only", 1.0, "auto")


@pytest.mark.parametrize("node", ["IPAKitApply", "IPAKitApplyAdvanced"])
@pytest.mark.parametrize("kind", ["faceid", "plusv2"])
def test_a_faceid_adapter_on_an_image_apply_node_names_the_faceid_nodes(node, kind, request, sd15_model, clip_vit_h,
                                                                        reference_images):
    adapter = request.getfixturevalue(kind)
    args = (1.0, 0.0, 1.0) if node == "IPAKitApply" else (1.0, "linear", "concat", 0.0, 1.0, "V only")
    with pytest.raises(ValueError, match=r"is a FaceID adapter: use 'Apply FaceID \(Kit\)' with faces from 'Analyze "
                                         r"Faces \(Kit\)' or 'Load Faces \(Kit\)'"):
        NODES[node]().apply(sd15_model, adapter, clip_vit_h, reference_images[:1], *args)


def test_the_apply_faceid_nodes_default_v2_shortcut_is_twice_the_weight(sd15_model, plusv2, faces, clip_vit_h):
    default = NODES["IPAKitApplyFaceID"].INPUT_TYPES()["required"]["weight_faceidv2"][1]["default"]

    def tokens(weight, weight_faceidv2):
        (model,) = NODES["IPAKitApplyFaceID"]().apply(sd15_model, plusv2, faces, weight, weight_faceidv2, "linear",
                                                      "concat", 0.0, 1.0, "V only", 0.0, "auto", clip_vision=clip_vit_h)
        return first_plan(model).cond_tokens
    assert torch.equal(tokens(0.7, default), tokens(0.7, 1.4)) and torch.equal(tokens(0.3, default), tokens(0.3, 0.6))
    assert not torch.allclose(tokens(0.7, default), tokens(0.7, 2.0))
    explicit = first_plan(apply_faceid(sd15_model, plusv2, faces, clip_vit_h, weight=0.7, weight_faceidv2=0.5))
    assert torch.equal(tokens(0.7, 0.5), explicit.cond_tokens)  # a value of 0 or more is taken as it is


@pytest.fixture(scope="module")
def kolors(sdxl_model, make_adapter):
    """Kolors FaceID-Plus, and the Kolors UNet's encoder_hid_proj (4096 -> 2048) on the model while in use."""
    unet = sdxl_model.model.diffusion_model
    unet.encoder_hid_proj = torch.nn.Linear(4096, 2048)
    try:
        yield make_adapter(sdxl_model, "kolors_faceid-plus")
    finally:
        del unet.encoder_hid_proj


@pytest.fixture(scope="module")
def kolors_faces():
    gen = torch.Generator().manual_seed(6)
    return Faces(torch.randn(2, 512, generator=gen) * 15, torch.rand(2, 56, 56, 3, generator=gen), (0, 1),
                 box_crops=torch.rand(2, 48, 48, 3, generator=gen), model_name="antelopev2")


def test_kolors_faceid_encodes_the_square_box_crops_and_the_raw_embedding(sdxl_model, kolors, kolors_faces):
    from support.tiny_clip import make_clip_vision
    vit_l = make_clip_vision("vit-l", seed=5)
    tokens, _ = face_tokens(sdxl_model, kolors, kolors_faces, vit_l, shortcut_scale=1.0)
    hid_proj = sdxl_model.model.diffusion_model.encoder_hid_proj

    def expected(crops):
        raw = kolors.model.project_faces(kolors_faces.embeddings, image_features(vit_l, crops, "penultimate"))
        return hid_proj(raw).reshape(-1, 2048)
    assert torch.allclose(tokens[0], expected(kolors_faces.box_crops), atol=1e-5)
    assert not torch.allclose(tokens[0], expected(kolors_faces.crops), atol=1e-3)


def test_kolors_faceid_negative_is_zeros_for_both_inputs(sdxl_model, kolors, kolors_faces):
    from support.tiny_clip import make_clip_vision
    vit_l = make_clip_vision("vit-l", seed=5)
    _, uncond = face_tokens(sdxl_model, kolors, kolors_faces, vit_l, shortcut_scale=1.0)
    hidden = image_features(vit_l, kolors_faces.box_crops, "penultimate")
    zeros = kolors.model.project_faces(torch.zeros(1, 512), torch.zeros_like(hidden[:1]))
    expected = sdxl_model.model.diffusion_model.encoder_hid_proj(zeros).reshape(-1, 2048)
    assert torch.allclose(uncond[0], expected.repeat(2, 1), atol=1e-5)  # the official recipe's negative


def test_faceid_plus_takes_image_negative_as_the_clip_source_of_its_negative(sd15_model, plusv2, faces, clip_vit_h):
    gen = torch.Generator().manual_seed(9)
    negative = torch.rand(1, 40, 40, 3, generator=gen)
    _, trained = face_tokens(sd15_model, plusv2, faces, clip_vit_h, shortcut_scale=1.0)
    _, given = face_tokens(sd15_model, plusv2, faces, clip_vit_h, shortcut_scale=1.0, image_negative=negative)
    expected = plusv2.model.project_faces(torch.zeros(1, 512), image_features(clip_vit_h, negative, "penultimate"),
                                          True, 1.0)
    assert torch.allclose(given[0], expected[0].repeat(2, 1), atol=1e-5)  # once per face, like the trained one
    assert given.shape == trained.shape and not torch.allclose(given, trained, atol=1e-3)
    (patched,) = NODES["IPAKitApplyFaceID"]().apply(sd15_model, plusv2, faces, 1.0, 1.0, "linear", "concat", 0.0,
                                                    1.0, "V only", 0.0, "auto", clip_vit_h, image_negative=negative)
    assert torch.equal(first_plan(patched).uncond_tokens, given)
    with pytest.raises(FaceIDError, match="image_negative has 3 images for 2 faces"):
        face_tokens(sd15_model, plusv2, faces, clip_vit_h, image_negative=negative.repeat(3, 1, 1, 1))


def test_kolors_faceid_warns_when_the_faces_are_not_from_antelopev2(sdxl_model, kolors, kolors_faces, caplog):
    from dataclasses import replace

    from support.tiny_clip import make_clip_vision
    with caplog.at_level("WARNING"):
        face_tokens(sdxl_model, kolors, replace(kolors_faces, model_name="buffalo_l"), make_clip_vision("vit-l", seed=5))
    assert "trained on antelopev2 face embeddings, but these faces come from buffalo_l" in caplog.text


def test_saved_faces_keep_kolors_box_crops_and_their_insightface_model(kolors_faces):
    (saved,) = [NODES["IPAKitSaveFaces"]().save(kolors_faces, "kolors_faces")["ui"]["faces"][0]["filename"]]
    loaded, _ = NODES["IPAKitLoadFaces"]().load(f"{saved} [output]")
    assert torch.equal(loaded.box_crops, kolors_faces.box_crops) and loaded.model_name == "antelopev2"


def test_saved_faces_load_back_bit_exact(faces):
    (saved,) = [NODES["IPAKitSaveFaces"]().save(faces, "roundtrip_faces")["ui"]["faces"][0]["filename"]]
    loaded, crops = NODES["IPAKitLoadFaces"]().load(f"{saved} [output]")
    assert torch.equal(loaded.embeddings, faces.embeddings) and torch.equal(crops, faces.crops)
    assert loaded.sources == faces.sources


# --------------------------------------------------------------------------- unified FaceID loader
@pytest.fixture
def faceid_folders(tmp_path, monkeypatch, sd15_model):
    import folder_paths
    from support.clip_files import write_three_layouts
    from support.onnx_faces import make_model_folder
    folders = {name: tmp_path / name for name in ("ipadapter", "clip_vision", "loras")}
    for name, path in folders.items():
        path.mkdir()
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(path)], {".safetensors", ".bin"}))
    root = make_model_folder(tmp_path / "insightface")
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(root)], {".onnx"}))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    state = make_adapter_state_dict("faceid-plusv2_sd15", widths(sd15_model), seed=4)
    save_adapter(state, folders["ipadapter"] / "renamed-face-adapter.bin")
    import shutil
    shutil.copy(write_three_layouts("vit-h", tmp_path / "clips")["transformers"], folders["clip_vision"] / "enc.safetensors")
    return folders, state


def kohya_companion(state, diffusers_unet) -> dict:
    from support.diffusers_oracle import faceid_lora_for_peft
    peft = faceid_lora_for_peft(state, diffusers_unet)
    return {"lora_unet_" + k.replace(".lora_A.weight", "").replace(".lora_B.weight", "").replace(".", "_")
            + (".lora_down.weight" if k.endswith("lora_A.weight") else ".lora_up.weight"): v.half().contiguous()
            for k, v in peft.items()}


def test_the_unified_faceid_loader_pairs_everything_and_applies_the_lora_once(faceid_folders, sd15_model, faces):
    model, adapter, clip, face_model = NODES["IPAKitUnifiedLoaderFaceID"]().load(
        sd15_model, "FACEID PLUS V2", 1.0, "inside the adapter", "CPU")
    assert adapter.spec.variant == "faceid-plusv2_sd15" and clip is not None and face_model.recogniser
    assert model.patches and not sd15_model.patches
    (applied,) = NODES["IPAKitApplyFaceID"]().apply(model, adapter, faces, 1.0, 2.0, "linear", "concat", 0.0, 1.0,
                                                     "V only", 1.0, "auto", clip_vision=clip)
    assert all(len(applied.patches[k]) == len(model.patches[k]) for k in model.patches)  # no second LoRA


def test_the_companion_lora_is_found_by_its_weights_not_its_name(faceid_folders, sd15_model, diffusers_unets):
    from safetensors.torch import save_file
    folders, state = faceid_folders
    save_file(kohya_companion(state, diffusers_unets["sd15"]), str(folders["loras"] / "some_name.safetensors"))
    other = make_adapter_state_dict("faceid-plusv2_sd15", widths(sd15_model), seed=99)
    save_file(kohya_companion(other, diffusers_unets["sd15"]), str(folders["loras"] / "faceid-plusv2_sd15_lora.safetensors"))
    model, *_ = NODES["IPAKitUnifiedLoaderFaceID"]().load(sd15_model, "FACEID PLUS V2", 0.7, "companion file", "CPU")
    embedded, *_ = NODES["IPAKitUnifiedLoaderFaceID"]().load(sd15_model, "FACEID PLUS V2", 0.7, "inside the adapter",
                                                             "CPU")
    assert set(model.patches) == set(embedded.patches)  # the same layers: the matching file was taken
    from support.patches import relative_error  # the companion is stored in fp16, as released
    assert relative_error(ksample(model, "sd15", steps=1), ksample(embedded, "sd15", steps=1)) < 5e-3


def test_a_companion_lora_of_another_base_model_is_refused(faceid_folders, sd15_model, sdxl_model, diffusers_unets):
    from safetensors.torch import save_file
    folders, _ = faceid_folders
    xl_state = make_adapter_state_dict("faceid_sdxl", widths(sdxl_model), seed=5)
    path = folders["loras"] / "faceid_sdxl_lora.safetensors"
    save_file(kohya_companion(xl_state, diffusers_unets["sdxl"]), str(path))
    adapter = NODES["IPAKitUnifiedLoaderFaceID"]().load(sd15_model, "FACEID PLUS V2", 1.0, "inside the adapter",
                                                        "CPU")[1]
    with pytest.raises(FaceIDError, match=r"does not fit this model .*a LoRA for another base model"):
        engine.apply_companion_lora(sd15_model, adapter, str(path), 1.0)
    with pytest.raises(FaceIDError, match="No file in models/loras holds the LoRA weights"):
        NODES["IPAKitUnifiedLoaderFaceID"]().load(sd15_model, "FACEID PLUS V2", 1.0, "companion file", "CPU")
