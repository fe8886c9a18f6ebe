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

INSTALL = "pip install insightface onnxruntime (insightface 2.x is a pure-Python wheel: no compiler needed)"
PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "ROCM": "ROCMExecutionProvider",
             "DirectML": "DmlExecutionProvider", "OpenVINO": "OpenVINOExecutionProvider",
             "CoreML": "CoreMLExecutionProvider"}
MODEL_NAMES = ("buffalo_l", "antelopev2")
KOLORS_MODEL, KOLORS_CROP = "antelopev2", 336  # Kolors FaceID-Plus: its recogniser and its square box crop
DETECTION_SIZES = (640, 576, 512, 448, 384, 320)
FACE_CHOICES = ("largest", "highest score", "index")


class InsightFaceError(RuntimeError):
    pass


_HEAD = "FaceID needs insightface and onnxruntime, and importing them failed: "
_NUMPY_ABI = ("numpy.core.multiarray failed to import", "_ARRAY_API not found", "compiled using NumPy 1.x",
              "cannot be run in NumPy 2", "numpy.dtype size changed", "binary incompatibility",
              "module compiled against ABI version", "numpy.core._multiarray_umath")
_NATIVE = ("DLL load failed", "cannot open shared object file", "Library not loaded", "undefined symbol",
           "onnxruntime_pybind11_state", "onnx_cpp2py_export")
_PIP_NAMES = {"skimage": "scikit-image", "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "PIL": "pillow"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def import_failure_message(exc: BaseException) -> str:
    """What to tell the user when importing insightface or onnxruntime raised `exc`: the cause (numpy ABI
    mismatch, a native library that failed to load, a missing package) and the command that fixes it."""
    chain = _chain(exc)
    text = " | ".join(str(e) for e in chain)
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    if any(marker in text for marker in _NUMPY_ABI):
        return (f"{_HEAD}a compiled module was built for another numpy than the installed numpy {np.__version__} "
                f"({detail}). Install builds for this numpy into ComfyUI's Python: pip install --upgrade insightface "
                f"onnxruntime (insightface 2.x is a pure-Python wheel: no compiler needed).")
    if any(marker in text for marker in _NATIVE):
        package = "onnxruntime" if "onnxruntime" in text else "onnx" if "onnx" in text else "insightface"
        return (f"{_HEAD}the native library of {package} failed to load ({detail}). Reinstall it into ComfyUI's "
                f"Python: pip install --force-reinstall {package} (on Windows, also install the latest Microsoft "
                f"Visual C++ Redistributable).")
    missing = next((e for e in chain if isinstance(e, ModuleNotFoundError)), None)
    if missing is not None:
        module = (missing.name or "").split(".")[0] or "insightface"
        if module in ("insightface", "onnxruntime"):
            return f"{_HEAD}a package is missing ('{module}' is not installed). Install into ComfyUI's Python: {INSTALL}."
        package = _PIP_NAMES.get(module, module)
        return (f"{_HEAD}a package is missing (insightface needs '{package}', which is not installed). Install into "
                f"ComfyUI's Python: pip install {package}.")
    return f"{_HEAD}{type(exc).__name__}: {detail}. Reinstall into ComfyUI's Python: pip install --upgrade insightface onnxruntime."


def import_insightface():
    """insightface's FaceAnalysis and face_align, or an error that says why and what to install."""
    try:
        import onnxruntime  # noqa: F401
        from insightface.app import FaceAnalysis
        from insightface.utils import face_align
    except Exception as exc:  # ImportError, and the ValueError/AttributeError/OSError of broken binaries
        raise InsightFaceError(import_failure_message(exc)) from exc
    return FaceAnalysis, face_align


def _has_onnx(folder: str) -> bool:
    return any(f.endswith(".onnx") for f in os.listdir(folder))


def model_folder(roots: list[str], name: str) -> str:
    """The first `<root>/models/<name>` holding .onnx files, searching every root (models/insightface,
    then `insightface:` entries of extra_model_paths.yaml); else an error that says where they go."""
    looked = [os.path.join(r, "models", name) for r in roots]
    problems = []
    for folder in looked:
        if not os.path.isdir(folder):
            continue
        if _has_onnx(folder):
            return folder
        nested = [os.path.join(folder, d) for d in sorted(os.listdir(folder))
                  if os.path.isdir(os.path.join(folder, d)) and _has_onnx(os.path.join(folder, d))]
        problems.append(f"The {name} model files are one folder too deep ({nested[0]}): move the .onnx files up "
                        f"into {folder}." if nested else
                        f"{folder} has no .onnx files: put the {name} model files (detection and recognition "
                        f".onnx) there.")
    where = ", ".join(looked) or f"models/insightface/models/{name}"
    if problems:
        raise InsightFaceError(f"{' '.join(problems)} Searched: {where}. They are never downloaded by this pack.")
    raise InsightFaceError(f"No insightface model '{name}': put its .onnx files in one of {where} (unzipped, "
                           f"without an extra folder level). They are never downloaded by this pack.")


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
        self.name = os.path.basename(os.path.normpath(folder))
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


def square_box_crop(bgr: np.ndarray, bbox, size: int = KOLORS_CROP) -> np.ndarray:
    """Kolors FaceID-Plus's crop (its official recipe, done as it does it, with PIL): the face box made
    square about its centre (side: its longer edge; black beyond the image), resized to `size` px with
    PIL's default filter. RGB floats."""
    from PIL import Image
    x1, y1, x2, y2 = (float(v) for v in bbox[:4])
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
    image = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
    crop = image.crop((cx - half, cy - half, cx + half, cy + half)).resize((size, size))
    return np.asarray(crop, dtype=np.float32) / 255.0


def choose(faces: list[Face], how: str, index: int = 0) -> Face | None:
    if not faces:
        return None
    if how == "largest":
        return max(faces, key=lambda f: f.area)
    if how == "highest score":
        return max(faces, key=lambda f: f.score)
    ranked = sorted(faces, key=lambda f: -f.score)
    return ranked[min(index, len(ranked) - 1)]
