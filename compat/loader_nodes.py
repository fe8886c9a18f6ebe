"""ComfyUI_IPAdapter_plus's loaders on our finder: files recognised by their weights, never by name."""
import folder_paths

from ..patching.adapter_handle import load_adapter
from ..patching.faceid import apply_lora, as_plus_version, insightface_model
from ..patching.finder import cached_load, find_faceid_files, find_preset_files, model_family
from .factory import node
from .inputs import CATEGORY, IPADAPTER, INSIGHTFACE
from .pipeline import Pipeline

PIPELINE_OUT = (("MODEL", "model"), (IPADAPTER, "ipadapter"))
PLUS_VERSIONS = {"FACEID PLUS - SD1.5 only": "v1", "FACEID PLUS V2": "v2"}


def _unified(model, preset, ipadapter=None):
    family, layers = model_family(model)
    adapter_file, encoder_file = find_preset_files(preset, family, layers)
    pipeline = Pipeline(cached_load("adapter", adapter_file.path), cached_load("clip_vision", encoder_file.path))
    return model, pipeline.joined(ipadapter)


def _unified_faceid(model, preset, lora_strength, provider, ipadapter=None):
    family, layers = model_family(model)
    adapter_file, encoder_file = find_faceid_files(preset, family, layers)
    adapter = as_plus_version(cached_load("adapter", adapter_file.path), PLUS_VERSIONS.get(preset))
    clip = cached_load("clip_vision", encoder_file.path) if encoder_file else None
    # the LoRA inside the adapter file holds the same weights as its companion *_lora.safetensors
    patched = apply_lora(model.clone(), adapter, lora_strength)
    return patched, Pipeline(adapter, clip, insightface_model("buffalo_l", provider)).joined(ipadapter)


def _model_loader(ipadapter_file):
    return Pipeline(load_adapter(folder_paths.get_full_path_or_raise("ipadapter", ipadapter_file)))


NODES = [
    node("IPAdapterUnifiedLoader", "IPAdapter Unified Loader", CATEGORY, ("model", "preset"), ("ipadapter",),
         PIPELINE_OUT, _unified),
    node("IPAdapterUnifiedLoaderCommunity", "IPAdapter Unified Loader Community", "ipadapter/loaders",
         ("model", "preset@community"), ("ipadapter",), PIPELINE_OUT, _unified),
    node("IPAdapterUnifiedLoaderFaceID", "IPAdapter Unified Loader FaceID", "ipadapter/faceid",
         ("model", "preset@faceid", "lora_strength", "provider@faceid"), ("ipadapter",),
         (("MODEL", "MODEL"), (IPADAPTER, "ipadapter")), _unified_faceid),
    node("IPAdapterModelLoader", "IPAdapter Model Loader", "ipadapter/loaders", ("ipadapter_file",), (),
         ((IPADAPTER, "IPADAPTER"),), _model_loader,
         file_lists={"ipadapter_file": lambda: folder_paths.get_filename_list("ipadapter")}),
    node("IPAdapterInsightFaceLoader", "IPAdapter InsightFace Loader", "ipadapter/loaders", ("provider", "model_name"),
         (), ((INSIGHTFACE, "INSIGHTFACE"),), lambda provider, model_name: insightface_model(model_name, provider)),
]
