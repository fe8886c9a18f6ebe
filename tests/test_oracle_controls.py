"""The controls against diffusers 0.42.1 on the whole tiny UNet, fp32: per-block scales given as an
InstantStyle dict (through diffusers' own `set_ip_adapter_scale`), two stacked adapters with two
masks, and several images for one adapter."""
import pytest
import torch

from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.encode import image_features, unconditional_features
from support.checkpoints import make_adapter_state_dict, save_adapter
from support.diffusers_oracle import diffusers_unet_eps_multi
from support.tiny_unets import cross_attention_layer_widths, unet_inputs
from support.patches import relative_error

TOLERANCE = 1e-4
BLOCK_DICTS = {  # diffusers' block names of the tiny UNets (tests/support/tiny_unets.py)
    "sd15": {"down": {"block_1": [1.0]}, "up": {"block_0": [0.0, 0.5]}, "mid": 0.7},
    "sdxl": {"down": {"block_2": 0.8}, "up": {"block_0": [1.0, 0.0], "block_1": 0.3}},
}





@pytest.fixture(scope="module")
def adapter_pair(diffusers_unets, tmp_path_factory):
    """variant -> (state dict, LoadedAdapter), real files, widths from diffusers' UNet."""
    root = tmp_path_factory.mktemp("oracle-controls")
    out = {}
    for i, (variant, family) in enumerate((("sd15", "sd15"), ("sd15_plus", "sd15"), ("sdxl_vit-h", "sdxl"))):
        state = make_adapter_state_dict(variant, cross_attention_layer_widths(diffusers_unets[family]), seed=40 + i)
        out[variant] = (state, load_adapter(str(save_adapter(state, root / f"{variant}.safetensors"))))
    return out


def features(clip, images, clip_input):
    cond = image_features(clip, images, clip_input)
    return torch.cat([cond, unconditional_features(clip, clip_input, cond).expand_as(cond)])  # rows: cond, uncond


def ours(patched, family, x, t, ctx, y):
    options = dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1])
    with torch.no_grad():
        return patched.model.diffusion_model(x, t, context=ctx, y=y, transformer_options=options)


@pytest.mark.parametrize("family, variant", [("sd15", "sd15"), ("sdxl", "sdxl_vit-h")])
def test_an_instantstyle_block_dict_matches_diffusers_set_ip_adapter_scale(family, variant, models, diffusers_unets,
                                                                            adapter_pair, clip_vit_h, reference_images):
    import json
    state, adapter = adapter_pair[variant]
    patched = apply_adapter(models[family], adapter, clip_vit_h, reference_images[:1], weight=1.0,
                            layer_weights=json.dumps(BLOCK_DICTS[family]))
    x, t, ctx, y, added = unet_inputs(family, batch=2)
    reference = diffusers_unet_eps_multi(diffusers_unets[family], [state], x, t, ctx,
                                         [features(clip_vit_h, reference_images[:1], "image_embeds")],
                                         BLOCK_DICTS[family], added_cond_kwargs=added)
    assert relative_error(ours(patched, family, x, t, ctx, y), reference) < TOLERANCE
    uniform = diffusers_unet_eps_multi(diffusers_unets[family], [state], x, t, ctx,
                                       [features(clip_vit_h, reference_images[:1], "image_embeds")], 1.0,
                                       added_cond_kwargs=added)
    assert relative_error(reference, uniform) > 1e-3  # the dict really changes the result


def test_two_stacked_adapters_with_two_masks_match_diffusers(models, diffusers_unets, adapter_pair, clip_vit_h,
                                                            reference_images, monkeypatch):
    # diffusers resizes masks bicubically, the pack bilinearly (bicubic overshoots 0..1); make the oracle
    # resize like the pack so everything else (per-adapter masked attention, stacking, scales) is compared.
    import diffusers.image_processor as dip
    import torch.nn.functional as F

    class Bilinear:
        def __getattr__(self, name):
            return getattr(F, name)

        @staticmethod
        def interpolate(x, size=None, mode=None, **kw):
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    monkeypatch.setattr(dip, "F", Bilinear())

    (s1, a1), (s2, a2) = adapter_pair["sd15"], adapter_pair["sd15_plus"]
    left = torch.zeros(1, 8, 8)
    left[:, :, :5] = 1.0
    top = torch.zeros(1, 8, 8)
    top[:, :3, :] = 1.0
    first = apply_adapter(models["sd15"], a1, clip_vit_h, reference_images[:1], weight=0.8, attn_mask=left)
    both = apply_adapter(first, a2, clip_vit_h, reference_images[1:2], weight=0.6, attn_mask=top)
    x, t, ctx, y, added = unet_inputs("sd15", batch=2)
    reference = diffusers_unet_eps_multi(
        diffusers_unets["sd15"], [s1, s2], x, t, ctx,
        [features(clip_vit_h, reference_images[:1], "image_embeds"),
         features(clip_vit_h, reference_images[1:2], "penultimate")],
        [0.8, 0.6], ip_masks=[left[None], top[None]])
    assert relative_error(ours(both, "sd15", x, t, ctx, y), reference) < TOLERANCE


@pytest.mark.parametrize("family, variant", [("sd15", "sd15_plus"), ("sdxl", "sdxl_vit-h")])
def test_several_images_for_one_adapter_match_diffusers(family, variant, models, diffusers_unets, adapter_pair,
                                                        clip_vit_h, reference_images):
    state, adapter = adapter_pair[variant]
    clip_input = adapter.spec.clip_input
    patched = apply_adapter(models[family], adapter, clip_vit_h, reference_images, weight=0.9)
    x, t, ctx, y, added = unet_inputs(family, batch=2)
    cond = image_features(clip_vit_h, reference_images, clip_input)
    uncond = unconditional_features(clip_vit_h, clip_input, cond).expand_as(cond)
    per_entry = torch.stack([cond, uncond])  # [batch, n_images, ...]: all three images join one softmax
    reference = diffusers_unet_eps_multi(diffusers_unets[family], [state], x, t, ctx, [per_entry], 0.9,
                                         added_cond_kwargs=added)
    assert relative_error(ours(patched, family, x, t, ctx, y), reference) < TOLERANCE
