"""More of the reference than one square: tiled encoding, and the enhancer."""
from ..patching.tiled import apply_enhanced, apply_tiled
from . import inputs
from .apply import COMMON, OPTIONAL, IPAKitApply

_CONTROLS = {"weight": inputs.WEIGHT, "weight_type": inputs.WEIGHT_TYPE, "combine_embeds": inputs.COMBINE_EMBEDS,
             "start_at": inputs.START_AT, "end_at": inputs.END_AT}


class IPAKitApplyTiled(IPAKitApply):
    DESCRIPTION = ("For references far from square: the image is cut into 256 px tiles that cover all of it, "
                   "and each tile acts under its own part of the mask, so nothing is cropped away.")
    RETURN_TYPES = ("MODEL", "IMAGE", "MASK")
    RETURN_NAMES = ("MODEL", "tiles", "masks")
    OUTPUT_TOOLTIPS = ("A patched copy of the model.", "The tiles the encoder saw.", "Each tile's mask.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.IMAGE, **_CONTROLS, "sharpening": inputs.SHARPENING,
                             "embeds_scaling": inputs.EMBEDS_SCALING},
                "optional": {**OPTIONAL, "encode_batch_size": inputs.ENCODE_BATCH_SIZE}}

    def apply(self, model, ipadapter, clip_vision, image, weight, weight_type, combine_embeds, start_at, end_at,
              sharpening, embeds_scaling, image_negative=None, attn_mask=None, encode_batch_size=0):
        return apply_tiled(model, ipadapter, clip_vision, image, sharpening, image_negative, encode_batch_size,
                           weight=weight, weight_type=weight_type, combine_embeds=combine_embeds, start_at=start_at,
                           end_at=end_at, embeds_scaling=embeds_scaling, attn_mask=attn_mask)


class IPAKitApplyEnhanced(IPAKitApply):
    DESCRIPTION = ("Also encodes the reference in t x t crops and merges their features into the whole image's, "
                   "so small details reach the adapter (enhance_ratio: the whole image's share).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.IMAGE, **_CONTROLS, "embeds_scaling": inputs.EMBEDS_SCALING,
                             "enhance_tiles": inputs.ENHANCE_TILES, "enhance_ratio": inputs.ENHANCE_RATIO},
                "optional": {**OPTIONAL, "encode_batch_size": inputs.ENCODE_BATCH_SIZE}}

    def apply(self, model, ipadapter, clip_vision, image, weight, weight_type, combine_embeds, start_at, end_at,
              embeds_scaling, enhance_tiles, enhance_ratio, image_negative=None, attn_mask=None, encode_batch_size=0):
        return (apply_enhanced(model, ipadapter, clip_vision, image, enhance_tiles, enhance_ratio, image_negative,
                               encode_batch_size, weight=weight, weight_type=weight_type, combine_embeds=combine_embeds,
                               start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling, attn_mask=attn_mask),)
