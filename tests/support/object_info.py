"""The `/object_info` entry of a node class as the server builds it (in-process), for comparisons."""


def _strip(options):
    if isinstance(options, dict):
        return {k: v for k, v in options.items() if k not in ("tooltip",)}
    return options


def node_info(cls, display_name: str) -> dict:
    spec = cls.INPUT_TYPES()
    inputs = {section: {name: [value[0], *([_strip(value[1])] if len(value) > 1 and _strip(value[1]) else [])]
                        for name, value in spec[section].items()}
              for section in ("required", "optional") if section in spec}
    return {"display_name": display_name, "category": cls.CATEGORY, "input": inputs,
            "input_order": {section: list(spec[section]) for section in ("required", "optional") if section in spec},
            "output": list(cls.RETURN_TYPES), "output_name": list(cls.RETURN_NAMES),
            "output_is_list": [False] * len(cls.RETURN_TYPES), "output_node": bool(getattr(cls, "OUTPUT_NODE", False))}
