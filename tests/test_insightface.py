"""Faces with the real insightface (2.x) on generated ONNX models: boxes, crops and embeddings,
which face, no face, fallback sizes, Kolors' square box crop, model folders (extra_model_paths
included), why an import failed, and no network access ever (conftest's `no_network`)."""
import os
import sys

import numpy as np
import pytest
import torch

from comfyui_ipadapter_kit.ip_models.face_analysis import (FaceModel, InsightFaceError, import_failure_message,
                                                           import_insightface)
from comfyui_ipadapter_kit.patching import faceid as engine
from support.onnx_faces import build_detector, build_recogniser, expected_embedding, keypoints, make_model_folder

BIG = ((160.0, 120.0, 480.0, 440.0), -18.0)   # larger, less confident
SMALL = ((40.0, 40.0, 140.0, 140.0), -17.0)   # smaller, more confident


@pytest.fixture
def insightface_root(tmp_path, monkeypatch):
    import folder_paths
    root = make_model_folder(tmp_path / "insightface", faces=[BIG, SMALL])
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(root)], {".onnx"}))
    engine._face_models.clear()
    return root


def photo(h=480, w=360, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(1, h, w, 3, generator=gen) * 0.5 + 0.5)  # bright: the detector fires


def test_faces_are_found_at_their_boxes_with_the_embedding_of_their_crop(insightface_root):
    model = engine.insightface_model("buffalo_l")
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 480), torch.linspace(0, 1, 360), indexing="ij")
    image = torch.stack([0.5 + 0.5 * xs, 0.5 + 0.5 * ys, 0.75 + 0.25 * xs * ys], dim=-1)[None]  # smooth and bright
    faces = engine.analyze_faces(model, image, "largest", crop_size=112)
    scale = 480 / 640  # max(h, w) / 640
    bgr = (image[0].numpy() * 255).round().astype(np.uint8)[..., ::-1]
    found = model.detect(np.ascontiguousarray(bgr))
    assert np.allclose(sorted(f.bbox.tolist() for f in found), sorted((np.array([BIG[0], SMALL[0]]) * scale).tolist()),
                       atol=0.5)
    big = max(found, key=lambda f: f.area)
    assert np.allclose(big.kps, keypoints(np.array(BIG[0]) * scale), atol=0.5)
    crop_bgr = (faces.crops[0].numpy()[..., ::-1] * 255).round().astype(np.uint8)
    expected = expected_embedding(crop_bgr)  # onnxruntime against numpy: measured 6e-7 (values up to ~70)
    assert np.abs(faces.embeddings[0].numpy() - expected).max() / np.abs(expected).max() < 1e-5
    x1, y1, x2, y2 = (np.array(BIG[0]) * scale).astype(int)  # the aligned crop is the face box itself
    region = torch.nn.functional.interpolate(image[:, y1:y2, x1:x2].permute(0, 3, 1, 2), size=(112, 112),
                                             mode="bilinear", antialias=True).permute(0, 2, 3, 1)[0]
    assert (faces.crops[0] - region).abs().mean() < 0.01
    assert abs(float(faces.embeddings[0].norm()) - 1) > 0.5  # raw, not unit norm


def test_largest_highest_score_and_index_pick_different_faces(insightface_root):
    model = engine.insightface_model("buffalo_l")
    image = photo(seed=1)
    largest = engine.analyze_faces(model, image, "largest")
    confident = engine.analyze_faces(model, image, "highest score")
    second = engine.analyze_faces(model, image, "index", index=1)
    assert not torch.equal(largest.embeddings, confident.embeddings)
    assert torch.equal(second.embeddings, largest.embeddings)  # the less confident face is the big one
    with pytest.raises(engine.FaceIDError, match="face_index 2 asks for face 3, but reference image 1 has 2 face"):
        engine.analyze_faces(model, image, "index", index=2)


