"""Model files of their real size that hold only a header: for headers-only identification.

A `.safetensors` file is written with a real header (keys, dtypes, shapes, offsets) and then
extended to its full length without writing data (a sparse file: no disk space, no write time).
A `.bin` pickle gets real shapes with one-element storages (expanded views), a few bytes each.
"""
from __future__ import annotations

import json
import struct
from math import prod
from pathlib import Path

import torch

_BYTES = {"F16": 2, "F32": 4}


def write_sparse_safetensors(shapes: dict[str, tuple], path, dtype: str = "F16") -> Path:
    path = Path(path)
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = prod(shape) * _BYTES[dtype]
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return path


def write_shape_only_bin(nested_shapes: dict, path) -> Path:
    """`torch.save` of {group: {key: tensor}} whose tensors have real shapes and a single stored value."""
    def tensor(shape):
        return torch.zeros(1, dtype=torch.float16).expand(*shape) if shape else torch.zeros(())
    state = {group: {k: tensor(s) for k, s in sub.items()} if isinstance(sub, dict) else tensor(sub)
             for group, sub in nested_shapes.items()}
    torch.save(state, path)
    return Path(path)


def adapter_shapes(state: dict) -> dict[str, tuple]:
    return {f"{g}.{k}": tuple(v.shape) for g, sub in state.items() for k, v in sub.items()}


def meta_shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items() if v.is_floating_point()}
