"""ComfyUI_IPAdapter_plus's apply nodes on our engine."""
from ..patching.compose import apply_regions, apply_style_composition
from ..patching.embeds import apply_embeds
from ..patching.tiled import apply_enhanced, apply_tiled
from .factory import node
from .inputs import CATEGORY, SIMPLE_WEIGHT_TYPES
from .pipeline import apply, needs_clip, resolve

BASE = ("model", "ipadapter", "image")
OPTIONAL = ("image_negative", "attn_mask", "clip_vision")
FACE_OPTIONAL = (*OPTIONAL, "insightface")
MODEL_AND_FACES = (("MODEL", "MODEL"), ("IMAGE", "face_image"))


def _advanced(node_id, unfold=False, faces=False, **fixed):
    def run(model, ipadapter, image, weight, start_at, end_at, embeds_scaling, weight_type="linear",
            combine_embeds="concat", image_negative=None, attn_mask=None, clip_vision=None, insightface=None,
            weight_faceidv2=None, weight_kolors=1.0, encode_batch_size=0, layer_weights="", style_boost=None,
            composition_boost=None):
        patched, crops = apply(node_id, model, resolve(ipadapter, clip_vision, insightface), image, weight,
                               weight_faceidv2, weight_kolors, unfold, encode_batch_size, image_negative,
                               weight_type=fixed.get("weight_type", weight_type), combine_embeds=combine_embeds,
                               start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling, attn_mask=attn_mask,
                               layer_weights=layer_weights, style_boost=style_boost,
                               composition_boost=composition_boost)
        return (patched, crops) if faces else (patched,)
    return run


def _simple(model, ipadapter, image, weight, start_at, end_at, weight_type, attn_mask=None):
    return apply("IPAdapter", model, ipadapter, image, weight, start_at=start_at, end_at=end_at, attn_mask=attn_mask,
                 weight_type=SIMPLE_WEIGHT_TYPES[weight_type])[0]


def _tiled(unfold):
    def run(model, ipadapter, image, weight, weight_type, start_at, end_at, sharpening, embeds_scaling,
            combine_embeds="concat", encode_batch_size=0, image_negative=None, attn_mask=None, clip_vision=None):
        pipeline = resolve(ipadapter, clip_vision)
        return apply_tiled(model, pipeline.adapter, needs_clip(pipeline, "IPAdapterTiled"), image, sharpening,
                           image_negative, encode_batch_size, weight=weight, weight_type=weight_type,
                           combine_embeds=combine_embeds, start_at=start_at, end_at=end_at,
                           embeds_scaling=embeds_scaling, attn_mask=attn_mask, unfold_batch=unfold)
    return run


def _embeds(unfold):
    def run(model, ipadapter, pos_embed, weight, weight_type, start_at, end_at, embeds_scaling, neg_embed=None,
            attn_mask=None, clip_vision=None):
        pipeline = resolve(ipadapter, clip_vision)
        return apply_embeds(model, pipeline.adapter, pos_embed, neg_embed, pipeline.clip_vision, weight=weight,
                            weight_type=weight_type, start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                            attn_mask=attn_mask, unfold_batch=unfold)
    return run


def _style_composition(unfold):
    def run(model, ipadapter, image_style, image_composition, weight_style, weight_composition, expand_style, start_at,
            end_at, embeds_scaling, combine_embeds="average", image_negative=None, attn_mask=None, clip_vision=None):
        pipeline = resolve(ipadapter, clip_vision)
        return apply_style_composition(model, pipeline.adapter, needs_clip(pipeline, "IPAdapterStyleComposition"),
                                       image_style, image_composition, weight_style, weight_composition, expand_style,
                                       image_negative=image_negative, combine_embeds=combine_embeds, start_at=start_at,
                                       end_at=end_at, embeds_scaling=embeds_scaling, attn_mask=attn_mask,
                                       unfold_batch=unfold)
    return run


