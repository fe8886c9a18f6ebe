"""What a model file holds, read from its header: key names and shapes, no tensor data.

`.safetensors` files start with a JSON header (8-byte length, then dtype/shape/offsets per key),
so identifying one costs a few kilobytes of reading whatever its size. Pickled `.bin`/`.pt` files
(torch's zip format, what `torch.save` has written since PyTorch 1.6) are opened with
`weights_only=True`, `mmap=True` and `map_location="meta"`: the pickle (key names, shapes) is read,
the tensor data is only mapped, never read, and every tensor comes back on the meta device. Without
`mmap`, PyTorch releases before 2.10 read each storage's bytes into memory before moving it to
the meta device. Legacy (pre-1.6, non-zip) pickles cannot be mapped and are read whole. Both kinds
are cached by path, size and modification time, so a folder is scanned once per change.
"""
from __future__ import annotations

import json
import os
import struct
import threading

import torch

PICKLES = (".bin", ".pt", ".pth", ".ckpt")
_cache: dict[tuple[str, int, int], dict] = {}
_lock = threading.Lock()
stats = {"parsed": 0, "cached": 0}  # for benchmarks and tests: how often a file was really read


class HeaderError(ValueError):
    pass


def _safetensors_shapes(path: str) -> dict[str, tuple]:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise HeaderError(f"{os.path.basename(path)} is too short to be a .safetensors file.")
        (length,) = struct.unpack("<Q", head)
        if length > 100 * 2 ** 20:
            raise HeaderError(f"{os.path.basename(path)} has no valid .safetensors header.")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise HeaderError(f"{os.path.basename(path)} has no valid .safetensors header ({exc}).") from exc
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def _flatten(obj, prefix: str, out: dict) -> None:
    if torch.is_tensor(obj):
        out[prefix[:-1]] = tuple(obj.shape)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", out)


def _is_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _pickle_shapes(path: str) -> dict[str, tuple]:
    try:
        if _is_zip(path):  # mapped: the storages' bytes are never read
            state = torch.load(path, map_location="meta", weights_only=True, mmap=True)
        else:  # a legacy pickle stores tensor data inline: it has to be read
            state = torch.load(path, map_location="meta", weights_only=True)
    except Exception as exc:  # a pickle with code, or not a torch file
        raise HeaderError(f"{os.path.basename(path)} could not be read as a weights-only PyTorch file ({exc}).") from exc
    out: dict[str, tuple] = {}
    _flatten(state, "", out)
    return out


def read_shapes(path: str) -> dict[str, tuple]:
    """Key -> shape of every tensor in the file (nested pickles flattened with '.')."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _cache:
            stats["cached"] += 1
            return _cache[key]
    ext = os.path.splitext(path)[1].lower()
    if ext == ".safetensors":
        shapes = _safetensors_shapes(path)
    elif ext in PICKLES:
        shapes = _pickle_shapes(path)
    else:
        raise HeaderError(f"{os.path.basename(path)}: unsupported file type '{ext}'.")
    with _lock:
        stats["parsed"] += 1
        _cache[key] = shapes
    return shapes


def meta_state(shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """Shape-only tensors (no memory) that detection code can inspect like real weights."""
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
