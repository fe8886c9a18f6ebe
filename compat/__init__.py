"""The compatibility face: ComfyUI_IPAdapter_plus's 37 node ids, inputs and types on IPAdapter Kit's
engine, so its saved workflows and the apps that call its ids keep working with this pack instead.

Registered only where that pack itself is absent (so neither pack overwrites the other, whichever
ComfyUI loads first); IPAKIT_COMPAT=on or off forces it either way. "Absent" is what can be seen
while this pack loads: its ids already registered (it loaded first), or its folder in custom_nodes
under a usual name or holding its main module. A copy under another name, without that module,
that loads after this pack is not seen: its nodes then replace these ids, which the log line says.
"""
import logging
import os

log = logging.getLogger(__name__)
ENV = "IPAKIT_COMPAT"
PEER_FOLDER_NAMES = {"comfyui_ipadapter_plus", "comfyui-ipadapter-plus", "ipadapter_plus"}
PEER_FILES = ("IPAdapterPlus.py", "CrossAttentionPatch.py")  # the leading pack's top-level modules
PEER_NODE_ID = "IPAdapterAdvanced"


def _top_module(name: str) -> str:
    return name.split(".")[0]


def _registered_by() -> str | None:
    """The pack that registered PEER_NODE_ID already, unless nobody or this pack did."""
    import nodes
    cls = nodes.NODE_CLASS_MAPPINGS.get(PEER_NODE_ID)
    module = getattr(cls, "__module__", None) if cls is not None else None
    if not module or _top_module(module) == _top_module(__name__):
        return None
    return getattr(cls, "RELATIVE_PYTHON_MODULE", None) or os.path.basename(_top_module(module))


def _peer_folder(entry: str) -> bool:
    if entry.endswith(".disabled"):  # ComfyUI-Manager's disabled form
        return False
    return entry.lower() in PEER_FOLDER_NAMES


def peer_installed() -> str | None:
    """What shows that ComfyUI_IPAdapter_plus is installed (its registered ids or its folder), or None."""
    import folder_paths
    owner = _registered_by()
    if owner:
        return f"{PEER_NODE_ID} is already registered by {owner}"
    for root in folder_paths.get_folder_paths("custom_nodes"):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if _peer_folder(entry) or (not entry.endswith(".disabled") and
                                       all(os.path.isfile(os.path.join(path, f)) for f in PEER_FILES)):
                return path
    return None


def mappings() -> tuple[dict, dict]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS) of the compatibility face, or two empty dicts."""
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in ("0", "off", "false", "no"):
        log.info("IPAdapter Kit: ComfyUI_IPAdapter_plus node ids not registered (%s=%s)", ENV, choice)
        return {}, {}
    forced = choice in ("1", "on", "true", "yes")
    if not forced:
        found = peer_installed()
        if found:
            log.info("IPAdapter Kit: ComfyUI_IPAdapter_plus is installed (%s): its node ids are left to it "
                     "(set %s=on to use this pack's instead)", found, ENV)
            return {}, {}
    from .apply_nodes import NODES as APPLY
    from .loader_nodes import NODES as LOADERS
    from .util_nodes import NODES as UTILS
    classes = {cls.__name__: cls for cls in (*LOADERS, *APPLY, *UTILS)}
    if forced:
        log.info("IPAdapter Kit: %d ComfyUI_IPAdapter_plus node ids registered on this pack's engine (%s=%s)",
                 len(classes), ENV, choice)
    else:  # what was checked, and what cannot be: a copy under another name that loads later wins
        log.info("IPAdapter Kit: %d ComfyUI_IPAdapter_plus node ids registered on this pack's engine (that pack was "
                 "not found in custom_nodes; a copy of it under another folder name that loads after this pack "
                 "would replace them: set %s=off to leave them to it)", len(classes), ENV)
    return classes, {name: cls.DISPLAY_NAME for name, cls in classes.items()}
