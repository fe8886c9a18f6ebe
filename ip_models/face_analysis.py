"""Faces with insightface: optional, imported only here, never downloading, on 0.7.3 and 2.x alike.

`FaceModel` wraps insightface's own `FaceAnalysis` (which routes the ONNX files of a model folder by
their signatures) and calls the detector with an explicit input size, the one form both versions
honour (2.x ignores the `input_size` attribute older code sets). Images are ComfyUI's RGB floats;
insightface wants BGR uint8.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

INSTALL = "pip install insightface onnxruntime  (insightface 2.x is a pure-Python wheel: no compiler needed)"
PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "ROCM": "ROCMExecutionProvider",
             "DirectML": "DmlExecutionProvider", "OpenVINO": "OpenVINOExecutionProvider",
             "CoreML": "CoreMLExecutionProvider"}
MODEL_NAMES = ("buffalo_l", "antelopev2")
DETECTION_SIZES = (640, 576, 512, 448, 384, 320)
FACE_CHOICES = ("largest", "highest score", "index")


class InsightFaceError(RuntimeError):
    pass


def import_insightface():
    """insightface's FaceAnalysis and face_align, or an error that says why and what to install."""
    try:
        import onnxruntime  # noqa: F401
        from insightface.app import FaceAnalysis
        from insightface.utils import face_align
    except ImportError as exc:
        text = str(exc)
        if "numpy" in text and ("dtype size changed" in text or "ABI" in text or "compiled" in text):
            cause = f"it was built against another numpy ({text}); reinstall it for this numpy"
        elif "DLL" in text or ".so" in text:
            cause = f"onnxruntime's native library failed to load ({text}); reinstall onnxruntime (or onnxruntime-gpu)"
        else:
            cause = f"a package is missing ({text})"
        raise InsightFaceError(f"FaceID needs insightface and onnxruntime, and importing them failed: {cause}. "
                               f"Install into ComfyUI's Python: {INSTALL}") from exc
    except ValueError as exc:  # numpy ABI mismatches surface as ValueError in compiled extensions
        raise InsightFaceError(f"insightface could not be imported ({exc}): it was built against another numpy; "
                               f"reinstall it: {INSTALL}") from exc
    return FaceAnalysis, face_align


def model_folder(roots: list[str], name: str) -> str:
    """The folder `<root>/models/<name>` holding the .onnx files, or an error that says where they go."""
    where = " or ".join(os.path.join(r, "models", name) for r in roots) or f"models/insightface/models/{name}"
    for root in roots:
        folder = os.path.join(root, "models", name)
        if not os.path.isdir(folder):
            continue
        if any(f.endswith(".onnx") for f in os.listdir(folder)):
            return folder
        nested = [d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
                  and any(f.endswith(".onnx") for f in os.listdir(os.path.join(folder, d)))]
        if nested:
            raise InsightFaceError(f"The {name} model files are one folder too deep ({os.path.join(folder, nested[0])}): "
                                   f"move the .onnx files up into {folder}.")
        raise InsightFaceError(f"{folder} has no .onnx files: put the {name} model files (detection and recognition "
                               f".onnx) there. They are never downloaded by this pack.")
    raise InsightFaceError(f"No insightface model '{name}': put its .onnx files in {where} (unzipped, without an "
                           f"extra folder level). They are never downloaded by this pack.")


@dataclass(frozen=True)
class Face:
    bbox: np.ndarray       # x1, y1, x2, y2 in the image's pixels
    kps: np.ndarray        # 5 x 2 landmarks
    score: float

    @property
    def area(self) -> float:
        return float((self.bbox[2] - self.bbox[0]) * (self.bbox[3] - self.bbox[1]))


def to_bgr(image) -> np.ndarray:
    """One ComfyUI image [H, W, C] (RGB floats 0..1, torch or numpy) -> BGR uint8."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    array = array[..., :3] if array.shape[-1] >= 3 else np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)[..., ::-1])


class FaceModel:
    """A loaded insightface model (detector + recogniser) on the chosen execution provider."""

    def __init__(self, folder: str, provider: str = "CPU"):
        FaceAnalysis, self._align = import_insightface()
        chosen = PROVIDERS.get(provider, provider)
        providers = [chosen] + ([] if chosen == "CPUExecutionProvider" else ["CPUExecutionProvider"])
        # An absolute folder as the name: both 0.7.3 and 2.x then load from it and never download.
        analysis = FaceAnalysis(name=os.path.abspath(folder), providers=providers,
                                allowed_modules=["detection", "recognition"])
        if "recognition" not in analysis.models:
            raise InsightFaceError(f"{folder} has a face detector but no recognition model (.onnx).")
        analysis.prepare(ctx_id=0, det_size=(640, 640))
        self.folder, self.provider = folder, chosen
        self.detector, self.recogniser = analysis.det_model, analysis.models["recognition"]

    def detect(self, bgr: np.ndarray, sizes=DETECTION_SIZES) -> list[Face]:
        """Faces of the first detection size that finds any (larger sizes first), by score."""
        for size in sizes:
            boxes, kpss = self.detector.detect(bgr, input_size=(size, size))
            if boxes.shape[0]:
                if kpss is None:
                    raise InsightFaceError("The face detector gives no landmarks; FaceID needs a detector with "
                                           "key points (buffalo_l's or antelopev2's).")
                return [Face(b[:4].copy(), k.copy(), float(b[4])) for b, k in zip(boxes, kpss)]
        return []

    def embedding(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """The raw ArcFace embedding (512) of a face."""
        from insightface.app.common import Face as InsightFace
        found = InsightFace(bbox=face.bbox, kps=face.kps, det_score=face.score)
        return np.asarray(self.recogniser.get(bgr, found), dtype=np.float32).reshape(-1)

    def aligned_crop(self, bgr: np.ndarray, face: Face, size: int) -> np.ndarray:
        """The face aligned as ArcFace aligns it, at `size` px, as RGB floats."""
        crop = self._align.norm_crop(bgr, landmark=face.kps, image_size=size)
        return crop[..., ::-1].astype(np.float32) / 255.0


def choose(faces: list[Face], how: str, index: int = 0) -> Face | None:
    if not faces:
        return None
    if how == "largest":
        return max(faces, key=lambda f: f.area)
    if how == "highest score":
        return max(faces, key=lambda f: f.score)
    ranked = sorted(faces, key=lambda f: -f.score)
    return ranked[min(index, len(ranked) - 1)]
