"""Custom per-layer weights, in the two forms users already write.

- The leading pack's string `"index:value, index:value"` (commas or new lines between pairs), where
  index is ComfyUI's `transformer_index` (0..15 on SD1.5, 0..10 on SDXL, the middle block
  included) and every layer not listed is skipped.
- An InstantStyle block dict, as diffusers' `set_ip_adapter_scale` takes it:
  `{"down": {"block_2": [0.0, 1.0]}, "up": {"block_0": [0.0, 1.0, 0.0]}, "mid": 0.0}`, JSON or
  Python literal; a number stands for every attention of a block (or of all down/up blocks), a
  list gives one value per attention, and whatever is not named gets 0, as in diffusers.

Both give layer key -> factor; the adapter's weight multiplies it.
"""
from __future__ import annotations

import ast
import json
import re
from collections import defaultdict


class LayerWeightsError(ValueError):
    pass


def parse_layer_weights(text: str, layers, input_name: str = "layer_weights") -> dict[int, float] | None:
    """None for an empty text (use the weight type), else layer key -> factor."""
    text = (text or "").strip()
    if not text:
        return None
    if text.startswith("{"):
        return _from_block_dict(_read_dict(text, input_name), layers, input_name)
    return _from_index_string(text, layers, input_name)


def _from_index_string(text: str, layers, input_name: str) -> dict[int, float]:
    by_index = defaultdict(list)
    for layer in layers:
        by_index[layer.transformer_index].append(layer.key)
    factors = {}
    for piece in re.split(r"[,\n]", text):
        piece = piece.strip()
        if not piece:
            continue  # a trailing comma or blank line
        match = re.fullmatch(r"(-?\d+)\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", piece)
        if not match:
            raise LayerWeightsError(f"{input_name}: '{piece}' is not 'index:value' (e.g. '3:1.0, 6:0.5').")
        index, value = int(match.group(1)), float(match.group(2))
        if index not in by_index:
            raise LayerWeightsError(
                f"{input_name}: index {index} is not a layer of this model; its layers are 0..{max(by_index)} "
                f"(ComfyUI's transformer_index, input blocks first, then the middle block, then the output blocks).")
        for key in by_index[index]:
            factors[key] = value
    return factors


def _read_dict(text: str, input_name: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise LayerWeightsError(f"{input_name}: the block dict is neither JSON nor a Python dict ({exc}).") from exc
    if not isinstance(value, dict):
        raise LayerWeightsError(f"{input_name}: expected a dict with 'down', 'mid' and/or 'up'.")
    return value


def _number(value, where: str, input_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LayerWeightsError(f"{input_name}: {where} must be a number, got {value!r}.")
    return float(value)


def _from_block_dict(spec: dict, layers, input_name: str) -> dict[int, float]:
    unknown = set(spec) - {"down", "mid", "up"}
    if unknown:
        raise LayerWeightsError(f"{input_name}: unknown key(s) {sorted(unknown)}; use 'down', 'mid' and 'up'.")
    # diffusers' names: down_blocks.B.attentions.A, mid_block.attentions.0, up_blocks.B.attentions.A
    attentions = defaultdict(set)  # ("down", B) -> {A}
    for layer in layers:
        parts = layer.diffusers_name.split(".")
        if parts[0] in ("down_blocks", "up_blocks"):
            attentions[(parts[0][:-7], int(parts[1]))].add(int(parts[3]))
    scales: dict[str, float] = {}
    if "mid" in spec:
        mid = spec["mid"]
        if isinstance(mid, list):
            if len(mid) != 1:
                raise LayerWeightsError(f"{input_name}: 'mid' takes one value, got {len(mid)}.")
            mid = mid[0]
        scales["mid_block.attentions.0"] = _number(mid, "'mid'", input_name)
    for side in ("down", "up"):
        if side not in spec:
            continue
        blocks = sorted(b for s, b in attentions if s == side)
        value = spec[side]
        if not isinstance(value, dict):
            value = {f"block_{b}": value for b in blocks}
        for name, block_value in value.items():
            match = re.fullmatch(r"block_(\d+)", str(name))
            block = int(match.group(1)) if match else None
            if block not in blocks:
                raise LayerWeightsError(
                    f"{input_name}: {side}.{name} is not {'a down' if side == 'down' else 'an up'} block with attention in "
                    f"this model; "
                    f"those are {', '.join(f'block_{b}' for b in blocks) or 'none'}.")
            count = len(attentions[(side, block)])
            values = block_value if isinstance(block_value, list) else [block_value]
            if len(values) == 1:
                values = values * count
            if len(values) != count:
                raise LayerWeightsError(f"{input_name}: {side}.{name} has {count} attention(s), got {len(values)} values.")
            for position, v in enumerate(values):
                scales[f"{side}_blocks.{block}.attentions.{position}"] = _number(v, f"{side}.{name}", input_name)
    return {layer.key: scales.get(layer.diffusers_name, 0.0) for layer in layers}
