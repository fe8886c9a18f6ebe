"""Reusable embeddings: encode once, combine, save and load as safetensors, apply without images;
noise negatives; the content cache."""
import os
import subprocess
import sys

import pytest
import torch

from comfyui_ipadapter_kit.ip_models.combine import combine_embeds
from comfyui_ipadapter_kit.ip_models.noise import make_noise
from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching import embeds as engine
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.encode import image_features
from comfyui_ipadapter_kit.patching.plan import BatchMismatchError
from comfyui_ipadapter_kit.ip_models.adapter import IPAdapterModel
import host
from sampling import ksample


@pytest.fixture(scope="module")
def sd15_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15")


@pytest.fixture(scope="module")
def plus_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15_plus")


def encode(adapter, clip, image, weight=1.0, mask=None, batch=0):
    return NODES["IPAKitEncoder"]().encode(adapter, clip, image, weight, mask, batch)


def test_the_encoder_gives_features_and_the_trained_negative(sd15_adapter, plus_adapter, clip_vit_h, reference_images):
    pos, neg = encode(sd15_adapter, clip_vit_h, reference_images, weight=0.5)
    assert torch.allclose(pos.features, 0.5 * image_features(clip_vit_h, reference_images, "image_embeds"))
    assert torch.equal(neg.features, torch.zeros(1, 1024))
    assert (pos.clip_input, pos.encoder, pos.variant) == ("image_embeds", "ViT-H-14", "sd15")
    pos, neg = encode(plus_adapter, clip_vit_h, reference_images[:1])
    assert pos.features.shape == (1, 17, 1280) and neg.features.shape == (1, 17, 1280)


def test_a_full_mask_changes_nothing_and_a_partial_one_changes_the_features(sd15_adapter, clip_vit_h,
                                                                            reference_images):
    plain, _ = encode(sd15_adapter, clip_vit_h, reference_images[:2])
    full, _ = encode(sd15_adapter, clip_vit_h, reference_images[:2], mask=torch.ones(1, 64, 64))
    assert torch.allclose(full.features, plain.features, atol=1e-6)
    half = torch.ones(2, 64, 64)
    half[1, :, 32:] = 0  # one mask per image
    masked, _ = encode(sd15_adapter, clip_vit_h, reference_images[:2], mask=half)
    assert torch.allclose(masked.features[0], plain.features[0], atol=1e-6)
    assert not torch.allclose(masked.features[1], plain.features[1], atol=1e-3)
    with pytest.raises(ValueError, match="mask has 2 masks for 3 images"):
        encode(sd15_adapter, clip_vit_h, reference_images, mask=half)


def test_applying_embeds_equals_applying_the_images(sd15_model, plus_adapter, clip_vit_h, reference_images):
    pos, neg = encode(plus_adapter, clip_vit_h, reference_images[:2])
    from_images = apply_adapter(sd15_model, plus_adapter, clip_vit_h, reference_images[:2], weight=0.7)
    (from_embeds,) = NODES["IPAKitApplyEmbeds"]().apply(sd15_model, plus_adapter, pos, 0.7, "linear", 0.0, 1.0,
                                                        "V only", neg_embed=neg)
    assert torch.equal(ksample(from_embeds, "sd15"), ksample(from_images, "sd15"))


def test_embeds_from_another_encoder_are_refused_with_the_fix(sd15_model, sd15_adapter, plus_adapter, clip_vit_h,
                                                              reference_images):
    pos, _ = encode(plus_adapter, clip_vit_h, reference_images[:1])
    with pytest.raises(engine.EmbedsError, match=r"pos_embed holds 1 x penultimate hidden states of width 1280 .*"
                                                 r"needs pooled image_embeds of width 1024 .*encode them with this adapter"):
        engine.apply_embeds(sd15_model, sd15_adapter, pos)
    with pytest.raises(engine.EmbedsError, match="connect neg_embed .* or clip_vision"):
        engine.apply_embeds(sd15_model, plus_adapter, pos)


def test_a_faceid_adapter_on_the_embeds_nodes_names_the_faceid_nodes(sd15_model, sd15_adapter, make_adapter,
                                                                     clip_vit_h, reference_images):
    faceid = make_adapter(sd15_model, "faceid_sd15", ext=".bin")
    with pytest.raises(ValueError, match=r"is a FaceID adapter: use 'Apply FaceID \(Kit\)'"):
        encode(faceid, clip_vit_h, reference_images[:1])
    pos, _ = encode(sd15_adapter, clip_vit_h, reference_images[:1])
    with pytest.raises(ValueError, match=r"is a FaceID adapter: use 'Apply FaceID \(Kit\)'"):
        engine.apply_embeds(sd15_model, faceid, pos)


