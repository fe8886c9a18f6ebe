"""FaceID nodes: insightface loading and face analysis, FaceID apply, faces saved for sharing, and the
unified FaceID loader."""
import folder_paths

from ..patching import faceid as engine
from ..patching.finder import cached_load, companion_lora, find_faceid_files, model_family
from . import inputs
from .apply import IPAKitApply
from .embeds import output_and_input_files, save_numbered

# v1 and v2 files hold the same tensors: choosing the preset chooses the version
FACEID_PLUS_VERSIONS = {"FACEID PLUS - SD1.5 only": "v1", "FACEID PLUS V2": "v2"}


class IPAKitInsightFaceLoader:
    DESCRIPTION = ("Loads an insightface model (detector and recogniser) from models/insightface/models/<name>, "
                   "with insightface 0.7.3 or 2.x (pip install insightface onnxruntime). Never downloads.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.INSIGHTFACE_TYPE,)
    RETURN_NAMES = ("insightface",)
    OUTPUT_TOOLTIPS = ("The face models, for 'Analyze Faces (Kit)'.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": inputs.FACE_MODEL_NAME, "provider": inputs.FACE_PROVIDER}}

    def load(self, model_name, provider):
        return (engine.insightface_model(model_name, provider),)


class IPAKitFaceAnalysis:
    DESCRIPTION = ("Finds one face per reference image (detection at 640 px, then smaller sizes) and gives its "
                   "identity embedding and aligned crop (and the square face-box crop Kolors FaceID uses); results "
                   "are cached by image content. For Kolors FaceID-Plus load antelopev2 and keep 'largest'.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.FACES_TYPE, "IMAGE")
    RETURN_NAMES = ("faces", "face_crops")
    OUTPUT_TOOLTIPS = ("The faces, for 'Apply FaceID (Kit)' or 'Save Faces (Kit)'.",
                       "The aligned crops, to check which face was taken.")
    FUNCTION = "analyze"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"insightface": inputs.INSIGHTFACE, "image": inputs.IMAGE, "face": inputs.FACE_CHOICE,
                             "face_index": inputs.FACE_INDEX, "skip_no_face": inputs.SKIP_NO_FACE,
                             "crop_size": inputs.CROP_SIZE}}

    def analyze(self, insightface, image, face, face_index, skip_no_face, crop_size):
        faces = engine.analyze_faces(insightface, image, face, face_index, skip_no_face, crop_size)
        return faces, faces.crops


class IPAKitApplyFaceID(IPAKitApply):
    DESCRIPTION = ("An identity prompt from faces: FaceID, FaceID-Plus (v1, v2), Portrait (several faces), Portrait "
                   "unnorm and Kolors FaceID-Plus. The adapter's own LoRA is applied to the model at lora_strength.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": inputs.MODEL, "ipadapter": inputs.ADAPTER, "faces": inputs.FACES,
                             "weight": inputs.WEIGHT, "weight_faceidv2": inputs.FACEID_V2_WEIGHT,
                             "weight_type": inputs.WEIGHT_TYPE, "combine_embeds": inputs.COMBINE_EMBEDS,
                             "start_at": inputs.START_AT, "end_at": inputs.END_AT,
                             "embeds_scaling": inputs.EMBEDS_SCALING, "lora_strength": inputs.LORA_STRENGTH,
                             "plus_version": inputs.PLUS_VERSION},
                "optional": {"clip_vision": inputs.CLIP_VISION, "attn_mask": inputs.ATTN_MASK,
                             "weight_kolors": inputs.WEIGHT_KOLORS, "image_negative": inputs.FACE_IMAGE_NEGATIVE}}

    def apply(self, model, ipadapter, faces, weight, weight_faceidv2, weight_type, combine_embeds, start_at, end_at,
              embeds_scaling, lora_strength, plus_version, clip_vision=None, attn_mask=None, weight_kolors=1.0,
              image_negative=None):
        shortcut = None if weight_faceidv2 < 0 else weight_faceidv2  # None: twice the weight
        return (engine.apply_faceid(model, ipadapter, faces, clip_vision, weight, shortcut, lora_strength,
                                    weight_kolors, plus_version, weight_type=weight_type, combine_embeds=combine_embeds,
                                    start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                                    attn_mask=attn_mask, image_negative=image_negative),)


class IPAKitSaveFaces:
    DESCRIPTION = ("Saves faces (identity embeddings and aligned crops) as safetensors in the output folder, so "
                   "FaceID workflows run and are shared without insightface.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"faces": inputs.FACES, "filename_prefix": inputs.FACES_PREFIX}}

    def save(self, faces, filename_prefix):
        return save_numbered(filename_prefix, engine.FACES_SUFFIX, "faces", lambda path: engine.save_faces(faces, path))


class IPAKitLoadFaces:
    DESCRIPTION = "Loads faces saved by 'Save Faces (Kit)' from the input or output folder: no insightface needed."
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.FACES_TYPE, "IMAGE")
    RETURN_NAMES = ("faces", "face_crops")
    OUTPUT_TOOLTIPS = ("The faces.", "Their aligned crops.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"faces": (output_and_input_files((engine.FACES_SUFFIX,)),
                                       {"tooltip": "A *.faces.safetensors file."})}}

    def load(self, faces):
        loaded = engine.load_faces(folder_paths.get_annotated_filepath(faces))
        return loaded, loaded.crops


class IPAKitUnifiedLoaderFaceID:
    DESCRIPTION = ("Finds a FaceID adapter for the preset (by its weights), the CLIP encoder FaceID-Plus needs, and "
                   "insightface's buffalo_l; applies the LoRA (the adapter's own, or the companion file in "
                   "models/loras that holds the same weights) to the model.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("MODEL", inputs.ADAPTER_TYPE, "CLIP_VISION", inputs.INSIGHTFACE_TYPE)
    RETURN_NAMES = ("model", "ipadapter", "clip_vision", "insightface")
    OUTPUT_TOOLTIPS = ("The model with the adapter's LoRA.", "The FaceID adapter.",
                       "The CLIP encoder (FaceID-Plus; empty otherwise).", "buffalo_l, for 'Analyze Faces (Kit)'.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": inputs.MODEL, "preset": inputs.FACEID_PRESET,
                             "lora_strength": inputs.LORA_STRENGTH, "lora_source": inputs.LORA_SOURCE,
                             "provider": inputs.FACE_PROVIDER}}

    def load(self, model, preset, lora_strength, lora_source, provider):
        family, layers = model_family(model)
        adapter_file, encoder_file = find_faceid_files(preset, family, layers)
        adapter = engine.as_plus_version(cached_load("adapter", adapter_file.path), FACEID_PLUS_VERSIONS.get(preset))
        clip = cached_load("clip_vision", encoder_file.path) if encoder_file else None
        face_model = engine.insightface_model("buffalo_l", provider)
        if lora_source == "companion file":
            model = engine.apply_companion_lora(model, adapter, companion_lora(adapter, layers), lora_strength)
        else:
            model = engine.apply_lora(model.clone(), adapter, lora_strength)
        return model, adapter, clip, face_model
