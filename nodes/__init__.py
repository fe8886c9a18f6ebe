"""ComfyUI nodes of IPAdapter Kit: thin wrappers over `patching`."""
from .apply import IPAKitApply
from .folders import register as register_folders
from .loader import IPAKitAdapterLoader

register_folders()

NODE_CLASS_MAPPINGS = {
    "IPAKitAdapterLoader": IPAKitAdapterLoader,
    "IPAKitApply": IPAKitApply,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "IPAKitAdapterLoader": "Load IP-Adapter (Kit)",
    "IPAKitApply": "Apply IP-Adapter (Kit)",
}
