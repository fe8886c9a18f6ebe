"""Input specs shared by the pack's nodes, declared once."""
from ..ip_models.combine import COMBINE_METHODS
from ..ip_models.face_analysis import FACE_CHOICES, MODEL_NAMES, PROVIDERS
from ..ip_models.image_prep import CROP_POSITIONS, INTERPOLATIONS
from ..ip_models.noise import NOISE_TYPES
from ..ip_models.presets import FACEID_PRESET_NAMES, PRESET_NAMES
from ..ip_models.scaling import SCALING_MODES
from ..patching.frame_schedule import METHODS, TIMINGS
from ..patching.weight_types import WEIGHT_TYPES

CATEGORY = "ipadapter_kit"
ADAPTER_TYPE = "IPADAPTER_KIT"

MODEL = ("MODEL", {"tooltip": "The diffusion model to patch; a patched copy is returned, the input stays as it was."})
ADAPTER = (ADAPTER_TYPE, {"tooltip": "An IP-Adapter from the 'Load IP-Adapter (Kit)' node."})
CLIP_VISION = ("CLIP_VISION", {"tooltip": "The CLIP image encoder from the core 'Load CLIP Vision' node. "
                                          "Most adapters need ViT-H; 'sdxl' and 'vit-G' ones need ViT-bigG."})
IMAGE = ("IMAGE", {"tooltip": "The reference image(s). Several images in a batch are attended together."})
WEIGHT = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05,
                    "tooltip": "Strength of the image prompt; 0 leaves the model unchanged at no cost."})
START_AT = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                      "tooltip": "Fraction of the sampling schedule (by sigma) where the image prompt starts."})
END_AT = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                    "tooltip": "Fraction of the sampling schedule (by sigma) where the image prompt stops."})
ATTN_MASK = ("MASK", {"tooltip": "Where in the picture the image prompt acts (white = full strength). "
                                 "One mask, or one per latent image; any size or aspect ratio."})
IMAGE_NEGATIVE = ("IMAGE", {"tooltip": "Optional negative reference; by default the adapter's trained "
                                       "'no image' input is used."})

# --- controls ------------------------------------------------------------------------------

REGIONS_TYPE = "IPAKIT_REGIONS"
STRATEGY_TYPE = "IPAKIT_WEIGHTS_STRATEGY"
DOC = "docs/controls.md"

WEIGHT_TYPE = (list(WEIGHT_TYPES), {"default": "linear", "tooltip":
    "How the weight is spread over the UNet's layers: curves from input to output, weaker/stronger "
    f"input, middle or output blocks, or the style/composition blocks (InstantStyle). Table: {DOC}."})
COMBINE_EMBEDS = (list(COMBINE_METHODS), {"default": "concat", "tooltip":
    "Several reference images: 'concat' lets the model attend to all of them; the others merge them "
    "into one embedding first (sum, first minus the rest, mean, mean of unit-norm embeddings, max, min). "
    "The negative follows the same rule."})
EMBEDS_SCALING = (list(SCALING_MODES), {"default": "V only", "tooltip":
    "Where the weight enters the image attention: the output ('V only', the original), keys and values "
    "('K+V'), or both with a penalty on narrow layers (width/1280), optionally keeping V's mean."})
LAYER_WEIGHTS = ("STRING", {"default": "", "multiline": True, "tooltip":
    "Optional per-layer weights, replacing weight_type: 'index:value, ...' with ComfyUI's layer index "
    "(0..15 SD1.5, 0..10 SDXL, middle block included; unlisted layers are off), or an InstantStyle dict "
    "such as {\"down\": {\"block_2\": [0.0, 1.0]}, \"up\": {\"block_0\": [0.0, 1.0, 0.0]}}. "
    "Values multiply the weight."})
WEIGHT_STYLE = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05,
                          "tooltip": "Strength of the style image (on the style layers)."})
WEIGHT_COMPOSITION = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05,
                                "tooltip": "Strength of the composition image (on the composition layers)."})
