"""The compatibility face's inputs: names, types, defaults, ranges and option strings exactly as
ComfyUI_IPAdapter_plus declares them (saved workflows store widget values by position), each with
our tooltip. Declared once; nodes list them by name."""
from ..ip_models.face_analysis import MODEL_NAMES
from ..ip_models.image_prep import CROP_POSITIONS, INTERPOLATIONS
from ..ip_models.noise import NOISE_TYPES
from ..ip_models.presets import FACEID_PRESET_NAMES, PRESET_NAMES
from ..ip_models.scaling import SCALING_MODES
from ..patching.frame_schedule import METHODS, TIMINGS

CATEGORY = "ipadapter"
IPADAPTER, INSIGHTFACE, EMBEDS = "IPADAPTER", "INSIGHTFACE", "EMBEDS"
PARAMS, STRATEGY = "IPADAPTER_PARAMS", "WEIGHTS_STRATEGY"
LEGACY_WEIGHT_TYPES = ("linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                       "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                       "style and composition", "style transfer precise", "composition precise")
LEGACY_COMBINE = ("concat", "add", "subtract", "average", "norm average")
SIMPLE_WEIGHT_TYPES = {"standard": "linear", "prompt is more important": "ease out", "style transfer": "style transfer"}


def _f(default, lo, hi, step, tip):
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tip})


def _i(default, lo, hi, tip, step=None):
    opts = {"default": default, "min": lo, "max": hi}
    if step is not None:
        opts["step"] = step
    return ("INT", {**opts, "tooltip": tip})


def _c(options, tip, default=None):
    return (list(options), {"tooltip": tip, **({"default": default} if default is not None else {})})