def test_too_many_embeddings_for_the_frames_are_named_pos_embed(sd15_model, sd15_adapter, clip_vit_h,
                                                                reference_images):
    pos, neg = encode(sd15_adapter, clip_vit_h, reference_images[:3])
    patched = engine.apply_embeds(sd15_model, sd15_adapter, pos, neg, unfold_batch=True)
    with pytest.raises(BatchMismatchError, match="^pos_embed has 3 images for 2 latent frames"):
        ksample(patched, "sd15", batch=2)


def test_combine_embeds_follows_the_formulas_and_refuses_mixed_inputs(sd15_adapter, plus_adapter, clip_vit_h,
                                                                      reference_images):
    a, _ = encode(sd15_adapter, clip_vit_h, reference_images[:1])
    b, _ = encode(sd15_adapter, clip_vit_h, reference_images[1:3])
    (avg,) = NODES["IPAKitCombineEmbeds"]().combine(a, "norm average", embed3=b)
    assert torch.allclose(avg.features, combine_embeds(torch.cat([a.features, b.features]), "norm average"))
    (joined,) = NODES["IPAKitCombineEmbeds"]().combine(a, "concat", embed2=b)
    assert joined.features.shape == (3, 1024)
    other, _ = encode(plus_adapter, clip_vit_h, reference_images[:1])
    with pytest.raises(engine.EmbedsError, match="Cannot combine"):
        NODES["IPAKitCombineEmbeds"]().combine(a, "add", embed2=other)


def test_saved_embeds_load_back_bit_exact_with_their_metadata(plus_adapter, clip_vit_h, reference_images):
    import folder_paths
    pos, _ = encode(plus_adapter, clip_vit_h, reference_images[:2])
    first = NODES["IPAKitSaveEmbeds"]().save(pos, "roundtrip")["ui"]["embeds"][0]["filename"]
    second = NODES["IPAKitSaveEmbeds"]().save(pos, "roundtrip")["ui"]["embeds"][0]["filename"]
    assert first != second and first.endswith(".embeds.safetensors")  # numbered: nothing is overwritten
    listed = NODES["IPAKitLoadEmbeds"].INPUT_TYPES()["required"]["embeds"][0]
    assert f"{first} [output]" in listed
    (loaded,) = NODES["IPAKitLoadEmbeds"]().load(f"{first} [output]")
    assert torch.equal(loaded.features, pos.features)
    assert (loaded.clip_input, loaded.encoder, loaded.variant) == ("penultimate", "ViT-H-14", "sd15_plus")
    assert folder_paths.get_output_directory() in folder_paths.get_annotated_filepath(f"{first} [output]")


def test_a_pickle_is_refused_with_how_to_convert_it_and_the_converter_works(tmp_path):
    import folder_paths
    pickle_path = tmp_path / "old.ipadpt"
    torch.save(torch.randn(2, 1024), pickle_path)
    with pytest.raises(engine.EmbedsError, match=r"old.ipadpt is a pickle .* never unpickled here. Convert it once, "
                                                 r"reading tensors only: python scripts/convert_embeds.py"):
        engine.load(str(pickle_path))
    subprocess.run([sys.executable, str(host.REPO / "scripts" / "convert_embeds.py"), str(pickle_path)], check=True,
                   capture_output=True)
    converted = engine.load(str(tmp_path / "old.embeds.safetensors"))
    assert torch.equal(converted.features, torch.load(pickle_path, weights_only=True))
    assert (converted.clip_input, converted.encoder) == ("image_embeds", "ViT-H-14")
    assert folder_paths  # listed files come from input/ and output/ only


def test_features_are_encoded_once_across_weight_type_and_window_changes(sd15_model, sd15_adapter, clip_vit_h,
                                                                         monkeypatch):
    encodes, projections = [], []
    original_encode, original_project = clip_vit_h.encode_image, IPAdapterModel.project
    monkeypatch.setattr(clip_vit_h, "encode_image", lambda image, **kw: encodes.append(1) or original_encode(image, **kw))
    monkeypatch.setattr(IPAdapterModel, "project", lambda self, f: projections.append(1) or original_project(self, f))
    fresh = torch.rand(1, 40, 40, 3, generator=torch.Generator().manual_seed(77))
    settings = [dict(weight=0.3), dict(weight=0.9, weight_type="ease in"), dict(start_at=0.2, end_at=0.6),
                dict(embeds_scaling="K+V", weight_type="strong middle")]
    for kw in settings:
        apply_adapter(sd15_model, sd15_adapter, clip_vit_h, fresh.clone(), **kw)
    assert len(encodes) == 1  # the only other work per change: projecting cond and uncond tokens again
    assert len(projections) == 2 * len(settings)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_pickle_renamed_to_safetensors_is_refused_with_how_to_convert_it(zip_format):
    import folder_paths
    renamed = "renamed.embeds.safetensors"
    torch.save(torch.randn(1, 1024), os.path.join(folder_paths.get_input_directory(), renamed),
               _use_new_zipfile_serialization=zip_format)
    assert renamed in NODES["IPAKitLoadEmbeds"].INPUT_TYPES()["required"]["embeds"][0]
    with pytest.raises(engine.EmbedsError, match=r"renamed.embeds.safetensors is a pickle .* never unpickled here. "
                                                 r"Convert it once, reading tensors only: python "
                                                 r"scripts/convert_embeds.py .*renamed.embeds.safetensors"):
        NODES["IPAKitLoadEmbeds"]().load(renamed)