def test_no_face_stops_with_the_image_number_or_is_skipped(insightface_root):
    model = engine.insightface_model("buffalo_l")
    batch = torch.cat([photo(seed=2), torch.zeros(1, 480, 360, 3), photo(seed=3)])
    with pytest.raises(engine.FaceIDError, match="No face found in reference image 2 of 3 .* turn on skip_no_face"):
        engine.analyze_faces(model, batch)
    kept = engine.analyze_faces(model, batch, skip_no_face=True)
    assert kept.sources == (0, 2) and kept.embeddings.shape == (2, 512)


def test_smaller_detection_sizes_are_tried_when_the_first_finds_nothing(tmp_path, monkeypatch):
    import folder_paths
    root = make_model_folder(tmp_path / "if", faces=[BIG], max_input=400)  # finds faces only at 384 px and below
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(root)], {".onnx"}))
    model = FaceModel(str(root / "models" / "buffalo_l"))
    bgr = np.full((300, 300, 3), 255, np.uint8)
    assert model.detect(bgr, sizes=(640, 576)) == []
    assert len(model.detect(bgr)) == 1  # found at 384


def test_face_analysis_runs_once_per_image_content(insightface_root):
    model = engine.insightface_model("buffalo_l")
    image = photo(seed=4)
    before = engine.stats["analyses"]
    for _ in range(3):
        engine.analyze_faces(model, image.clone())
    assert engine.stats["analyses"] == before + 1


def test_a_missing_empty_or_nested_model_folder_says_where_the_files_go(tmp_path, monkeypatch):
    import folder_paths
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(tmp_path)], {".onnx"}))
    with pytest.raises(InsightFaceError, match=r"No insightface model 'antelopev2': put its .onnx files in .*"
                                               r"models/antelopev2.*never downloaded"):
        engine.insightface_model("antelopev2")
    (tmp_path / "models" / "buffalo_l").mkdir(parents=True)
    with pytest.raises(InsightFaceError, match="has no .onnx files: put the buffalo_l model files"):
        engine.insightface_model("buffalo_l")
    make_model_folder(tmp_path / "models" / "buffalo_l", name="buffalo_l")  # -> buffalo_l/models/buffalo_l
    os.rename(tmp_path / "models" / "buffalo_l" / "models" / "buffalo_l", tmp_path / "models" / "buffalo_l" / "inner")
    with pytest.raises(InsightFaceError, match="one folder too deep .*move the .onnx files up"):
        engine.insightface_model("buffalo_l")


def test_another_provider_falls_back_to_the_cpu(insightface_root):
    model = FaceModel(str(insightface_root / "models" / "buffalo_l"), provider="CUDA")
    assert model.provider == "CUDAExecutionProvider" and len(model.detect(np.full((200, 200, 3), 255, np.uint8))) == 2


def test_without_insightface_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "insightface", None)
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    with pytest.raises(InsightFaceError, match=r"a package is missing .* pip install insightface onnxruntime"):
        import_insightface()


def test_the_pack_loads_without_insightface(monkeypatch):
    import importlib
    monkeypatch.setitem(sys.modules, "insightface", None)
    nodes = importlib.reload(importlib.import_module("comfyui_ipadapter_kit.nodes.faceid"))
    assert nodes.IPAKitFaceAnalysis.INPUT_TYPES()


