"""IPAdapter Kit: IP-Adapter image prompts for ComfyUI (SD1.5 and SDXL).

Native nodes (IPAKit*) are always registered; ComfyUI_IPAdapter_plus's node ids are added on the
same engine where that pack is not installed (see compat/).
"""
from .compat import mappings as _compat_mappings
from .nodes import NODE_CLASS_MAPPINGS as _NATIVE, NODE_DISPLAY_NAME_MAPPINGS as _NATIVE_NAMES

_COMPAT, _COMPAT_NAMES = _compat_mappings()
NODE_CLASS_MAPPINGS = {**_COMPAT, **_NATIVE}
NODE_DISPLAY_NAME_MAPPINGS = {**_COMPAT_NAMES, **_NATIVE_NAMES}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
