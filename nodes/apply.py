from ..patching.apply import apply_adapter
from . import inputs

# The inputs every apply node shares, in the order the editor shows them.
COMMON = {"model": inputs.MODEL, "ipadapter": inputs.ADAPTER, "clip_vision": inputs.CLIP_VISION}
OPTIONAL = {"image_negative": inputs.IMAGE_NEGATIVE, "attn_mask": inputs.ATTN_MASK}


class IPAKitApply:
    DESCRIPTION = ("Gives the model an image prompt: every cross-attention layer also attends to the "
                   "reference image's tokens through the adapter's own key/value projections.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A patched copy of the model.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.IMAGE, "weight": inputs.WEIGHT, "start_at": inputs.START_AT,
                             "end_at": inputs.END_AT},
                "optional": {"attn_mask": inputs.ATTN_MASK, "image_negative": inputs.IMAGE_NEGATIVE}}

    def apply(self, model, ipadapter, clip_vision, image, weight, start_at, end_at, attn_mask=None,
              image_negative=None):
        return (apply_adapter(model, ipadapter, clip_vision, image, weight, start_at, end_at,
                              attn_mask=attn_mask, image_negative=image_negative),)


class IPAKitApplyAdvanced(IPAKitApply):
    DESCRIPTION = ("An image prompt with every control: how the weight is spread over the layers (weight "
                   "types, or your own per-layer weights), how several images are merged, and where the "
                   f"weight enters the attention. See {inputs.DOC}.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.IMAGE, "weight": inputs.WEIGHT,
                             "weight_type": inputs.WEIGHT_TYPE, "combine_embeds": inputs.COMBINE_EMBEDS,
                             "start_at": inputs.START_AT, "end_at": inputs.END_AT,
                             "embeds_scaling": inputs.EMBEDS_SCALING},
                "optional": {**OPTIONAL, "layer_weights": inputs.LAYER_WEIGHTS}}

    def apply(self, model, ipadapter, clip_vision, image, weight, weight_type, combine_embeds, start_at, end_at,
              embeds_scaling, image_negative=None, attn_mask=None, layer_weights=""):
        return (apply_adapter(model, ipadapter, clip_vision, image, weight, start_at, end_at, attn_mask=attn_mask,
                              image_negative=image_negative, weight_type=weight_type,
                              combine_embeds=combine_embeds, embeds_scaling=embeds_scaling,
                              layer_weights=layer_weights),)


class IPAKitApplyBatch(IPAKitApply):
    DESCRIPTION = ("An image prompt per latent frame, for animations and batches: frame i uses reference "
                   "image i (the last repeated) and, with a weights list, weight i. Works with AnimateDiff "
                   "and ComfyUI context windows; memory stays at the frames of the current window.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**COMMON, "image": inputs.BATCH_IMAGE, "weight": inputs.FRAME_WEIGHT,
                             "weight_type": inputs.WEIGHT_TYPE, "start_at": inputs.START_AT,
                             "end_at": inputs.END_AT, "embeds_scaling": inputs.EMBEDS_SCALING},
                "optional": {**OPTIONAL, "encode_batch_size": inputs.ENCODE_BATCH_SIZE}}

    def apply(self, model, ipadapter, clip_vision, image, weight, weight_type, start_at, end_at, embeds_scaling,
              image_negative=None, attn_mask=None, encode_batch_size=0):
        return (apply_adapter(model, ipadapter, clip_vision, image, weight, start_at, end_at, attn_mask=attn_mask,
                              image_negative=image_negative, weight_type=weight_type, embeds_scaling=embeds_scaling,
                              unfold_batch=True, encode_batch_size=encode_batch_size),)
