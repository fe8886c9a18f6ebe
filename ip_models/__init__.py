"""Plain-torch IP-Adapter model code: checkpoint reading, variant detection, projection models.

Nothing in this package imports ComfyUI, so it can be tested, reused and reasoned about alone.
"""
from .adapter import IPAdapterModel, build_adapter
from .checkpoint import AdapterFileError, AdapterWeights, read_adapter_file
from .encoders import ENCODERS, EncoderInfo, identify_encoder
from .spec import AdapterSpec, UnsupportedAdapterError, detect_spec

__all__ = [
    "AdapterFileError", "AdapterSpec", "AdapterWeights", "ENCODERS", "EncoderInfo", "IPAdapterModel",
    "UnsupportedAdapterError", "build_adapter", "detect_spec", "identify_encoder", "read_adapter_file",
]