# --------------------------------------------------------------------------- no network, ever
def test_every_test_runs_behind_a_closed_proxy_that_spares_the_local_server(no_network):
    import time

    import requests
    assert all(os.environ[name] == no_network for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"))
    assert set(os.environ["NO_PROXY"].split(",")) == {"127.0.0.1", "localhost"}
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("http://example.com/", timeout=10)
    assert time.monotonic() - start < 5  # refused at once, not a timeout


# --------------------------------------------------------------------------- Kolors FaceID's own crop
TALL_AT_THE_EDGE = ((10.0, 80.0, 150.0, 400.0), 0.0)  # taller than wide, its square runs past the left edge


def test_faces_carry_kolors_square_box_crop_of_the_face_as_the_official_recipe_makes_it(tmp_path, monkeypatch):
    """Kolors FaceID-Plus (official): the face box made square about its centre, cut with PIL (black beyond
    the image), resized to 336 px; from antelopev2, the largest face, the raw embedding."""
    import folder_paths
    from PIL import Image
    root = make_model_folder(tmp_path / "insightface", name="antelopev2", faces=[TALL_AT_THE_EDGE, SMALL])
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(root)], {".onnx"}))
    image = photo(seed=6)
    faces = engine.analyze_faces(engine.insightface_model("antelopev2"), image, "largest")
    assert faces.model_name == "antelopev2" and faces.box_crops.shape == (1, 336, 336, 3)
    x1, y1, x2, y2 = np.array(TALL_AT_THE_EDGE[0]) * 480 / 640  # 7.5, 60, 112.5, 300: the larger face
    half, cx, cy = max(x2 - x1, y2 - y1) / 2, (x1 + x2) / 2, (y1 + y2) / 2
    rgb = Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8))
    official = np.asarray(rgb.crop((cx - half, cy - half, cx + half, cy + half)).resize((336, 336))) / 255.0
    assert np.abs(faces.box_crops[0].numpy() - official).max() < 1e-6
    assert faces.box_crops[0, :, :80].abs().max() == 0  # the part left of the image is black
    assert abs(float(faces.embeddings[0].norm()) - 1) > 0.5  # raw, not unit norm


# --------------------------------------------------------------------------- model folders
def test_every_root_is_searched_before_an_empty_or_nested_folder_is_reported(tmp_path, monkeypatch):
    import folder_paths
    empty, nested = tmp_path / "empty", tmp_path / "nested"
    (empty / "models" / "buffalo_l").mkdir(parents=True)
    inner = nested / "models" / "buffalo_l" / "buffalo_l"  # the zip extracted one level too deep
    inner.mkdir(parents=True)
    build_detector(inner / "1_det.onnx", [BIG])
    build_recogniser(inner / "2_rec.onnx")
    valid = make_model_folder(tmp_path / "valid")
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(empty), str(nested), str(valid)],
                                                                             {".onnx"}))
    engine._face_models.clear()
    assert engine.insightface_model("buffalo_l").folder == str(valid / "models" / "buffalo_l")
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(empty), str(nested)], {".onnx"}))
    with pytest.raises(InsightFaceError, match=r"has no \.onnx files.* one folder too deep .*Searched: .*empty.*"
                                               r"nested.*never downloaded"):
        engine.insightface_model("buffalo_l")


@pytest.mark.parametrize("order", ["yaml loaded after the pack", "yaml loaded before the pack"])
def test_an_insightface_entry_of_extra_model_paths_yaml_is_searched(order, tmp_path, monkeypatch):
    import folder_paths
    from utils.extra_config import load_extra_path_config

    from comfyui_ipadapter_kit.nodes import folders
    (tmp_path / "models" / "insightface" / "models" / "buffalo_l").mkdir(parents=True)  # the default: empty
    elsewhere = make_model_folder(tmp_path / "elsewhere" / "insightface")
    yaml = tmp_path / "extra_model_paths.yaml"
    yaml.write_text(f"mine:\n    base_path: {tmp_path / 'elsewhere'}\n    insightface: insightface\n")
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "ipadapter", folder_paths.folder_names_and_paths["ipadapter"])
    monkeypatch.delitem(folder_paths.folder_names_and_paths, "insightface")
    steps = [folders.register, lambda: load_extra_path_config(str(yaml))]
    for step in steps if order.endswith("after the pack") else steps[::-1]:
        step()
    assert folder_paths.get_folder_paths("insightface") == [str(tmp_path / "models" / "insightface"), str(elsewhere)]
    engine._face_models.clear()
    assert engine.insightface_model("buffalo_l").folder == str(elsewhere / "models" / "buffalo_l")


# --------------------------------------------------------------------------- why an import failed
HEAD = "FaceID needs insightface and onnxruntime, and importing them failed: "
NUMPY_FIX = (f"Install builds for this numpy into ComfyUI's Python: pip install --upgrade insightface onnxruntime "
             f"(insightface 2.x is a pure-Python wheel: no compiler needed).")
