"""Which model a file is, from its key names and shapes alone (see headers.py): an IP-Adapter (its
AdapterSpec), a CLIP image encoder (which one, in which layout), or neither."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .checkpoint import AdapterFileError, split_adapter_state_dict
from .clip_formats import ClipFormatError, layout_of, shapes_of, to_comfy_layout, vision_config
from .encoders import ENCODERS, EncoderInfo
from .headers import HeaderError, meta_state, read_shapes
from .spec import AdapterSpec, UnsupportedAdapterError, detect_spec


@dataclass(frozen=True)
class FileIdentity:
    path: str
    kind: str                           # "adapter", "clip_vision" or "unknown"
    spec: AdapterSpec | None = None     # adapters
    encoder: EncoderInfo | None = None  # CLIP image encoders
    layout: str = ""                    # encoders: "comfy" (ComfyUI/transformers) or "open_clip"
    note: str = ""                      # why a file is "unknown"

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def describe(self) -> str:
        if self.kind == "adapter":
            return f"{self.name} ({self.spec.describe()})"
        if self.kind == "clip_vision":
            return f"{self.name} (CLIP {self.encoder.name}, {self.layout} layout)"
        return f"{self.name} ({self.note or 'not an IP-Adapter or CLIP image encoder'})"


def encoder_of(shapes: dict[str, tuple]) -> tuple[EncoderInfo | None, str]:
    """(the known encoder or None, layout) for a CLIP vision key set."""
    found = layout_of(shapes.keys())
    if found is None:
        return None, ""
    comfy = shapes_of(to_comfy_layout(meta_state(shapes)))
    config = vision_config(comfy)
    for info in ENCODERS:
        # widths tell the encoders apart; the image size only matters for ViT-L (224 vs the 336 Kolors uses)
        if (info.hidden_width, info.embed_width) == (config["hidden_size"], config.get("projection_dim")) \
                and (info.image_size == 224 or info.image_size == config["image_size"]):
            return info, found[0]
    return None, found[0]


_identities: dict[tuple, FileIdentity] = {}


def identify_file(path: str) -> FileIdentity:
    """What the file is; computed once per file version (path, size, modification time)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return FileIdentity(path, "unknown", note=str(exc))
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _identities:
        _identities[key] = _identify(path)
    return _identities[key]


def _identify(path: str) -> FileIdentity:
    name = os.path.basename(path)
    try:
        shapes = read_shapes(path)
    except (HeaderError, OSError) as exc:
        return FileIdentity(path, "unknown", note=str(exc))
    if layout_of(shapes.keys()) is not None:
        try:
            encoder, layout = encoder_of(shapes)
        except (ClipFormatError, KeyError) as exc:
            return FileIdentity(path, "unknown", note=f"a CLIP image encoder this pack cannot use: {exc}")
        if encoder is None:
            return FileIdentity(path, "unknown", note="a CLIP image encoder, but none that IP-Adapters use")
        return FileIdentity(path, "clip_vision", encoder=encoder, layout=layout)
    try:
        weights = split_adapter_state_dict(meta_state(shapes), name)
        return FileIdentity(path, "adapter", spec=detect_spec(weights, file_hint=name))
    except (AdapterFileError, UnsupportedAdapterError, KeyError, ValueError) as exc:
        return FileIdentity(path, "unknown", note=str(exc).replace(f"{name} ", "", 1)[:160])
