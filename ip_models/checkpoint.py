"""Reading IP-Adapter files in the official layouts, safely.

`.bin` files are pickles of `{"image_proj": {...}, "ip_adapter": {...}}` and are opened with
`weights_only=True`; `.safetensors` files hold the same tensors flattened under the prefixes
`image_proj.` and `ip_adapter.`. Training checkpoints, and the released Kolors
`ipa-faceid-plus.bin`, say `adapter_modules` for `ip_adapter`, nested or flattened alike.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import torch

_PREFIXES = {"image_proj.": "image_proj", "ip_adapter.": "ip_adapter", "adapter_modules.": "ip_adapter"}
_ADAPTER_NAMES = ("ip_adapter", "adapter_modules")  # the second half's names, nested or as a key prefix
PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt")


class AdapterFileError(ValueError):
    """The file cannot be read as an IP-Adapter; the message says why and what to do."""


@dataclass
class AdapterWeights:
    """The two halves of an IP-Adapter checkpoint, with their original key names."""
    image_proj: dict[str, torch.Tensor]
    ip_adapter: dict[str, torch.Tensor]
    source: str = ""

    def num_parameters(self) -> int:
        return sum(t.numel() for part in (self.image_proj, self.ip_adapter) for t in part.values())


def read_adapter_file(path: str) -> AdapterWeights:
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1].lower()
    if ext == ".safetensors":
        import safetensors.torch
        try:
            flat = safetensors.torch.load_file(path, device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise AdapterFileError(f"{name} is not a readable .safetensors file ({exc}).") from exc
    elif ext in PICKLE_EXTENSIONS:
        try:
            flat = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise AdapterFileError(
                f"{name} holds Python objects besides tensors and was not opened: only weights-only "
                f"pickles are loaded. Use the .safetensors release of this adapter.") from exc
        except Exception as exc:
            raise AdapterFileError(f"{name} could not be read as a PyTorch file ({exc}).") from exc
    else:
        raise AdapterFileError(f"{name}: unsupported file type '{ext}'; use .safetensors or .bin.")
    return split_adapter_state_dict(flat, name)


def split_adapter_state_dict(state: dict, name: str = "state dict") -> AdapterWeights:
    """Accept the nested layout or the flattened one and return both halves."""
    if not isinstance(state, dict):
        raise AdapterFileError(f"{name} does not hold a dictionary of tensors.")
    nested = next((state[k] for k in _ADAPTER_NAMES if isinstance(state.get(k), dict)), None)
    if isinstance(state.get("image_proj"), dict) and nested is not None:
        return AdapterWeights(dict(state["image_proj"]), dict(nested), name)
    parts: dict[str, dict] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in state.items():
        for prefix, part in _PREFIXES.items():
            if isinstance(key, str) and key.startswith(prefix) and torch.is_tensor(value):
                parts[part][key[len(prefix):]] = value
                break
    if not parts["image_proj"] or not parts["ip_adapter"]:
        sample = ", ".join(list(map(str, state))[:3])
        raise AdapterFileError(
            f"{name} is not an IP-Adapter: it lacks the 'image_proj' and 'ip_adapter' weights "
            f"(its first keys are: {sample}). If it is a checkpoint, LoRA or CLIP vision model, "
            f"load it with the matching core loader; IP-Adapter files go in models/ipadapter.")
    return AdapterWeights(parts["image_proj"], parts["ip_adapter"], name)