WEIGHT_TIP = "Strength of the image prompt."
SPECS = {
    "model": ("MODEL", {"tooltip": "The diffusion model; a patched copy is returned."}),
    "ipadapter": (IPADAPTER, {"tooltip": "An adapter from a loader (with the unified loaders also its CLIP encoder)."}),
    "image": ("IMAGE", {"tooltip": "The reference image(s)."}),
    "image_style": ("IMAGE", {"tooltip": "The image whose style to take."}),
    "image_composition": ("IMAGE", {"tooltip": "The image whose composition to take."}),
    "image_negative": ("IMAGE", {"tooltip": "Optional negative reference (default: the adapter's trained 'no image')."}),
    "image_optional": ("IMAGE", {"tooltip": "Optional image to add the noise to (default: black)."}),
    "attn_mask": ("MASK", {"tooltip": "Where the image prompt acts (white); any size and aspect ratio."}),
    "mask": ("MASK", {"tooltip": "Optional mask."}),
    "clip_vision": ("CLIP_VISION", {"tooltip": "A CLIP image encoder; overrides the one the unified loader found."}),
    "insightface": (INSIGHTFACE, {"tooltip": "insightface for FaceID adapters; overrides the unified loader's."}),
    "weight": _f(1.0, -1, 5, 0.05, WEIGHT_TIP),
    "weight@3": _f(1.0, -1, 3, 0.05, WEIGHT_TIP),
    "weight@encoder": _f(1.0, -1.0, 3.0, 0.01, "Scales the embeddings in CLIP space."),
    "weight_style": _f(1.0, -1, 5, 0.05, "Strength of the style image."),
    "weight_composition": _f(1.0, -1, 5, 0.05, "Strength of the composition image."),
    "weight_faceidv2": _f(1.0, -1, 5.0, 0.05, "FaceID-Plus v2: weight of the shortcut (identity tokens kept)."),
    "weight_kolors": _f(1.0, -1, 5.0, 0.05, "Kolors FaceID: scales the Kolors UNet's encoder_hid_proj."),
    "weight_type": _c(LEGACY_WEIGHT_TYPES, "How the weight is spread over the UNet's layers (docs/controls.md)."),
    "weight_type@simple": _c(SIMPLE_WEIGHT_TYPES, "standard: linear; prompt is more important: ease out; "
                                                  "style transfer: the style layers only."),
    "combine_embeds": _c(LEGACY_COMBINE, "How several reference images are merged (the negative alike)."),
    "combine_embeds@average": _c(LEGACY_COMBINE, "How several reference images are merged (the negative alike).",
                                 "average"),
    "start_at": _f(0.0, 0.0, 1.0, 0.001, "Fraction of the schedule (by sigma) where the image prompt starts."),
    "end_at": _f(1.0, 0.0, 1.0, 0.001, "Fraction of the schedule (by sigma) where the image prompt stops."),
    "embeds_scaling": _c(SCALING_MODES, "Where the weight enters the image attention (V only, K+V, with penalty)."),
    "encode_batch_size": _i(0, 0, 4096, "Encode this many images at a time (0 = all)."),
    "expand_style": ("BOOLEAN", {"default": False, "tooltip": "Style on every non-composition layer."}),
    "style_boost": _f(1.0, -5, 5, 0.05, "Weight of the image on the composition layers, on the negative side only."),
    "composition_boost": _f(0.0, -5, 5, 0.05, "Weight of the image on the other layers, on the negative side only."),
    "sharpening": _f(0.0, 0.0, 1.0, 0.05, "Contrast-adaptive sharpening of the tiles (0 = off)."),
    "sharpening@prep": _f(0.0, 0, 1, 0.05, "Contrast-adaptive sharpening after resizing (0 = off)."),
    "layer_weights": ("STRING", {"default": "", "multiline": True, "tooltip":
                                 "'index:value, ...' per layer (replaces weight_type), or an InstantStyle dict."}),
    "enhance_tiles": _i(2, 1, 16, "Also encode t x t crops and merge their features."),
    "enhance_ratio": _f(1.0, 0.0, 1.0, 0.05, "Share of the whole image in the merged features."),
    "enhance_ratio@batch": _f(0.5, 0.0, 1.0, 0.05, "Share of the whole image in the merged features."),
    "pos_embed": (EMBEDS, {"tooltip": "Embeddings from the encoder, combine or load node."}),
    "neg_embed": (EMBEDS, {"tooltip": "Optional negative embeddings."}),
    "embeds": (EMBEDS, {"tooltip": "The embeddings to save."}),
    **{f"embed{i}": (EMBEDS, {"tooltip": f"Embeddings {i}."}) for i in range(1, 6)},
    "method@combine": _c(("concat", "add", "subtract", "average", "norm average", "max", "min"),
                         "concat keeps all; the others merge (norm average: each embedding normalised by its own norm)."),
    "filename_prefix": ("STRING", {"default": "IP_embeds", "tooltip": "File name prefix in the output folder."}),
    "preset": _c(PRESET_NAMES[:6], "Which adapter to load; files are recognised by their weights, not their names."),
    "preset@community": _c(PRESET_NAMES[6:], "Which community adapter to load, recognised by its weights."),
    "preset@faceid": _c(FACEID_PRESET_NAMES, "Which FaceID adapter to load, recognised by its weights."),
    "lora_strength": _f(0.6, 0, 1, 0.01, "Strength of the FaceID LoRA applied to the model (the official code "
                                         "uses 1.0; this node's default 0.6 is kept for saved workflows)."),
    "provider@faceid": _c(("CPU", "CUDA", "ROCM", "DirectML", "OpenVINO", "CoreML"),
                          "Where insightface runs; falls back to the CPU."),
    "provider": _c(("CPU", "CUDA", "ROCM"), "Where insightface runs; falls back to the CPU."),
    "model_name": _c(MODEL_NAMES, "The insightface model in models/insightface/models/<name>."),
    "ipadapter_file": None,  # a file list, filled in by the loader node
    "ipadapter_params": (PARAMS, {"tooltip": "Regions from the regional conditioning and combine params nodes."}),
    **{f"params_{i}": (PARAMS, {"tooltip": f"Regions {i}."}) for i in range(1, 6)},
    "image_weight": _f(1.0, -1.0, 3.0, 0.05, "Strength of the region's image prompt."),
    "prompt_weight": _f(1.0, 0.0, 10.0, 0.05, "Strength of the text conditioning inside the mask."),
    "positive": ("CONDITIONING", {"tooltip": "Optional positive conditioning to mask to the region."}),
    "negative": ("CONDITIONING", {"tooltip": "Optional negative conditioning to mask to the region."}),
    "type": _c(NOISE_TYPES, "fade, dissolve, gaussian or shuffle noise."),
    "strength": _f(1.0, 0, 1, 0.05, "How much noise."),
    "blur": _i(0, 0, 32, "Gaussian blur kernel size (0 = none).", step=1),
    "interpolation": _c(INTERPOLATIONS, "The resampling filter."),
    "crop_position": _c(CROP_POSITIONS, "Which square the encoder sees, or pad to a square."),
    "weights": ("STRING", {"default": "1.0, 0.0", "multiline": True, "tooltip": "Weights, by commas or lines."}),
    "timing": _c(TIMINGS, "custom: as typed; otherwise a ramp (ease_in starts slowly, ease_out ends slowly).",
                 "linear"),
    "frames": _i(0, 0, 9999, "Frames per segment.", step=1),
    "start_frame": _i(0, 0, 9999, "Frames holding the first value.", step=1),
    "end_frame": _i(9999, 0, 9999, "The frame where the ramp reaches the last value.", step=1),
    "add_starting_frames": _i(0, 0, 9999, "Extra frames at the start.", step=1),
    "add_ending_frames": _i(0, 0, 9999, "Extra frames at the end.", step=1),
    "method": _c(METHODS, "full, shift (cross-fade) or alternate batches.", "full batch"),
    "weights_strategy": (STRATEGY, {"tooltip": "From the weights node."}),
    "prompt": ("STRING", {"default": "", "multiline": True, "tooltip": "One prompt per line, one per image."}),
    "weights_1": _f(0.0, 0.0, 1.0, 0.05, "A weight or a weights list."),
    "weights_2": _f(0.0, 0.0, 1.0, 0.05, "A weight or a weights list."),
}


def spec(name: str):
    """The spec for `name` (a name@variant picks a variant with another default or range)."""
    return name.split("@")[0], SPECS[name]


def section(*names) -> dict:
    return dict(spec(n) for n in names)
