"""Precise style transfer and precise composition: one image, and CFG pushes away what is not wanted."""
from ..patching.apply import apply_adapter
from . import inputs
from .apply import COMMON, OPTIONAL, IPAKitApply

_SHARED = {"combine_embeds": inputs.COMBINE_EMBEDS, "start_at": inputs.START_AT, "end_at": inputs.END_AT,
           "embeds_scaling": inputs.EMBEDS_SCALING}


class IPAKitPreciseStyleTransfer(IPAKitApply):
    DESCRIPTION = ("Style from the reference, not its layout: the style layers get the image; the composition "
                   "layers give it to the negative side only (weighted by style_boost), so CFG steers the "
                   "layout away from the reference.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.IMAGE, "weight": inputs.WEIGHT,
                             "style_boost": inputs.STYLE_BOOST, **_SHARED}, "optional": OPTIONAL}

    def apply(self, model, ipadapter, clip_vision, image, weight, style_boost, combine_embeds, start_at, end_at,
              embeds_scaling, image_negative=None, attn_mask=None):
        return (apply_adapter(model, ipadapter, clip_vision, image, weight, start_at, end_at, attn_mask=attn_mask,
                              image_negative=image_negative, weight_type="style transfer precise",
                              style_boost=style_boost, combine_embeds=combine_embeds,
                              embeds_scaling=embeds_scaling),)


class IPAKitPreciseComposition(IPAKitApply):
    DESCRIPTION = ("Layout from the reference, not its style: the composition layers get the image; the other "
                   "layers give it to the negative side only (weighted by composition_boost, a tenth of it "
                   "outside the style layers), so CFG steers the style away from the reference.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.IMAGE, "weight": inputs.WEIGHT,
                             "composition_boost": inputs.COMPOSITION_BOOST, **_SHARED}, "optional": OPTIONAL}

    def apply(self, model, ipadapter, clip_vision, image, weight, composition_boost, combine_embeds, start_at,
              end_at, embeds_scaling, image_negative=None, attn_mask=None):
        return (apply_adapter(model, ipadapter, clip_vision, image, weight, start_at, end_at, attn_mask=attn_mask,
                              image_negative=image_negative, weight_type="composition precise",
                              composition_boost=composition_boost, combine_embeds=combine_embeds,
                              embeds_scaling=embeds_scaling),)
