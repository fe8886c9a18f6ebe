"""FaceID: identity tokens from faces, the adapter's own LoRA applied through ComfyUI's patches, and
Kolors FaceID-Plus through the Kolors UNet's `encoder_hid_proj`."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import comfy.lora
import comfy.model_management as mm
import torch
import torch.nn.functional as F

from ..ip_models.combine import combine_embeds
from .adapter_handle import LoadedAdapter
from .apply import Controls, apply_plans, make_plan, match_layers
from .encode import check_encoder, image_features, unconditional_features

log = logging.getLogger(__name__)
LORA_MARK = "ipakit_faceid_loras"  # model option: the adapters whose LoRA this MODEL already carries


class FaceIDError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Faces:
    """Faces found in reference images (type IPAKIT_FACES): what FaceID adapters need, without insightface."""
    embeddings: torch.Tensor        # [N, 512] raw ArcFace embeddings
    crops: torch.Tensor             # [N, S, S, 3] aligned face crops (RGB, 0..1), for FaceID-Plus's CLIP part
    sources: tuple[int, ...] = ()   # which reference image each face came from
    box_crops: torch.Tensor | None = None  # [N, 336, 336, 3] square face-box crops: Kolors FaceID-Plus's CLIP input
    model_name: str = ""            # the insightface model that found them (buffalo_l, antelopev2; "" unknown)

    def normed(self) -> torch.Tensor:
        return F.normalize(self.embeddings.float(), dim=-1)


def _kv_hid_proj(model, tokens: torch.Tensor, scale: float) -> torch.Tensor:
    """Kolors FaceID: the Kolors UNet's encoder_hid_proj (4096 -> 2048) on the tokens, scaled."""
    proj = getattr(model.get_model_object("diffusion_model"), "encoder_hid_proj", None)
    weight = getattr(proj, "weight", None)
    if weight is None:
        raise FaceIDError("Kolors FaceID-Plus needs a Kolors UNet that carries its encoder_hid_proj (4096 -> 2048); "
                          "the connected model has none. Load the Kolors UNet with a loader that keeps it.")
    bias = getattr(proj, "bias", None)
    out = F.linear(tokens, weight.to(tokens), None if bias is None else bias.to(tokens))
    return out * float(scale)


def _clip_crops(adapter: LoadedAdapter, faces: Faces) -> torch.Tensor:
    """The crops FaceID-Plus encodes with CLIP: ArcFace-aligned ones, or for Kolors (its official recipe) the
    square face-box crops at 336 px."""
    if not adapter.spec.token_dim:
        return faces.crops
    from ..ip_models.face_analysis import KOLORS_MODEL
    if faces.model_name and faces.model_name != KOLORS_MODEL:
        log.warning("IPAdapter Kit: %s was trained on %s face embeddings, but these faces come from %s: load %s in "
                    "'Load InsightFace (Kit)' for the identity it expects", adapter.name, KOLORS_MODEL,
                    faces.model_name, KOLORS_MODEL)
    if faces.box_crops is None:
        log.warning("IPAdapter Kit: these faces carry no square face-box crop (saved by an older version): %s gets "
                    "the aligned crops instead; analyse the faces again for Kolors' own crop", adapter.name)
        return faces.crops
    return faces.box_crops


def _not_faceid(adapter: LoadedAdapter) -> str:
    return (f"{adapter.name} ({adapter.spec.variant}) is not a FaceID adapter: it takes images, not faces: use "
            f"'Apply IP-Adapter (Kit)' (or another apply node with an image input) with the reference image.")


def _negative_clip(adapter: LoadedAdapter, clip_vision, clip_cond: torch.Tensor,
                   image_negative: torch.Tensor | None) -> torch.Tensor:
    """FaceID-Plus's negative CLIP part: the hidden states of `image_negative` when given; otherwise what
    the adapter was trained with (Kolors: zeros, as its official recipe; the others: CLIP on zero pixels)."""
    if image_negative is not None:
        return image_features(clip_vision, image_negative, "penultimate")
    if adapter.spec.token_dim:
        return torch.zeros_like(clip_cond[:1])
    return unconditional_features(clip_vision, "penultimate", clip_cond)


