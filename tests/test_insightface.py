"""Faces with the real insightface (2.x) on generated ONNX models: boxes, crops and embeddings,
which face, no face, fallback sizes, model folders, and no network access ever."""
import os
import sys

import numpy as np
import pytest
import torch

from comfyui_ipadapter_kit.ip_models.face_analysis import FaceModel, InsightFaceError, import_insightface
from comfyui_ipadapter_kit.patching import faceid as engine
from support.onnx_faces import expected_embedding, keypoints, make_model_folder

BIG = ((160.0, 120.0, 480.0, 440.0), -18.0)   # larger, less confident
SMALL = ((40.0, 40.0, 140.0, 140.0), -17.0)   # smaller, more confident


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt hits a closed loopback port and fails at once."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


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
    assert np.allclose(faces.embeddings[0].numpy(), expected_embedding(crop_bgr), rtol=1e-3, atol=1e-2)
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