EXPAND_STYLE = ("BOOLEAN", {"default": False, "tooltip":
    "Put the style image on every layer that is not a composition layer ('strong style and composition'), "
    "not only on the style layers."})
IMAGE_STYLE = ("IMAGE", {"tooltip": "The image whose style (colours, textures, medium) to take."})
IMAGE_COMPOSITION = ("IMAGE", {"tooltip": "The image whose composition (layout, shapes, pose) to take."})
STYLE_BOOST = ("FLOAT", {"default": 1.0, "min": -5.0, "max": 5.0, "step": 0.05, "tooltip":
    "Weight of the image on the composition layers, given to the negative side only (the positive side "
    "gets nothing there), so CFG pushes the composition away from the reference while the style is kept."})
COMPOSITION_BOOST = ("FLOAT", {"default": 0.0, "min": -5.0, "max": 5.0, "step": 0.05, "tooltip":
    "Weight of the image on the non-composition layers, given to the negative side only (0: those layers "
    "are off), so CFG pushes the style away from the reference while the composition is kept."})
BATCH_IMAGE = ("IMAGE", {"tooltip": "One reference image per latent frame, in order; fewer images than "
                                    "frames repeat the last one."})
FRAME_WEIGHT = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05, "tooltip":
    "Strength of the image prompt; connect a weights list (Frame Weights node) for one weight per frame "
    "(the last repeated)."})
REGION_IMAGE = ("IMAGE", {"tooltip": "The reference image(s) for this region."})
REGION_MASK = ("MASK", {"tooltip": "Where the region is (white). Any size and aspect ratio; split the picture "
                                   "in any direction. Without a mask the region is the whole picture."})
IMAGE_WEIGHT = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 3.0, "step": 0.05,
                          "tooltip": "Strength of the region's image prompt."})
PROMPT_WEIGHT = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip":
    "Strength of the text conditioning inside the mask (ComfyUI's conditioning mask strength)."})
POSITIVE = ("CONDITIONING", {"tooltip": "Optional positive text conditioning to restrict to the region's mask."})
NEGATIVE = ("CONDITIONING", {"tooltip": "Optional negative text conditioning to restrict to the region's mask."})
REGIONS = (REGIONS_TYPE, {"tooltip": "Regions from 'IP-Adapter Region (Kit)' or 'Combine Regions (Kit)'."})
WEIGHTS_TEXT = ("STRING", {"default": "1.0, 0.0", "multiline": True, "tooltip":
    "Weights separated by commas or new lines. With a timing other than 'custom', the first and last "
    "values are the ramp's start and end."})
TIMING = (list(TIMINGS), {"default": "linear", "tooltip":
    "'custom': the values as typed; otherwise a ramp over 'frames' frames (ease_in: slow start, "
    "ease_out: slow end; random: seeded)."})
FRAMES = ("INT", {"default": 0, "min": 0, "max": 9999, "step": 1,
                  "tooltip": "Frames per segment (at least 2 for a ramp)."})
START_FRAME = ("INT", {"default": 0, "min": 0, "max": 9999, "step": 1,
                       "tooltip": "Frames that keep the first value before the ramp starts."})
END_FRAME = ("INT", {"default": 9999, "min": 0, "max": 9999, "step": 1,
                     "tooltip": "The frame where the ramp reaches the last value (kept until 'frames')."})
ADD_STARTING = ("INT", {"default": 0, "min": 0, "max": 9999, "step": 1,
                        "tooltip": "Extra frames at the start, repeating the first weight and image."})
ADD_ENDING = ("INT", {"default": 0, "min": 0, "max": 9999, "step": 1,
                      "tooltip": "Extra frames at the end, repeating the last weight and image."})
METHOD = (list(METHODS), {"default": "full batch", "tooltip":
    "With several images: 'full batch' gives each image a whole segment; 'shift batches' cross-fades "
    "image i into i+1 (image_1 with weights, image_2 with weights_invert); 'alternate batches' does the "
    "same with every other segment reversed."})
SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip": "Seed of the 'random' timing."})
STRATEGY_IMAGE = ("IMAGE", {"tooltip": "Optional reference images the frames are laid out for."})
STRATEGY = (STRATEGY_TYPE, {"tooltip": "A weights strategy from the 'Frame Weights (Kit)' node."})
PROMPTS = ("STRING", {"default": "", "multiline": True,
                      "tooltip": "One prompt per line, one per reference image (the last repeated)."})

# --- encoders, finding models, embeddings ------------------------------------------------------
EMBEDS_TYPE = "IPAKIT_EMBEDS"
PRESET = (list(PRESET_NAMES), {"default": "STANDARD (medium strength)", "tooltip":
    "Which adapter to load for the connected model (SD1.5 or SDXL). Files in models/ipadapter and "
    "models/clip_vision are recognised by their weights, whatever their names; the matching CLIP "
    "encoder is loaded with it."})
INTERPOLATION = (list(INTERPOLATIONS), {"default": "LANCZOS", "tooltip": "The resampling filter."})
CROP_POSITION = (list(CROP_POSITIONS), {"default": "center", "tooltip":
    "Which square of the image the encoder sees (top/bottom move it on portrait images, left/right on "
    "landscape ones), or 'pad' to keep all of it on a black square."})
SHARPENING = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                        "tooltip": "Contrast-adaptive sharpening after resizing (0 = off)."})
PREP_SIZE = ("INT", {"default": 224, "min": 224, "max": 336, "step": 112,
                     "tooltip": "224 for ViT-H and ViT-bigG, 336 for ViT-L/14-336 (Kolors)."})
ENCODE_BATCH_SIZE = ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip":
    "Encode this many images at a time (0 = all at once); lower it for long animations."})
ENHANCE_TILES = ("INT", {"default": 2, "min": 1, "max": 16, "tooltip":
    "Also encode the image in t x t crops and merge their features into the whole image's (1 = off)."})
ENHANCE_RATIO = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
    "Share of the whole image in the merged features (1 = whole image only, 0 = crops only)."})
EMBED_WEIGHT = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 3.0, "step": 0.01, "tooltip":
    "Scales the embeddings in CLIP space (for plain adapters the projection's normalisation undoes "
    "most of it; use the apply node's weight for strength)."})
ENCODE_MASK = ("MASK", {"tooltip": "Optional: the parts of the reference the encoder sees (one mask, or one per "
                                   "image); the rest is blanked."})
POS_EMBED = (EMBEDS_TYPE, {"tooltip": "Embeddings from 'Encode IP-Adapter Embeds (Kit)', 'Combine Embeds' or 'Load Embeds'."})
NEG_EMBED = (EMBEDS_TYPE, {"tooltip": "Optional negative embeddings; by default the adapter's trained 'no image' input."})
EMBEDS = (EMBEDS_TYPE, {"tooltip": "Embeddings to combine, save or apply."})
COMBINE_METHOD = (list(COMBINE_METHODS), {"default": "concat", "tooltip":
    "concat keeps every embedding (all join one attention); the others merge them into one."})
OPTIONAL_CLIP_VISION = ("CLIP_VISION", {"tooltip": "Only needed for hidden-state adapters without neg_embed."})
EMBEDS_PREFIX = ("STRING", {"default": "ipakit_embeds", "tooltip": "File name prefix in the output folder."})
NOISE_TYPE = (list(NOISE_TYPES), {"default": "fade", "tooltip":
    "fade: blend with uniform noise; dissolve: replace pixels; gaussian: add noise; shuffle: distort and flip."})
NOISE_STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "How much noise."})
NOISE_BLUR = ("INT", {"default": 0, "min": 0, "max": 32, "step": 1, "tooltip": "Gaussian blur kernel size (0 = none)."})
NOISE_IMAGE = ("IMAGE", {"tooltip": "Optional image to add the noise to (default: black)."})
NOISE_MASK = ("MASK", {"tooltip": "Optional: add noise only inside the mask."})
NOISE_SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip": "Seed of the noise."})