def count_vision_forwards(clip) -> list:
    """Every forward of the CLIP vision model (image encodes, masked encodes and the trained 'no image' one)."""
    forwards = []
    clip.model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    return forwards


CONTROL_CHANGES = [dict(weight=0.3), dict(weight=0.9, weight_type="ease in"), dict(start_at=0.2, end_at=0.6),
                   dict(weight=1.4, weight_type="strong middle", start_at=0.1, end_at=0.9)]


@pytest.mark.parametrize("variant, first_forwards", [("sd15", 1), ("sd15_plus", 2)])
def test_changing_only_weight_type_or_window_runs_no_clip_vision_forward(variant, first_forwards, sd15_model,
                                                                         make_adapter):
    from support.tiny_clip import make_clip_vision
    clip = make_clip_vision("vit-h", seed=2)  # its own feature cache
    forwards = count_vision_forwards(clip)
    adapter = make_adapter(sd15_model, variant)
    image = torch.rand(1, 48, 40, 3, generator=torch.Generator().manual_seed(78))
    apply_adapter(sd15_model, adapter, clip, image)
    assert len(forwards) == first_forwards  # the image; plus adapters also encode zero pixels for their negative
    for controls in CONTROL_CHANGES:
        apply_adapter(sd15_model, adapter, clip, image.clone(), **controls)
    assert len(forwards) == first_forwards


def test_batch_encodes_run_in_chunks_with_a_progress_bar(sd15_adapter, clip_vit_h, monkeypatch):
    import comfy.utils
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None: updates.append(
        (value, total)), raising=False)
    frames = torch.rand(7, 32, 32, 3, generator=torch.Generator().manual_seed(5))
    clip_calls = []
    original = clip_vit_h.encode_image
    monkeypatch.setattr(clip_vit_h, "encode_image", lambda image, **kw: clip_calls.append(image.shape[0]) or
                        original(image, **kw))
    chunked = image_features(clip_vit_h, frames, "image_embeds", batch_size=3)
    assert clip_calls == [3, 3, 1] and updates[-1] == (3, 3)  # newer hosts throttle the updates in between
    assert updates[0] == (1, 3) and all(total == 3 for _, total in updates)  # one bar over the chunks
    assert [value for value, _ in updates] == sorted({value for value, _ in updates})
    assert torch.allclose(chunked, original(frames)["image_embeds"].float(), atol=1e-5)  # same as all at once


# --------------------------------------------------------------------------- noise
@pytest.mark.parametrize("kind", ["fade", "dissolve", "gaussian", "shuffle"])
def test_noise_is_deterministic_for_the_same_input_and_seed(kind, reference_images):
    rng = torch.get_rng_state()
    a = make_noise(kind, 0.6, 3, reference_images[:1], seed=5)
    b = make_noise(kind, 0.6, 3, reference_images[:1], seed=5)
    assert torch.equal(a, b) and not torch.equal(a, make_noise(kind, 0.6, 3, reference_images[:1], seed=6))
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator is never touched
    assert a.shape == (1, 224, 224, 3) and 0 <= a.min() and a.max() <= 1


def test_noise_strength_zero_keeps_the_image_and_a_mask_limits_the_noise(reference_images):
    base = make_noise("fade", 0.0, 0, reference_images[:1])
    assert torch.allclose(make_noise("gaussian", 0.0, 0, reference_images[:1]), base)
    mask = torch.zeros(1, 224, 224)
    mask[:, :, 112:] = 1
    masked = make_noise("dissolve", 1.0, 0, reference_images[:1], mask=mask, seed=1)
    assert torch.allclose(masked[:, :, :100], base[:, :, :100]) and not torch.allclose(masked[:, :, 130:],
                                                                                      base[:, :, 130:])
    assert make_noise("fade", 1.0, 0).shape == (1, 224, 224, 3)  # no image: noise on black
