"""Reusable embeddings: encode once, combine, save and share as safetensors, apply without images."""
import os

import folder_paths

from ..ip_models.noise import make_noise
from ..patching import embeds as engine
from . import inputs
from .apply import IPAKitApply


class IPAKitEncoder:
    DESCRIPTION = ("Encodes reference images into embeddings for this adapter (positive) and the adapter's "
                   "trained 'no image' input (negative), to combine, save or apply later without re-encoding.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.EMBEDS_TYPE, inputs.EMBEDS_TYPE)
    RETURN_NAMES = ("pos_embed", "neg_embed")
    OUTPUT_TOOLTIPS = ("The images' embeddings.", "The negative embeddings.")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ipadapter": inputs.ADAPTER, "clip_vision": inputs.CLIP_VISION, "image": inputs.IMAGE,
                             "weight": inputs.EMBED_WEIGHT},
                "optional": {"mask": inputs.ENCODE_MASK, "encode_batch_size": inputs.ENCODE_BATCH_SIZE}}

    def encode(self, ipadapter, clip_vision, image, weight, mask=None, encode_batch_size=0):
        return engine.encode_embeds(ipadapter, clip_vision, image, weight, mask, encode_batch_size)


class IPAKitApplyEmbeds(IPAKitApply):
    DESCRIPTION = "An image prompt from embeddings (encoded, combined or loaded): no image is encoded here."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": inputs.MODEL, "ipadapter": inputs.ADAPTER, "pos_embed": inputs.POS_EMBED,
                             "weight": inputs.WEIGHT, "weight_type": inputs.WEIGHT_TYPE, "start_at": inputs.START_AT,
                             "end_at": inputs.END_AT, "embeds_scaling": inputs.EMBEDS_SCALING},
                "optional": {"neg_embed": inputs.NEG_EMBED, "attn_mask": inputs.ATTN_MASK,
                             "clip_vision": inputs.OPTIONAL_CLIP_VISION}}

    def apply(self, model, ipadapter, pos_embed, weight, weight_type, start_at, end_at, embeds_scaling,
              neg_embed=None, attn_mask=None, clip_vision=None):
        return (engine.apply_embeds(model, ipadapter, pos_embed, neg_embed, clip_vision, weight=weight,
                                    weight_type=weight_type, start_at=start_at, end_at=end_at,
                                    embeds_scaling=embeds_scaling, attn_mask=attn_mask),)


class IPAKitCombineEmbeds:
    DESCRIPTION = "Joins or merges up to five embeddings (the negatives need their own node)."
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.EMBEDS_TYPE,)
    RETURN_NAMES = ("embeds",)
    OUTPUT_TOOLTIPS = ("The combined embeddings.",)
    FUNCTION = "combine"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"embed1": inputs.EMBEDS, "method": inputs.COMBINE_METHOD},
                "optional": {f"embed{i}": inputs.EMBEDS for i in range(2, 6)}}

    def combine(self, embed1, method, **more):
        return (engine.combine([embed1] + [more[k] for k in sorted(more) if more[k] is not None], method),)


class IPAKitSaveEmbeds:
    DESCRIPTION = ("Saves embeddings as safetensors (with what they were encoded with) in the output folder, "
                   "numbered so nothing is overwritten. Move them to the input folder to share them.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"embeds": inputs.EMBEDS, "filename_prefix": inputs.EMBEDS_PREFIX}}

    def save(self, embeds, filename_prefix):
        return save_numbered(filename_prefix, engine.SUFFIX, "embeds", lambda path: engine.save(embeds, path))


def save_numbered(prefix: str, suffix: str, kind: str, write) -> dict:
    """Write `<prefix>_<counter>_<suffix>` into the output folder with the next free counter (ComfyUI's
    own numbering, so nothing is overwritten); returns the node's UI result."""
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, folder_paths.get_output_directory())
    name = f"{filename}_{counter:05}_{suffix}"
    write(os.path.join(folder, name))
    return {"ui": {kind: [{"filename": name, "subfolder": subfolder, "type": "output"}]}}


def output_and_input_files(suffixes: tuple[str, ...]) -> list[str]:
    """Files in input/ (as is) and output/ (marked ' [output]') ending in one of `suffixes`."""
    found = []
    for root, mark in ((folder_paths.get_input_directory(), ""), (folder_paths.get_output_directory(), " [output]")):
        for base, _, files in os.walk(root, followlinks=True):
            for f in files:
                if f.endswith(suffixes):
                    found.append(os.path.relpath(os.path.join(base, f), root).replace(os.sep, "/") + mark)
    return sorted(found)


class IPAKitLoadEmbeds:
    DESCRIPTION = "Loads embeddings saved by 'Save Embeds (Kit)' from the input or output folder."
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.EMBEDS_TYPE,)
    RETURN_NAMES = ("embeds",)
    OUTPUT_TOOLTIPS = ("The embeddings, with what they were encoded with.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        # .ipadpt pickles are listed so that choosing one explains how to convert it
        return {"required": {"embeds": (output_and_input_files((engine.SUFFIX, ".ipadpt")),
                                        {"tooltip": "A *.embeds.safetensors file."})}}

    def load(self, embeds):
        return (engine.load(folder_paths.get_annotated_filepath(embeds)),)


class IPAKitNoise:
    DESCRIPTION = ("A noise image for image_negative: what the image prompt should move away from. "
                   "The same image, settings and seed always give the same noise.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("A 224 x 224 noise image.",)
    FUNCTION = "noise"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"type": inputs.NOISE_TYPE, "strength": inputs.NOISE_STRENGTH, "blur": inputs.NOISE_BLUR,
                             "seed": inputs.NOISE_SEED},
                "optional": {"image_optional": inputs.NOISE_IMAGE, "mask": inputs.NOISE_MASK}}

    def noise(self, type, strength, blur, seed, image_optional=None, mask=None):
        return (make_noise(type, strength, blur, image_optional, mask, seed),)


