"""IPAdapter Kit: IP-Adapter image prompts for ComfyUI (SD1.5 and SDXL)."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