def face_tokens(model, adapter: LoadedAdapter, faces: Faces, clip_vision=None, shortcut_scale: float = 1.0,
                combine: str = "concat", unfold: bool = False, kolors_scale: float = 1.0, shortcut: bool | None = None,
                image_negative: torch.Tensor | None = None):
    """(cond, uncond) tokens for the faces: [1, N*T, C] joined, or [N, T, C] one per frame.

    The negative side is a zero face embedding, with (FaceID-Plus) `image_negative`'s CLIP hidden
    states: one negative image, or one per face, combined like the faces."""
    spec = adapter.spec
    if not spec.face:
        raise FaceIDError(_not_faceid(adapter))
    cond = faces.embeddings.float() if spec.raw_face else faces.normed()
    clip_cond = clip_uncond = None
    if spec.face == "plus":
        if clip_vision is None:
            raise FaceIDError(f"{adapter.name} ({spec.variant}) also encodes the face crop with CLIP {spec.encoder_name}: "
                              f"connect clip_vision.")
        check_encoder(clip_vision, spec, adapter.name)
        clip_cond = image_features(clip_vision, _clip_crops(adapter, faces), "penultimate")
        clip_uncond = _negative_clip(adapter, clip_vision, clip_cond, image_negative)
        if clip_uncond.shape[0] not in (1, clip_cond.shape[0]):
            raise FaceIDError(f"image_negative has {clip_uncond.shape[0]} images for {clip_cond.shape[0]} faces: give "
                              f"one negative image or one per face.")
        if not unfold and clip_uncond.shape[0] > 1:
            clip_uncond = combine_embeds(clip_uncond, combine)
    if not unfold:
        cond = combine_embeds(cond, combine)
        clip_cond = None if clip_cond is None else combine_embeds(clip_cond, combine)
    mm.load_model_gpu(adapter.patcher)

    def project(embedding, clip_hidden):
        tokens = adapter.model.project_faces(embedding, clip_hidden, shortcut, shortcut_scale)
        tokens = tokens.to(mm.intermediate_device())
        if spec.token_dim:
            tokens = _kv_hid_proj(model, tokens.float(), kolors_scale)
        return tokens if unfold else tokens.reshape(1, -1, tokens.shape[-1])
    cond_tokens = project(cond, clip_cond)
    rows = 1 if clip_uncond is None else clip_uncond.shape[0]
    uncond_tokens = project(torch.zeros_like(cond[:1]).expand(rows, -1), clip_uncond)
    if not unfold:  # the same number of tokens on both sides of CFG
        uncond_tokens = uncond_tokens.repeat(1, cond_tokens.shape[1] // uncond_tokens.shape[1], 1)
    return cond_tokens, uncond_tokens


def lora_patches(model, adapter: LoadedAdapter) -> dict:
    """The adapter's own LoRA pairs as ComfyUI patches (kohya names through ComfyUI's LoRA key map)."""
    layers = match_layers(model, adapter)
    state = {}
    for n, layer in enumerate(layers):
        base = f"lora_unet_{layer.diffusers_name}.transformer_blocks.{layer.index}".replace(".", "_")
        for attn, proc in (("attn1", 2 * n), ("attn2", 2 * n + 1)):
            for source, target in (("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("to_out", "to_out_0")):
                for part in ("down", "up"):
                    tensor = adapter.lora.get(f"{proc}.{source}_lora.{part}.weight")
                    if tensor is not None:
                        state[f"{base}_{attn}_{target}.lora_{part}.weight"] = tensor
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    patches = comfy.lora.load_lora(state, key_map, log_missing=False)
    if len(patches) != len(state) // 2:
        raise FaceIDError(f"{adapter.name}: only {len(patches)} of {len(state) // 2} LoRA layers fit this model.")
    return patches


def as_plus_version(adapter: LoadedAdapter, version: str | None) -> LoadedAdapter:
    """The same adapter labelled FaceID-Plus v1 or v2 (their files hold the same tensors)."""
    from dataclasses import replace
    if adapter.spec.face != "plus" or version not in ("v1", "v2") or adapter.spec.plus_v2 == (version == "v2"):
        return adapter
    variant = adapter.spec.variant.replace("plusv2_", "plus_").replace("plus_", "plusv2_" if version == "v2" else "plus_")
    return replace(adapter, spec=replace(adapter.spec, plus_v2=version == "v2", variant=variant))


def apply_lora(patched, adapter: LoadedAdapter, strength: float):
    """Adds the adapter's LoRA to `patched` (a clone) once; ComfyUI merges it when it loads the model."""
    if not adapter.lora or strength == 0:
        return patched
    options = patched.model_options.setdefault("transformer_options", {})
    applied = set(options.get(LORA_MARK, ()))
    if adapter.path in applied:
        log.info("IPAdapter Kit: %s LoRA already on this model (the unified loader applied it)", adapter.name)
        return patched
    patched.add_patches(lora_patches(patched, adapter), float(strength))
    options[LORA_MARK] = tuple(sorted(applied | {adapter.path}))
    return patched


def apply_faceid(model, adapter: LoadedAdapter, faces: Faces, clip_vision=None, weight=1.0,
                 weight_faceidv2: float | None = None, lora_strength: float = 1.0, weight_kolors: float = 1.0,
                 plus_version: str = "auto", image_negative: torch.Tensor | None = None, **controls):
    """A patched clone with the faces' identity tokens and (FaceID, FaceID-Plus) the adapter's LoRA.

    `image_negative`: FaceID-Plus's CLIP source for the negative side (see face_tokens)."""
    if not adapter.spec.face:
        raise FaceIDError(_not_faceid(adapter))
    settings = Controls(weight=weight, **controls)
    v2 = adapter.spec.plus_v2 if plus_version == "auto" else plus_version == "v2"  # names hint, users decide
    first_weight = settings.weight[0] if isinstance(settings.weight, (list, tuple)) else settings.weight
    shortcut = 2.0 * float(first_weight) if weight_faceidv2 is None else float(weight_faceidv2)
    if faces.embeddings.shape[0] == 0:
        raise FaceIDError("No face to apply: every reference image was skipped for having no face.")
    layers = match_layers(model, adapter)
    plan = make_plan(model, adapter, layers, None, settings, tokens=lambda: face_tokens(
        model, adapter, faces, clip_vision, shortcut, settings.combine_embeds, settings.unfold_batch, weight_kolors, v2,
        image_negative), inputs={"image": "faces"})  # one face per frame: count errors name the faces input
    patched = apply_plans(model, [plan])
    log.info("IPAdapter Kit: %s on %d face(s)%s", adapter.name, faces.embeddings.shape[0],
             f", LoRA at {lora_strength}" if adapter.lora else "")
    return apply_lora(patched, adapter, lora_strength)


# --------------------------------------------------------------------------- faces from images
_face_models: dict = {}
_analyses = None  # OrderedDict: content and settings -> Faces
stats = {"analyses": 0}  # for tests and benchmarks: face analyses actually run


def insightface_model(name: str, provider: str = "CPU"):
    """A loaded insightface model from `models/insightface/models/<name>` (or an extra folder)."""
    import folder_paths
    from ..ip_models.face_analysis import FaceModel, model_folder
    folder = model_folder(folder_paths.get_folder_paths("insightface"), name)
    key = (folder, provider)
    if key not in _face_models:
        _face_models[key] = FaceModel(folder, provider)
    return _face_models[key]


def analyze_faces(face_model, images: torch.Tensor, choice: str = "largest", index: int = 0,
                  skip_no_face: bool = False, crop_size: int = 224) -> Faces:
    """One face per reference image (see face_analysis.choose); cached by image content and settings."""
    global _analyses
    from collections import OrderedDict

    from ..ip_models.face_analysis import DETECTION_SIZES, KOLORS_CROP, choose, square_box_crop, to_bgr
    from .encode import _digest
    if _analyses is None:
        _analyses = OrderedDict()
    key = (id(face_model), *_digest(images), choice, int(index), bool(skip_no_face), int(crop_size))
    if key in _analyses:
        _analyses.move_to_end(key)
        return _analyses[key]
    stats["analyses"] += 1
    embeddings, crops, boxes, sources = [], [], [], []
    for i, image in enumerate(images):
        bgr = to_bgr(image)
        found = face_model.detect(bgr)
        if not found:
            if skip_no_face:
                continue
            raise FaceIDError(f"No face found in reference image {i + 1} of {images.shape[0]} (detection sizes "
                              f"{DETECTION_SIZES[0]} down to {DETECTION_SIZES[-1]}): use another image, or turn on "
                              f"skip_no_face to leave such images out.")
        if choice == "index" and index >= len(found):
            raise FaceIDError(f"face_index {index} asks for face {index + 1}, but reference image {i + 1} has "
                              f"{len(found)} face(s) (counted by detection score).")
        face = choose(found, choice, index)
        embeddings.append(torch.from_numpy(face_model.embedding(bgr, face)))
        crops.append(torch.from_numpy(face_model.aligned_crop(bgr, face, crop_size).copy()))
        boxes.append(torch.from_numpy(square_box_crop(bgr, face.bbox)))
        sources.append(i)
    name = getattr(face_model, "name", "")
    if embeddings:
        faces = Faces(torch.stack(embeddings), torch.stack(crops), tuple(sources), torch.stack(boxes), name)
    else:
        faces = Faces(torch.zeros(0, 512), torch.zeros(0, crop_size, crop_size, 3), (),
                      torch.zeros(0, KOLORS_CROP, KOLORS_CROP, 3), name)
    _analyses[key] = faces
    while len(_analyses) > 32:
        _analyses.popitem(last=False)
    return faces


FACES_FORMAT, FACES_SUFFIX = "ipakit-faces/1", ".faces.safetensors"


def save_faces(faces: Faces, path: str) -> None:
    import json

    from safetensors.torch import save_file
    tensors = {"embeddings": faces.embeddings.float().contiguous(), "crops": faces.crops.float().contiguous()}
    if faces.box_crops is not None:
        tensors["box_crops"] = faces.box_crops.float().contiguous()
    save_file(tensors, path, metadata={"format": FACES_FORMAT, "sources": json.dumps(list(faces.sources)),
                                       "model_name": faces.model_name})


def load_faces(path: str) -> Faces:
    import json
    import os

    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FACES_FORMAT:
            raise FaceIDError(f"{os.path.basename(path)} is not a faces file saved by 'Save Faces (Kit)'.")
        boxes = f.get_tensor("box_crops").float() if "box_crops" in f.keys() else None  # older files have none
        return Faces(f.get_tensor("embeddings"), f.get_tensor("crops").float(), tuple(json.loads(meta["sources"])),
                     boxes, meta.get("model_name", ""))


def apply_companion_lora(model, adapter: LoadedAdapter, path: str | None, strength: float):
    """The companion *_lora.safetensors through ComfyUI's own LoRA loader, marked like the embedded one."""
    if path is None:
        raise FaceIDError(f"No file in models/loras holds the LoRA weights of {adapter.name}; put its companion "
                          f"*_lora.safetensors there, or use the LoRA inside the adapter.")
    import os

    import comfy.sd
    import comfy.utils
    state = comfy.utils.load_torch_file(path, safe_load=True)
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    weights = model.model.state_dict()
    downs = {k[: -len(".lora_down.weight")]: v for k, v in state.items() if k.endswith(".lora_down.weight")}
    fitting = sum(1 for name, down in downs.items() if name in key_map
                  and tuple(weights[key_map[name]].shape[1:2]) == tuple(down.shape[1:2]))
    if not downs or fitting < len(downs):
        raise FaceIDError(f"{os.path.basename(path)} does not fit this model ({fitting} of {len(downs)} LoRA layers "
                          f"match it: a LoRA for another base model); use the {adapter.spec.family.upper()} companion "
                          f"of {adapter.name}, or the LoRA inside the adapter.")
    patched, _ = comfy.sd.load_lora_for_models(model, None, state, float(strength), 0)
    options = patched.model_options.setdefault("transformer_options", {})
    options[LORA_MARK] = tuple(sorted(set(options.get(LORA_MARK, ())) | {adapter.path}))
    log.info("IPAdapter Kit: companion LoRA %s for %s at %s", path, adapter.name, strength)
    return patched
