"""What flows through the compatibility face: the IPADAPTER pipeline, and one apply that serves every
apply node of ComfyUI_IPAdapter_plus through our engine (image adapters and FaceID alike)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from ..patching.apply import apply_adapter
from ..patching.faceid import FaceIDError, analyze_faces, apply_faceid

log = logging.getLogger(__name__)
# the leading pack's crop sizes for FaceID-Plus's CLIP part (SD1.5 224, SDXL 256, Kolors 336)
FACE_CROP = {"sd15": 224, "sdxl": 256}


@dataclass(frozen=True, eq=False)
class Pipeline:
    """The IPADAPTER type: an adapter and what the loader found with it. Never changed in place."""
    adapter: object
    clip_vision: object = None
    insightface: object = None

    def joined(self, upstream: "Pipeline | None") -> "Pipeline":
        """A chained loader keeps what the upstream loader had and this one lacks."""
        if upstream is None:
            return self
        return replace(self, clip_vision=self.clip_vision or upstream.clip_vision,
                       insightface=self.insightface or upstream.insightface)


def resolve(pipeline: Pipeline, clip_vision=None, insightface=None) -> Pipeline:
    return replace(pipeline, clip_vision=clip_vision or pipeline.clip_vision,
                   insightface=insightface or pipeline.insightface)


def needs_clip(pipeline: Pipeline, node: str):
    if pipeline.clip_vision is None:
        raise ValueError(f"{node}: no CLIP vision model: connect clip_vision, or load the adapter with a unified "
                         f"loader (which finds its encoder by the weights).")
    return pipeline.clip_vision


def apply(node: str, model, pipeline: Pipeline, image, weight=1.0, weight_faceidv2=None, weight_kolors=1.0,
          unfold: bool = False, encode_batch_size: int = 0, image_negative=None, **controls):
    """Apply an image (or, for FaceID adapters, the faces found in it); returns (model, face crops or None)."""
    adapter = pipeline.adapter
    controls = {**controls, "unfold_batch": unfold}
    if adapter.spec.face:
        if pipeline.insightface is None:
            raise FaceIDError(f"{node}: {adapter.name} is a FaceID adapter, and an insightface model is required for "
                              f"FaceID models: connect one ('IPAdapter InsightFace Loader') or use the FaceID unified "
                              f"loader.")
        crop = 336 if adapter.spec.token_dim else FACE_CROP[adapter.spec.family]
        # the leading pack takes the most confident face; Kolors' official recipe (kept here) the largest one
        choice = "largest" if adapter.spec.token_dim else "highest score"
        faces = analyze_faces(pipeline.insightface, image, choice, 0, False, crop)
        # weight_faceidv2 None (nodes without that input): the engine's default, twice the weight
        patched = apply_faceid(model, adapter, faces, pipeline.clip_vision, weight, weight_faceidv2, lora_strength=0.0,
                               weight_kolors=weight_kolors, image_negative=image_negative, **controls)
        return patched, faces.crops
    patched = apply_adapter(model, adapter, needs_clip(pipeline, node), image, weight, attn_mask=controls.pop(
        "attn_mask", None), image_negative=image_negative, encode_batch_size=encode_batch_size, **controls)
    return patched, None
