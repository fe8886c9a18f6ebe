"""Editor (UI) workflow -> API prompt conversion, so tests can check the shipped twins agree.

The editor saves `nodes` with positional `widgets_values` and a `links` table; the API format
that `POST /prompt` takes names every input. Matching the two needs each node's input order,
which comes from `/object_info` (or in-process from `NODE_CLASS_MAPPINGS[...].INPUT_TYPES()`).
Front-end-only widgets are skipped: the seed's "control after generate" value and LoadImage's
"upload" button value.
"""
from __future__ import annotations

import copy

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_CONTROL = {"fixed", "increment", "decrement", "randomize"}
UI_ONLY_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def object_info_from_mappings(node_class_mappings, names) -> dict:
    """The `/object_info` subset ui_to_api needs, built in-process from node classes."""
    def info(cls):
        spec = cls.INPUT_TYPES()
        return {"input": spec, "input_order": {k: list(v) for k, v in spec.items()},
                "output": list(cls.RETURN_TYPES),
                "output_name": list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)}
    return {n: info(node_class_mappings[n]) for n in names}


def _is_widget(spec) -> bool:
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _ordered_inputs(info: dict):
    """(name, spec) for required then optional inputs, in declaration order."""
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            yield name, info["input"][section][name]


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert an editor workflow to the API prompt `POST /prompt` takes (no `_meta`)."""
    links = {l[0]: l for l in ui["links"]}  # [id, from_node, from_slot, to_node, to_slot, type]
    api = {}
    for node in ui["nodes"]:
        if node["type"] in UI_ONLY_TYPES or node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        info = object_info[node["type"]]
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, spec in _ordered_inputs(info):
            widget = _is_widget(spec)
            if widget and values:
                value = values.pop(0)
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if (opts.get("control_after_generate") or name in ("seed", "noise_seed")) \
                        and values and values[0] in SEED_CONTROL:
                    values.pop(0)
                if name not in linked:
                    inputs[name] = value
            if name in linked:
                link = linked[name]
                inputs[name] = [str(link[1]), link[2]]
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def strip_meta(api: dict) -> dict:
    """API prompt without `_meta` (titles), for comparisons."""
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


def set_inputs(api: dict, class_type: str, **values) -> dict:
    """Copy of `api` with `values` set on every node of `class_type` (e.g. file names, sizes)."""
    api = copy.deepcopy(api)
    found = False
    for node in api.values():
        if node["class_type"] == class_type:
            node["inputs"].update(values)
            found = True
    if not found:
        raise KeyError(f"no {class_type} node in the workflow")
    return api


def without_node(api: dict, class_type: str, passthrough: str = "model") -> dict:
    """Copy of `api` with each `class_type` node removed and its consumers wired to the node's
    `passthrough` input source instead (e.g. drop IPAKitApply: KSampler takes the checkpoint's
    MODEL). Nodes left without consumers (adapter loader, CLIP vision, image) are pruned."""
    api = copy.deepcopy(api)
    for nid in [k for k, v in api.items() if v["class_type"] == class_type]:
        source = api.pop(nid)["inputs"][passthrough]
        for node in api.values():
            for k, v in node["inputs"].items():
                if isinstance(v, list) and v and v[0] == nid:
                    node["inputs"][k] = list(source)
    while True:
        used = {v[0] for n in api.values() for v in n["inputs"].values() if isinstance(v, list) and v}
        dead = [k for k, v in api.items() if k not in used and v["class_type"] != "SaveImage"]
        if not dead:
            return api
        for k in dead:
            api.pop(k)
