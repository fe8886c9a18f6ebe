"""Tiny ONNX face models that the real insightface `FaceAnalysis` loads and runs (faceid.md).

- A detector (SCRFD layout: 3 strides x score, bbox, kps = 9 outputs, 2 anchors per cell): zero
  scores everywhere but the first anchors of stride 32, one per face, with score
  sigmoid(20 * max(pixel) + bias): faces on any bright image, none on a black one. The boxes are
  given in a 640 px frame and scaled with the detector input, so after insightface undoes its
  letterbox a face lies at `box * max(h, w) / 640` in the original image at every det size. The
  key points are ArcFace's 5-point template placed in the box, so the aligned crop is the box.
- A recogniser (ArcFace layout, [N, 3, 112, 112] -> average pool 14 -> flatten -> Gemm 192 -> 512,
  seeded): its embedding is recomputed with numpy in `expected_embedding`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
STRIDES = (8, 16, 32)


def _c(name, value, dtype=np.float32):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def keypoints(box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([x1, y1]) + ARCFACE_TEMPLATE / 112.0 * np.array([x2 - x1, y2 - y1])


def build_detector(path, faces: list[tuple[tuple[float, float, float, float], float]],
                   max_input: int | None = None) -> Path:
    """faces: [(box x1, y1, x2, y2 in a 640 px frame, score bias)], at most four. With `max_input`,
    faces are only found when the detector input is at most that wide (to test fallback sizes)."""
    import onnx
    from onnx import TensorProto, helper
    assert 1 <= len(faces) <= 4
    k = len(faces)
    boxes = np.array([f[0] for f in faces], dtype=np.float32)
    centers = np.array([[(i // 2) * 32.0, 0.0] for i in range(k)], dtype=np.float32)  # anchor i: cell i // 2
    kps = np.stack([keypoints(b).reshape(-1) for b in boxes]).astype(np.float32)
    inits = [_c("two", [2], np.int64), _c("one", [1], np.int64), _c("k", [k], np.int64), _c("i2", [2], np.int64),
             _c("i3", [3], np.int64), _c("f640", 640.0), _c("f32", 32.0), _c("twenty", 20.0),
             _c("bias", [[f[1]] for f in faces]), _c("boxes", boxes), _c("sign", [-1, -1, 1, 1]),
             _c("offset", np.concatenate([centers, -centers], axis=1)), _c("kps640", kps),
             _c("kpcenter", np.tile(centers, (1, 5))), _c("w4", [4], np.int64), _c("w10", [10], np.int64),
             _c("zero", [0.0]), _c("max_input", float(max_input or 100000)), _c("penalty", 100.0)]
    nodes = [helper.make_node("Shape", ["input.1"], ["shape"]),
             helper.make_node("Gather", ["shape", "i2"], ["h"], axis=0),
             helper.make_node("Gather", ["shape", "i3"], ["w"], axis=0),
             helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["wf", "f640"], ["scale"]),
             helper.make_node("ReduceMax", ["input.1"], ["mx"], keepdims=0),
             helper.make_node("Mul", ["mx", "twenty"], ["logit0"]),
             helper.make_node("Add", ["bias", "logit0"], ["logit1"]),
             helper.make_node("Sub", ["wf", "max_input"], ["over"]), helper.make_node("Relu", ["over"], ["over_pos"]),
             helper.make_node("Mul", ["over_pos", "penalty"], ["gate"]),
             helper.make_node("Sub", ["logit1", "gate"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["face_scores"]),
             helper.make_node("Mul", ["boxes", "scale"], ["box_det"]),
             helper.make_node("Mul", ["box_det", "sign"], ["box_signed"]),
             helper.make_node("Add", ["box_signed", "offset"], ["box_dist"]),
             helper.make_node("Div", ["box_dist", "f32"], ["face_bbox"]),
             helper.make_node("Mul", ["kps640", "scale"], ["kp_det"]),
             helper.make_node("Sub", ["kp_det", "kpcenter"], ["kp_rel"]),
             helper.make_node("Div", ["kp_rel", "f32"], ["face_kps"])]
    outputs = {"score": [], "bbox": [], "kps": []}
    for s in STRIDES:
        inits.append(_c(f"s{s}", [s], np.int64))
        nodes += [helper.make_node("Div", ["h", f"s{s}"], [f"h{s}"]), helper.make_node("Div", ["w", f"s{s}"], [f"w{s}"]),
                  helper.make_node("Mul", [f"h{s}", f"w{s}"], [f"c{s}"]), helper.make_node("Mul", [f"c{s}", "two"], [f"n{s}"])]
        rest = f"n{s}" if s != 32 else "rest32"
        if s == 32:
            nodes.append(helper.make_node("Sub", ["n32", "k"], ["rest32"]))
        for name, width, face in (("score", "one", "face_scores"), ("bbox", "w4", "face_bbox"), ("kps", "w10", "face_kps")):
            nodes += [helper.make_node("Concat", [rest, width], [f"{name}{s}_shape"], axis=0),
                      helper.make_node("ConstantOfShape", [f"{name}{s}_shape"], [f"{name}{s}_zeros"],
                                       value=_c("v", [0.0]))]
            if s == 32:
                nodes.append(helper.make_node("Concat", [face, f"{name}{s}_zeros"], [f"{name}{s}"], axis=0))
            else:
                nodes.append(helper.make_node("Identity", [f"{name}{s}_zeros"], [f"{name}{s}"]))
            columns = {"score": 1, "bbox": 4, "kps": 10}[name]
            outputs[name].append(helper.make_tensor_value_info(f"{name}{s}", TensorProto.FLOAT, [f"n{s}", columns]))
    graph = helper.make_graph(nodes, "tiny_scrfd",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "H", "W"])],
                              outputs["score"] + outputs["bbox"] + outputs["kps"], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


def recogniser_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((512, 192)).astype(np.float32) * 3.0,
            rng.standard_normal(512).astype(np.float32))


def build_recogniser(path, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper
    weight, bias = recogniser_weights(seed)
    nodes = [helper.make_node("AveragePool", ["data"], ["pooled"], name="pool", kernel_shape=[14, 14], strides=[14, 14]),
             helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc1"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])],
                              initializer=[_c("fc_w", weight), _c("fc_b", bias)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


def expected_embedding(aligned_bgr: np.ndarray, seed: int = 0) -> np.ndarray:
    """What the recogniser gives for an aligned 112 px BGR uint8 crop (insightface's preprocessing)."""
    weight, bias = recogniser_weights(seed)
    rgb = aligned_bgr[..., ::-1].astype(np.float32)
    x = ((rgb - 127.5) / 127.5).transpose(2, 0, 1)
    pooled = x.reshape(3, 8, 14, 8, 14).mean(axis=(2, 4)).reshape(-1)
    return weight @ pooled + bias


def make_model_folder(root, name: str = "buffalo_l", faces=None, seed: int = 0, max_input=None) -> Path:
    """root/models/<name>/ with a detector and a recogniser; returns root."""
    folder = Path(root) / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    build_detector(folder / "1_det.onnx", faces or [((200.0, 150.0, 440.0, 390.0), 0.0)], max_input)
    build_recogniser(folder / "2_rec.onnx", seed)
    return Path(root)
