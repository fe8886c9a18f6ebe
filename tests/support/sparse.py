"""Model files of their real size that hold only a header: for headers-only identification.

A `.safetensors` file is written with a real header (keys, dtypes, shapes, offsets) and then
extended to its full length without writing data (a sparse file: no disk space, no write time).
A `.bin` pickle gets real shapes with one-element storages (expanded views), a few bytes each; or,
with `write_sparse_bin`, its real size: torch's zip format with every storage's space reserved and
left unwritten (`torch.serialization.skip_data`), so it reads like the released file up to the data.
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


def write_sparse_bin(shapes: dict, path, dtype: torch.dtype = torch.float16) -> Path:
    """`torch.save` of `shapes` ({key: shape}, or {group: {key: shape}} as adapters nest them) at its real
    size without writing the data: the tensors are never-touched allocations and the file is sparse.
    Falls back to `write_shape_only_bin` on PyTorch releases without `skip_data` (before 2.6)."""
    skip_data = getattr(torch.serialization, "skip_data", None)
    if skip_data is None:
        return write_shape_only_bin(shapes, path)

    def tensors(sub):
        return {k: tensors(v) if isinstance(v, dict) else torch.empty(v, dtype=dtype) for k, v in sub.items()}
    with skip_data():
        torch.save(tensors(shapes), path)
    return Path(path)


def adapter_shapes(state: dict) -> dict[str, tuple]:
    return {f"{g}.{k}": tuple(v.shape) for g, sub in state.items() for k, v in sub.items()}


def meta_shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items() if v.is_floating_point()}
