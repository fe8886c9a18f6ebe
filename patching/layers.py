"""The cross-attention layers of the host's UNet, in the order IP-Adapter checkpoints number them.

Checkpoints number every attention processor of the diffusers UNet: down blocks, up blocks, then
the middle block; cross-attention layers take the odd numbers. ComfyUI's UNet has the same
layers as `input_blocks`, `output_blocks` and `middle_block`, so the table is read off the model
itself instead of being hard-coded per architecture.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class CrossAttentionLayer:
    key: int                # the checkpoint number ("{key}.to_k_ip.weight")
    block: tuple[str, int]  # ComfyUI's (block_name, block_id)
    index: int              # transformer block index inside that block
    width: int              # hidden width of the layer (rows of to_k)
    context_dim: int        # width of the text context (columns of to_k)
    # The layer's own attention method, where the host stores one per layer (ComfyUI 0.38+:
    # `comfy_attention`, e.g. from an int8 checkpoint); the patch hands it on for the text part.
    preferred_attention: object = None

    @property
    def patch_key(self) -> tuple[str, int, int]:
        return (*self.block, self.index)

    def __deepcopy__(self, memo):
        return self  # immutable; never copy the host's attention method along


def cross_attention_layers(diffusion_model: nn.Module) -> tuple[CrossAttentionLayer, ...]:
    groups = (("input", getattr(diffusion_model, "input_blocks", None)),
              ("output", getattr(diffusion_model, "output_blocks", None)),
              ("middle", [getattr(diffusion_model, "middle_block", None)]))
    if groups[0][1] is None or groups[1][1] is None:
        raise TypeError("This model is not a UNet with input/output blocks (IP-Adapter for SD1.5/SDXL "
                        "needs an SD1.5- or SDXL-type model).")
    layers = []
    for block_name, blocks in groups:
        for block_id, block in enumerate(blocks):
            for module in (block or ()):
                for index, transformer in enumerate(getattr(module, "transformer_blocks", ())):
                    attn2 = getattr(transformer, "attn2", None)
                    if attn2 is None:
                        continue
                    width, context_dim = attn2.to_k.weight.shape
                    layers.append(CrossAttentionLayer(2 * len(layers) + 1, (block_name, block_id), index,
                                                      width, context_dim,
                                                      getattr(attn2, "comfy_attention", None)))
    return tuple(layers)
