"""The CLIP image encoders IP-Adapters were trained with, by the widths they produce."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    hidden_width: int      # width of the hidden states (penultimate layer)
    embed_width: int       # width of the projected, pooled image_embeds
    image_size: int
    file_hint: str         # the file users usually have for it

    def width_of(self, clip_input: str) -> int:
        return self.hidden_width if clip_input == "penultimate" else self.embed_width


ENCODERS = (
    EncoderInfo("ViT-H-14", 1280, 1024, 224, "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"),
    EncoderInfo("ViT-bigG-14", 1664, 1280, 224, "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"),
    EncoderInfo("ViT-L-14-336", 1024, 768, 336, "clip-vit-large-patch14-336.safetensors"),
)


def identify_encoder(hidden_width: int, embed_width: int) -> EncoderInfo | None:
    for info in ENCODERS:
        if info.hidden_width == hidden_width and info.embed_width == embed_width:
            return info
    return None


def encoder_for_input(clip_input: str, width: int) -> EncoderInfo | None:
    """The encoder whose `clip_input` output has this width (first match wins: ViT-H, bigG)."""
    for info in ENCODERS:
        if info.width_of(clip_input) == width:
            return info
    return None