# --- FaceID -----------------------------------------------------------------------------------
INSIGHTFACE_TYPE = "IPAKIT_INSIGHTFACE"
FACES_TYPE = "IPAKIT_FACES"
FACE_MODEL_NAME = (list(MODEL_NAMES), {"default": "buffalo_l", "tooltip":
    "The insightface model in models/insightface/models/<name> (antelopev2 for Kolors FaceID). Never downloaded."})
FACE_PROVIDER = (list(PROVIDERS), {"default": "CPU", "tooltip":
    "Where insightface runs (ONNX Runtime); falls back to the CPU when the chosen one is not available."})
INSIGHTFACE = (INSIGHTFACE_TYPE, {"tooltip": "From 'Load InsightFace (Kit)'."})
FACE_CHOICE = (list(FACE_CHOICES), {"default": "largest", "tooltip":
    "Which face of each reference image: the largest, the most confident, or the one at face_index."})
FACE_INDEX = ("INT", {"default": 0, "min": 0, "max": 63, "tooltip":
    "With 'index': which face, counted by detection score (0 = the most confident)."})
SKIP_NO_FACE = ("BOOLEAN", {"default": False, "tooltip":
    "Leave out reference images without a face instead of stopping (for batches and animations)."})
CROP_SIZE = ("INT", {"default": 224, "min": 112, "max": 512, "step": 16, "tooltip":
    "Size of the aligned face crop that FaceID-Plus gives the CLIP encoder (224 official). Kolors FaceID-Plus "
    "always gets its own crop, as officially: the face box made square, at 336 px."})
FACE_IMAGE_NEGATIVE = ("IMAGE", {"tooltip": "FaceID-Plus: an image whose CLIP features take the negative side "
    "(by default what the adapter was trained with). FaceID and Portrait have no CLIP part and ignore it."})
FACES = (FACES_TYPE, {"tooltip": "Faces from 'Analyze Faces (Kit)' or 'Load Faces (Kit)'."})
SHORTCUT_AUTO = -1.0  # weight_faceidv2 below 0: twice the weight
FACEID_V2_WEIGHT = ("FLOAT", {"default": SHORTCUT_AUTO, "min": SHORTCUT_AUTO, "max": 5.0, "step": 0.05, "tooltip":
    "FaceID-Plus v2 and Kolors: the weight of the shortcut (the identity tokens kept besides the crop's features). "
    "-1 (the default) = 2 x the weight, as in the leading pack; 0 or more: that value, whatever the weight."})
LORA_STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.01, "tooltip":
    "Strength of the LoRA inside FaceID and FaceID-Plus files, applied to the model through ComfyUI's patches "
    "(1.0 as in the official code; the leading pack uses 0.6). 0 to use the companion *_lora.safetensors with "
    "core's LoRA loader instead."})
PLUS_VERSION = (["auto", "v1", "v2"], {"default": "auto", "tooltip":
    "FaceID-Plus v1 and v2 files hold the same tensors: 'auto' goes by the file name (v2 for SDXL); v2 adds "
    "the shortcut."})
WEIGHT_KOLORS = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05, "tooltip":
    "Kolors FaceID-Plus: scales the Kolors UNet's encoder_hid_proj output (keys and values together)."})
FACES_PREFIX = ("STRING", {"default": "ipakit_faces", "tooltip": "File name prefix in the output folder."})
FACEID_PRESET = (list(FACEID_PRESET_NAMES), {"default": "FACEID PLUS V2", "tooltip":
    "Which FaceID adapter to load for the connected model; files are recognised by their weights."})
LORA_SOURCE = (["inside the adapter", "companion file"], {"default": "inside the adapter", "tooltip":
    "Apply the adapter file's own LoRA, or the companion *_lora.safetensors in models/loras whose weights "
    "match it (through ComfyUI's LoRA loader)."})
