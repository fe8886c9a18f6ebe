"""The cross-attention layers of the host's UNet: the block table every control is derived from.

Checkpoints number every attention processor of the diffusers UNet: down blocks, up blocks, then
the middle block; cross-attention layers take the odd numbers. ComfyUI's UNet has the same
layers as `input_blocks`, `output_blocks` and `middle_block`, so the table is read off the model
itself instead of being hard-coded per architecture. Each layer also carries the names the
controls use: ComfyUI's `transformer_index` (SpatialTransformers counted in execution order,
input -> middle -> output, what the leading pack's layer indices mean) and diffusers' attention
name (`down_blocks.2.attentions.1`, what InstantStyle's block dicts address).
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
    transformer_index: int = 0  # SpatialTransformer count in execution order (input, middle, output)
    diffusers_name: str = ""    # e.g. "down_blocks.2.attentions.1", "mid_block.attentions.0"
    # The layer's own attention method, where the host stores one per layer (ComfyUI 0.38+:
    # `comfy_attention`, e.g. from an int8 checkpoint); the patch hands it on for the text part.
    preferred_attention: object = None

    @property
    def patch_key(self) -> tuple[str, int, int]:
        return (*self.block, self.index)

    @property
    def kind(self) -> str:
        """"input", "middle" or "output"."""
        return self.block[0]

    def __deepcopy__(self, memo):
        return self  # immutable; never copy the host's attention method along


def _has(module: nn.Module, class_name: str) -> bool:
    return any(type(m).__name__ == class_name for m in module.children())


def _transformers(block: nn.Module):
    return [m for m in (block or ()) if getattr(m, "transformer_blocks", None) is not None]


def _diffusers_names(diffusion_model: nn.Module) -> dict[tuple[str, int], str]:
    """ComfyUI (block_name, block_id) -> diffusers attention name, from the blocks' contents.

    Input blocks: block 0 is conv_in; each level has its res blocks, then a Downsample block.
    Output blocks: each level has its res blocks, the last of which carries the Upsample.
    """
    names = {("middle", 0): "mid_block.attentions.0"}
    level, position = 0, 0
    for block_id, block in enumerate(diffusion_model.input_blocks):
        if block_id == 0:
            continue
        if _has(block, "Downsample"):
            level, position = level + 1, 0
            continue
        names[("input", block_id)] = f"down_blocks.{level}.attentions.{position}"
        position += 1
    level, position = 0, 0
    for block_id, block in enumerate(diffusion_model.output_blocks):
        names[("output", block_id)] = f"up_blocks.{level}.attentions.{position}"
        level, position = (level + 1, 0) if _has(block, "Upsample") else (level, position + 1)
    return names


def cross_attention_layers(diffusion_model: nn.Module) -> tuple[CrossAttentionLayer, ...]:
    inputs = getattr(diffusion_model, "input_blocks", None)
    outputs = getattr(diffusion_model, "output_blocks", None)
    if inputs is None or outputs is None:
        raise TypeError("This model is not a UNet with input/output blocks (IP-Adapter for SD1.5/SDXL "
                        "needs an SD1.5- or SDXL-type model).")
    middle = getattr(diffusion_model, "middle_block", None)
    # ComfyUI's transformer_index: SpatialTransformers in execution order.
    execution = [("input", i, b) for i, b in enumerate(inputs)] + [("middle", 0, middle)] + \
                [("output", i, b) for i, b in enumerate(outputs)]
    t_index, t = {}, 0
    for name, block_id, block in execution:
        for module in _transformers(block):
            t_index[(name, block_id, id(module))] = t
            t += 1
    diffusers_names = _diffusers_names(diffusion_model)

    layers = []
    # Checkpoint order: down (input) blocks, up (output) blocks, then the middle block last.
    for name, blocks in (("input", inputs), ("output", outputs), ("middle", [middle])):
        for block_id, block in enumerate(blocks):
            for module in _transformers(block):
                for index, transformer in enumerate(module.transformer_blocks):
                    attn2 = getattr(transformer, "attn2", None)
                    if attn2 is None:
                        continue
                    width, context_dim = attn2.to_k.weight.shape
                    layers.append(CrossAttentionLayer(
                        2 * len(layers) + 1, (name, block_id), index, width, context_dim,
                        t_index[(name, block_id, id(module))], diffusers_names.get((name, block_id), ""),
                        getattr(attn2, "comfy_attention", None)))
    return tuple(layers)


def transformer_count(layers) -> int:
    """How many SpatialTransformers the UNet runs (16 for SD1.5, 11 for SDXL): the curves' length."""
    return 1 + max(layer.transformer_index for layer in layers) if layers else 0
