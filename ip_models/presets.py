"""The unified loader's presets: which adapter (by structure) and which encoder each one needs.

A preset asks for an adapter layout (projection and required encoder) for the connected model's
family. Layouts that released files share (standard and light; plus, plus face and composition)
cannot be told apart by their weights: then a name hint only *orders* the candidates, so a
renamed file is still found, and the choice is logged.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import FAMILY_NAMES


@dataclass(frozen=True)
class Need:
    projection: str          # "linear", "resampler", "mlp"
    encoder: str             # EncoderInfo.name
    example: str             # the released file name users look for
    prefer: tuple[str, ...] = ()   # name hints that rank a candidate first
    avoid: tuple[str, ...] = ()    # name hints that rank it last


H, G, L336 = "ViT-H-14", "ViT-bigG-14", "ViT-L-14-336"
PRESETS: dict[str, dict[str, Need]] = {
    "LIGHT - SD1.5 only (low strength)": {
        "sd15": Need("linear", H, "ip-adapter_sd15_light_v11.bin", prefer=("light_v11", "light"))},
    "STANDARD (medium strength)": {
        "sd15": Need("linear", H, "ip-adapter_sd15.safetensors", avoid=("light",)),
        "sdxl": Need("linear", H, "ip-adapter_sdxl_vit-h.safetensors")},
    "VIT-G (medium strength)": {
        "sd15": Need("linear", G, "ip-adapter_sd15_vit-G.safetensors"),
        "sdxl": Need("linear", G, "ip-adapter_sdxl.safetensors")},
    "PLUS (high strength)": {
        "sd15": Need("resampler", H, "ip-adapter-plus_sd15.safetensors", avoid=("face", "composition")),
        "sdxl": Need("resampler", H, "ip-adapter-plus_sdxl_vit-h.safetensors", avoid=("face", "composition"))},
    "PLUS FACE (portraits)": {
        "sd15": Need("resampler", H, "ip-adapter-plus-face_sd15.safetensors", prefer=("face",)),
        "sdxl": Need("resampler", H, "ip-adapter-plus-face_sdxl_vit-h.safetensors", prefer=("face",))},
    "FULL FACE - SD1.5 only (portraits stronger)": {
        "sd15": Need("mlp", H, "ip-adapter-full-face_sd15.safetensors")},
    "Composition": {
        "sd15": Need("resampler", H, "ip_plus_composition_sd15.safetensors", prefer=("composition",)),
        "sdxl": Need("resampler", H, "ip_plus_composition_sdxl.safetensors", prefer=("composition",))},
    "Kolors": {
        "sdxl": Need("resampler", L336, "Kolors-IP-Adapter-Plus (ip_adapter_plus_general.bin)")},
}
PRESET_NAMES = tuple(PRESETS)

# Released files by layout (family, projection, encoder): any of them satisfies a preset asking for that
# layout, whatever it is called now (the weights cannot tell these apart; names only order candidates).
_B = " (or .bin)"
RELEASED: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("sd15", "linear", H): ("ip-adapter_sd15.safetensors" + _B, "ip-adapter_sd15_light.safetensors",
                            "ip-adapter_sd15_light_v11.bin"),
    ("sd15", "linear", G): ("ip-adapter_sd15_vit-G.safetensors" + _B,),
    ("sd15", "resampler", H): ("ip-adapter-plus_sd15.safetensors" + _B, "ip-adapter-plus-face_sd15.safetensors" + _B,
                               "ip_plus_composition_sd15.safetensors"),
    ("sd15", "mlp", H): ("ip-adapter-full-face_sd15.safetensors" + _B,),
    ("sdxl", "linear", H): ("ip-adapter_sdxl_vit-h.safetensors" + _B,),
    ("sdxl", "linear", G): ("ip-adapter_sdxl.safetensors" + _B,
                            "a community ViT-bigG 4-token SDXL adapter (e.g. noobIPAMARK1_mark1.safetensors)"),
    ("sdxl", "resampler", H): ("ip-adapter-plus_sdxl_vit-h.safetensors" + _B,
                               "ip-adapter-plus-face_sdxl_vit-h.safetensors" + _B, "ip_plus_composition_sdxl.safetensors"),
    ("sdxl", "resampler", L336): ("ip_adapter_plus_general.bin (Kolors-IP-Adapter-Plus)",
                                  "Kolors-IP-Adapter-Plus.safetensors"),
}


class PresetError(ValueError):
    pass


def _lookup(table: dict, preset: str, family: str):
    if preset not in table:
        raise PresetError(f"preset '{preset}' is not one of: {', '.join(table)}.")
    need = table[preset].get(family)
    if need is None:
        bases = " and ".join(FAMILY_NAMES[f] for f in table[preset])
        raise PresetError(f"preset '{preset}' exists for {bases} only, but the model is {FAMILY_NAMES[family]}: "
                          f"pick another preset.")
    return need


def need_for(preset: str, family: str) -> Need:
    return _lookup(PRESETS, preset, family)


def satisfying_files(need: Need, family: str) -> tuple[str, ...]:
    """Every released file (by its usual name) whose layout satisfies `need` on a `family` model, the ones
    the preset ranks first leading (e.g. PLUS: plus before plus-face and composition, which also fit)."""
    names = RELEASED.get((family, need.projection, need.encoder), ())
    return tuple(sorted(names, key=lambda name: rank(need, name)[0])) or (need.example,)


def rank(need: Need, name: str) -> tuple[int, str]:
    lowered = name.lower()
    score = 0 if any(h in lowered for h in need.prefer) else 1
    if any(h in lowered for h in need.avoid):
        score = 2
    return score, lowered


def adapter_fits(need: Need, family: str, identity) -> bool:
    spec = identity.spec
    return (identity.kind == "adapter" and spec.family == family and spec.projection == need.projection
            and spec.encoder is not None and spec.encoder.name == need.encoder)


@dataclass(frozen=True)
class FaceNeed:
    face: str                # AdapterSpec.face: "mlp", "plus", "resampler"
    tokens: int              # tokens per face (0: any)
    example: str
    encoder: str = ""        # the CLIP encoder FaceID-Plus needs for the face crop
    prefer: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()


FACEID_PRESETS: dict[str, dict[str, FaceNeed]] = {
    "FACEID": {"sd15": FaceNeed("mlp", 4, "ip-adapter-faceid_sd15.bin"),
               "sdxl": FaceNeed("mlp", 4, "ip-adapter-faceid_sdxl.bin")},
    "FACEID PLUS - SD1.5 only": {"sd15": FaceNeed("plus", 0, "ip-adapter-faceid-plus_sd15.bin", H, avoid=("v2",))},
    "FACEID PLUS V2": {"sd15": FaceNeed("plus", 0, "ip-adapter-faceid-plusv2_sd15.bin", H, prefer=("v2",)),
                       "sdxl": FaceNeed("plus", 0, "ip-adapter-faceid-plusv2_sdxl.bin", H, prefer=("v2",))},
    "FACEID PORTRAIT (style transfer)": {
        "sd15": FaceNeed("mlp", 16, "ip-adapter-faceid-portrait-v11_sd15.bin", prefer=("v11",)),
        "sdxl": FaceNeed("mlp", 16, "ip-adapter-faceid-portrait_sdxl.bin", avoid=("unnorm",))},
    "FACEID PORTRAIT UNNORM - SDXL only (strong)": {
        "sdxl": FaceNeed("resampler", 16, "ip-adapter-faceid-portrait_sdxl_unnorm.bin")},
}
FACEID_PRESET_NAMES = tuple(FACEID_PRESETS)


def face_need_for(preset: str, family: str) -> FaceNeed:
    return _lookup(FACEID_PRESETS, preset, family)


def face_adapter_fits(need: FaceNeed, family: str, identity) -> bool:
    spec = identity.spec
    return (identity.kind == "adapter" and spec.family == family and spec.face == need.face
            and not spec.token_dim and (need.tokens == 0 or spec.num_tokens == need.tokens))
