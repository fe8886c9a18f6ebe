"""Weight types: how an adapter's weight is spread over the UNet's cross-attention layers.

Every type is computed from the layer table of the connected model (`layers.py`), never from
hard-coded layer numbers: the curves use ComfyUI's `transformer_index` t and the number of
SpatialTransformers L (16 on SD1.5, 11 on SDXL), the block types use each layer's block, and
the style/composition types use the style and composition blocks named below by ComfyUI block
id. The names, layers and factors are those of ComfyUI_IPAdapter_plus, except that the middle
block is really patched here, so "weak middle" and "strong middle" do what they say.

The result is a plan the attention patch only looks up: layer key -> LayerRule. A layer that is
not in the plan makes no attention call.
"""
from __future__ import annotations

from dataclasses import dataclass

LINEAR = "linear"
CURVES = ("ease in", "ease out", "ease in-out", "reverse in-out")
BLOCK_TYPES = ("weak input", "weak output", "weak middle", "strong input", "strong output", "strong middle")
STYLE_TYPES = ("style transfer", "composition", "strong style transfer", "style and composition",
               "strong style and composition", "style transfer precise", "composition precise")
WEIGHT_TYPES = (LINEAR, *CURVES, *BLOCK_TYPES, *STYLE_TYPES)
PRECISE = ("style transfer precise", "composition precise")

# The blocks InstantStyle found to carry style and layout, as the leading pack uses them (ComfyUI
# block ids, with a factor per composition block). SD1.5 has no single style block, so the style
# group is the outer (high-resolution) layers; see docs/controls.md for what that means.
STYLE_BLOCKS = {
    "sdxl": frozenset({("output", 1)}),
    "sd15": frozenset({("input", 1), ("input", 2), ("input", 4), ("input", 5),
                       *(("output", i) for i in range(5, 12))}),
}
COMPOSITION_BLOCKS = {
    "sdxl": {("input", 8): 1.0},
    "sd15": {("input", 7): 0.25, ("input", 8): 1.0},
}
WEAK = 0.2  # the factor of the weakened blocks
PRECISE_REST = 0.1  # composition precise: the factor of the layers that are neither style nor composition


@dataclass(frozen=True)
class LayerRule:
    """What one adapter does at one layer."""
    weight: float
    swap: bool = False      # precise modes: positive chunks get no image, the others get the image tokens
    role: str = "style"     # "style" or "composition": which image Style & Composition gives this layer


class WeightTypeError(ValueError):
    pass


def _curve(name: str, t: int, count: int) -> float:
    half = count / 2
    if name == "ease in":
        return 0.05 + 0.95 * (1 - t / count)
    if name == "ease out":
        return 0.05 + 0.95 * t / count
    if name == "ease in-out":
        return 0.05 + 0.95 * (1 - abs(t - half) / half)
    return 0.05 + 0.95 * abs(t - half) / half  # reverse in-out


def _block_factor(name: str, kind: str) -> float:
    strength, target = name.split(" ")
    hit = kind == target
    return WEAK if (hit if strength == "weak" else not hit) else 1.0


def group_of(layer, family: str) -> tuple[str, float]:
    """("composition", factor), ("style", 1) or ("rest", 1) for a layer of a `family` model."""
    factor = COMPOSITION_BLOCKS.get(family, {}).get(layer.block)
    if factor is not None:
        return "composition", factor
    return ("style" if layer.block in STYLE_BLOCKS.get(family, ()) else "rest"), 1.0


def _style_rule(name: str, group: str, c: float, w: float, wc: float, sb: float, cb: float) -> LayerRule | None:
    """The style/composition types, by layer group (the leading pack's tables, section 3)."""
    if name == "style transfer":
        return LayerRule(w) if group == "style" else None
    if name == "composition":
        return LayerRule(w * c) if group == "composition" else None
    if name == "strong style transfer":
        return LayerRule(w) if group != "composition" else None
    if name == "style and composition":
        return {"style": LayerRule(w), "composition": LayerRule(wc * c, role="composition")}.get(group)
    if name == "strong style and composition":  # the composition factor is not applied here
        return LayerRule(wc, role="composition") if group == "composition" else LayerRule(w)
    if name == "style transfer precise":
        return {"style": LayerRule(w), "composition": LayerRule(sb * c, swap=True)}.get(group)
    # composition precise
    return {"composition": LayerRule(w * c), "style": LayerRule(cb, swap=True)}.get(group,
                                                                                  LayerRule(PRECISE_REST * cb, swap=True))


def layer_rules(weight_type: str, layers, family: str, weight: float = 1.0, weight_composition: float = 1.0,
                style_boost: float | None = None, composition_boost: float | None = None) -> dict[int, LayerRule]:
    """Layer key -> LayerRule for every layer the adapter acts on (weight 0 layers are left out)."""
    if weight_type not in WEIGHT_TYPES:
        raise WeightTypeError(f"weight_type '{weight_type}' is not one of: {', '.join(WEIGHT_TYPES)}.")
    w = float(weight)
    sb = w if style_boost is None else float(style_boost)
    cb = w if composition_boost is None else float(composition_boost)
    count = 1 + max(layer.transformer_index for layer in layers)
    rules: dict[int, LayerRule] = {}
    groups_seen = set()
    for layer in layers:
        if weight_type == LINEAR:
            rule = LayerRule(w)
        elif weight_type in CURVES:
            rule = LayerRule(w * _curve(weight_type, layer.transformer_index, count))
        elif weight_type in BLOCK_TYPES:
            rule = LayerRule(w * _block_factor(weight_type, layer.kind))
        else:
            group, c = group_of(layer, family)
            groups_seen.add(group)
            rule = _style_rule(weight_type, group, c, w, float(weight_composition), sb, cb)
        if rule is not None and rule.weight != 0:
            rules[layer.key] = rule
    if weight_type in STYLE_TYPES:
        _require_groups(weight_type, groups_seen, family)
    return rules


def _require_groups(weight_type: str, seen: set, family: str) -> None:
    needed = {"style transfer": {"style"}, "strong style transfer": {"style"}}.get(weight_type,
                                                                                   {"composition"})
    missing = needed - seen
    if missing:
        blocks = sorted(STYLE_BLOCKS.get(family, ())) if "style" in missing else \
            sorted(COMPOSITION_BLOCKS.get(family, {}))
        names = ", ".join(f"{kind} {i}" for kind, i in blocks) or "none known"
        raise WeightTypeError(
            f"weight_type '{weight_type}' acts on the {'/'.join(sorted(missing))} blocks of {family.upper()} "
            f"models ({names}), and this model has none of them: use 'linear' or a block weight type.")


def precise_swaps(weight_type: str, layers, family: str) -> frozenset[int]:
    """The layers a precise type swaps (custom layer weights on a precise type keep its swaps)."""
    if weight_type not in PRECISE:
        return frozenset()
    swapped = set()
    for layer in layers:
        rule = _style_rule(weight_type, *group_of(layer, family), 1.0, 1.0, 1.0, 1.0)
        if rule is not None and rule.swap:
            swapped.add(layer.key)
    return frozenset(swapped)
