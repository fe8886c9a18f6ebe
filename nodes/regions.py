"""Regional image prompts: bundle (image, mask, weights, window) per region, combine, apply at once."""
from ..patching.apply import check_mask
from ..patching.compose import Region, apply_regions, mask_conditioning
from . import inputs
from .apply import COMMON, IPAKitApply


class IPAKitRegion:
    DESCRIPTION = ("One region of a regional image prompt: a reference image, where it applies (mask), its "
                   "strength, weight type and window. Connect text conditioning to restrict it to the same "
                   "mask, with prompt_weight as the mask strength.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.REGIONS_TYPE, "CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("regions", "positive", "negative")
    OUTPUT_TOOLTIPS = ("This region, for 'Combine Regions (Kit)' or 'Apply IP-Adapter Regions (Kit)'.",
                       "The positive conditioning, masked to the region (unchanged without a mask).",
                       "The negative conditioning, masked to the region (unchanged without a mask).")
    FUNCTION = "region"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": inputs.REGION_IMAGE, "image_weight": inputs.IMAGE_WEIGHT,
                             "prompt_weight": inputs.PROMPT_WEIGHT, "weight_type": inputs.WEIGHT_TYPE,
                             "start_at": inputs.START_AT, "end_at": inputs.END_AT},
                "optional": {"mask": inputs.REGION_MASK, "positive": inputs.POSITIVE, "negative": inputs.NEGATIVE}}

    def region(self, image, image_weight, prompt_weight, weight_type, start_at, end_at, mask=None, positive=None,
               negative=None):
        check_mask(mask, "mask")  # a bad mask is reported here, by this node, under its input's name
        region = Region(image, mask, image_weight, prompt_weight, weight_type, start_at, end_at)
        return ((region,), mask_conditioning(positive, mask, prompt_weight),
                mask_conditioning(negative, mask, prompt_weight))


class IPAKitCombineRegions:
    DESCRIPTION = "Joins up to five region lists into one, for 'Apply IP-Adapter Regions (Kit)'."
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.REGIONS_TYPE,)
    RETURN_NAMES = ("regions",)
    OUTPUT_TOOLTIPS = ("All regions, in input order.",)
    FUNCTION = "combine"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"regions_1": inputs.REGIONS, "regions_2": inputs.REGIONS},
                "optional": {f"regions_{i}": inputs.REGIONS for i in range(3, 6)}}

    def combine(self, regions_1, regions_2, **more):
        return (tuple(regions_1) + tuple(regions_2) + tuple(r for k in sorted(more) for r in (more[k] or ())),)


class IPAKitApplyRegions(IPAKitApply):
    DESCRIPTION = ("Applies every region at once: each region's image acts inside its own mask, with its own "
                   "weight, weight type and window, all in one patch per layer.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "regions": inputs.REGIONS, "combine_embeds": inputs.COMBINE_EMBEDS,
                             "embeds_scaling": inputs.EMBEDS_SCALING},
                "optional": {"image_negative": inputs.IMAGE_NEGATIVE}}

    def apply(self, model, ipadapter, clip_vision, regions, combine_embeds, embeds_scaling, image_negative=None):
        return (apply_regions(model, ipadapter, clip_vision, regions, combine_embeds, embeds_scaling,
                              image_negative),)
