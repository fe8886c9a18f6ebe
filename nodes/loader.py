import folder_paths

from ..patching.adapter_handle import load_adapter
from . import inputs
from .folders import FOLDER


class IPAKitAdapterLoader:
    DESCRIPTION = ("Loads an IP-Adapter (.safetensors or .bin) from models/ipadapter. The variant, base "
                   "model and required CLIP encoder are read from the weights, not the file name.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = (inputs.ADAPTER_TYPE,)
    RETURN_NAMES = ("ipadapter",)
    OUTPUT_TOOLTIPS = ("The adapter, ready for 'Apply IP-Adapter (Kit)'.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"adapter_name": (folder_paths.get_filename_list(FOLDER), {
            "tooltip": "A file in models/ipadapter (or an 'ipadapter:' folder of extra_model_paths.yaml)."})}}

    def load(self, adapter_name):
        return (load_adapter(folder_paths.get_full_path_or_raise(FOLDER, adapter_name)),)
