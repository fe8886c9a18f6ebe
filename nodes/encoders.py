"""Encoders and models found by their weights: a CLIP vision loader for every layout, the unified
loader, and image preparation for the encoder."""
import folder_paths

from ..ip_models.image_prep import prep_for_clip
from ..patching.clip_loader import load_clip_vision
from ..patching.finder import CLIP_FOLDER, cached_load, find_preset_files, model_family
from . import inputs


class IPAKitClipVisionLoader:
    DESCRIPTION = ("Loads a CLIP image encoder from models/clip_vision in ComfyUI's, Hugging Face transformers' "
                   "(model.safetensors of CLIPVisionModelWithProjection) or open_clip's layout "
                   "(open_clip_pytorch_model.*), for ViT-H-14, ViT-bigG-14 and ViT-L-14-336. The result is "
                   "ComfyUI's own CLIP_VISION, usable by every node.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("CLIP_VISION",)
    OUTPUT_TOOLTIPS = ("The encoder, as core's 'Load CLIP Vision' gives it.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": (folder_paths.get_filename_list(CLIP_FOLDER), {
            "tooltip": "A file in models/clip_vision (or a 'clip_vision:' folder of extra_model_paths.yaml)."})}}

    def load(self, clip_name):
        return (load_clip_vision(folder_paths.get_full_path_or_raise(CLIP_FOLDER, clip_name)),)


class IPAKitUnifiedLoader:
    DESCRIPTION = ("Finds the adapter and CLIP encoder for a preset by looking inside the files (headers only), "
                   "never at their names, for the connected model's base (SD1.5 or SDXL). When something is "
                   "missing, the error lists what was found and every file that would do.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("MODEL", inputs.ADAPTER_TYPE, "CLIP_VISION")
    RETURN_NAMES = ("model", "ipadapter", "clip_vision")
    OUTPUT_TOOLTIPS = ("The model, unchanged (pass it on to the apply node).", "The adapter the preset found.",
                       "The CLIP image encoder that adapter needs.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": inputs.MODEL, "preset": inputs.PRESET}}

    def load(self, model, preset):
        adapter_file, encoder_file = find_preset_files(preset, *model_family(model))
        return model, cached_load("adapter", adapter_file.path), cached_load("clip_vision", encoder_file.path)


class IPAKitPrepImage:
    DESCRIPTION = ("Prepares a reference for the CLIP encoder: which square it sees (or padded to a square), the "
                   "resampling filter and optional sharpening, at 224 or 336 px. RGBA and greyscale images and "
                   "batches are handled.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("Square images of the chosen size.",)
    FUNCTION = "prep"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": inputs.IMAGE, "interpolation": inputs.INTERPOLATION,
                             "crop_position": inputs.CROP_POSITION, "sharpening": inputs.SHARPENING,
                             "size": inputs.PREP_SIZE}}

    def prep(self, image, interpolation, crop_position, sharpening, size):
        return (prep_for_clip(image, size, interpolation, crop_position, sharpening),)
