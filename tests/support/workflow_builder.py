"""Write a workflow once, as a small graph, and get both files ComfyUI users share from it.

`Graph.add(class_type, **inputs)` takes widget values and links (`node.out(slot)`); `ui(object_info)`
lays the graph out in the editor's format (version 0.4: positional `widgets_values`, a `links`
table, the seed's "control after generate" value and LoadImage's upload value), and `api()` gives
the twin that `POST /prompt` takes. `scripts/make_workflows.py` writes the shipped examples with it;
tests convert the editor file back (`workflow_format.ui_to_api`) and compare.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .workflow_format import _is_widget, _ordered_inputs

COLUMN, ROW_GAP = 380, 40


@dataclass
class Output:
    node: "Node"
    slot: int


@dataclass
class Node:
    id: int
    type: str
    inputs: dict
    title: str | None = None
    column: int = 0
    extra: dict = field(default_factory=dict)

    def out(self, slot: int = 0) -> Output:
        return Output(self, slot)


class Graph:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[Node] = []

    def add(self, class_type: str, title: str | None = None, **inputs) -> Node:
        column = 1 + max([v.node.column for v in inputs.values() if isinstance(v, Output)], default=-1)
        node = Node(len(self.nodes) + 1, class_type, inputs, title, column)
        self.nodes.append(node)
        return node

    def note(self, markdown: str) -> Node:
        node = Node(len(self.nodes) + 1, "MarkdownNote", {"text": markdown}, "About this workflow", 0)
        node.extra = {"color": "#432", "bgcolor": "#653"}
        self.nodes.append(node)
        return node

    # ------------------------------------------------------------------ API format
    def api(self, object_info: dict) -> dict:
        """The API twin; widgets not given take their defaults, as the editor sends them."""
        out = {}
        for node in self.nodes:
            if node.type == "MarkdownNote":
                continue
            inputs = {}
            for name, spec in _ordered_inputs(object_info[node.type]):
                value = node.inputs.get(name)
                if isinstance(value, Output):
                    inputs[name] = [str(value.node.id), value.slot]
                elif name in node.inputs:
                    inputs[name] = value
                elif _is_widget(spec):
                    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    if "default" in opts:
                        inputs[name] = opts["default"]
            entry = {"class_type": node.type, "inputs": inputs}
            if node.title:
                entry["_meta"] = {"title": node.title}
            out[str(node.id)] = entry
        return out

    # ------------------------------------------------------------------ editor format
    def ui(self, object_info: dict) -> dict:
        links, consumers = [], {}
        for node in self.nodes:
            for name, value in node.inputs.items():
                if isinstance(value, Output):
                    link_id = len(links) + 1
                    links.append([link_id, value.node.id, value.slot, node.id, name, None])
                    consumers.setdefault((value.node.id, value.slot), []).append(link_id)
        link_of = {(l[3], l[4]): l for l in links}
        rows = {}
        ui_nodes = []
        for order, node in enumerate(self.nodes):
            if node.type == "MarkdownNote":
                ui_nodes.append(self._note(node, order))
                continue
            info = object_info[node.type]
            inputs, widgets = [], []
            for name, spec in _ordered_inputs(info):
                kind = spec[0] if isinstance(spec[0], str) else "COMBO"
                link = link_of.get((node.id, name))
                widget = _is_widget(spec)
                if widget:
                    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    if name in node.inputs:
                        value = node.inputs[name]
                    else:
                        value = opts.get("default", (spec[0] or [None])[0] if isinstance(spec[0], list) else None)
                    widgets.append(value if link is None else opts.get("default", 0))
                    if opts.get("control_after_generate") or name in ("seed", "noise_seed"):
                        widgets.append("fixed")
                    if opts.get("image_upload"):
                        widgets.append("image")
                if link is not None:
                    slot = len(inputs)
                    link[4] = slot
                    link[5] = kind
                    entry = {"name": name, "type": kind, "link": link[0]}
                    if widget:
                        entry["widget"] = {"name": name}
                    inputs.append(entry)
                elif not widget:
                    inputs.append({"name": name, "type": kind, "link": None})
            outputs = []
            names = info.get("output_name") or info["output"]
            for slot, (kind, out_name) in enumerate(zip(info["output"], names)):
                outputs.append({"name": out_name, "type": kind, "slot_index": slot,
                                "links": consumers.get((node.id, slot), [])})
            row = rows.get(node.column, 0)
            height = 46 + 26 * max(len(widgets), len(inputs), 1)
            rows[node.column] = row + height + ROW_GAP
            entry = {"id": node.id, "type": node.type, "pos": [40 + COLUMN * node.column, 120 + row],
                     "size": [320, height], "flags": {}, "order": order, "mode": 0, "inputs": inputs,
                     "outputs": outputs, "properties": {"Node name for S&R": node.type}, "widgets_values": widgets}
            if node.title:
                entry["title"] = node.title
            ui_nodes.append(entry)
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ipadapter-kit/{self.name}")), "revision": 0,
                "last_node_id": len(self.nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
                "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}

    @staticmethod
    def _note(node: Node, order: int) -> dict:
        return {"id": node.id, "type": "MarkdownNote", "pos": [40, -200], "size": [700, 260], "flags": {},
                "order": order, "mode": 0, "inputs": [], "outputs": [], "title": node.title, "properties": {},
                "widgets_values": [node.inputs["text"]], **node.extra}

