from ..patching.compose import apply_style_composition
from . import inputs
from .apply import COMMON, OPTIONAL, IPAKitApply


class IPAKitStyleComposition(IPAKitApply):
    DESCRIPTION = ("Two references at once: the style of one image and the composition of another, each on "
                   "its own layers (InstantStyle's blocks), for SDXL and SD1.5. SD1.5 has no single style "
                   f"block, so the split is looser there (see {inputs.DOC}).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image_style": inputs.IMAGE_STYLE, "image_composition": inputs.IMAGE_COMPOSITION,
                             "weight_style": inputs.WEIGHT_STYLE, "weight_composition": inputs.WEIGHT_COMPOSITION,
                             "expand_style": inputs.EXPAND_STYLE, "combine_embeds": inputs.COMBINE_EMBEDS,
                             "start_at": inputs.START_AT, "end_at": inputs.END_AT,
                             "embeds_scaling": inputs.EMBEDS_SCALING},
                "optional": OPTIONAL}

    def apply(self, model, ipadapter, clip_vision, image_style, image_composition, weight_style, weight_composition,
              expand_style, combine_embeds, start_at, end_at, embeds_scaling, image_negative=None, attn_mask=None):
        return (apply_style_composition(model, ipadapter, clip_vision, image_style, image_composition, weight_style,
                                        weight_composition, expand_style, image_negative=image_negative,
                                        combine_embeds=combine_embeds, start_at=start_at, end_at=end_at,
                                        embeds_scaling=embeds_scaling, attn_mask=attn_mask),)
