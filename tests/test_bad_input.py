"""Wrong combinations fail before sampling with a message that names the problem and the fix."""
import pytest
import torch

from comfyui_ipadapter_kit.patching.apply import ModelMismatchError, apply_adapter
from comfyui_ipadapter_kit.patching.encode import EncoderMismatchError


def test_sdxl_adapter_on_an_sd15_model_names_both_families(sd15_model, sdxl_model, make_adapter, clip_vit_h,
                                                           reference_images):
    sdxl_adapter = make_adapter(sdxl_model, "sdxl_vit-h")
    with pytest.raises(ModelMismatchError, match=r"adapter for SDXL .* the model is SD1.5.*made for this checkpoint"):
        apply_adapter(sd15_model, sdxl_adapter, clip_vit_h, reference_images[:1])


def test_sd15_adapter_on_an_sdxl_model_names_both_families(sd15_model, sdxl_model, make_adapter, clip_vit_h,
                                                           reference_images):
    adapter = make_adapter(sd15_model, "sd15")
    with pytest.raises(ModelMismatchError, match=r"adapter for SD1.5 .* the model is SDXL"):
        apply_adapter(sdxl_model, adapter, clip_vit_h, reference_images[:1])


def test_bigg_encoder_with_a_vit_h_adapter_says_which_encoder_to_load(sd15_model, make_adapter, clip_vit_bigg,
                                                                      reference_images):
    adapter = make_adapter(sd15_model, "sd15_plus")
    with pytest.raises(EncoderMismatchError, match=r"needs the CLIP ViT-H-14 .* is ViT-bigG-14.*"
                                                   r"CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"):
        apply_adapter(sd15_model, adapter, clip_vit_bigg, reference_images[:1])


def test_vit_h_encoder_with_a_bigg_adapter_says_which_encoder_to_load(sdxl_model, make_adapter, clip_vit_h,
                                                                      reference_images):
    adapter = make_adapter(sdxl_model, "sdxl")
    with pytest.raises(EncoderMismatchError, match=r"needs the CLIP ViT-bigG-14 .* is ViT-H-14"):
        apply_adapter(sdxl_model, adapter, clip_vit_h, reference_images[:1])


def test_start_after_end_is_refused(sd15_model, make_adapter, clip_vit_h, reference_images):
    adapter = make_adapter(sd15_model, "sd15")
    with pytest.raises(ValueError, match="start_at .* must be below end_at"):
        apply_adapter(sd15_model, adapter, clip_vit_h, reference_images[:1], start_at=0.8, end_at=0.2)


def test_negative_image_count_must_fit_the_references(sd15_model, make_adapter, clip_vit_h, reference_images):
    adapter = make_adapter(sd15_model, "sd15")
    with pytest.raises(ValueError, match="one negative image or one per reference image"):
        apply_adapter(sd15_model, adapter, clip_vit_h, reference_images, image_negative=reference_images[:2])


def test_a_mask_that_is_not_2d_or_3d_is_refused(sd15_model, make_adapter, clip_vit_h, reference_images):
    adapter = make_adapter(sd15_model, "sd15")
    with pytest.raises(ValueError, match=r"attn_mask must be a MASK \[batch, height, width\]"):
        apply_adapter(sd15_model, adapter, clip_vit_h, reference_images[:1], attn_mask=torch.ones(1, 1, 8, 8))
