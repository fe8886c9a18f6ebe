"""The real SD1.5 and SDXL UNet layouts, built by the host on the meta device (no weights).

Why: weight types and block dicts are defined on the real block tables (16 / 70 cross-attention
layers); building the host's own UNetModel on `meta` gives those tables in milliseconds, so the
plans can be checked layer by layer against the leading pack's published tables.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import host  # noqa: E402

_COMMON = dict(image_size=32, in_channels=4, out_channels=4, use_spatial_transformer=True, legacy=False,
               use_checkpoint=False, use_temporal_resblock=False, use_temporal_attention=False)
REAL_UNETS = {
    "sd15": dict(model_channels=320, channel_mult=[1, 2, 4, 4], num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                 transformer_depth_middle=1, context_dim=768, num_heads=8, num_head_channels=-1,
                 use_linear_in_transformer=False, adm_in_channels=None),
    "sdxl": dict(model_channels=320, channel_mult=[1, 2, 4], num_res_blocks=[2, 2, 2],
                 transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
                 transformer_depth_middle=10, context_dim=2048, num_heads=-1, num_head_channels=64,
                 use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential"),
}
_cache: dict = {}


def real_unet(family: str):
    """The host's UNetModel with the released `family` layout, on meta."""
    if family not in _cache:
        host.import_comfy()
        import comfy.ops
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
        with torch.device("meta"):
            _cache[family] = UNetModel(**_COMMON, **REAL_UNETS[family], operations=comfy.ops.disable_weight_init,
                                       device="meta")
    return _cache[family]


def real_layers(family: str):
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    return cross_attention_layers(real_unet(family))
