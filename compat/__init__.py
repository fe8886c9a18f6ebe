"""The compatibility face: ComfyUI_IPAdapter_plus's 37 node ids, inputs and types on IPAdapter Kit's
engine, so its saved workflows and the apps that call its ids keep working with this pack instead.

Registered only where that pack itself is absent (so neither pack overwrites the other, whichever
ComfyUI loads first); IPAKIT_COMPAT=on or off forces it either way.
"""
import logging
import os

log = logging.getLogger(__name__)
ENV = "IPAKIT_COMPAT"
PEER_FOLDER_NAMES = {"comfyui_ipadapter_plus", "comfyui-ipadapter-plus", "ipadapter_plus"}
PEER_NODE_ID = "IPAdapterAdvanced"


def peer_installed() -> str | None:
    """Where ComfyUI_IPAdapter_plus is installed (a custom_nodes folder), or None."""
    import folder_paths
    import nodes
    if getattr(nodes.NODE_CLASS_MAPPINGS.get(PEER_NODE_ID), "__module__", "").split(".")[0] not in ("", __name__.split(".")[0]):
        return "registered by another pack"
    for root in folder_paths.get_folder_paths("custom_nodes"):
        if not os.path.isdir(root):
            continue
        for entry in os.listdir(root):
            if entry.lower() in PEER_FOLDER_NAMES and not entry.endswith(".disabled"):
                return os.path.join(root, entry)
    return None


def mappings() -> tuple[dict, dict]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS) of the compatibility face, or two empty dicts."""
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in ("0", "off", "false", "no"):
        log.info("IPAdapter Kit: ComfyUI_IPAdapter_plus node ids not registered (%s=%s)", ENV, choice)
        return {}, {}
    if choice not in ("1", "on", "true", "yes"):
        found = peer_installed()
        if found:
            log.info("IPAdapter Kit: ComfyUI_IPAdapter_plus is installed (%s): its node ids are left to it "
                     "(set %s=on to use this pack's instead)", found, ENV)
            return {}, {}
    from .apply_nodes import NODES as APPLY
    from .loader_nodes import NODES as LOADERS
    from .util_nodes import NODES as UTILS
    classes = {cls.__name__: cls for cls in (*LOADERS, *APPLY, *UTILS)}
    log.info("IPAdapter Kit: %d ComfyUI_IPAdapter_plus node ids registered on this pack's engine", len(classes))
    return classes, {name: cls.DISPLAY_NAME for name, cls in classes.items()}