NUMPY_ABI = f"{HEAD}a compiled module was built for another numpy than the installed numpy {np.__version__}"
NATIVE_FIX = "(on Windows, also install the latest Microsoft Visual C++ Redistributable)."
INSTALL = "pip install insightface onnxruntime (insightface 2.x is a pure-Python wheel: no compiler needed)."


def missing(name):
    return ModuleNotFoundError(f"No module named '{name}'", name=name)


@pytest.mark.parametrize("error, message", [
    (ImportError("numpy.core.multiarray failed to import"),
     f"{NUMPY_ABI} (numpy.core.multiarray failed to import). {NUMPY_FIX}"),
    (AttributeError("_ARRAY_API not found"), f"{NUMPY_ABI} (_ARRAY_API not found). {NUMPY_FIX}"),
    (ImportError("A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.2 as it may crash."),
     f"{NUMPY_ABI} (A module that was compiled using NumPy 1.x cannot be run in). {NUMPY_FIX}"),
    (ValueError("numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88"),
     f"{NUMPY_ABI} (numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got "
     f"88). {NUMPY_FIX}"),
    (ImportError("DLL load failed while importing onnxruntime_pybind11_state: The specified module could not be "
                 "found."),
     f"{HEAD}the native library of onnxruntime failed to load (DLL load failed while importing "
     f"onnxruntime_pybind11_state: The specified module could not be found.). Reinstall it into ComfyUI's Python: "
     f"pip install --force-reinstall onnxruntime {NATIVE_FIX}"),
    (ImportError("libonnxruntime.so.1: cannot open shared object file: No such file or directory"),
     f"{HEAD}the native library of onnxruntime failed to load (libonnxruntime.so.1: cannot open shared object file: "
     f"No such file or directory). Reinstall it into ComfyUI's Python: pip install --force-reinstall onnxruntime "
     f"{NATIVE_FIX}"),
    (ImportError("DLL load failed while importing onnx_cpp2py_export: A dynamic link library (DLL) initialization "
                 "routine failed."),
     f"{HEAD}the native library of onnx failed to load (DLL load failed while importing onnx_cpp2py_export: A "
     f"dynamic link library (DLL) initialization routine failed.). Reinstall it into ComfyUI's Python: pip install "
     f"--force-reinstall onnx {NATIVE_FIX}"),
    (missing("insightface"), f"{HEAD}a package is missing ('insightface' is not installed). Install into ComfyUI's "
                             f"Python: {INSTALL}"),
    (missing("onnxruntime"), f"{HEAD}a package is missing ('onnxruntime' is not installed). Install into ComfyUI's "
                             f"Python: {INSTALL}"),
    (missing("skimage"), f"{HEAD}a package is missing (insightface needs 'scikit-image', which is not installed). "
                         f"Install into ComfyUI's Python: pip install scikit-image."),
], ids=["numpy multiarray", "numpy _ARRAY_API", "numpy 1.x vs 2", "numpy dtype size", "onnxruntime DLL",
        "onnxruntime .so", "onnx DLL", "no insightface", "no onnxruntime", "no dependency"])
def test_an_import_failure_is_reported_with_its_cause_and_fix(error, message):
    assert import_failure_message(error) == message


def test_a_numpy_abi_failure_behind_another_import_error_is_still_a_numpy_abi_failure():
    try:
        try:
            raise AttributeError("_ARRAY_API not found")
        except AttributeError as inner:
            raise ImportError("cannot import name 'FaceAnalysis' from 'insightface.app'") from inner
    except ImportError as outer:
        assert import_failure_message(outer).startswith(NUMPY_ABI)


def test_import_insightface_turns_a_broken_binary_into_the_numpy_message(monkeypatch):
    import importlib.abc
    import importlib.util

    class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            return importlib.util.spec_from_loader(name, self) if name == "insightface.app" else None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            raise ImportError("numpy.core.multiarray failed to import")
    monkeypatch.delitem(sys.modules, "insightface.app", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(InsightFaceError) as caught:
        import_insightface()
    assert str(caught.value) == f"{NUMPY_ABI} (numpy.core.multiarray failed to import). {NUMPY_FIX}"
