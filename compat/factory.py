"""Compatibility node classes from a short declaration: the interface by input names (compat/inputs.py),
the work by a function of the inputs."""
from . import inputs


def node(node_id: str, display: str, category: str, required, optional=(), outputs=(("MODEL", "MODEL"),),
         run=None, output_node: bool = False, description: str = "", file_lists: dict | None = None):
    """A ComfyUI node class; `outputs` are (type, name) pairs; `run(**inputs)` returns the outputs."""
    def input_types(cls):
        req, opt = inputs.section(*required), inputs.section(*optional)
        for name, lister in (file_lists or {}).items():  # file lists are read when the editor asks
            req[name] = (lister(), {"tooltip": "A file of the matching folder."})
        return {"required": req, **({"optional": opt} if opt else {})}

    def execute(self, **kwargs):
        result = run(**kwargs)
        return result if isinstance(result, (tuple, dict)) else (result,)

    attrs = {"INPUT_TYPES": classmethod(input_types), "FUNCTION": "execute", "execute": execute,
             "CATEGORY": category, "DESCRIPTION": description or f"ComfyUI_IPAdapter_plus's '{display}', on IPAdapter Kit's engine.",
             "RETURN_TYPES": tuple(t for t, _ in outputs), "RETURN_NAMES": tuple(n for _, n in outputs),
             "OUTPUT_TOOLTIPS": tuple(f"{n} ({t})" for t, n in outputs), "OUTPUT_NODE": output_node,
             "DISPLAY_NAME": display}
    return type(node_id, (), attrs)