def _enhancer(unfold):
    def run(model, ipadapter, image, weight, weight_type, start_at, end_at, embeds_scaling, enhance_tiles,
            enhance_ratio, combine_embeds="concat", encode_batch_size=0, image_negative=None, attn_mask=None,
            clip_vision=None):
        pipeline = resolve(ipadapter, clip_vision)
        return apply_enhanced(model, pipeline.adapter, needs_clip(pipeline, "IPAdapterClipVisionEnhancer"), image,
                              enhance_tiles, enhance_ratio, image_negative, encode_batch_size, weight=weight,
                              weight_type=weight_type, combine_embeds=combine_embeds, start_at=start_at, end_at=end_at,
                              embeds_scaling=embeds_scaling, attn_mask=attn_mask, unfold_batch=unfold)
    return run


def _from_params(model, ipadapter, ipadapter_params, combine_embeds, embeds_scaling, image_negative=None,
                 clip_vision=None):
    pipeline = resolve(ipadapter, clip_vision)
    return apply_regions(model, pipeline.adapter, needs_clip(pipeline, "IPAdapterFromParams"), ipadapter_params,
                         combine_embeds, embeds_scaling, image_negative)


TILED = (("MODEL", "MODEL"), ("IMAGE", "tiles"), ("MASK", "masks"))
W = ("weight", "weight_type", "combine_embeds", "start_at", "end_at", "embeds_scaling")
NODES = [
    node("IPAdapter", "IPAdapter", CATEGORY, (*BASE, "weight@3", "start_at", "end_at", "weight_type@simple"),
         ("attn_mask",), run=_simple),
    node("IPAdapterAdvanced", "IPAdapter Advanced", CATEGORY, (*BASE, *W), OPTIONAL, run=_advanced("IPAdapterAdvanced")),
    node("IPAdapterBatch", "IPAdapter Batch (Adv.)", CATEGORY,
         (*BASE, "weight", "weight_type", "start_at", "end_at", "embeds_scaling", "encode_batch_size"), OPTIONAL,
         run=_advanced("IPAdapterBatch", unfold=True)),
    node("IPAdapterFaceID", "IPAdapter FaceID", "ipadapter/faceid",
         (*BASE, "weight@3", "weight_faceidv2", "weight_type", "combine_embeds", "start_at", "end_at", "embeds_scaling"),
         FACE_OPTIONAL, MODEL_AND_FACES, _advanced("IPAdapterFaceID", faces=True)),
    node("IPAAdapterFaceIDBatch", "IPAdapter FaceID Batch", "ipadapter/faceid",
         (*BASE, "weight@3", "weight_faceidv2", "weight_type", "combine_embeds", "start_at", "end_at", "embeds_scaling"),
         FACE_OPTIONAL, MODEL_AND_FACES, _advanced("IPAAdapterFaceIDBatch", unfold=True, faces=True)),
    node("IPAdapterFaceIDKolors", "IPAdapter FaceID Kolors", "ipadapter/faceid",
         (*BASE, "weight@3", "weight_faceidv2", "weight_kolors", "weight_type", "combine_embeds", "start_at", "end_at",
          "embeds_scaling"), FACE_OPTIONAL, MODEL_AND_FACES, _advanced("IPAdapterFaceIDKolors", faces=True)),
    node("IPAdapterTiled", "IPAdapter Tiled", "ipadapter/tiled",
         (*BASE, "weight@3", "weight_type", "combine_embeds", "start_at", "end_at", "sharpening", "embeds_scaling"),
         OPTIONAL, TILED, _tiled(False)),
    node("IPAdapterTiledBatch", "IPAdapter Tiled Batch", "ipadapter/tiled",
         (*BASE, "weight@3", "weight_type", "start_at", "end_at", "sharpening", "embeds_scaling", "encode_batch_size"),
         OPTIONAL, TILED, _tiled(True)),
    node("IPAdapterEmbeds", "IPAdapter Embeds", "ipadapter/embeds",
         ("model", "ipadapter", "pos_embed", "weight@3", "weight_type", "start_at", "end_at", "embeds_scaling"),
         ("neg_embed", "attn_mask", "clip_vision"), run=_embeds(False)),
    node("IPAdapterEmbedsBatch", "IPAdapter Embeds Batch", "ipadapter/embeds",
         ("model", "ipadapter", "pos_embed", "weight@3", "weight_type", "start_at", "end_at", "embeds_scaling"),
         ("neg_embed", "attn_mask", "clip_vision"), run=_embeds(True)),
    node("IPAdapterStyleComposition", "IPAdapter Style & Composition SDXL", "ipadapter/style_composition",
         ("model", "ipadapter", "image_style", "image_composition", "weight_style", "weight_composition", "expand_style",
          "combine_embeds@average", "start_at", "end_at", "embeds_scaling"), OPTIONAL, run=_style_composition(False)),
    node("IPAdapterStyleCompositionBatch", "IPAdapter Style & Composition Batch SDXL", "ipadapter/style_composition",
         ("model", "ipadapter", "image_style", "image_composition", "weight_style", "weight_composition", "expand_style",
          "start_at", "end_at", "embeds_scaling"), OPTIONAL, run=_style_composition(True)),
    node("IPAdapterMS", "IPAdapter Mad Scientist", "ipadapter/dev",
         (*BASE, "weight", "weight_faceidv2", "weight_type", "combine_embeds", "start_at", "end_at", "embeds_scaling",
          "layer_weights"), FACE_OPTIONAL, run=_advanced("IPAdapterMS")),
    node("IPAdapterPreciseStyleTransfer", "IPAdapter Precise Style Transfer", CATEGORY,
         (*BASE, "weight", "style_boost", "combine_embeds", "start_at", "end_at", "embeds_scaling"), OPTIONAL,
         run=_advanced("IPAdapterPreciseStyleTransfer", weight_type="style transfer precise")),
    node("IPAdapterPreciseStyleTransferBatch", "IPAdapter Precise Style Transfer Batch", CATEGORY,
         (*BASE, "weight", "style_boost", "combine_embeds", "start_at", "end_at", "embeds_scaling"), OPTIONAL,
         run=_advanced("IPAdapterPreciseStyleTransferBatch", unfold=True, weight_type="style transfer precise")),
    node("IPAdapterPreciseComposition", "IPAdapter Precise Composition", CATEGORY,
         (*BASE, "weight", "composition_boost", "combine_embeds", "start_at", "end_at", "embeds_scaling"), OPTIONAL,
         run=_advanced("IPAdapterPreciseComposition", weight_type="composition precise")),
    node("IPAdapterPreciseCompositionBatch", "IPAdapter Precise Composition Batch", CATEGORY,
         (*BASE, "weight", "composition_boost", "combine_embeds", "start_at", "end_at", "embeds_scaling"), OPTIONAL,
         run=_advanced("IPAdapterPreciseCompositionBatch", unfold=True, weight_type="composition precise")),
    node("IPAdapterClipVisionEnhancer", "IPAdapter ClipVision Enhancer", "ipadapter/dev",
         (*BASE, *W, "enhance_tiles", "enhance_ratio"), OPTIONAL, run=_enhancer(False)),
    node("IPAdapterClipVisionEnhancerBatch", "IPAdapter ClipVision Enhancer Batch", "ipadapter/dev",
         (*BASE, "weight", "weight_type", "start_at", "end_at", "embeds_scaling", "enhance_tiles",
          "enhance_ratio@batch", "encode_batch_size"), OPTIONAL, run=_enhancer(True)),
    node("IPAdapterFromParams", "IPAdapter from Params", "ipadapter/params",
         ("model", "ipadapter", "ipadapter_params", "combine_embeds", "embeds_scaling"),
         ("image_negative", "clip_vision"), run=_from_params),
]
