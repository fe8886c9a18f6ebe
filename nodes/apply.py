from ..patching.apply import apply_adapter
from . import inputs


class IPAKitApply:
    DESCRIPTION = ("Gives the model an image prompt: every cross-attention layer also attends to the "
                   "reference image's tokens through the adapter's own key/value projections.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A patched copy of the model.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": inputs.MODEL, "ipadapter": inputs.ADAPTER, "clip_vision": inputs.CLIP_VISION,
                         "image": inputs.IMAGE, "weight": inputs.WEIGHT, "start_at": inputs.START_AT,
                         "end_at": inputs.END_AT},
            "optional": {"attn_mask": inputs.ATTN_MASK, "image_negative": inputs.IMAGE_NEGATIVE},
        }

    def apply(self, model, ipadapter, clip_vision, image, weight, start_at, end_at, attn_mask=None,
              image_negative=None):
        return (apply_adapter(model, ipadapter, clip_vision, image, weight, start_at, end_at,
                              attn_mask=attn_mask, image_negative=image_negative),)
